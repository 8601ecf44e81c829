"""Observation features of every role, vectorised over a batch of episodes, normalised to O(1).

Each builder returns float32 arrays; the feature lists below are the single definition that the environments,
the learned policies' evaluation and the docs share. Scales come from the configured ranges (the `high` bound of
each uniform distribution), so a feature lies in [0, 1] for values inside the range; time ratios are clipped.

UE (one row per UE; it sees its own task and channel and its own cluster's CPU share):
  0 data_bits / data_high
  1 cycles / cycles_high
  2 deadline_s / deadline_high
  3 distance_m / distance_high
  4 cpu_hz / cpu_high
  5 local_time / deadline (<= 1: meets the deadline locally), clipped to [0, 4]
  6 upload time at an equal spectrum split among all N UEs / deadline, clipped to [0, 4]
  7 server time at the cluster's CPU share / deadline, clipped to [0, 4]
  8 K * cluster CPU share (1 = a fair share; phase 1: 1)
  9 cluster's carried-over server backlog / deadline_high, clipped to [0, 4]
 10 local energy / offload energy (server energy at the cluster's share plus upload energy at the equal split),
    clipped to [0, 4] (< 1: running locally is cheaper)
 11 queue ahead: server time of the cluster's tasks needier than this one (larger local time / deadline; ties by
    UE index) at the cluster's share / deadline, clipped to [0, 4] - the wait before this task's turn if every
    needier task of the cluster offloaded. Like the cluster CPU share (8), it is this slot's cluster-level
    information that the base station can broadcast before the UEs decide; it contains no decision.

Scheduler (one row per UE of its cluster, padded to a fixed table in the per-agent env; padding rows and UEs that
did not offload are all zero):
  0 valid (1 if the UE offloaded this slot)
  1 data_bits / data_high
  2 cycles / cycles_high
  3 deadline_s / deadline_high
  4 upload end / deadline_high, clipped to [0, 4]
  5 execution time at the cluster's share / deadline_high, clipped to [0, 4]
  6 slack (deadline - upload end - execution time) / deadline_high, clipped to [-4, 4]
  With scenario.spectrum_by = scheduler the scheduler grants the spectrum weights itself after it observes, so its
  features 4 and 6 are those of the equal split of the band among the slot's offloaders (the reference it knows
  before granting): the envs, the sampler and the learned policy pass the upload ends of that split.

Global state (for a centralised critic; one row per UE): the UE features, then
  12 offloaded (1 once the UE chose to offload this slot, else 0)
  13 upload end / deadline_high, clipped to [0, 4] (0 before the UEs decide or for local tasks; with the spectrum
     grant that of the equal split, as the scheduler's)

Coordinator (one row per cluster; it acts first and sees this slot's arriving load):
  0 cluster size * K / N (1 = an average cluster)
  1 sum of the cluster's cycles / (F_server * deadline_high) (server load if all of them offloaded), clipped [0, 8]
  2 mean deadline / deadline_high
  3 mean data / data_high
  4 fraction of the cluster's tasks that would miss their deadline locally
  5 carried-over server backlog / deadline_high, clipped to [0, 4]
"""

from __future__ import annotations

import numpy as np

from mec import physics
from mec.config import ScenarioConfig
from mec.simulator import SlotState

UE_FEATURES = (
    "data",
    "cycles",
    "deadline",
    "distance",
    "cpu",
    "local_time_over_deadline",
    "upload_time_over_deadline",
    "server_time_over_deadline",
    "relative_cpu_share",
    "server_backlog",
    "local_over_offload_energy",
    "queue_ahead_over_deadline",
)
SCHEDULER_FEATURES = ("valid", "data", "cycles", "deadline", "upload_end", "exec_time", "slack")
COORDINATOR_FEATURES = ("size", "load", "deadline", "data", "local_miss_fraction", "server_backlog")
STATE_FEATURES = UE_FEATURES + ("offloaded", "upload_end")


class FeatureScales:
    """The normalisation constants of one scenario (SI units)."""

    def __init__(self, scenario: ScenarioConfig):
        self.data_bits = scenario.task.data_mbit.high * 1e6
        self.cycles = scenario.task.cycles_gcycles.high * 1e9
        self.deadline_s = scenario.task.deadline_s.high
        self.distance_m = scenario.ue.distance_m.high
        self.cpu_hz = scenario.ue.cpu_ghz.high * 1e9


def _task_share(state: SlotState, cpu_share: np.ndarray) -> np.ndarray:
    return np.take_along_axis(cpu_share, state.cluster, axis=1)


def ue_features(state: SlotState, cpu_share: np.ndarray, scales: FeatureScales) -> np.ndarray:
    """(B, N, len(UE_FEATURES)) observations of every UE."""
    p = state.params
    n_ue, n_k = state.n_ue, state.n_clusters
    share = _task_share(state, cpu_share)
    d = state.deadline_s
    rate = physics.rate_bps(p.bandwidth_hz, 1.0 / n_ue, p.tx_power_w, state.gain, p.noise_w_per_hz)
    columns = [
        state.data_bits / scales.data_bits,
        state.cycles / scales.cycles,
        d / scales.deadline_s,
        state.distance_m / scales.distance_m,
        state.cpu_hz / scales.cpu_hz,
        np.clip(physics.local_time_s(state.cycles, state.cpu_hz) / d, 0, 4),
        np.clip(physics.tx_time_s(state.data_bits, rate) / d, 0, 4),
        np.clip(physics.server_time_s(state.cycles, p.server_cpu_hz, share) / d, 0, 4),
        n_k * share,
        np.clip(np.take_along_axis(state.server_free_s, state.cluster, axis=1) / scales.deadline_s, 0, 4),
    ]
    server_s = physics.server_time_s(state.cycles, p.server_cpu_hz, share)
    offload_j = p.server_power_w * share * server_s + physics.tx_energy_j(
        p.tx_power_w, physics.tx_time_s(state.data_bits, rate)
    )
    local_j = physics.local_energy_j(state.cycles, state.cpu_hz, p.kappa)
    columns.append(np.clip(local_j / offload_j, 0, 4))
    columns.append(np.clip(_queue_ahead_s(state, server_s) / d, 0, 4))
    return np.stack(columns, axis=-1).astype(np.float32)


def _queue_ahead_s(state: SlotState, server_s: np.ndarray) -> np.ndarray:
    """(B, N) summed server time of the same cluster's needier tasks (larger local time / deadline, ties by index)."""
    need = state.cycles / state.cpu_hz / state.deadline_s
    index = np.arange(state.n_ue)
    # ahead[b, i, j]: task j is needier than task i and in the same cluster.
    earlier = (index[None, :] < index[:, None])[None]
    ahead = (need[:, None, :] > need[:, :, None]) | ((need[:, None, :] == need[:, :, None]) & earlier)
    ahead &= state.cluster[:, None, :] == state.cluster[:, :, None]
    return np.einsum("bij,bj->bi", ahead, server_s)


def scheduler_rows(
    state: SlotState, offload: np.ndarray, upload_end_s: np.ndarray, cpu_share: np.ndarray, scales: FeatureScales
) -> np.ndarray:
    """(B, N, len(SCHEDULER_FEATURES)) one scheduler row per UE (all zero for UEs that did not offload)."""
    share = _task_share(state, cpu_share)
    exec_s = physics.server_time_s(state.cycles, state.params.server_cpu_hz, share)
    up = np.nan_to_num(upload_end_s)
    per_ue = np.stack(
        [
            offload.astype(float),
            state.data_bits / scales.data_bits,
            state.cycles / scales.cycles,
            state.deadline_s / scales.deadline_s,
            np.clip(up / scales.deadline_s, 0, 4),
            np.clip(exec_s / scales.deadline_s, 0, 4),
            np.clip((state.deadline_s - up - exec_s) / scales.deadline_s, -4, 4),
        ],
        axis=-1,
    )
    return np.where(offload[..., None], per_ue, 0.0).astype(np.float32)


def cluster_rows(cluster: np.ndarray, n_clusters: int, n_rows: int) -> np.ndarray:
    """(B, K, n_rows) UE index of row r of cluster k (its r-th UE by index), -1 for padding rows.

    `n_rows` must be at least the largest cluster (N - K + 1 always suffices, as no cluster is empty).
    """
    n_b, n_ue = cluster.shape
    order = np.argsort(cluster, axis=1, kind="stable")
    sorted_cluster = np.take_along_axis(cluster, order, axis=1)
    counts = np.zeros((n_b, n_clusters), dtype=np.int64)
    np.add.at(counts, (np.arange(n_b)[:, None], cluster), 1)
    if counts.max() > n_rows:
        raise ValueError(f"a cluster has {counts.max()} UEs; the scheduler table has only {n_rows} rows")
    first = np.zeros((n_b, n_clusters), dtype=np.int64)
    first[:, 1:] = np.cumsum(counts, axis=1)[:, :-1]
    position = np.arange(n_ue)[None, :] - np.take_along_axis(first, sorted_cluster, axis=1)
    ue_index = np.full((n_b, n_clusters, n_rows), -1, dtype=np.int64)
    ue_index[np.arange(n_b)[:, None], sorted_cluster, position] = order
    return ue_index


def scheduler_tables(rows: np.ndarray, ue_index: np.ndarray) -> np.ndarray:
    """(B, K, n_rows, F) padded per-cluster tables from per-UE scheduler rows and `cluster_rows` indices."""
    n_b, n_k, n_rows = ue_index.shape
    safe = np.maximum(ue_index, 0).reshape(n_b, -1)
    table = np.take_along_axis(rows, safe[..., None], axis=1).reshape(n_b, n_k, n_rows, -1)
    return np.where((ue_index >= 0)[..., None], table, 0.0).astype(np.float32)


def coordinator_features(state: SlotState, scales: FeatureScales) -> np.ndarray:
    """(B, K, len(COORDINATOR_FEATURES)) per-cluster load seen before any UE decides."""
    n_b, n_ue = state.data_bits.shape
    n_k = state.n_clusters
    rows = np.arange(n_b)[:, None]

    def per_cluster(values):
        out = np.zeros((n_b, n_k))
        np.add.at(out, (rows, state.cluster), values)
        return out

    size = per_cluster(np.ones_like(state.cycles))
    safe_size = np.maximum(size, 1.0)
    local_miss = physics.local_time_s(state.cycles, state.cpu_hz) > state.deadline_s
    columns = [
        size * n_k / n_ue,
        np.clip(per_cluster(state.cycles) / (state.params.server_cpu_hz * scales.deadline_s), 0, 8),
        per_cluster(state.deadline_s) / safe_size / scales.deadline_s,
        per_cluster(state.data_bits) / safe_size / scales.data_bits,
        per_cluster(local_miss.astype(float)) / safe_size,
        np.clip(state.server_free_s / scales.deadline_s, 0, 4),
    ]
    return np.stack(columns, axis=-1).astype(np.float32)


def global_state(
    state: SlotState, cpu_share: np.ndarray, offload: np.ndarray, upload_end_s: np.ndarray, scales: FeatureScales
) -> np.ndarray:
    """(B, N, len(STATE_FEATURES)) slot state: every UE's features plus the decisions made so far."""
    return state_from_ue_features(ue_features(state, cpu_share, scales), offload, upload_end_s, scales)


def state_from_ue_features(
    ue: np.ndarray, offload: np.ndarray, upload_end_s: np.ndarray, scales: FeatureScales
) -> np.ndarray:
    """global_state from already computed ue_features (the same numbers, without computing them again)."""
    extra = np.stack(
        [offload.astype(np.float32), np.clip(np.nan_to_num(upload_end_s) / scales.deadline_s, 0, 4)], axis=-1
    )
    return np.concatenate([ue, extra.astype(np.float32)], axis=-1)
