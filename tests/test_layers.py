"""Layers point down (golden <- rtl <- firmware/platform), checked on the sources: no module of a
lower layer imports a higher one, and importing any RTL module never imports torch."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package: the packages it must not import
FORBIDDEN = {"golden": ("rtl", "firmware", "platform"), "rtl": ("firmware", "platform")}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "imports pointing up a layer:\n" + "\n".join(bad)


def test_importing_any_rtl_module_never_imports_torch():
    import rtl
    modules = sorted(m.name for m in pkgutil.walk_packages(rtl.__path__, "rtl."))
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    if 'torch' in sys.modules:\n"
            "        print(name); break\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert not out, f"importing {out} imports torch"
