// Compiled cycle models: the C++ twins of rtl/sim/ddr.py, rtl/sim/axi_checker.py,
// rtl/sim/axil_master.py and the accelerator's trace recorder (rtl/sim/accel_sim.py).
//
// Each class follows its Python model statement by statement -- the same two-phase cycle
// (drive from registered state, then sample settled signals), the same random-number draws in
// the same order (PyRandom reproduces CPython's random.Random), the same rules and the same
// error messages -- so a run on the compiled harness equals a run on the Python models cycle
// for cycle and bit for bit. tests/rtl/test_compiled.py checks that on whole frames and on
// injected protocol violations. Change a Python model and its twin here together.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace m3vit {

constexpr int kMaxWords = 32;          // 1024-bit AXI data, the widest the configs allow

// ---------------------------------------------------------------- values and port fields
struct Val {                            // an unsigned value of up to 1024 bits, little-endian
    uint32_t w[kMaxWords];
    int n = 1;
    bool operator==(const Val& o) const {
        return n == o.n && std::memcmp(w, o.w, 4 * n) == 0;
    }
    bool operator!=(const Val& o) const { return !(*this == o); }
    uint64_t lo() const { return n > 1 ? (uint64_t)w[0] | ((uint64_t)w[1] << 32) : w[0]; }
};

inline std::string hex(const Val& v) {  // Python's f"{v:#x}"
    int top = v.n - 1;
    while (top > 0 && v.w[top] == 0) top--;
    char buf[16];
    std::string s = "0x";
    std::snprintf(buf, sizeof buf, "%x", v.w[top]);
    s += buf;
    for (int i = top - 1; i >= 0; i--) {
        std::snprintf(buf, sizeof buf, "%08x", v.w[i]);
        s += buf;
    }
    return s;
}

// Set when a model changes an input port's value: the harness then re-evaluates the model's
// input-combinational logic before sampling (otherwise the values after the last clock edge
// stand).
inline bool inputs_dirty = true;

// A top-level port of the Verilated model: its storage and width (CData/SData/IData/QData by
// width up to 64 bits, VlWide words above).
struct Field {
    void* p = nullptr;
    int width = 0;
    int words() const { return width > 64 ? (width + 31) / 32 : (width > 32 ? 2 : 1); }
    uint64_t get() const {
        if (width <= 8) return *(const uint8_t*)p;
        if (width <= 16) return *(const uint16_t*)p;
        if (width <= 32) return *(const uint32_t*)p;
        if (width <= 64) return *(const uint64_t*)p;
        return (uint64_t)((const uint32_t*)p)[0] | ((uint64_t)((const uint32_t*)p)[1] << 32);
    }
    template <class T> void put(T v) {
        if (*(T*)p != v) {
            *(T*)p = v;
            inputs_dirty = true;
        }
    }
    void set(uint64_t v) {
        if (width < 64) v &= (1ULL << width) - 1;
        if (width <= 8) put<uint8_t>((uint8_t)v);
        else if (width <= 16) put<uint16_t>((uint16_t)v);
        else if (width <= 32) put<uint32_t>((uint32_t)v);
        else if (width <= 64) put<uint64_t>(v);
        else {
            Val x{};
            x.n = words();
            x.w[0] = (uint32_t)v;
            x.w[1] = (uint32_t)(v >> 32);
            set(x);
        }
    }
    Val val() const {
        Val v{};
        v.n = words();
        if (width <= 64) {
            uint64_t x = get();
            v.w[0] = (uint32_t)x;
            if (v.n > 1) v.w[1] = (uint32_t)(x >> 32);
        } else {
            std::memcpy(v.w, p, 4 * v.n);
        }
        return v;
    }
    void set(const Val& v) {            // v holds at least words() words
        if (width <= 64) { set(v.lo()); return; }
        int n = words();
        uint32_t w[kMaxWords];
        std::memcpy(w, v.w, 4 * n);
        if (width % 32) w[n - 1] &= (1u << (width % 32)) - 1;
        if (std::memcmp(p, w, 4 * n) != 0) {
            std::memcpy(p, w, 4 * n);
            inputs_dirty = true;
        }
    }
};

struct Ports {                          // name -> Field, filled by the generated harness
    std::map<std::string, Field> by_name;
    Field at(const std::string& name) const {
        auto it = by_name.find(name);
        if (it == by_name.end()) throw std::string("the design has no port " + name);
        return it->second;
    }
    bool has(const std::string& name) const { return by_name.count(name) != 0; }
};

// ---------------------------------------------------------------- CPython's random.Random
// MT19937 seeded exactly as random.Random(int) seeds it (init_by_array over the 32-bit words of
// abs(seed)), and random() built from two draws as CPython builds it.
class PyRandom {
  public:
    explicit PyRandom(uint64_t seed = 0) { this->seed(seed); }
    void seed(uint64_t s) {
        uint32_t key[2] = {(uint32_t)s, (uint32_t)(s >> 32)};
        init_by_array(key, (s >> 32) ? 2 : 1);
    }
    double random() {
        uint32_t a = next() >> 5, b = next() >> 6;
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
    }

  private:
    static constexpr int N = 624, M = 397;
    uint32_t mt[N];
    int mti = N + 1;
    void init_genrand(uint32_t s) {
        mt[0] = s;
        for (mti = 1; mti < N; mti++)
            mt[mti] = 1812433253u * (mt[mti - 1] ^ (mt[mti - 1] >> 30)) + (uint32_t)mti;
    }
    void init_by_array(const uint32_t* key, int len) {
        init_genrand(19650218u);
        int i = 1, j = 0;
        for (int k = N > len ? N : len; k; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
            i++; j++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
            if (j >= len) j = 0;
        }
        for (int k = N - 1; k; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
            i++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
        }
        mt[0] = 0x80000000u;
    }
    uint32_t next() {
        static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
        uint32_t y;
        if (mti >= N) {
            int kk;
            for (kk = 0; kk < N - M; kk++) {
                y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
                mt[kk] = mt[kk + M] ^ (y >> 1) ^ mag01[y & 1u];
            }
            for (; kk < N - 1; kk++) {
                y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
                mt[kk] = mt[kk + (M - N)] ^ (y >> 1) ^ mag01[y & 1u];
            }
            y = (mt[N - 1] & 0x80000000u) | (mt[0] & 0x7fffffffu);
            mt[N - 1] = mt[M - 1] ^ (y >> 1) ^ mag01[y & 1u];
            mti = 0;
        }
        y = mt[mti++];
        y ^= (y >> 11);
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= (y >> 18);
        return y;
    }
};

// ---------------------------------------------------------------- the model interface
// A model raises by throwing Failure; kind names the Python exception the bench re-raises.
struct Failure {
    std::string kind;                   // "AxiProtocolError", "AssertionError", "IndexError"
    std::string message;
};

struct Model {
    virtual ~Model() = default;
    virtual void drive(uint64_t cycle) {}
    virtual void sample(uint64_t cycle) {}
    virtual bool event() { return false; }   // something Python can observe changed this cycle
};

// ---------------------------------------------------------------- DDR (rtl/sim/ddr.py)
class Ddr : public Model {
  public:
    uint8_t* mem;
    uint64_t size, base;
    int nbytes, read_latency, write_latency;
    double stall;
    bool has_bpc;
    double bpc, tokens = 0.0;
    PyRandom rng;
    std::vector<std::pair<uint64_t, uint64_t>> error_ranges;
    uint64_t read_beats = 0, write_beats = 0, read_bursts = 0;

    Ddr(const Ports& ports, const std::string& p, uint8_t* mem, uint64_t size, uint64_t base,
        int data_width, int read_latency, int write_latency, double stall, bool has_bpc,
        double bpc, uint64_t seed)
        : mem(mem), size(size), base(base), nbytes(data_width / 8), read_latency(read_latency),
          write_latency(write_latency), stall(stall), has_bpc(has_bpc), bpc(bpc), rng(seed) {
        const char* names[] = {"ar__ready", "ar__valid", "ar__addr", "ar__len", "ar__size",
                               "ar__burst", "ar__id", "aw__ready", "aw__valid", "aw__addr",
                               "aw__len", "aw__size", "aw__burst", "aw__id", "w__ready",
                               "w__valid", "w__data", "w__strb", "w__last", "r__valid",
                               "r__ready", "r__id", "r__data", "r__resp", "r__last",
                               "b__valid", "b__ready", "b__id", "b__resp"};
        Field* slots[] = {&ar_ready, &ar_valid, &ar_addr, &ar_len, &ar_size, &ar_burst, &ar_id,
                          &aw_ready, &aw_valid, &aw_addr, &aw_len, &aw_size, &aw_burst, &aw_id,
                          &w_ready, &w_valid, &w_data, &w_strb, &w_last, &r_valid, &r_ready,
                          &r_id, &r_data, &r_resp, &r_last, &b_valid, &b_ready, &b_id, &b_resp};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++)
            *slots[i] = ports.at(p + "__" + names[i]);
    }

    void drive(uint64_t cyc) override {
        if (has_bpc) {
            double cap = (bpc > nbytes ? bpc : (double)nbytes) * 2;
            tokens = tokens + bpc < cap ? tokens + bpc : cap;
        }
        o_ar = go();
        o_aw = go();
        o_w = go() && budget();
        ar_ready.set(o_ar);
        aw_ready.set(o_aw);
        w_ready.set(o_w);
        if (!rv) {
            const Read* r = reads.empty() ? nullptr : &reads.front();
            rv = r && r->ready <= cyc && go() && budget();
            if (rv) {
                rpay_id = r->id;
                rpay_resp = r->resp;
                rpay_last = r->left == 1;
                rpay_data = Val{};
                rpay_data.n = r_data.words();
                if (r->resp == 0) std::memcpy(rpay_data.w, mem + (r->addr - base), nbytes);
                if (has_bpc) tokens -= nbytes;
            }
        }
        r_valid.set(rv);
        if (rv) {
            r_id.set(rpay_id);
            r_data.set(rpay_data);
            r_resp.set(rpay_resp);
            r_last.set(rpay_last);
        }
        if (!bv) {
            const Bresp* b = bresp.empty() ? nullptr : &bresp.front();
            bv = b && b->ready <= cyc && go();
        }
        b_valid.set(bv);
        if (bv) {
            b_id.set(bresp.front().id);
            b_resp.set(bresp.front().resp);
        }
    }

    void sample(uint64_t cyc) override {
        if (o_ar && ar_valid.get()) {
            uint64_t addr = ar_addr.get(), beats = ar_len.get() + 1;
            uint64_t sz = 1ULL << ar_size.get();
            if ((int)sz != nbytes || ar_burst.get() != 1)
                throw Failure{"AssertionError",
                              "DDR model only serves full-width INCR bursts (ARSIZE=" +
                                  std::to_string(sz) + " bytes, ARBURST=" +
                                  std::to_string(ar_burst.get()) + ")"};
            reads.push_back({cyc + read_latency, ar_id.get(), addr, beats, resp(addr, beats)});
            read_bursts++;
        }
        if (rv && r_ready.get()) {
            Read& r = reads.front();
            r.addr += nbytes;
            r.left -= 1;
            read_beats++;
            if (r.left == 0) reads.pop_front();
            rv = false;
        }
        if (o_aw && aw_valid.get()) {
            uint64_t addr = aw_addr.get(), beats = aw_len.get() + 1;
            if ((int)(1ULL << aw_size.get()) != nbytes || aw_burst.get() != 1)
                throw Failure{"AssertionError", "DDR model only serves full-width INCR bursts"};
            writes.push_back({aw_id.get(), addr, beats, resp(addr, beats)});
        }
        if (o_w && w_valid.get()) {
            if (has_bpc) tokens -= nbytes;
            wbeats.push_back({w_data.val(), w_strb.val(), (int)w_last.get()});
        }
        while (!writes.empty() && !wbeats.empty()) {
            Write& w = writes.front();
            WBeat beat = wbeats.front();
            wbeats.pop_front();
            if (w.resp == 0) {
                const uint8_t* raw = (const uint8_t*)beat.data.w;
                uint8_t* dst = mem + (w.addr - base);
                for (int lane = 0; lane < nbytes; lane++)
                    if (beat.strb.w[lane / 32] >> (lane % 32) & 1) dst[lane] = raw[lane];
            }
            w.addr += nbytes;
            w.beats -= 1;
            write_beats++;
            if (w.beats == 0) {
                bresp.push_back({cyc + write_latency, w.id, w.resp});
                writes.pop_front();
            }
        }
        if (bv && b_ready.get()) {
            bresp.pop_front();
            bv = false;
        }
    }

  private:
    struct Read { uint64_t ready, id, addr, left; int resp; };
    struct Write { uint64_t id, addr, beats; int resp; };
    struct WBeat { Val data, strb; int last; };
    struct Bresp { uint64_t ready, id; int resp; };
    std::deque<Read> reads;
    std::deque<Write> writes;
    std::deque<WBeat> wbeats;
    std::deque<Bresp> bresp;
    bool o_ar = false, o_aw = false, o_w = false, rv = false, bv = false;
    uint64_t rpay_id = 0;
    int rpay_resp = 0;
    bool rpay_last = false;
    Val rpay_data{};
    Field ar_ready, ar_valid, ar_addr, ar_len, ar_size, ar_burst, ar_id, aw_ready, aw_valid,
        aw_addr, aw_len, aw_size, aw_burst, aw_id, w_ready, w_valid, w_data, w_strb, w_last,
        r_valid, r_ready, r_id, r_data, r_resp, r_last, b_valid, b_ready, b_id, b_resp;

    bool go() { return stall <= 0 || rng.random() >= stall; }
    bool budget() const { return !has_bpc || tokens >= nbytes; }
    int resp(uint64_t addr, uint64_t beats) const {
        uint64_t lo = addr, hi = addr + beats * nbytes;
        if (lo < base || hi > base + size) return 3;
        for (auto& e : error_ranges)
            if (e.first < hi && lo < e.second) return 2;
        return 0;
    }
};

// ---------------------------------------------------------------- AXI protocol checker
// (rtl/sim/axi_checker.py)
class AxiChecker : public Model {
  public:
    uint64_t transfers = 0;

    AxiChecker(const Ports& ports, const std::string& p, int data_width, bool lite)
        : p(p), nbytes(data_width / 8), lite(lite) {
        static const char* full[5][5] = {{"id", "addr", "len", "size", "burst"},
                                         {"data", "strb", "last"},
                                         {"id", "resp"},
                                         {"id", "addr", "len", "size", "burst"},
                                         {"id", "data", "resp", "last"}};
        static const char* lt[5][5] = {{"addr"}, {"data", "strb"}, {"resp"}, {"addr"},
                                       {"data", "resp"}};
        for (int c = 0; c < 5; c++) {
            Chan& ch = chans[c];
            ch.name = kChannels[c];
            std::string base = p + "__" + ch.name + "__";
            ch.valid = ports.at(base + "valid");
            ch.ready = ports.at(base + "ready");
            for (int f = 0; f < 5; f++) {
                const char* name = (lite ? lt : full)[c][f];
                if (!name) break;
                ch.names.push_back(name);
                ch.fields.push_back(ports.at(base + name));
            }
            ch.pending.resize(ch.fields.size());
        }
    }

    void sample(uint64_t cyc) override {
        for (int c = 0; c < 5; c++) {
            Chan& ch = chans[c];
            bool valid = ch.valid.get();
            if (valid)
                for (size_t f = 0; f < ch.fields.size(); f++) pay[f] = ch.fields[f].val();
            if (ch.is_pending) {
                if (!valid) fail(cyc, ch.name, "VALID dropped before READY");
                std::string diff;
                for (size_t f = 0; f < ch.fields.size(); f++)
                    if (ch.pending[f] != pay[f])
                        diff += (diff.empty() ? "" : ", ") + ch.names[f] + ": " +
                                hex(ch.pending[f]) + " -> " + hex(pay[f]);
                if (!diff.empty())
                    fail(cyc, ch.name, "payload changed while VALID and not READY (" + diff + ")");
            }
            if (!valid) continue;
            if (ch.ready.get()) {
                ch.is_pending = false;
                transfers++;
                if (lite) on_lite(cyc, c); else on_full(cyc, c);
            } else {
                ch.is_pending = true;
                for (size_t f = 0; f < ch.fields.size(); f++) ch.pending[f] = pay[f];
            }
        }
    }

  private:
    static constexpr const char* kChannels[5] = {"aw", "w", "b", "ar", "r"};
    struct Chan {
        const char* name;
        Field valid, ready;
        std::vector<std::string> names;
        std::vector<Field> fields;
        std::vector<Val> pending;
        bool is_pending = false;
    };
    std::string p;
    int nbytes;
    bool lite;
    Chan chans[5];
    Val pay[5];
    std::map<uint64_t, std::deque<uint64_t>> reads;      // id -> remaining beats per burst
    std::deque<std::pair<uint64_t, uint64_t>> aw_bursts;  // (id, beats) without complete W
    uint64_t w_count = 0;
    std::deque<uint64_t> w_done_early;
    std::map<uint64_t, int64_t> writes_done;
    int64_t lite_reads = 0, lite_writes_aw = 0, lite_writes_w = 0;

    [[noreturn]] void fail(uint64_t cyc, const char* ch, const std::string& msg) {
        throw Failure{"AxiProtocolError", "AXI protocol violation on " + p + "." + ch +
                                              " at cycle " + std::to_string(cyc) + ": " + msg};
    }
    static std::string hx(uint64_t v) {
        char buf[24];
        std::snprintf(buf, sizeof buf, "%#llx", (unsigned long long)v);
        return v ? buf : "0x0";
    }
    uint64_t f(int c, int i) const { return pay[i].lo(); }

    void check_ax(uint64_t cyc, const char* ch, uint64_t addr, uint64_t len, uint64_t size_log,
                  uint64_t burst) {
        uint64_t beats = len + 1, size = 1ULL << size_log;
        if (burst == 3) fail(cyc, ch, "reserved burst type 3");
        if ((int64_t)size > nbytes)
            fail(cyc, ch, "AxSIZE " + std::to_string(size) + " bytes wider than the " +
                              std::to_string(nbytes) + "-byte bus");
        if (burst == 1) {
            uint64_t start = addr & ~(size - 1), last = start + beats * size - 1;
            if (addr / 4096 != last / 4096)
                fail(cyc, ch, "INCR burst " + hx(addr) + "+" + std::to_string(beats) + "x" +
                                  std::to_string(size) + "B crosses a 4 KB boundary");
        } else if (burst == 2) {
            if (!(beats == 2 || beats == 4 || beats == 8 || beats == 16) || addr % size)
                fail(cyc, ch, "illegal WRAP burst (" + std::to_string(beats) + " beats at " +
                                  hx(addr) + ")");
        } else if (beats > 16) {
            fail(cyc, ch, "FIXED burst of " + std::to_string(beats) + " beats (max 16)");
        }
    }

    void on_full(uint64_t cyc, int c) {
        const char* ch = kChannels[c];
        if (c == 3) {                                   // ar: id addr len size burst
            check_ax(cyc, ch, f(c, 1), f(c, 2), f(c, 3), f(c, 4));
            reads[f(c, 0)].push_back(f(c, 2) + 1);
        } else if (c == 4) {                            // r: id data resp last
            uint64_t id = f(c, 0), last = f(c, 3);
            auto it = reads.find(id);
            if (it == reads.end() || it->second.empty())
                fail(cyc, ch, "R beat with RID " + std::to_string(id) +
                                  " but no outstanding read");
            auto& q = it->second;
            q.front() -= 1;
            if ((last != 0) != (q.front() == 0))
                fail(cyc, ch, "RLAST=" + std::to_string(last) + " with " +
                                  std::to_string(q.front()) + " beats left in the burst");
            if (q.front() == 0) q.pop_front();
        } else if (c == 0) {                            // aw
            check_ax(cyc, ch, f(c, 1), f(c, 2), f(c, 3), f(c, 4));
            uint64_t id = f(c, 0), beats_aw = f(c, 2) + 1;
            if (!w_done_early.empty()) {
                uint64_t beats = w_done_early.front();
                w_done_early.pop_front();
                if (beats != beats_aw)
                    fail(cyc, ch, "earlier W burst had " + std::to_string(beats) +
                                      " beats, AW says " + std::to_string(beats_aw));
                writes_done[id] += 1;
            } else {
                aw_bursts.push_back({id, beats_aw});
            }
        } else if (c == 1) {                            // w: data strb last
            uint64_t last = f(c, 2);
            w_count += 1;
            if (!aw_bursts.empty()) {
                auto [wid, beats] = aw_bursts.front();
                if ((last != 0) != (w_count == beats))
                    fail(cyc, ch, "WLAST=" + std::to_string(last) + " on beat " +
                                      std::to_string(w_count) + " of a " +
                                      std::to_string(beats) + "-beat burst");
                if (last) {
                    aw_bursts.pop_front();
                    writes_done[wid] += 1;
                    w_count = 0;
                }
            } else if (last) {
                w_done_early.push_back(w_count);
                w_count = 0;
            } else if (w_count > 256) {
                fail(cyc, ch, "more than 256 W beats without WLAST");
            }
        } else {                                        // b: id resp
            uint64_t id = f(c, 0);
            if (writes_done[id] == 0)
                fail(cyc, ch, "B response with BID " + std::to_string(id) +
                                  " before its AW and last W");
            writes_done[id] -= 1;
        }
    }

    void on_lite(uint64_t cyc, int c) {
        const char* ch = kChannels[c];
        if (c == 3) {
            lite_reads++;
        } else if (c == 4) {
            if (lite_reads == 0) fail(cyc, ch, "read response without an outstanding read");
            lite_reads--;
        } else if (c == 0) {
            lite_writes_aw++;
        } else if (c == 1) {
            lite_writes_w++;
        } else {
            if ((lite_writes_aw < lite_writes_w ? lite_writes_aw : lite_writes_w) == 0)
                fail(cyc, ch, "write response before both address and data");
            lite_writes_aw--;
            lite_writes_w--;
        }
    }
};

// ---------------------------------------------------------------- AXI4-Lite manager
// (rtl/sim/axil_master.py)
class LiteMaster : public Model {
  public:
    struct Op {
        bool write;
        uint64_t addr, data, strb;
        int aw_delay, w_delay;
        int resp = -1;
        uint64_t rdata = 0, done_cycle = 0;
        bool done = false, aw = false, w = false;
        int age = 0;
    };
    std::vector<Op> ops;                // every op ever queued; Python holds indices

    LiteMaster(const Ports& ports, const std::string& p, double stall, uint64_t seed)
        : stall(stall), rng(seed) {
        ar_valid = ports.at(p + "__ar__valid"); ar_addr = ports.at(p + "__ar__addr");
        ar_ready = ports.at(p + "__ar__ready");
        r_ready = ports.at(p + "__r__ready"); r_valid = ports.at(p + "__r__valid");
        r_resp = ports.at(p + "__r__resp"); r_data = ports.at(p + "__r__data");
        aw_valid = ports.at(p + "__aw__valid"); aw_addr = ports.at(p + "__aw__addr");
        aw_ready = ports.at(p + "__aw__ready");
        w_valid = ports.at(p + "__w__valid"); w_data = ports.at(p + "__w__data");
        w_strb = ports.at(p + "__w__strb"); w_ready = ports.at(p + "__w__ready");
        b_ready = ports.at(p + "__b__ready"); b_valid = ports.at(p + "__b__valid");
        b_resp = ports.at(p + "__b__resp");
    }

    int push(bool write, uint64_t addr, uint64_t data, uint64_t strb, int aw_delay,
             int w_delay) {
        ops.push_back(Op{write, addr, data, strb, aw_delay, w_delay});
        (write ? wq : rq).push_back((int)ops.size() - 1);
        return (int)ops.size() - 1;
    }

    void drive(uint64_t) override {
        Op* r = rq.empty() ? nullptr : &ops[rq.front()];
        o_ar = r && !ar_sent;
        ar_valid.set(o_ar);
        if (r) ar_addr.set(r->addr);
        o_rr = go();
        r_ready.set(o_rr);
        Op* w = wq.empty() ? nullptr : &ops[wq.front()];
        o_aw = w && !w->aw && w->age >= w->aw_delay;
        o_w = w && !w->w && w->age >= w->w_delay;
        aw_valid.set(o_aw);
        w_valid.set(o_w);
        if (w) {
            aw_addr.set(w->addr);
            w_data.set(w->data);
            w_strb.set(w->strb);
        }
        o_br = go();
        b_ready.set(o_br);
    }

    void sample(uint64_t cyc) override {
        completed = false;
        if (o_ar && ar_ready.get()) ar_sent = true;
        if (o_rr && r_valid.get()) {
            if (rq.empty()) throw Failure{"IndexError", "pop from an empty deque"};
            Op& op = ops[rq.front()];
            rq.pop_front();
            op.resp = (int)r_resp.get();
            op.rdata = r_data.get();
            op.done_cycle = cyc;
            op.done = completed = true;
            ar_sent = false;
        }
        if (!wq.empty()) {
            Op& w = ops[wq.front()];
            w.age += 1;
            if (o_aw && aw_ready.get()) w.aw = true;
            if (o_w && w_ready.get()) w.w = true;
            if (o_br && b_valid.get()) {
                w.resp = (int)b_resp.get();
                w.done_cycle = cyc;
                w.done = completed = true;
                wq.pop_front();
            }
        }
    }

    bool event() override { return completed; }

  private:
    double stall;
    PyRandom rng;
    std::deque<int> rq, wq;
    bool ar_sent = false, o_ar = false, o_rr = false, o_aw = false, o_w = false, o_br = false;
    bool completed = false;
    Field ar_valid, ar_addr, ar_ready, r_ready, r_valid, r_resp, r_data, aw_valid, aw_addr,
        aw_ready, w_valid, w_data, w_strb, w_ready, b_ready, b_valid, b_resp;
    bool go() { return stall <= 0 || rng.random() >= stall; }
};

// ---------------------------------------------------------------- trace and interrupt
// (TraceRecorder in rtl/sim/accel_sim.py): every issued instruction's (cycle, pc), the irq level.
class Trace : public Model {
  public:
    std::vector<uint64_t> events;       // cycle, pc, cycle, pc, ... not yet fetched by Python
    uint64_t irq = 0;

    Trace(const Ports& ports, const std::string& p, const std::string& irq_port) {
        valid = ports.at(p + "__valid");
        ready = ports.at(p + "__ready");
        payload = ports.at(p + "__payload");
        irq_f = ports.at(irq_port);
    }
    void drive(uint64_t) override { ready.set(1); }
    void sample(uint64_t cyc) override {
        if (valid.get()) {
            events.push_back(cyc);
            events.push_back(payload.get());
        }
        uint64_t now = irq_f.get();
        changed = now != irq;
        irq = now;
    }
    bool event() override { return changed; }

  private:
    Field valid, ready, payload, irq_f;
    bool changed = false;
};

// ---------------------------------------------------------------- scripted inputs (tests)
// Sets input ports from a per-cycle table: row i holds the value of every listed port in cycle
// i; after the last row the ports keep their last values. Tests drive protocol violations into
// the checkers with it.
class Script : public Model {
  public:
    // table: per row, each port's value as words() little-endian 32-bit words.
    Script(const Ports& ports, const std::vector<std::string>& names,
           std::vector<uint32_t> table)
        : table(std::move(table)) {
        for (auto& n : names) {
            fields.push_back(ports.at(n));
            row_words += fields.back().words();
        }
    }
    void drive(uint64_t cyc) override {
        if (row_words == 0 || cyc >= table.size() / row_words) return;
        const uint32_t* w = &table[cyc * row_words];
        for (auto& f : fields) {
            Val v{};
            v.n = f.words();
            std::memcpy(v.w, w, 4 * v.n);
            f.set(v);
            w += v.n;
        }
    }

  private:
    std::vector<Field> fields;
    std::vector<uint32_t> table;
    size_t row_words = 0;
};

}  // namespace m3vit
