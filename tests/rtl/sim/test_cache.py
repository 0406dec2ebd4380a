"""Caches that survive faults: the Verilator cache is written atomically, checked against its
manifests before use (a damaged entry is rebuilt with a message, a damaged library never
loaded), killed and interrupted builds leave no work folder, and ``python -m rtl.sim.cache``
shows and clears the caches.

A tiny counter is built once per module into a cache folder (~20 s); each test works on a copy
of it, with ``M3VIT_VERILATOR_CACHE`` (and the other caches' variables) pointed at ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.sim import cache as rcache
from rtl.sim import verilator as vl
from rtl.sim.verilator import VerilatorBench, build, load
from tests.conftest import ROOT

KEY = ("tests.rtl.sim.test_cache.Counter", 8)


class Counter(wiring.Component):
    def __init__(self, width: int = 8):
        super().__init__({"en": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


def _counter():
    return Counter(8)


def _counts(ticks: int = 5) -> int:
    bench = VerilatorBench(_counter, design_key=KEY)
    bench.io.set("en", 1)
    for _ in range(ticks):
        bench.io.tick()
    return bench.io.get("count")


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A Verilator cache holding the counter (model, harness library, Verilog)."""
    root = tmp_path_factory.mktemp("warm") / "vc"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("M3VIT_VERILATOR_CACHE", str(root))
        build(_counter, design_key=KEY)
    return root


@pytest.fixture
def cache(warm, tmp_path, monkeypatch):
    """A private copy of the warm cache, in use; the other caches point into ``tmp_path``."""
    root = tmp_path / "vc"
    shutil.copytree(warm, root)
    monkeypatch.setenv("M3VIT_VERILATOR_CACHE", str(root))
    monkeypatch.setenv("M3VIT_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "yowasp"))
    return root


def _entry(root):
    [model] = [p for p in root.iterdir() if rcache.VERILATOR_ENTRY.match(p.name)]
    [lib_dir] = [p for p in model.iterdir() if rcache.HARNESS_DIR.match(p.name)]
    [design] = (root / "verilog").glob("*.v")
    return model, lib_dir, design


def _work_folders(root):
    out = [p.name for p in root.iterdir() if rcache.VERILATOR_WORK.match(p.name)]
    for model in root.iterdir():
        if rcache.VERILATOR_ENTRY.match(model.name):
            out += [f"{model.name}/{p.name}" for p in model.iterdir()
                    if rcache.HARNESS_WORK.match(p.name)]
    out += [f"verilog/{p.name}" for p in (root / "verilog").glob(".*.tmp")]
    return out


# ---- layout and verification -----------------------------------------------------------------

def test_entries_carry_manifests_and_verify(cache):
    model, lib_dir, design = _entry(cache)
    manifest = json.loads((model / "manifest.json").read_text())["files"]
    assert {"top.v", "obj/Vtop__ALL.a", "obj/libverilated.a", "obj/Vtop.h"} <= set(manifest)
    assert manifest["obj/Vtop__ALL.a"]["size"] == (model / "obj" / "Vtop__ALL.a").stat().st_size
    assert set(json.loads((lib_dir / "manifest.json").read_text())["files"]) == {"lib.so"}
    assert sorted(p.name for p in lib_dir.iterdir()) == ["lib.so", "manifest.json"]
    assert rcache.check_manifest(str(model)) is None
    assert rcache.check_manifest(str(lib_dir)) is None
    record = json.loads(design.with_suffix(".json").read_text())
    assert record["verilog"]["size"] == design.stat().st_size
    assert [tuple(p) for p in record["ports"]] == [("clk", 1, True), ("en", 1, True),
                                                   ("count", 8, False)]
    assert not (model / "owner.json").exists() and _work_folders(cache) == []
    assert _counts() == 5


def test_truncated_library_is_refused_then_rebuilt(cache, capfd):
    lib, _ = build(_counter, design_key=KEY)
    size = os.path.getsize(lib)
    with open(lib, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(RuntimeError, match=rf"refusing to load .*lib.so size {size // 2} != "
                                           rf"{size}"):
        load(lib)                    # would die of SIGBUS inside dlopen
    capfd.readouterr()
    lib2, _ = build(_counter, design_key=KEY)
    err = capfd.readouterr().err
    assert re.search(rf"verilator cache entry [0-9a-f]{{20}}/harness-[0-9a-f]{{16}} is damaged "
                     rf"\(lib.so size {size // 2} != {size}\); rebuilding\n", err), err
    assert lib2 == lib and os.path.getsize(lib) == size
    assert _counts() == 5
    assert _work_folders(cache) == [] and not list(cache.glob("**/*.trash-*"))


def test_library_of_the_right_size_but_other_bytes_is_refused(cache):
    lib, _ = build(_counter, design_key=KEY)
    with open(lib, "r+b") as f:
        f.seek(os.path.getsize(lib) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RuntimeError, match="lib.so SHA-256"):
        load(lib)


def test_damaged_model_archive_is_rebuilt(cache, capfd):
    model, lib_dir, _ = _entry(cache)
    archive = model / "obj" / "Vtop__ALL.a"
    size = archive.stat().st_size
    with open(archive, "r+b") as f:
        f.truncate(100)
    build(_counter, design_key=KEY)
    err = capfd.readouterr().err
    assert (f"verilator cache entry {model.name} is damaged (obj/Vtop__ALL.a size 100 != "
            f"{size}); rebuilding") in err
    assert archive.stat().st_size == size and rcache.check_manifest(str(model)) is None
    assert _counts() == 5
    assert _work_folders(cache) == [] and not list(cache.glob("**/*.trash-*"))


@pytest.mark.parametrize("damage", ["truncate", "no-manifest"])
def test_damaged_design_verilog_is_reconverted(cache, capfd, damage):
    model, _, design = _entry(cache)
    size = design.stat().st_size
    if damage == "truncate":
        with open(design, "r+b") as f:
            f.truncate(10)
        want = f"is damaged ({design.name} size 10 != {size}); rebuilding"
    else:
        design.with_suffix(".json").unlink()
        want = "is incomplete (no manifest: incomplete, or written by an older version)"
    mtime = (model / "obj" / "Vtop__ALL.a").stat().st_mtime_ns
    build(_counter, design_key=KEY)
    err = capfd.readouterr().err
    assert f"verilator cache entry verilog/{design.stem} {want}" in err
    assert design.stat().st_size == size
    # The same Verilog again: the Verilated model was reused, not rebuilt.
    assert (model / "obj" / "Vtop__ALL.a").stat().st_mtime_ns == mtime


def test_check_manifest_reports_what_is_wrong(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    assert rcache.check_manifest(str(tmp_path)).startswith("no manifest")
    rcache.write_manifest(str(tmp_path), ["a.bin"])
    assert rcache.check_manifest(str(tmp_path)) is None
    (tmp_path / "a.bin").write_bytes(b"y" * 10)
    assert rcache.check_manifest(str(tmp_path), deep=False) is None     # sizes only
    assert "a.bin SHA-256" in rcache.check_manifest(str(tmp_path))
    (tmp_path / "a.bin").unlink()
    assert rcache.check_manifest(str(tmp_path)) == "a.bin missing"
    (tmp_path / "manifest.json").write_text("{not json")
    assert rcache.check_manifest(str(tmp_path)) == "manifest.json unreadable"


def test_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    rcache.atomic_write(target, "one")
    assert target.read_text() == "one" and os.listdir(tmp_path) == ["f.txt"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()

    def fail(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        rcache.atomic_write(target, "two")
    assert target.read_text() == "one" and os.listdir(tmp_path) == ["f.txt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- work folders ------------------------------------------------------------------------------

def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)


def _owned_by(folder, pid, *, start=None, host=None, age=0.0):
    folder.mkdir()
    (folder / "big.o").write_bytes(b"\0" * 4096)
    (folder / "owner.json").write_text(json.dumps(
        {"pid": pid, "start": start, "host": host or socket.gethostname(),
         "time": time.time() - age}))


def _age(path, hours):
    t = time.time() - hours * 3600
    os.utime(path, (t, t))


def test_stale_work_folders_are_removed_live_ones_kept(cache, capfd):
    model, lib_dir, _ = _entry(cache)
    key = model.name
    dead = _dead_pid()
    _owned_by(cache / f"{key}.dead0001", dead)
    _owned_by(model / f"{lib_dir.name}.dead0002", dead)
    _owned_by(cache / f"{key}.live0001", os.getpid(), start=rcache._start_time(os.getpid()))
    _owned_by(cache / f"{key}.reused01", os.getpid(), start="1")     # our PID, another process
    _owned_by(cache / f"{key}.remote01", 1, host="elsewhere", age=2 * 3600)
    _owned_by(cache / f"{key}.remote02", 1, host="elsewhere")
    (cache / f"{key}.nowner01").mkdir()
    _age(cache / f"{key}.nowner01", 2)
    (cache / f"{key}.young001").mkdir()
    (cache / f"{key}.trash-0a0b0c0d").mkdir()
    tmp = cache / "verilog" / ".x.v.0123abcd.tmp"
    tmp.write_text("partial")
    _age(tmp, 2)
    (cache / "notes.txt").write_text("not ours")
    build(_counter, design_key=KEY)          # cached: only the sweep runs
    left = sorted(_work_folders(cache))
    assert left == sorted([f"{key}.live0001", f"{key}.remote02", f"{key}.young001"]), left
    err = capfd.readouterr().err
    assert f"{key}.dead0001 left by an interrupted build (its build, pid {dead}, is gone)" in err
    assert f"{lib_dir.name}.dead0002 left by an interrupted build" in err
    assert f"{key}.nowner01 left by an interrupted build (2.0 h old)" in err
    assert (cache / "notes.txt").exists() and lib_dir.exists()


def _interrupt_at(monkeypatch, step: str, exc=KeyboardInterrupt):
    real = vl._run

    def run(cmd, cwd, env, what):
        if what.startswith(step):
            raise exc(f"interrupted at {what}")
        return real(cmd, cwd, env, what)
    monkeypatch.setattr(vl, "_run", run)


def test_killed_build_is_swept_and_an_interrupted_one_cleans_up(tmp_path, monkeypatch, capfd):
    """A build killed with SIGKILL mid-compile leaves its work folder (nothing runs in the dying
    process); the next build removes it as its owner is gone, and a build interrupted by Ctrl-C
    removes its own."""
    root = tmp_path / "vc"
    monkeypatch.setenv("M3VIT_VERILATOR_CACHE", str(root))
    script = (
        "import os, signal\n"
        "from rtl.sim import verilator as vl\n"
        "from tests.rtl.sim.test_cache import Counter\n"
        "real = vl._run\n"
        "def run(cmd, cwd, env, what):\n"
        "    if what.startswith('compiling'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(cmd, cwd, env, what)\n"
        "vl._run = run\n"
        "vl.build(Counter(7))\n")
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == -signal.SIGKILL, res.stderr
    [left] = _work_folders(root)
    owner = json.loads((root / left / "owner.json").read_text())
    assert (root / left / "top.v").exists() and (root / left / "obj").is_dir()

    _interrupt_at(monkeypatch, "compiling")
    with pytest.raises(KeyboardInterrupt):
        build(Counter(7))
    assert _work_folders(root) == []
    assert f"(its build, pid {owner['pid']}, is gone)" in capfd.readouterr().err
    assert [p.name for p in root.iterdir()] == []      # no entry either

    _interrupt_at(monkeypatch, "verilator", RuntimeError)
    with pytest.raises(RuntimeError, match="interrupted at verilator"):
        build(Counter(7))
    assert list(root.iterdir()) == []


def test_interrupted_link_leaves_nothing(cache, monkeypatch):
    model, lib_dir, _ = _entry(cache)
    shutil.rmtree(lib_dir)
    _interrupt_at(monkeypatch, "linking")
    with pytest.raises(KeyboardInterrupt):
        build(_counter, design_key=KEY)
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json", "obj", "top.v"]
    assert _work_folders(cache) == []


def test_run_kills_the_whole_process_group_when_interrupted(tmp_path):
    """Ctrl-C during ``make -j`` kills the compilers it started, not just make."""
    pidfile = tmp_path / "child.pid"

    def interrupt():
        while not pidfile.exists() or not pidfile.read_text().strip():
            time.sleep(0.02)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        vl._run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], str(tmp_path),
                dict(os.environ), "test")
    child = int(pidfile.read_text())
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            with open(f"/proc/{child}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the grandchild {child} survived the interrupted build")


# ---- python -m rtl.sim.cache ------------------------------------------------------------------

def _cli(*args, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "rtl.sim.cache", *args], cwd=ROOT,
                          env=dict(os.environ), stdin=stdin, capture_output=True, text=True,
                          timeout=120)


def test_cache_command_info_and_clear(cache, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "nano-trained-c8.npz").write_bytes(b"\0" * 5000)
    (models / "notes.txt").write_text("keep")
    (tmp_path / "yowasp").mkdir()
    (tmp_path / "yowasp" / "module").write_bytes(b"\0" * 100)
    (cache / "README").write_text("not ours")
    total = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) - len("not ours")

    res = _cli("info")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"verilator: {cache}  [$M3VIT_VERILATOR_CACHE]" in out
    assert "1 Verilated models, 1 harness libraries, 1 designs' Verilog;" in out
    assert f"models: {models}  [$M3VIT_CACHE]" in out and "1 integer models; 4.9 KB" in out
    assert f"yowasp: {tmp_path / 'yowasp'}" in out and "not cleared" in out
    res = _cli("info", "--json")
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["verilator"]["bytes"] == total and rows["models"]["bytes"] == 5000
    assert rows["yowasp"]["clearable"] is False

    res = _cli("clear")
    assert res.returncode == 2
    assert "refusing to clear" in res.stderr and "--yes" in res.stderr
    assert len(list(cache.iterdir())) == 3 and (models / "nano-trained-c8.npz").exists()

    res = _cli("clear", "--yes")
    assert res.returncode == 0, res.stderr
    assert "removed" in res.stdout
    assert [p.name for p in cache.iterdir()] == ["README"]        # only what is not ours
    assert [p.name for p in models.iterdir()] == ["notes.txt"]
    assert (tmp_path / "yowasp" / "module").exists()
    res = _cli("info")
    assert "0 Verilated models, 0 harness libraries, 0 designs' Verilog; 0 B" in res.stdout
    assert _cli("clear").returncode == 0          # nothing to clear: no question asked


def test_cache_command_asks_on_a_terminal(cache, monkeypatch, capsys):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert rcache.main(["clear", "--only", "verilator"]) == 1
    assert "nothing removed" in capsys.readouterr().out and any(cache.iterdir())
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert rcache.main(["clear", "--only", "verilator"]) == 0
    assert not cache.exists()


def test_cache_command_help():
    res = _cli("--help")
    assert res.returncode == 0
    for word in ("info", "clear", "M3VIT_VERILATOR_CACHE", "M3VIT_CACHE"):
        assert word in res.stdout
    res = _cli("clear", "--help")
    assert "--yes" in res.stdout and "--only" in res.stdout
