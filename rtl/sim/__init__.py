"""Simulation models shared by the Amaranth simulator and the Verilator harness.

Every model is a *cycle model* written against a tiny port-access abstraction (:class:`IO`):
``io.get(name)`` / ``io.set(name, value)`` on flattened port names (``"axi__ar__valid"``), called
once per clock cycle in two phases (see :mod:`rtl.sim.bench`). Because the models never touch an
Amaranth object, the same DDR model, protocol checker and stream drivers run unchanged on
:class:`rtl.sim.bench.AmaranthBench` and :class:`rtl.sim.verilator.VerilatorBench`.
"""

from .bench import IO, Model, AmaranthBench, StreamSource, StreamSink, pack, unpack, make_bench
from .ddr import DDRModel
from .axi_checker import AxiChecker, AxiProtocolError
from .axil_master import AxiLiteMaster

__all__ = ["IO", "Model", "AmaranthBench", "StreamSource", "StreamSink", "pack", "unpack",
           "make_bench", "DDRModel", "AxiChecker", "AxiProtocolError", "AxiLiteMaster"]
