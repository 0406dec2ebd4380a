"""The compiler: the listing is the program (one line per instruction, the same ops and fields),
the image records the hardware and instruction-set versions, and a model beyond the config is
refused with the limit named."""

from __future__ import annotations

import os

import pytest

from firmware.compiler import CompileError, compile_model, main
from firmware.image import ModelImage, check_compatible
from firmware.errors import IncompatibleImageError
from rtl.config import DEFAULT, NANO
from rtl.array.lanes import Aux, OutBits
from rtl.control.isa import INSTR_BYTES, Base, Dest, Op, OutDest, decode
from rtl.control.version import ISA_DIGEST, ISA_VERSION, VERSION
from rtl.sim.models import int_model_for


_ENUMS = (OutBits, Aux, Dest, OutDest, Base)


@pytest.fixture(scope="module")
def nano():
    return compile_model(int_model_for("nano"), NANO)


def test_listing_is_the_program(nano):
    program = nano.image.program
    assert len(program) == len(nano.listing) * INSTR_BYTES == len(nano.macs) * INSTR_BYTES
    for i, line in enumerate(nano.listing):
        op, fields = decode(program[i * INSTR_BYTES:(i + 1) * INSTR_BYTES])
        assert line.split()[0] == op.name, f"instruction {i}: listing {line!r}, program {op}"
        for item in line.split()[2:]:
            name, _, value = item.partition("=")
            if name in fields and not isinstance(fields[name], list):
                got = fields[name]
                if value.lstrip("-").isdigit():
                    ok = str(int(getattr(got, "value", got))) == value
                else:       # an enum's name (the listing names OutBits, Aux, Dest … members)
                    ok = any(getattr(e, value, None) is not None and
                             int(getattr(e, value).value) == int(getattr(got, "value", got))
                             for e in _ENUMS)
                assert ok, f"instruction {i}: {name} = {got}, listing says {value}"
    ops = [line.split()[0] for line in nano.listing]
    assert ops[-1] == Op.END.name and "TASK_JUMP" in ops and "EXPERT_FIRST" in ops


def test_image_records_versions_and_is_refused_for_another_isa(nano):
    meta = nano.image.meta
    assert meta["hw_version"] == list(VERSION) and meta["isa"] == [ISA_VERSION, ISA_DIGEST]
    img = nano.image
    check_compatible(img, NANO.fingerprint(), VERSION)
    other = ModelImage(img.fingerprint, {**meta, "isa": [ISA_VERSION, "0" * 16]}, img.program,
                       img.data)
    with pytest.raises(IncompatibleImageError, match="instruction set"):
        check_compatible(other, NANO.fingerprint(), VERSION)


@pytest.mark.parametrize("change, message", [
    ({"max_tokens": 32}, "33 tokens > max_tokens 32"),
    ({"max_dim": 48}, "dim 64 > max_dim 48"),
    ({"top_k": 1}, "the router is built for 4 / top-1"),
    ({"max_k": 128}, "reduction length 256 > max_k 128"),
    ({"weight_buffer_bytes": 64 * 64}, "does not fit a weight buffer"),
    ({"token_buffer_bytes": 4096}, "token_buffer_bytes=4096"),
])
def test_range_checks_name_the_limit(change, message):
    with pytest.raises(CompileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_model(int_model_for("nano"), NANO.replace(**change))


def test_cli_writes_an_image_and_a_listing(tmp_path, capsys):
    out = tmp_path / "nano.m3vimg"
    assert main(["--config", "nano", "--out", str(out), "--listing"]) == 0
    img = ModelImage.load(out)
    assert img.fingerprint == NANO.fingerprint()
    assert "TASK_JUMP" in capsys.readouterr().out
    assert DEFAULT.fingerprint() != NANO.fingerprint()


@pytest.mark.parametrize("where", ["directory", "under-a-file"])
def test_cli_refuses_an_out_it_cannot_write_before_compiling(tmp_path, capsys, monkeypatch,
                                                             where):
    def no_compiling(*a, **k):
        raise AssertionError("compiled before checking --out")
    monkeypatch.setattr("firmware.compiler.compile_model", no_compiling)
    monkeypatch.setattr("rtl.sim.models.int_model_for", no_compiling)
    if where == "directory":
        out, message = tmp_path, "is a folder; give a file name"
    else:
        (tmp_path / "file").write_text("x")
        out, message = tmp_path / "file" / "nano.m3vimg", "is not a folder"
    assert main(["--config", "nano", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if where == "directory"
                                                           else ["file"])


def test_cli_write_failure_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sub" / "nano.m3vimg"

    def full(src, dst):
        raise OSError(28, "No space left on device")
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: full(s, d) if str(d) == str(out)
                        else real(s, d))
    assert main(["--config", "nano", "--out", str(out)]) == 1
    assert "error: cannot write" in capsys.readouterr().err
    assert list((tmp_path / "sub").iterdir()) == []
    monkeypatch.setattr(os, "replace", real)
    assert main(["--config", "nano", "--out", str(out)]) == 0
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["nano.m3vimg"]
    assert ModelImage.load(out).fingerprint == NANO.fingerprint()
