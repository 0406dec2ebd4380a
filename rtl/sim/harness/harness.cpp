// The harness around a Verilated model `Vtop`: rtl/sim/verilator.py substitutes the three
// placeholders (the design's ports) and compiles it with models.h.
#include <cstdint>
#include <memory>
#include "Vtop.h"
#include "verilated.h"
#include "models.h"
#ifdef M3VIT_FAST_EDGE
#include "Vtop___024root.h"
bool Vtop___024root___eval_phase__act(Vtop___024root* vlSelf);
bool Vtop___024root___eval_phase__nba(Vtop___024root* vlSelf);
#endif

static VerilatedContext* ctx = nullptr;
static Vtop* top = nullptr;
static m3vit::Ports ports;
static std::vector<std::unique_ptr<m3vit::Model>> models;
static uint64_t cycle = 0;
static std::string failure_kind, failure_message;

static void fill_ports() {
    ports.by_name.clear();
    ${port_table}
}

// Evaluation without the input-combinational region (M3VIT_FAST_EDGE: the scheduler functions
// of Verilator 5 are known; else a plain eval()). Exact when no input changed since the last
// full evaluation: the clocked region re-evaluates everything that depends on state, and the
// input region would recompute the values it already holds.
static inline void eval_clocked() {
#ifdef M3VIT_FAST_EDGE
    Vtop___024root* root = top->rootp;
    do {
        while (Vtop___024root___eval_phase__act(root)) {}
    } while (Vtop___024root___eval_phase__nba(root));
#else
    top->eval();
#endif
}
// Falling edge and settle after the models drove this cycle's inputs.
static inline void settle() {
    top->clk = 0;
    if (m3vit::inputs_dirty) {
        top->eval();
        m3vit::inputs_dirty = false;
    } else {
        eval_clocked();
    }
}
static inline void edge() { top->clk = 1; eval_clocked(); }

template <class T, class... A> static int add(A&&... a) {
    try {
        models.emplace_back(new T(ports, std::forward<A>(a)...));
    } catch (const std::string& e) {
        failure_kind = "ValueError";
        failure_message = e;
        return -1;
    }
    return (int)models.size() - 1;
}
template <class T> static T* model(int i) { return static_cast<T*>(models.at(i).get()); }

extern "C" {
void h_init() {
    models.clear();
    if (top) { delete top; delete ctx; }
    ctx = new VerilatedContext;
    top = new Vtop{ctx};
    top->clk = 0; top->eval();
    fill_ports();
    cycle = 0;
    m3vit::inputs_dirty = true;
}
void h_eval() { top->eval(); }
void h_tick() { top->clk = 1; top->eval(); top->clk = 0; top->eval(); }
void h_set(int idx, const uint32_t* w) {
    switch (idx) {
        ${sets}
        default: break;
    }
}
void h_get(int idx, uint32_t* w) {
    switch (idx) {
        ${gets}
        default: break;
    }
}
void h_final() { models.clear(); if (top) { top->final(); delete top; delete ctx; top = nullptr; } }

// ---- compiled cycle models (rtl/sim/compiled.py)
int h_add_ddr(const char* p, uint8_t* mem, uint64_t size, uint64_t base, int width, int rl,
              int wl, double stall, int has_bpc, double bpc, uint64_t seed) {
    return add<m3vit::Ddr>(std::string(p), mem, size, base, width, rl, wl, stall, has_bpc != 0,
                           bpc, seed);
}
void h_ddr_error_range(int i, uint64_t lo, uint64_t hi) {
    model<m3vit::Ddr>(i)->error_ranges.push_back({lo, hi});
}
void h_ddr_counters(int i, uint64_t* out) {
    auto* d = model<m3vit::Ddr>(i);
    out[0] = d->read_beats; out[1] = d->write_beats; out[2] = d->read_bursts;
}
int h_add_checker(const char* p, int width, int lite) {
    return add<m3vit::AxiChecker>(std::string(p), width, lite != 0);
}
uint64_t h_checker_transfers(int i) { return model<m3vit::AxiChecker>(i)->transfers; }
int h_add_lite(const char* p, double stall, uint64_t seed) {
    return add<m3vit::LiteMaster>(std::string(p), stall, seed);
}
int h_lite_push(int i, int write, uint64_t addr, uint64_t data, uint64_t strb, int aw_delay,
                int w_delay) {
    return model<m3vit::LiteMaster>(i)->push(write != 0, addr, data, strb, aw_delay, w_delay);
}
int h_lite_result(int i, int op, uint64_t* out) {
    auto& o = model<m3vit::LiteMaster>(i)->ops.at(op);
    out[0] = (uint64_t)o.resp; out[1] = o.rdata; out[2] = o.done_cycle;
    return o.done;
}
int h_add_trace(const char* p, const char* irq) {
    return add<m3vit::Trace>(std::string(p), std::string(irq));
}
int h_trace_fetch(int i, uint64_t* out, int max_words, uint64_t* irq) {
    auto* t = model<m3vit::Trace>(i);
    int n = (int)t->events.size() < max_words ? (int)t->events.size() : max_words;
    std::memcpy(out, t->events.data(), 8 * n);
    t->events.erase(t->events.begin(), t->events.begin() + n);
    *irq = t->irq;
    return n;
}
int h_add_script(int n_ports, const char** names, const uint32_t* table, uint64_t n_words) {
    std::vector<std::string> v(names, names + n_ports);
    return add<m3vit::Script>(v, std::vector<uint32_t>(table, table + n_words));
}
void h_random(uint64_t seed, int n, double* out) {     // tests: CPython's random.Random
    m3vit::PyRandom r(seed);
    for (int i = 0; i < n; i++) out[i] = r.random();
}
uint64_t h_cycle() { return cycle; }
const char* h_failure_kind() { return failure_kind.c_str(); }
const char* h_failure_message() { return failure_message.c_str(); }

// One cycle is drive -> settle -> sample -> rising edge, as in rtl/sim/bench.py. h_run samples
// cycles until `cycle == limit`, or an event (flags & 2), or the first cycle (flags & 1) and
// returns 1 there *before* that cycle's clock edge (h_finish gives it); 2 after a model failed
// (the failing cycle is finished, as VerilatorBench does).
int h_run(uint64_t limit, int flags) {
    for (;;) {
        bool event = false;
        try {
            for (auto& m : models) m->drive(cycle);
            settle();
            for (auto& m : models) m->sample(cycle);
        } catch (const m3vit::Failure& f) {
            failure_kind = f.kind;
            failure_message = f.message;
            edge();
            cycle++;
            return 2;
        }
        if (flags & 2)
            for (auto& m : models) event |= m->event();
        if (event || (flags & 1) || cycle >= limit) return 1;
        edge();
        cycle++;
    }
}
void h_finish() { edge(); cycle++; }
}
