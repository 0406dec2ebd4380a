"""ZCU104 board support and the ``python -m platform.build`` entry point.

This package shadows the standard library's :mod:`platform` whenever the repository root is on
``sys.path`` (``python -m …`` from the root, pytest). torch, amaranth and pytest all call
``platform.system()`` and friends, so this ``__init__`` loads the standard module from the
interpreter's stdlib folder and re-exports every one of its names: ``import platform;
platform.system()`` keeps working in every process, while ``platform.build`` etc. are ours.
"""

import importlib.util as _importlib_util
import os as _os
import sys as _sys
import sysconfig as _sysconfig

_STDLIB_NAME = "_stdlib_platform"


def _load_stdlib_platform():
    if _STDLIB_NAME in _sys.modules:
        return _sys.modules[_STDLIB_NAME]
    path = _os.path.join(_sysconfig.get_paths()["stdlib"], "platform.py")
    spec = _importlib_util.spec_from_file_location(_STDLIB_NAME, path)
    module = _importlib_util.module_from_spec(spec)
    _sys.modules[_STDLIB_NAME] = module
    spec.loader.exec_module(module)
    return module


stdlib_platform = _load_stdlib_platform()

for _name, _value in vars(stdlib_platform).items():
    if not (_name.startswith("__") and _name.endswith("__")):
        globals().setdefault(_name, _value)

del _name, _value
