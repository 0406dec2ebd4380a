"""The sequencer with stub units: program fetch, operand resolution (parity, experts, task and
base offsets), the expert loop, TASK_JUMP, and every error code."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment

from rtl.config import NANO
from rtl.control.errors import ErrorCode
from rtl.control.isa import Base, Dest, Op, OutDest, Unit, compute_cmd_layout, decode, encode, \
    load_cmd_layout
from rtl.control.sequencer import Sequencer
from rtl.sim.bench import Model, make_bench
from tests.rtl.datapath.harness import pack_value, unpack_value

CFG = NANO
BASES = {"data_base": 0x10000, "input_base": 0x20000, "output_base": 0x30000,
         "program_base": 0x40000}


class StubLoader(Model):
    """Takes load commands; a program fetch streams the program into the instruction memory,
    any other load keeps ``loader_busy`` up for ``busy`` cycles."""

    def __init__(self, program: list[bytes], busy: int = 3):
        self.program, self.busy_for = program, busy
        self.cmds, self.left, self.feed = [], 0, []

    def drive(self, io):
        io.set("load__ready", int(self.left == 0 and not self.feed))
        io.set("loader_busy", int(self.left > 0 or bool(self.feed)))
        if self.feed:
            addr, word = self.feed[0]
            io.set("imem_wr__valid", 1)
            io.set("imem_wr__payload", addr | (word << len_bits(CFG.imem_words)))
        else:
            io.set("imem_wr__valid", 0)

    def sample(self, io):
        if self.feed and io.get("imem_wr__ready"):
            self.feed.pop(0)
        if self.left:
            self.left -= 1
        if io.get("load__valid") and io.get("load__ready"):
            cmd = unpack_value(load_cmd_layout(CFG), io.get("load__payload"))
            self.cmds.append((io.cycle, cmd))
            if cmd["dest"] == 7:       # the program
                self.feed = [(i, int.from_bytes(w, "little")) for i, w in enumerate(self.program)]
            else:
                self.left = self.busy_for


def len_bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


class StubCompute(Model):
    """Takes compute commands and stays busy ``busy`` cycles on each."""

    def __init__(self, busy: int = 4):
        self.busy_for, self.left, self.cmds = busy, 0, []

    def drive(self, io):
        io.set("compute__ready", int(self.left == 0))
        io.set("compute_busy", int(self.left > 0))

    def sample(self, io):
        if self.left:
            self.left -= 1
        if io.get("compute__valid") and io.get("compute__ready"):
            cmd = unpack_value(compute_cmd_layout(CFG), io.get("compute__payload"))
            op, fields = decode(cmd["instr"].to_bytes(32, "little")
                                if isinstance(cmd["instr"], int) else _instr_bytes(cmd))
            self.cmds.append((op, fields, cmd))
            self.left = self.busy_for


def _instr_bytes(cmd) -> bytes:
    from amaranth.lib import data
    from rtl.control.isa import instr_layout
    return pack_value(instr_layout(), cmd["instr"]).to_bytes(32, "little")


class Status(Model):
    def __init__(self):
        self.done = self.error = None
        self.code = None
        self.trace = []

    def drive(self, io):
        io.set("trace__ready", 1)

    def sample(self, io):
        if io.get("done"):
            self.done = io.cycle
        if io.get("error"):
            self.error, self.code = io.cycle, io.get("error_code")
        if io.get("trace__valid"):
            self.trace.append(io.get("trace__payload"))


class Inputs(Model):
    def __init__(self, **values):
        self.values = {"start": 0, "task": 0, "program_len": 0, **BASES,
                       "loader_error": 0, "write_error": 0, "unit_error": 0, "ne_count": 0,
                       "ne_expert": 0, "ne_length": 0, **values}

    def drive(self, io):
        for k, v in self.values.items():
            io.set(k, v)


def run(program: list[bytes], *, task=0, experts=(), lengths=(), plen=None, inject=None,
        max_cycles=3000, compute_busy=4):
    dut = Sequencer(CFG)
    bench = make_bench(dut, "amaranth")
    loader, compute, status = StubLoader(program), StubCompute(compute_busy), Status()
    ne_e = pack_value(dut.ne_expert.shape(), list(experts) + [0] * (CFG.experts - len(experts)))
    ne_l = pack_value(dut.ne_length.shape(), list(lengths) + [0] * (CFG.experts - len(lengths)))
    inputs = Inputs(task=task, program_len=len(program) if plen is None else plen,
                    ne_count=len(experts), ne_expert=ne_e, ne_length=ne_l)
    bench.add(inputs, loader, compute, status)
    inputs.values["start"] = 1
    bench.run(lambda: True, max_cycles=1)
    inputs.values["start"] = 0
    if inject:
        inject(bench, inputs)
    bench.run(lambda: status.done is not None or status.error is not None,
              max_cycles=max_cycles)
    return loader, compute, status


def END():
    return encode(Op.END)


def test_fetch_resolve_and_finish():
    prog = [encode(Op.LOAD, dest=Dest.B, addr=4, words=8, base=Base.DATA, offset=0x100,
                   parity=1),
            encode(Op.MATMUL, m=5, a_addr=1, a_stride=2, k=8, n=8, b_offset=3, const_base=2,
                   parity=1, dest=OutDest.DDR, base=Base.OUTPUT, offset=0x40),
            encode(Op.WAIT, mask=Unit.LOADER | Unit.COMPUTE), END()]
    loader, compute, st = run(prog)
    assert st.done is not None and st.error is None
    fetch, load = loader.cmds[0][1], loader.cmds[1][1]
    assert fetch["dest"] == 7 and fetch["words"] == 4 and fetch["ddr_addr"] == BASES["program_base"]
    # parity 1 outside an expert loop: the loop parity is 0, so the first half
    assert load["addr"] == 4 and load["ddr_addr"] == BASES["data_base"] + 0x100
    op, fields, cmd = compute.cmds[0]
    assert op == Op.MATMUL and cmd["m"] == 5 and cmd["b_offset"] == 3
    assert cmd["ddr_addr"] == BASES["output_base"] + 0x40
    assert st.trace == [0, 1, 2, 3]


def _loop_program():
    """Per non-empty expert: prefetch the next expert's weights, then its matmul."""
    return [encode(Op.EXPERT_FIRST, target=5),
            encode(Op.LOAD, dest=Dest.B, addr=0, words=16, base=Base.DATA, offset=0x1000,
                   expert_stride=0x200, next_expert=1, per_expert=1, parity=1),
            encode(Op.MATMUL, m_from_queue=1, gather=1, a_addr=0, a_stride=1, k=4, n=4,
                   b_offset=0, const_base=0, parity=1, dest=OutDest.NONE, scatter=1),
            encode(Op.WAIT, mask=Unit.COMPUTE),
            encode(Op.EXPERT_NEXT, target=1),
            END()]


def test_expert_loop_parity_queues_and_prefetch():
    experts, lengths = (1, 2, 3), (3, 1, 4)
    loader, compute, st = run(_loop_program(), experts=experts, lengths=lengths)
    assert st.done is not None and st.error is None
    mm = [cmd for op, _, cmd in compute.cmds if op == Op.MATMUL]
    assert [c["m"] for c in mm] == list(lengths)
    assert [c["qstart"] for c in mm] == [0, 3, 4]
    half = CFG.b_half_words
    assert [c["b_offset"] for c in mm] == [0, half, 0]             # ping-pong per expert
    loads = [c for _, c in loader.cmds[1:]]
    # the next expert's weights into the other half; none after the last expert
    assert [(ld["addr"], ld["ddr_addr"]) for ld in loads] == [
        (half, BASES["data_base"] + 0x1000 + 2 * 0x200),
        (0, BASES["data_base"] + 0x1000 + 3 * 0x200)]


def test_no_expert_skips_the_loop():
    loader, compute, st = run(_loop_program())
    assert st.done is not None and not compute.cmds and len(loader.cmds) == 1
    assert st.trace == [0, 5]


def test_task_jump_and_task_stride():
    prog = [encode(Op.TASK_JUMP, tasks=2, targets=[1, 3]),
            encode(Op.LOAD, dest=Dest.B, words=1, base=Base.DATA, task_stride=0x80), END(),
            encode(Op.LOAD, dest=Dest.B, words=1, base=Base.DATA, task_stride=0x80), END()]
    loader, _, st = run(prog, task=1)
    assert st.done is not None and st.trace == [0, 3, 4]
    assert loader.cmds[1][1]["ddr_addr"] == BASES["data_base"] + 0x80


def _error(prog, **kw):
    _, _, st = run(prog, **kw)
    assert st.error is not None and st.done is None, "expected an error stop"
    return ErrorCode(st.code)


@pytest.mark.parametrize("prog, kw, code", [
    ([END()], {"plen": 0}, ErrorCode.PROGRAM_SIZE),
    ([END()], {"plen": CFG.imem_words + 1}, ErrorCode.PROGRAM_SIZE),
    ([b"\xee" + bytes(31)], {}, ErrorCode.MALFORMED),                        # unknown opcode
    ([encode(Op.WAIT, mask=0)], {}, ErrorCode.MALFORMED),                    # ran past the end
    ([encode(Op.WAIT, mask=4), END()], {}, ErrorCode.MALFORMED),
    ([encode(Op.TASK_JUMP, tasks=2, targets=[1, 9]), END()], {"task": 1}, ErrorCode.MALFORMED),
    ([encode(Op.TASK_JUMP, tasks=2, targets=[1, 1]), END()], {"task": 2}, ErrorCode.BAD_TASK),
    ([encode(Op.EXPERT_FIRST, target=7), END()], {}, ErrorCode.MALFORMED),
    ([encode(Op.LOAD, dest=5, words=1), END()], {}, ErrorCode.MALFORMED),
    ([encode(Op.LOAD, dest=Dest.RES, words=1, row_words=0), END()], {}, ErrorCode.MALFORMED),
    ([encode(Op.LOAD, dest=Dest.B, addr=CFG.b_words - 1, words=2), END()], {},
     ErrorCode.ONCHIP_RANGE),
    ([encode(Op.MATMUL, m=1, k=CFG.max_k + 1, n=4), END()], {}, ErrorCode.MALFORMED),
    ([encode(Op.MATMUL, m=1, k=4, n=5, dest=OutDest.ROUTER), END()], {}, ErrorCode.MALFORMED),
    ([encode(Op.MATMUL, m=1, k=4, n=4, b_offset=CFG.b_words - 1), END()], {},
     ErrorCode.ONCHIP_RANGE),
    ([encode(Op.BLOAD, rows=2, words=1, b_offset=CFG.b_words - 1), END()], {},
     ErrorCode.ONCHIP_RANGE),
    ([encode(Op.LAYERNORM, rows=1, row_words=CFG.max_dim // CFG.array_cols + 1), END()], {},
     ErrorCode.MALFORMED),
    ([encode(Op.SOFTMAX, rows=1, length=CFG.max_tokens + 1), END()], {}, ErrorCode.MALFORMED),
    ([encode(Op.LANES, aux=1, rows=1, row_words=1), END()], {}, ErrorCode.MALFORMED),
], ids=["len0", "len-too-big", "opcode", "past-end", "wait-mask", "jump-target", "bad-task",
        "expert-target", "load-dest", "res-row-words", "load-range", "matmul-k", "router-n",
        "matmul-b-range", "bload-range", "layernorm", "softmax", "lanes-aux"])
def test_operand_errors(prog, kw, code):
    assert _error(prog, **kw) == code


@pytest.mark.parametrize("port, code", [("loader_error", ErrorCode.DMA_READ),
                                        ("write_error", ErrorCode.DMA_WRITE),
                                        ("unit_error", ErrorCode.UNIT_OVERFLOW),
                                        ("start", ErrorCode.START_WHILE_BUSY)])
def test_unit_errors_stop_the_run(port, code):
    prog = [encode(Op.MATMUL, m=1, k=4, n=4), encode(Op.WAIT, mask=Unit.COMPUTE), END()]

    def inject(bench, inputs):
        bench.run(lambda: True, max_cycles=20)
        inputs.values[port] = 1
        bench.run(lambda: True, max_cycles=1)
        inputs.values[port] = 0
    assert _error(prog, inject=inject, compute_busy=200) == code


def test_init():
    Fragment.get(Sequencer(CFG), None)
