"""The system model as pure, vectorised functions.

Every function takes and returns numpy arrays (or scalars) in SI units, with the unit in the argument name.
The plain-numpy reference simulator is built from these functions. The compiled kernels (mec.simulator,
mec.baselines, mec.bound) use the scalar versions at the end of this module, each written once beside its
vectorised formula, inlined by numba; the tests hold the kernels and the reference to the same numbers.
"""

from __future__ import annotations

import numba
import numpy as np

from mec.config import CHANNEL_MODELS

__all__ = [
    "dbm_to_w",
    "channel_gain_pathloss_3gpp",
    "channel_gain_inverse_square",
    "channel_gain",
    "rate_bps",
    "tx_time_s",
    "tx_energy_j",
    "local_time_s",
    "local_energy_j",
    "server_time_s",
    "server_energy_j",
    "qos",
    "floor_shares",
    "cpu_shares",
]


def dbm_to_w(power_dbm):
    """Convert dBm (or dBm/Hz) to W (or W/Hz): -174 dBm/Hz -> 3.98e-21 W/Hz."""
    return 10.0 ** ((np.asarray(power_dbm, dtype=float) - 30.0) / 10.0)


def channel_gain_pathloss_3gpp(distance_m):
    """Linear power gain of the 3GPP urban macro path loss 128.1 + 37.6 log10(d / km) dB."""
    loss_db = 128.1 + 37.6 * np.log10(np.asarray(distance_m, dtype=float) / 1000.0)
    return 10.0 ** (-loss_db / 10.0)


def channel_gain_inverse_square(distance_m):
    """Free-space-like gain 1/d^2 (d in metres). Optimistic by orders of magnitude; kept as an option."""
    return 1.0 / np.asarray(distance_m, dtype=float) ** 2


def channel_gain(distance_m, model: str):
    """Channel power gain for the configured model name."""
    if model == "pathloss_3gpp":
        return channel_gain_pathloss_3gpp(distance_m)
    if model == "inverse_square":
        return channel_gain_inverse_square(distance_m)
    raise ValueError(f"channel model {model!r}: allowed {', '.join(CHANNEL_MODELS)}")


def rate_bps(bandwidth_hz, share, tx_power_w, gain, noise_w_per_hz):
    """Shannon uplink rate B*theta*log2(1 + p*g / (B*theta*N0)); 0 where the spectrum share is 0."""
    share = np.asarray(share, dtype=float)
    band_hz = bandwidth_hz * share
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = band_hz * np.log2(1.0 + tx_power_w * gain / (band_hz * noise_w_per_hz))
    return np.where(share > 0.0, rate, 0.0)


def tx_time_s(data_bits, rate_bps_):
    """Upload time bits / rate; infinite where the rate is 0 (no spectrum)."""
    data_bits = np.asarray(data_bits, dtype=float)
    rate_bps_ = np.asarray(rate_bps_, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(rate_bps_ > 0.0, data_bits / np.where(rate_bps_ > 0.0, rate_bps_, 1.0), np.inf)


def tx_energy_j(tx_power_w, tx_time_s_):
    """Radio energy p * t_tx."""
    return tx_power_w * np.asarray(tx_time_s_, dtype=float)


def local_time_s(cycles, cpu_hz):
    """Local execution time C / f."""
    return np.asarray(cycles, dtype=float) / cpu_hz


def local_energy_j(cycles, cpu_hz, kappa):
    """Dynamic CPU energy kappa * C * f^2."""
    return kappa * np.asarray(cycles, dtype=float) * np.asarray(cpu_hz, dtype=float) ** 2


def server_time_s(cycles, server_cpu_hz, cpu_share=1.0):
    """Execution time of C cycles on a share phi of the server CPU: C / (phi * F)."""
    return np.asarray(cycles, dtype=float) / (cpu_share * server_cpu_hz)


def server_energy_j(cycles, server_cpu_hz, server_power_w):
    """Server energy P * C / F.

    A cluster running on a share phi of the CPU draws phi * P for C / (phi * F) seconds, so the energy of a task is
    independent of its share; with phi = 1 (phase 1) it is exactly P times the execution time.
    """
    return server_power_w * np.asarray(cycles, dtype=float) / server_cpu_hz


def qos(completion_time_s, deadline_s):
    """QoS: 1 up to the deadline D, linear to 0 at 2D, 0 after (equivalently clip(2 - t/D, 0, 1))."""
    return np.clip(2.0 - np.asarray(completion_time_s, dtype=float) / deadline_s, 0.0, 1.0)


def floor_shares(weights, active, floor):
    """Split a unit resource among active entries: each gets `floor` plus its weight's part of the rest.

    share_i = floor + (1 - n_active * floor) * w_i / sum_active(w) for active i, 0 otherwise. Non-positive weights
    of all active entries fall back to an equal split. Works on the last axis; `n_active * floor <= 1` is the
    caller's guarantee (checked in mec.config).
    """
    weights = np.where(active, np.maximum(np.asarray(weights, dtype=float), 0.0), 0.0)
    n_active = active.sum(axis=-1, keepdims=True)
    total = weights.sum(axis=-1, keepdims=True)
    equal = np.where(active, 1.0, 0.0)
    weights = np.where(total > 0.0, weights, equal)
    total = np.where(total > 0.0, total, np.maximum(n_active, 1))
    rest = 1.0 - n_active * floor
    return np.where(active, floor + rest * weights / total, 0.0)


def cpu_shares(weights, floor):
    """floor_shares with every entry active (the clusters' CPU split): floor + (1 - K*floor) * w / sum(w)."""
    weights = np.asarray(weights, dtype=float)
    return floor + (1.0 - weights.shape[-1] * floor) * weights / weights.sum(axis=-1, keepdims=True)


# --- scalar versions for the compiled kernels (numba inlines them; same operations in the same order) -----------


@numba.njit(cache=True, inline="always")
def shannon_rate_bps(band_hz, signal_w, noise_w_per_hz):
    """rate_bps of one upload: band*log2(1 + signal/(band*N0)), with band = B*theta > 0 and signal = p*g."""
    return band_hz * np.log2(1.0 + signal_w / (band_hz * noise_w_per_hz))


@numba.njit(cache=True, inline="always")
def qos_scalar(completion_time_s, deadline_s):
    """qos of one task: clip(2 - t/D, 0, 1)."""
    return min(max(2.0 - completion_time_s / deadline_s, 0.0), 1.0)


@numba.njit(cache=True, inline="always")
def local_energy_scalar(cycles, cpu_hz, kappa):
    """local_energy_j of one task: kappa*C*f*f."""
    return kappa * cycles * cpu_hz * cpu_hz
