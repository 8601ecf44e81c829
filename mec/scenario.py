"""Sampling UEs and tasks from an injected numpy Generator, and the phase-2 k-means clustering.

An episode is fully drawn at reset from its own seed: static UE features (distance, CPU), the channel gain they
imply, the clustering (phase 2), and one task per UE per slot for every slot. Drawing per episode (not per batch)
makes an episode's numbers independent of how many episodes are simulated beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from mec import physics
from mec.config import Range, ScenarioConfig, StudyConfig

MBIT = 1e6
GIGA = 1e9


@dataclass(frozen=True)
class PhaseSetup:
    """One point of the sweep: how many UEs, how many clusters, and the share floors."""

    phase: int
    n_ue: int
    n_clusters: int
    theta_min: float
    phi_min: float
    kmeans_n_init: int = 10

    @classmethod
    def from_config(cls, cfg: StudyConfig, phase: int, n: int) -> "PhaseSetup":
        """Phase 1: `n` is the number of UEs (one cluster). Phase 2: `n` is K, the number of clusters."""
        slack = 1e-12  # floors like 100 * 0.01 are feasible despite rounding
        if phase == 1:
            theta_min = cfg.phase1.theta_min
            if n < 1 or n * theta_min > 1 + slack:
                raise ValueError(f"n_ue {n}: allowed 1..{int((1 + slack) / theta_min) if theta_min else 'any'}"
                                 f" (n_ue * phase1.theta_min <= 1)")  # fmt: skip
            return cls(1, int(n), 1, theta_min, 0.0)
        if phase == 2:
            p2 = cfg.phase2
            if not 1 <= n <= p2.n_users or n * p2.phi_min > 1 + slack:
                raise ValueError(f"n_clusters {n}: allowed 1..{p2.n_users} (phase2.n_users) with "
                                 f"n_clusters * phase2.phi_min <= 1 (phi_min = {p2.phi_min})")  # fmt: skip
            return cls(2, p2.n_users, int(n), p2.theta_min, p2.phi_min, p2.kmeans_n_init)
        raise ValueError(f"phase {phase!r}: allowed 1 or 2")


@dataclass(frozen=True)
class EpisodeBatch:
    """B independent episodes of S slots with N UEs. Arrays are SI units: metres, Hz, bits, cycles, seconds."""

    distance_m: np.ndarray  # (B, N)
    cpu_hz: np.ndarray  # (B, N)
    gain: np.ndarray  # (B, N) linear channel power gain
    cluster: np.ndarray  # (B, N) int64 in 0..K-1
    data_bits: np.ndarray  # (B, S, N)
    cycles: np.ndarray  # (B, S, N)
    deadline_s: np.ndarray  # (B, S, N)

    @property
    def n_episodes(self) -> int:
        return self.data_bits.shape[0]

    @property
    def n_slots(self) -> int:
        return self.data_bits.shape[1]


def episode_seeds(seed: int, n_episodes: int) -> list[np.random.SeedSequence]:
    """Independent, reproducible seed sequences for episodes 0..n_episodes-1 of a seed."""
    return np.random.SeedSequence(seed).spawn(n_episodes)


def _uniform(rng: np.random.Generator, bounds: Range, scale: float, size) -> np.ndarray:
    return rng.uniform(bounds.low * scale, bounds.high * scale, size=size)


def normalised_static_features(distance_m: np.ndarray, cpu_hz: np.ndarray, scenario: ScenarioConfig) -> np.ndarray:
    """(N, 2) features in [0, 1]: distance and CPU scaled by their configured ranges (k-means input)."""

    def scale(x, bounds: Range, unit: float):
        width = (bounds.high - bounds.low) * unit
        return (x - bounds.low * unit) / width if width > 0 else np.zeros_like(x)

    return np.column_stack(
        [scale(distance_m, scenario.ue.distance_m, 1.0), scale(cpu_hz, scenario.ue.cpu_ghz, GIGA)]
    )


def _fill_empty_clusters(labels: np.ndarray, features: np.ndarray, n_clusters: int) -> np.ndarray:
    """Give every empty cluster the point farthest from the centroid of the currently largest cluster."""
    labels = labels.copy()
    counts = np.bincount(labels, minlength=n_clusters)
    for empty in np.flatnonzero(counts == 0):
        donor = int(np.argmax(counts))
        members = np.flatnonzero(labels == donor)
        centre = features[members].mean(axis=0)
        far = members[int(np.argmax(((features[members] - centre) ** 2).sum(axis=1)))]
        labels[far] = empty
        counts[donor] -= 1
        counts[empty] += 1
    return labels


def cluster_ues(features: np.ndarray, n_clusters: int, rng: np.random.Generator, n_init: int = 10) -> np.ndarray:
    """k-means labels (N,) with no empty cluster, numbered by centroid (nearest, then slowest UEs first).

    Deterministic for a given generator state. Requires 1 <= n_clusters <= N.
    """
    n_points = features.shape[0]
    if not 1 <= n_clusters <= n_points:
        raise ValueError(f"n_clusters {n_clusters}: allowed 1..{n_points} (the number of UEs)")
    if n_clusters == 1:
        return np.zeros(n_points, dtype=np.int64)
    distinct = np.unique(features, axis=0).shape[0]
    if distinct >= n_clusters:
        km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=int(rng.integers(2**31 - 1)))
        labels = km.fit_predict(features).astype(np.int64)
    else:
        # Fewer distinct points than clusters: k-means cannot separate them; start from one cluster and split.
        rng.integers(2**31 - 1)  # keep the generator's stream the same on both branches
        labels = np.zeros(n_points, dtype=np.int64)
    labels = _fill_empty_clusters(labels, features, n_clusters)
    centroids = np.array([features[labels == k].mean(axis=0) for k in range(n_clusters)])
    order = np.lexsort((centroids[:, 1], centroids[:, 0]))
    relabel = np.empty(n_clusters, dtype=np.int64)
    relabel[order] = np.arange(n_clusters)
    return relabel[labels]


def sample_episode(
    scenario: ScenarioConfig, setup: PhaseSetup, n_slots: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One episode's arrays (see EpisodeBatch), all drawn from `rng` in a fixed order."""
    n = setup.n_ue
    distance_m = _uniform(rng, scenario.ue.distance_m, 1.0, n)
    cpu_hz = _uniform(rng, scenario.ue.cpu_ghz, GIGA, n)
    features = normalised_static_features(distance_m, cpu_hz, scenario)
    cluster = cluster_ues(features, setup.n_clusters, rng, setup.kmeans_n_init)
    task = scenario.task
    return {
        "distance_m": distance_m,
        "cpu_hz": cpu_hz,
        "gain": physics.channel_gain(distance_m, scenario.channel.model),
        "cluster": cluster,
        "data_bits": _uniform(rng, task.data_mbit, MBIT, (n_slots, n)),
        "cycles": _uniform(rng, task.cycles_gcycles, GIGA, (n_slots, n)),
        "deadline_s": _uniform(rng, task.deadline_s, 1.0, (n_slots, n)),
    }


def sample_episodes(
    scenario: ScenarioConfig, setup: PhaseSetup, n_slots: int, seeds
) -> EpisodeBatch:
    """Stack one episode per seed (an int or a numpy SeedSequence) into an EpisodeBatch."""
    if n_slots < 1:
        raise ValueError(f"n_slots {n_slots}: allowed an integer >= 1")
    episodes = [sample_episode(scenario, setup, n_slots, np.random.default_rng(s)) for s in seeds]
    if not episodes:
        raise ValueError("seeds: allowed a non-empty sequence of seeds")
    return EpisodeBatch(**{key: np.stack([ep[key] for ep in episodes]) for key in episodes[0]})
