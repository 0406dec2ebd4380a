"""Our ``platform`` package must not break the standard library's ``platform`` in any process."""

import os
import subprocess
import sys

import platform

from tests.conftest import ROOT
from platform import stdlib_platform


def test_in_process_platform_is_ours_and_works():
    assert hasattr(platform, "__path__"), "the project's platform package is not the one imported"
    assert platform.system() == stdlib_platform.system()
    assert platform.machine() == stdlib_platform.machine()
    assert platform.python_version() == stdlib_platform.python_version()
    assert platform.uname() == stdlib_platform.uname()


def test_subprocess_from_repo_root_with_torch_and_amaranth():
    code = ("import platform, torch, amaranth; "
            "assert hasattr(platform, '__path__'), platform.__file__; "
            "print(platform.system(), platform.machine(), platform.python_implementation())")
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [stdlib_platform.system(), stdlib_platform.machine(),
                                     stdlib_platform.python_implementation()]
