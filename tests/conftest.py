"""Shared helpers for the simulator and baseline tests: hand-made slots."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mec import physics
from mec.config import config_from_dict
from mec.scenario import PhaseSetup
from mec.simulator import SimParams, SlotState


def _row(values, dtype=float) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    return np.ascontiguousarray(arr[None, :] if arr.ndim == 1 else arr)


def build_params(overrides: dict | None = None, phase: int = 1, n: int = 3, **replace) -> SimParams:
    """SimParams of a config (defaults plus `overrides`) for phase/n, with fields replaced by keyword."""
    cfg = config_from_dict(overrides or {})
    params = SimParams.from_config(cfg, PhaseSetup.from_config(cfg, phase, n))
    return dataclasses.replace(params, **replace) if replace else params


def build_state(
    params: SimParams,
    *,
    data_bits,
    cycles,
    deadline_s,
    cpu_hz=None,
    gain=None,
    cluster=None,
    server_free_s=None,
    slot: int = 0,
) -> SlotState:
    """A SlotState of one episode (B = 1) unless 2-D arrays are given."""
    data_bits = _row(data_bits)
    shape = data_bits.shape
    full = lambda v, default: _row(v) if v is not None else np.full(shape, default)  # noqa: E731
    cluster = _row(cluster, np.int64) if cluster is not None else np.zeros(shape, dtype=np.int64)
    if server_free_s is None:
        server_free = np.zeros((shape[0], params.n_clusters))
    else:
        server_free = _row(server_free_s)
    return SlotState(
        slot=slot,
        data_bits=data_bits,
        cycles=full(cycles, 0.0),
        deadline_s=full(deadline_s, 0.0),
        distance_m=np.full(shape, 20.0),
        cpu_hz=full(cpu_hz, 1e9),
        gain=full(gain, 1e-8),
        cluster=cluster,
        server_free_s=server_free,
        params=params,
    )


def bits_for_upload(params: SimParams, gain: float, share: float, seconds: float) -> float:
    """Data size that takes exactly `seconds` to upload on `share` of the band at channel gain `gain`."""
    rate = physics.rate_bps(params.bandwidth_hz, share, params.tx_power_w, gain, params.noise_w_per_hz)
    return float(rate * seconds)


@pytest.fixture
def make_params():
    return build_params


@pytest.fixture
def make_state():
    return build_state


@pytest.fixture
def upload_bits():
    return bits_for_upload
