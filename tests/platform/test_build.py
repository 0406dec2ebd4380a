"""``python -m platform.build zcu104`` without Vivado: files, Tcl, XDC, lint, estimate, exit codes.

The end-to-end command runs on the real accelerator with the ``nano`` preset (the smallest config
it elaborates: ``small-test``'s 4-byte A-operand words do not divide its 8-byte AXI word) and
skips the Yosys estimate, which takes ~3 minutes on it; the estimate path is exercised on a
stand-in with the same ports (``tests/platform/standin.py``). Full-size estimates are
``slow``-marked at the bottom.
"""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from firmware import addrmap
from platform import build as pbuild
from platform.build import (EXIT_NO_FIT, EXIT_OK, EXIT_TOP, EXIT_USAGE, EXIT_VIVADO, BuildError,
                            build, check_board_limits, load_accelerator, main)
from platform.estimate import XCZU7EV, verilator_lint
from platform.zcu104 import ZCU104Platform, pin_constraints
from platform.zcu104_top import CORE_NAME, TOP_NAME
from rtl.config import CONFIGS, SMALL_TEST
from tests.conftest import ROOT
from tests.platform.standin import StandInAccelerator

REAL = "nano"
STANDIN = "tests.platform.standin:StandInAccelerator"
PROJECT_FILES = ("m3vit_zcu104.v", "m3vit_zcu104.il", "m3vit_zcu104.xdc", "create_project.tcl",
                 "build_bitstream.tcl", "build.tcl", "build.sh", "build_info.json", "lint.log")


def _path_without_vivado() -> str:
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not os.path.exists(os.path.join(d, "vivado")))


def _tcl_props(tcl: str) -> dict[str, str]:
    return dict(re.findall(r"CONFIG\.(\S+) \{([^}]*)\}", tcl))


@pytest.fixture(scope="module")
def cli_build(tmp_path_factory):
    """The user's command on the real accelerator, on a PATH without Vivado."""
    out = tmp_path_factory.mktemp("zcu104")
    env = dict(os.environ, PATH=_path_without_vivado())
    res = subprocess.run([sys.executable, "-m", "platform.build", "zcu104", "--config", REAL,
                          "--out", str(out), "--no-estimate"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    return out, res


def test_cli_writes_the_project(cli_build):
    out, res = cli_build
    assert res.returncode == EXIT_OK, res.stdout + res.stderr
    for name in PROJECT_FILES:
        assert (out / name).is_file(), name
    assert (out / "build.sh").stat().st_mode & stat.S_IXUSR
    # No Vivado here: the build says exactly what to run where there is one.
    assert "Vivado is not on PATH" in res.stdout
    assert f"cd {out.resolve()} && ./build.sh" in res.stdout
    assert "exec vivado -mode batch -nojournal -log vivado.log -source build.tcl" in (
        out / "build.sh").read_text()


def test_tcl_part_and_ps_settings(cli_build):
    out, _ = cli_build
    cfg = CONFIGS[REAL]
    tcl = (out / "create_project.tcl").read_text()
    assert "set part xczu7ev-ffvc1156-2-e\n" in tcl
    assert "create_project -force $proj_name $proj_dir -part $part" in tcl
    assert "get_board_parts -quiet -latest_file_version {xilinx.com:zcu104:part0:*}" in tcl
    assert "apply_board_preset" in tcl and "PSU__DDRC__BUS_WIDTH {64 Bit}" in tcl
    ours = tcl[tcl.index("# PL clock"):]
    props = _tcl_props(ours)
    assert float(props["PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"]) == cfg.clock_mhz
    assert props["PSU__FPGA_PL0_ENABLE"] == "1"
    assert props["PSU__USE__M_AXI_GP0"] == "1" and props["PSU__MAXIGP0__DATA_WIDTH"] == "32"
    assert props["PSU__USE__S_AXI_GP2"] == "1"
    assert props["PSU__SAXIGP2__DATA_WIDTH"] == str(cfg.axi_data_width)
    assert props["PSU__USE__S_AXI_GP3"] == "0"        # nano has one master
    assert props["PSU__USE__IRQ0"] == "1"
    assert "connect_bd_net [get_bd_pins accel/irq] [get_bd_pins ps/pl_ps_irq0]" in tcl
    assert f"create_bd_cell -type module -reference {TOP_NAME} accel" in tcl
    assert "[get_bd_pins ps/pl_resetn0] [get_bd_pins pl_reset/ext_reset_in]" in tcl
    assert ("connect_bd_intf_net [get_bd_intf_pins accel/m_axi_hp0] "
            "[get_bd_intf_pins ps/S_AXI_HP0_FPD]") in tcl
    csr = addrmap.csr_window(cfg.csr_addr_width)
    assert f"assign_bd_address -offset {csr.base:#010x} -range {csr.size:#010x}" in tcl
    assert ("m3vit_map_only [get_bd_addr_spaces accel/m_axi_hp0] "
            f"[get_bd_addr_segs ps/SAXIGP2/HP0_DDR_LOW] 0x00000000 {addrmap.DMA_WINDOW.size:#010x}"
            ) in tcl
    # Every other segment the master reaches is excluded (no BD 41-1356 critical warnings).
    proc = tcl[tcl.index("proc m3vit_map_only"):tcl.index("proc m3vit_ip")]
    assert "assign_bd_address -offset $offset -range $range -target_address_space $space $keep" in proc
    assert "get_bd_addr_segs -quiet -addressables -of_objects $space" in proc
    assert "exclude_bd_addr_seg -target_address_space $space $seg" in proc
    # The module reference takes pl_clk0's frequency and clock domain.
    assert "set pl_domain [get_property CONFIG.CLK_DOMAIN [get_bd_pins ps/pl_clk0]]" in tcl
    assert "[list FREQ_HZ $pl_hz CLK_DOMAIN $pl_domain]" in tcl
    # Without board files: stop and say what to install, unless the partial preset is asked for.
    no_board = tcl[tcl.index("if {$board_part ne \"\"}"):tcl.index("add_files")]
    assert "elseif {[info exists ::env(M3VIT_PS_WITHOUT_BOARD_FILES)]}" in no_board
    assert 'error "m3vit: the ZCU104 board files (xilinx.com:zcu104:part0:*) are not installed' in no_board
    assert "xhub::install" in no_board and "board.repoPaths" in no_board
    bit = (out / "build_bitstream.tcl").read_text()
    assert "launch_runs impl_1 -to_step write_bitstream" in bit
    assert "write_hw_platform -fixed -include_bit" in bit
    assert "hw_handoff system.hwh" in bit and "$proj_name.hwh" in bit
    fail = bit[bit.index("if {($wns"):]
    assert fail.index("report_timing $kind -max_paths 1") < fail.index('error "m3vit: timing not met')


def test_map_only_excludes_the_other_segments(cli_build):
    """Run the generated ``m3vit_map_only`` in a Tcl interpreter with Vivado's commands stubbed."""
    tkinter = pytest.importorskip("tkinter")
    out, _ = cli_build
    tcl = (out / "create_project.tcl").read_text()
    interp = tkinter.Tcl()
    interp.eval(tcl[tcl.index("proc m3vit_map_only"):tcl.index("proc m3vit_ip")])
    interp.eval("""
        set log {}
        proc assign_bd_address {args} { lappend ::log [list assign {*}$args] }
        proc exclude_bd_addr_seg {args} { lappend ::log [list exclude {*}$args] }
        proc get_property {name obj} { return $obj }
        proc get_bd_addr_segs {args} {
            return {ps/SAXIGP2/HP0_DDR_HIGH ps/SAXIGP2/HP0_DDR_LOW ps/SAXIGP2/HP0_LPS_OCM
                    ps/SAXIGP2/HP0_PCIE_LOW ps/SAXIGP2/HP0_QSPI}
        }
        m3vit_map_only accel/m_axi_hp0 ps/SAXIGP2/HP0_DDR_LOW 0x00000000 0x80000000
    """)
    log = [interp.splitlist(e) for e in interp.splitlist(interp.eval("set log"))]
    assert log[0] == ("assign", "-offset", "0x00000000", "-range", "0x80000000",
                      "-target_address_space", "accel/m_axi_hp0", "ps/SAXIGP2/HP0_DDR_LOW",
                      "-force")
    excluded = [e[-1] for e in log[1:]]
    assert excluded == ["ps/SAXIGP2/HP0_DDR_HIGH", "ps/SAXIGP2/HP0_LPS_OCM",
                        "ps/SAXIGP2/HP0_PCIE_LOW", "ps/SAXIGP2/HP0_QSPI"]
    assert all(e[:3] == ("exclude", "-target_address_space", "accel/m_axi_hp0") for e in log[1:])


def test_xdc_pins_match_the_platform(cli_build):
    out, _ = cli_build
    got = {}
    for props, port in re.findall(r"set_property -dict \{([^}]*)\} \[get_ports \{([^}]*)\}\]",
                                  (out / "m3vit_zcu104.xdc").read_text()):
        kv = props.split()
        got[port] = dict(zip(kv[::2], kv[1::2]))
    plat = ZCU104Platform()
    want = {}
    for i in range(4):
        [(pin, attrs)] = pin_constraints(plat, "led", i)
        want[f"led[{i}]"] = {"PACKAGE_PIN": pin, **attrs}
    assert got == want


def test_verilog_lints_clean(cli_build):
    out, _ = cli_build
    code, errors, _warnings = verilator_lint(out / "m3vit_zcu104.v", TOP_NAME)
    assert errors == [] and code == 0
    text = (out / "m3vit_zcu104.v").read_text()
    assert f"module {CORE_NAME}(" in text and f"module {TOP_NAME} (" in text


def test_build_info(cli_build):
    out, _ = cli_build
    info = json.loads((out / "build_info.json").read_text())
    cfg = CONFIGS[REAL]
    assert info["part"] == "xczu7ev-ffvc1156-2-e" and info["accelerator"] == pbuild.DEFAULT_ACCELERATOR
    assert info["config"]["array_rows"] == cfg.array_rows and info["clock_mhz"] == cfg.clock_mhz
    assert info["address_map"] == json.loads(json.dumps(
        addrmap.address_map(cfg.csr_addr_width, cfg.axi_masters)))


# ---- in-process builds on the stand-in (fast) --------------------------------------------------

def _build(tmp_path, cfg=SMALL_TEST, **kw):
    kw = {"accelerator": StandInAccelerator, "accelerator_name": STANDIN, "lint": False,
          "estimate": False, "vivado": False, "log": lambda s: None, **kw}
    return build(cfg, tmp_path, **kw)


def test_estimate_report(tmp_path):
    res = _build(tmp_path, estimate=True)
    assert res.fits is True
    data = json.loads((tmp_path / "resources.json").read_text())
    assert data["available"] == XCZU7EV and data["fits"] is True and data["over"] == []
    assert set(XCZU7EV) <= set(data["used"]) and data["used"]["LUT"] > 0
    assert data["used"]["FF"] > 0
    text = (tmp_path / "resources.txt").read_text()
    assert "| LUT |" in text and "| URAM |" in text and "fits the XCZU7EV" in text


def test_does_not_fit_fails_clearly(tmp_path, monkeypatch):
    huge = {"LUT": 300_000, "FF": 1, "DSP": 2_000, "BRAM36": 1, "URAM": 0, "LUTRAM": 0}
    monkeypatch.setattr("platform.estimate.yosys_estimate", lambda *a, **k: dict(huge))
    with pytest.raises(BuildError, match=r"does not fit the XCZU7EV \(LUT 300,000 > 230,400, "
                                         r"DSP 2,000 > 1,728\)") as e:
        _build(tmp_path, estimate=True)
    assert e.value.exit_code == EXIT_NO_FIT
    assert "DOES NOT FIT" in (tmp_path / "resources.txt").read_text()
    assert _build(tmp_path, estimate=True, allow_overfull=True).fits is False


def test_two_masters_and_clock_override(tmp_path):
    cfg = SMALL_TEST.replace(axi_masters=2, axi_data_width=128, array_cols=32, clock_mhz=187.5)
    _build(tmp_path, cfg)
    tcl = (tmp_path / "create_project.tcl").read_text()
    props = _tcl_props(tcl[tcl.index("# PL clock"):])
    assert props["PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"] == "187.5"
    assert props["PSU__SAXIGP2__DATA_WIDTH"] == props["PSU__SAXIGP3__DATA_WIDTH"] == "128"
    assert props["PSU__USE__S_AXI_GP3"] == "1" and props["PSU__USE__S_AXI_GP4"] == "0"
    assert "[get_bd_pins ps/saxihp1_fpd_aclk]" in tcl
    assert "[get_bd_addr_spaces accel/m_axi_hp1] [get_bd_addr_segs ps/SAXIGP3/HP1_DDR_LOW]" in tcl
    assert "ASSOCIATED_BUSIF s_axi_csr:m_axi_hp0:m_axi_hp1," in (
        tmp_path / "m3vit_zcu104.v").read_text()


def test_cli_clock_option_and_exit_codes(tmp_path, capsys):
    assert main(["zcu104", "--config", "small-test", "--accelerator", STANDIN, "--no-estimate",
                 "--no-lint", "--no-vivado", "--clock-mhz", "150", "--out", str(tmp_path)]) == 0
    assert "{150}" in (tmp_path / "create_project.tcl").read_text()
    assert "--clock-mhz 150" in (tmp_path / "build.sh").read_text()
    assert main(["zcu104", "--accelerator", "no_such_module:Top", "--out", str(tmp_path)]) \
        == EXIT_TOP
    assert "cannot import no_such_module" in capsys.readouterr().err
    assert main(["zcu104", "--config", "small-test", "--accelerator", STANDIN,
                 "--clock-mhz", "0", "--out", str(tmp_path)]) == EXIT_USAGE
    with pytest.raises(SystemExit) as e:
        main(["zc706"])
    assert e.value.code == 2


def test_broken_or_missing_accelerator(tmp_path, monkeypatch):
    def broken(cfg):
        raise ValueError("boom")
    with pytest.raises(BuildError, match="failed to elaborate: ValueError: boom") as e:
        _build(tmp_path, accelerator=broken)
    assert e.value.exit_code == EXIT_TOP
    monkeypatch.setitem(sys.modules, "rtl.accelerator", None)    # as before it existed
    with pytest.raises(BuildError, match="rtl/accelerator.py is written by") as e:
        load_accelerator()
    assert e.value.exit_code == EXIT_TOP
    with pytest.raises(BuildError, match="MODULE:CLASS"):
        load_accelerator("rtl.accelerator")


@pytest.mark.parametrize("change, message", [
    ({"axi_data_width": 256, "array_cols": 32}, "HP port is 32/64/128 bits"),
    ({"axi_id_width": 8}, "axi_id_width 8"),
    ({"csr_addr_width": 30}, "csr_addr_width"),
    ({"clock_mhz": 1e-9}, "1e-09 MHz outside the ZCU104 PS's PL clock range 0.378-500 MHz"),
    ({"clock_mhz": 600.0}, "600 MHz outside the ZCU104 PS's PL clock range"),
])
def test_board_limits(change, message):
    with pytest.raises(BuildError, match=message) as e:
        check_board_limits(SMALL_TEST.replace(**change))
    assert e.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize("vivado_exit", [0, 1])
def test_runs_vivado_when_on_path(tmp_path, monkeypatch, vivado_exit):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vivado"
    fake.write_text(f'#!/bin/sh\necho "$@" > vivado_args.txt\nexit {vivado_exit}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    if vivado_exit:
        with pytest.raises(BuildError, match="Vivado failed") as e:
            _build(out, vivado=True, jobs=3)
        assert e.value.exit_code == EXIT_VIVADO
    else:
        assert _build(out, vivado=True, jobs=3).vivado_ran
    assert (out / "vivado_args.txt").read_text().split() == [
        "-mode", "batch", "-nojournal", "-log", "vivado.log", "-source", "build.tcl",
        "-tclargs", "3"]


@pytest.mark.parametrize("clock", ["1e-9", "0", "-100", "nan", "inf", "-inf", "500.001"])
def test_cli_refuses_a_clock_outside_the_pl_range(tmp_path, capsys, clock):
    out = tmp_path / "out"
    assert main(["zcu104", "--config", "small-test", "--accelerator", STANDIN, "--no-estimate",
                 "--no-lint", "--no-vivado", f"--clock-mhz={clock}", "--out", str(out)]) \
        == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"error: --clock-mhz {float(clock):g}: clock ") and err.count("\n") == 1
    assert ("not a finite number" in err) != ("outside the ZCU104 PS's PL clock range" in err)
    assert not out.exists()


def test_pl_clock_range_edges():
    lo, hi = pbuild.PL_CLOCK_MHZ
    assert pbuild.check_clock(lo) is None and pbuild.check_clock(hi) is None
    assert pbuild.check_clock(100) is None and pbuild.check_clock(187.5) is None
    for bad in (lo * 0.99, hi * 1.01, float("nan"), float("inf"), True, "100"):
        assert pbuild.check_clock(bad), bad


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_interrupted_build_removes_its_work_folder(tmp_path, monkeypatch):
    """Yosys runs with its temporary files in ``--out``'s work folder, which goes away however
    the build ends; a later build into the same folder removes what a killed one left."""
    seen = {}

    def yosys(path, log, top, **kw):
        tmp = os.environ["TMPDIR"]
        seen["tmp"] = tmp
        abc = os.path.join(tmp, "yowasp_x", "yosys-abc-1")
        os.makedirs(abc)
        with open(os.path.join(abc, "input.blif"), "wb") as f:
            f.write(b"\0" * (1 << 20))
        raise KeyboardInterrupt
    monkeypatch.setattr("platform.estimate.yosys_estimate", yosys)
    monkeypatch.delenv("TMPDIR", raising=False)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, estimate=True)
    assert seen["tmp"] == str((tmp_path / pbuild.WORK_DIR).resolve())
    assert "TMPDIR" not in os.environ
    assert not (tmp_path / pbuild.WORK_DIR).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    # What a build killed with SIGKILL leaves: the work folder, a temporary file of a write.
    (tmp_path / pbuild.WORK_DIR / "yowasp_y").mkdir(parents=True)
    (tmp_path / ".m3vit_zcu104.v.0123abcd.tmp").write_text("half a file")
    (tmp_path / "mine.tmp").write_text("the user's")
    monkeypatch.setattr("platform.estimate.yosys_estimate",
                        lambda *a, **k: {"LUT": 1, "FF": 1, "DSP": 0, "BRAM36": 0, "URAM": 0,
                                         "LUTRAM": 0})
    _build(tmp_path, estimate=True)
    written = {"m3vit_zcu104.v", "m3vit_zcu104.il", "m3vit_zcu104.xdc", "create_project.tcl",
               "build_bitstream.tcl", "build.tcl", "build.sh", "build_info.json",
               "resources.txt", "resources.json"}
    assert {p.name for p in tmp_path.iterdir()} == written | {"mine.tmp"}
    for name in written - {"build.sh"}:     # written as before: a plain file, umask applied
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~_umask(), name
    assert (tmp_path / "build.sh").stat().st_mode & stat.S_IXUSR


def test_terminated_cli_build_cleans_up(tmp_path):
    """``kill`` (SIGTERM) during the estimate: exit 143, the work folder removed."""
    out = tmp_path / "out"
    script = (
        "import os, sys, time\n"
        "import platform.estimate as est\n"
        "def slow(path, log, top, **kw):\n"
        "    os.makedirs(os.path.join(os.environ['TMPDIR'], 'yowasp_z'))\n"
        "    print('estimating', flush=True)\n"
        "    time.sleep(60)\n"
        "est.yosys_estimate = slow\n"
        "from platform.build import main\n"
        f"sys.exit(main(['zcu104', '--config', 'small-test', '--accelerator', {STANDIN!r},\n"
        f"               '--no-lint', '--no-vivado', '--out', {str(out)!r}]))\n")
    p = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:
            if line.startswith("estimating"):
                break
        assert (out / pbuild.WORK_DIR / "yowasp_z").is_dir()
        p.terminate()
        assert p.wait(timeout=60) == 128 + 15, p.stderr.read()
    finally:
        p.kill()
        p.wait()
    assert not (out / pbuild.WORK_DIR).exists()
    assert (out / "m3vit_zcu104.v").is_file() and not list(out.glob(".*.tmp"))


# ---- full-size estimates (opt in: pytest -m slow) ---------------------------------------------

def _slow_cli(tmp_path, config):
    env = dict(os.environ, PATH=_path_without_vivado())
    res = subprocess.run([sys.executable, "-m", "platform.build", "zcu104", "--config", config,
                          "--out", str(tmp_path), "--allow-overfull"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=4 * 3600)
    print(res.stdout)
    assert res.returncode == EXIT_OK, res.stderr
    data = json.loads((tmp_path / "resources.json").read_text())
    assert set(XCZU7EV) <= set(data["used"])
    # the logic-depth report from the same Yosys run (tests/platform/test_timing.py)
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["worst_logic_levels"] == data["timing"]["worst_logic_levels"] >= 1
    assert 0 < data["timing"]["estimated_fmax_mhz"] == timing["estimated_fmax_mhz"]
    assert timing["paths"][0]["start"].startswith("accel.") and timing["loops"]["nodes"] == 0
    assert timing["unknown_cell_types"] == {} and list(timing["domains"]) == ["clk"]
    assert "Logic depth (platform.timing" in res.stdout
    assert "Worst register-to-register path" in (tmp_path / "timing.txt").read_text()
    assert not (tmp_path / pbuild.NETLIST).exists()
    return data


@pytest.mark.slow
def test_nano_estimate_real_accelerator(tmp_path):
    """Also the acceptance run of the timing report on the real accelerator."""
    data = _slow_cli(tmp_path, REAL)
    assert data["fits"] is True


@pytest.mark.slow
def test_default_config_estimate(tmp_path):
    """The default (32×32) accelerator: resource table of the real design (tens of minutes)."""
    data = _slow_cli(tmp_path, "default")
    assert data["fits"] == (data["over"] == [])
