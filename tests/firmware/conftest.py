"""Shared fixtures: a driver over the fake simulated accelerator."""

import pytest

from firmware.backends.sim import SimBackend
from firmware.driver import Accelerator

from .fakes import FAKE_CFG, FakeAcceleratorSim, make_image


def make_accel(cfg=FAKE_CFG, *, timeout=1e-3, completion="auto", poll_interval=1e-7,
               accel_config="same", **fake_kw):
    """(Accelerator, fake) over a :class:`FakeAcceleratorSim` through the real sim adapter."""
    fake_kw.setdefault("output_bytes", 768)
    fake_kw.setdefault("frame_cycles", 200)
    fake = FakeAcceleratorSim(cfg, **fake_kw)
    backend = SimBackend(cfg, sim=fake, ddr_base=fake.ddr_base, ddr_bytes=len(fake.mem))
    accel = Accelerator(backend, cfg if accel_config == "same" else accel_config,
                        timeout=timeout, completion=completion, poll_interval=poll_interval)
    return accel, fake


@pytest.fixture
def image():
    return make_image()
