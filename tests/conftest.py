"""Test-wide setup.

pytest imports the standard library's ``platform`` before it reads this file, so
``sys.modules["platform"]`` is the stdlib module and our ``platform`` package (board files and the
build entry point) could not be imported in-process. Our package re-exports every stdlib name,
so swapping it in keeps every caller working.
"""

import importlib
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _use_project_platform() -> None:
    if not hasattr(sys.modules.get("platform"), "__path__"):
        sys.modules.pop("platform", None)
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        importlib.import_module("platform")


_use_project_platform()


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield
