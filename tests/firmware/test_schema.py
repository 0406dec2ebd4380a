"""The model image's metadata schema: hostile metadata behind valid checksums is refused at load,
naming the field, before anything is allocated; a fuzz of the metadata finds no other outcome."""

import copy
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import layout
from firmware.cli import main
from firmware.errors import ImageError
from firmware.image import ModelImage, check_compatible
from firmware.schema import validate_meta

from .fakes import FAKE_CFG, make_image, make_meta


def _validate(meta, program_bytes=96, data_bytes=5000):
    return validate_meta(meta, program_bytes=program_bytes, data_bytes=data_bytes)


def test_compiler_format_is_valid():
    assert _validate(make_meta()) == FAKE_CFG


def _set(meta, path, value):
    obj = meta
    for key in path[:-1]:
        obj = obj[key]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return meta


_DELETE = object()

HOSTILE = [
    (("model", "img_size"), "32x64", r"meta\['model'\]\['img_size'\] must be list"),
    (("model", "img_size"), [20000, 20000], r"img_size'\]\[0\] = 20000 is outside"),
    (("model", "patch_size"), 0, r"patch_size'\] = 0 is outside"),
    (("accel", "clock_mhz"), 0, r"meta\['accel'\] is not an accelerator config"),
    (("accel", "array_rows"), "32", r"meta\['accel'\]"),
    (("accel",), _DELETE, r"meta\['accel'\] is missing"),
    (("input", "rows"), 10 ** 9, r"meta\['input'\]\['rows'\] = 1000000000 is outside"),
    (("input", "row_bytes"), 1 << 40, r"row_bytes'\] = \d+ is outside"),
    (("tasks", 0, "chunks", 0, "bytes"), 10 ** 12, r"\['chunks'\]\[0\]\['bytes'\]"),
    (("tasks", 0, "chunks", 0, "n"), 1.5, r"\['n'\] must be int"),
    (("tasks", 0, "chunks"), [], r"\['chunks'\] has 0 entries"),
    (("tasks", 0, "channels"), True, r"\['channels'\] must be int, not bool"),
    (("tasks", 0, "kind"), "classification", r"\['kind'\] 'classification' is not one of"),
    (("tasks", 1, "name"), "semseg", r"names are not unique"),
    (("tasks", 0, "out_scale"), float("nan"), r"out_scale'\] = nan must be finite"),
    (("tasks", 1, "out_scale"), -1.0, r"out_scale'\] = -1.0 must be finite"),
    (("tasks", 0, "tokens"), 7, r"\['tokens'\] = 7 is outside"),
    (("tasks", 0, "head"), "mlp", r"\['head'\] 'mlp' is not one of"),
    (("tasks",), [], r"meta\['tasks'\] has 0 entries"),
    (("tasks",), {"name": "a"}, r"meta\['tasks'\] must be list"),
    (("hw_version",), [0], r"hw_version'\] must be \[major, minor\]"),
    (("isa",), "v1", r"meta\['isa'\] must be list"),
]


@pytest.mark.parametrize("path, value, message", HOSTILE,
                         ids=[".".join(map(str, p)) + f"={v!r:.12}" for p, v, _ in HOSTILE])
def test_hostile_field_is_refused_by_name(path, value, message):
    with pytest.raises(ImageError, match=message):
        _validate(_set(make_meta(), path, value))


def test_program_longer_than_the_instruction_memory():
    with pytest.raises(ImageError, match="instruction memory holds"):
        _validate(make_meta(), program_bytes=32 * (FAKE_CFG.imem_words + 1))


@pytest.mark.parametrize("path, value, message", HOSTILE[:9])
def test_cli_refuses_hostile_images_with_exit_3(tmp_path, capsys, path, value, message):
    """Through the CLI: exit 3, one line naming the field, no traceback, nothing simulated."""
    img = make_image()
    bad = ModelImage(img.fingerprint, _set(copy.deepcopy(img.meta), path, value), img.program,
                     img.data)
    (tmp_path / "bad.m3vimg").write_bytes(bad.to_bytes())
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 16), np.uint8))
    for argv in (["info", "--backend", "sim", "--model", str(tmp_path / "bad.m3vimg")],
                 ["run", "--backend", "sim", "--model", str(tmp_path / "bad.m3vimg"),
                  "--task", "semseg", "--out", str(tmp_path / "o"), str(tmp_path / "x.npy")]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 3, (argv, err)
        assert "Traceback" not in out + err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ fuzz

def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    yield path


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
                    | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
PATHS = [p for p in _leaves(make_meta()) if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON), min_size=1, max_size=3))
def test_fuzzed_metadata_is_refused_or_safe(edits):
    """Any edit of the metadata is either refused with an ImageError, or the layouts it then
    describes stay within the model's own sizes and every helper works on it."""
    meta = make_meta()
    for path, value in edits:
        try:
            _set(meta, path, value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit replaced the container
    try:
        _validate(meta)
    except ImageError:
        return
    image = ModelImage(FAKE_CFG.fingerprint(), meta, bytes(96), bytes(16))
    image.describe()
    check_compatible(image, FAKE_CFG.fingerprint())
    h, w = meta["model"]["img_size"]
    assert layout.input_bytes(meta) <= 3 * h * w + FAKE_CFG.array_cols * h * w
    layout.pack_input(meta, np.zeros((3, h, w), np.uint8))
    for task in meta["tasks"]:
        n = layout.output_bytes(meta, task["name"])
        assert n <= 2 * task["tokens"] * (task["width"] + FAKE_CFG.array_cols * len(task["chunks"]))
        out = layout.decode_output(meta, task["name"], bytes(n))
        assert out.size == task["tokens"] * task["width"]
        assert math.isfinite(task["out_scale"])


def test_sizes_beyond_the_accelerator_are_refused_before_allocation():
    """A consistent but huge model (the layouts would ask for GiBs) is refused by the config's
    own limits: tokens, output width per chunk."""
    meta = make_meta()
    meta["model"]["img_size"] = meta["input"]["image"] = [4096, 4096]
    with pytest.raises(ImageError, match="max_tokens"):
        _validate(meta)
    meta = make_meta()
    task = meta["tasks"][0]
    task["chunks"][0]["n"] = FAKE_CFG.max_n + 1
    with pytest.raises(ImageError, match=r"\['chunks'\]\[0\]\['n'\] = \d+ is outside"):
        _validate(meta)
    with pytest.raises(ImageError, match=r"meta\['macs'\] must be list"):
        _validate({**make_meta(), "macs": 1e308})
    with pytest.raises(ImageError, match=r"meta\['macs'\]\[1\] = 1e\+308|macs'\]\[1\] must be int"):
        _validate({**make_meta(), "macs": [0, 1e308, 0]})
    _validate({**make_meta(), "macs": [0, 5, 0]})
