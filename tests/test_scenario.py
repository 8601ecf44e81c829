"""Tests for mec.scenario: sampling ranges and units, k-means clustering, phase setups."""

from __future__ import annotations

import numpy as np
import pytest

from mec import physics
from mec.config import config_from_dict
from mec.scenario import (
    PhaseSetup,
    cluster_ues,
    episode_seeds,
    normalised_static_features,
    sample_episode,
    sample_episodes,
)

# --------------------------------------------------------------------------- PhaseSetup


def test_phase_setup_phase1():
    cfg = config_from_dict({"phase1": {"theta_min": 0.05}})
    s = PhaseSetup.from_config(cfg, 1, 4)
    assert (s.phase, s.n_ue, s.n_clusters, s.theta_min, s.phi_min) == (1, 4, 1, 0.05, 0.0)


def test_phase_setup_phase2():
    cfg = config_from_dict({"phase2": {"n_users": 40, "theta_min": 0.02, "phi_min": 0.05, "kmeans_n_init": 3}})
    s = PhaseSetup.from_config(cfg, 2, 6)
    assert (s.phase, s.n_ue, s.n_clusters, s.theta_min, s.phi_min, s.kmeans_n_init) == (2, 40, 6, 0.02, 0.05, 3)
    d = PhaseSetup.from_config(config_from_dict({}), 2, 10)
    assert (d.n_ue, d.n_clusters, d.theta_min, d.phi_min, d.kmeans_n_init) == (100, 10, 0.01, 0.02, 10)


@pytest.mark.parametrize(("phase", "n"), [(2, 0), (2, 101), (3, 2), (0, 2), (1, 0), (1, -1)])
def test_phase_setup_rejects(phase, n):
    # phase 1 needs at least one UE, as phase 2 needs at least one cluster
    with pytest.raises(ValueError):
        PhaseSetup.from_config(config_from_dict({}), phase, n)


@pytest.mark.parametrize(
    ("overrides", "phase", "n"),
    [
        # theta_min = 0.2 is valid for n_ue up to 5 (5 * 0.2 = 1) but not for 7 UEs: 7 * 0.2 = 1.4 > 1, so
        # rest = 1 - 1.4 = -0.4 and a UE with most of the weight would get 0.2 - 0.4 < 0 of the band
        ({"phase1": {"n_ue": [2, 5], "theta_min": 0.2}}, 1, 7),
        # phi_min = 0.02 (default) with K = 60 clusters: 60 * 0.02 = 1.2 > 1 -> negative CPU shares possible
        ({}, 2, 60),
    ],
)
def test_phase_setup_rejects_infeasible_share_floors(overrides, phase, n):
    with pytest.raises(ValueError):
        PhaseSetup.from_config(config_from_dict(overrides), phase, n)


# --------------------------------------------------------------------------- sampling


def test_sampled_values_in_range_with_si_units():
    cfg = config_from_dict({})
    setup = PhaseSetup.from_config(cfg, 1, 5)
    ep = sample_episodes(cfg.scenario, setup, 40, list(range(30)))
    assert ep.n_episodes == 30 and ep.n_slots == 40
    assert ep.data_bits.shape == ep.cycles.shape == ep.deadline_s.shape == (30, 40, 5)
    assert ep.distance_m.shape == ep.cpu_hz.shape == ep.gain.shape == ep.cluster.shape == (30, 5)
    # (array, low, high): Mbit * 1e6 = bits, Gcycles * 1e9 = cycles, GHz * 1e9 = Hz
    for values, low, high in [
        (ep.data_bits, 16e6, 80e6),
        (ep.cycles, 1.5e9, 3.5e9),
        (ep.deadline_s, 2.0, 4.0),
        (ep.distance_m, 10.0, 50.0),
        (ep.cpu_hz, 0.5e9, 1.5e9),
    ]:
        assert values.min() >= low and values.max() <= high
        # 6000 (or 150) uniform draws cover the range: both ends within 10% of the width
        width = high - low
        assert values.min() < low + 0.1 * width and values.max() > high - 0.1 * width
        # and the mean is the midpoint within a loose margin
        assert abs(values.mean() - (low + high) / 2) < 0.1 * width
    np.testing.assert_array_equal(ep.cluster, 0)
    np.testing.assert_allclose(ep.gain, physics.channel_gain_pathloss_3gpp(ep.distance_m), rtol=1e-15)
    # pathloss gain range: 52.9 dB at 10 m down to 52.9 + 37.6*log10(5) = 79.18 dB at 50 m
    assert ep.gain.max() <= 10**-5.29 and ep.gain.min() >= 10 ** (-(52.9 + 37.6 * np.log10(5.0)) / 10) * (1 - 1e-12)


def test_static_ue_features_are_constant_over_slots_and_tasks_vary():
    cfg = config_from_dict({})
    ep = sample_episode(cfg.scenario, PhaseSetup.from_config(cfg, 1, 3), 6, np.random.default_rng(3))
    assert ep["distance_m"].shape == (3,)
    assert ep["data_bits"].shape == (6, 3)
    assert len(np.unique(ep["data_bits"])) == 18  # every task drawn afresh


def test_fixed_ranges_give_exact_values():
    cfg = config_from_dict(
        {
            "scenario": {
                "task": {"data_mbit": [20, 20], "cycles_gcycles": [2.5, 2.5], "deadline_s": [3, 3]},
                "ue": {"distance_m": [100, 100], "cpu_ghz": [1.2, 1.2]},
                "channel": {"model": "inverse_square"},
            }
        }
    )
    ep = sample_episodes(cfg.scenario, PhaseSetup.from_config(cfg, 1, 2), 3, [0, 1])
    np.testing.assert_allclose(ep.data_bits, 20e6)  # 20 Mbit = 2e7 bit
    np.testing.assert_allclose(ep.cycles, 2.5e9)  # 2.5 Gcycles
    np.testing.assert_allclose(ep.deadline_s, 3.0)
    np.testing.assert_allclose(ep.cpu_hz, 1.2e9)  # 1.2 GHz
    np.testing.assert_allclose(ep.distance_m, 100.0)
    np.testing.assert_allclose(ep.gain, 1e-4)  # 1 / 100^2


def test_sampling_is_per_episode_and_reproducible():
    cfg = config_from_dict({})
    setup = PhaseSetup.from_config(cfg, 1, 3)
    seeds = episode_seeds(7, 3)
    batch = sample_episodes(cfg.scenario, setup, 5, seeds)
    again = sample_episodes(cfg.scenario, setup, 5, episode_seeds(7, 3))
    alone = sample_episodes(cfg.scenario, setup, 5, [seeds[1]])
    for name in ("distance_m", "cpu_hz", "gain", "cluster", "data_bits", "cycles", "deadline_s"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(again, name))
        np.testing.assert_array_equal(getattr(batch, name)[1], getattr(alone, name)[0])
    assert not np.array_equal(batch.data_bits[0], batch.data_bits[1])
    # an int seed works like a SeedSequence of that int
    np.testing.assert_array_equal(
        sample_episodes(cfg.scenario, setup, 2, [11]).cycles,
        sample_episodes(cfg.scenario, setup, 2, [np.random.SeedSequence(11)]).cycles,
    )


def test_sample_episodes_rejects_bad_arguments():
    cfg = config_from_dict({})
    setup = PhaseSetup.from_config(cfg, 1, 2)
    with pytest.raises(ValueError):
        sample_episodes(cfg.scenario, setup, 0, [1])
    with pytest.raises(ValueError):
        sample_episodes(cfg.scenario, setup, 3, [])


def test_episode_seeds_are_distinct_and_reproducible():
    a = [s.generate_state(2).tolist() for s in episode_seeds(5, 4)]
    b = [s.generate_state(2).tolist() for s in episode_seeds(5, 4)]
    assert a == b and len({tuple(x) for x in a}) == 4


def test_normalised_static_features():
    # distance range [10, 50] m, CPU [0.5, 1.5] GHz: 10 m -> 0, 30 m -> 0.5, 50 m -> 1; 0.5 GHz -> 0, 1.5 GHz -> 1,
    # 0.75 GHz -> 0.25
    cfg = config_from_dict({})
    f = normalised_static_features(np.array([10.0, 30.0, 50.0]), np.array([0.5e9, 0.75e9, 1.5e9]), cfg.scenario)
    np.testing.assert_allclose(f, [[0.0, 0.0], [0.5, 0.25], [1.0, 1.0]], atol=1e-15)
    fixed = config_from_dict({"scenario": {"ue": {"cpu_ghz": [1.0, 1.0]}}})
    f = normalised_static_features(np.array([10.0, 50.0]), np.array([1e9, 1e9]), fixed.scenario)
    np.testing.assert_allclose(f, [[0.0, 0.0], [1.0, 0.0]])


def test_phase2_episode_has_non_empty_ordered_clusters():
    cfg = config_from_dict({"phase2": {"n_users": 60, "kmeans_n_init": 2}})
    setup = PhaseSetup.from_config(cfg, 2, 5)
    ep = sample_episodes(cfg.scenario, setup, 2, [0, 1, 2])
    for b in range(3):
        assert np.bincount(ep.cluster[b], minlength=5).min() >= 1 and ep.cluster[b].max() == 4
        feats = normalised_static_features(ep.distance_m[b], ep.cpu_hz[b], cfg.scenario)
        mean_d = [feats[ep.cluster[b] == k, 0].mean() for k in range(5)]
        assert np.all(np.diff(mean_d) >= 0)


# --------------------------------------------------------------------------- clustering


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_empty_cluster_for_any_k(seed):
    rng = np.random.default_rng(seed)
    feats = rng.random((12, 2))
    for k in range(1, 13):
        labels = cluster_ues(feats, k, np.random.default_rng(seed), n_init=2)
        assert labels.shape == (12,) and labels.dtype == np.int64
        assert np.array_equal(np.unique(labels), np.arange(k)), k


@pytest.mark.parametrize("k", [2, 3, 5])
def test_all_identical_points(k):
    feats = np.full((5, 2), 0.3)
    labels = cluster_ues(feats, k, np.random.default_rng(0))
    assert np.array_equal(np.unique(labels), np.arange(k))


@pytest.mark.parametrize("k", [2, 3, 4, 5, 9])
def test_duplicated_points(k):
    # 9 points, only 3 distinct locations
    base = np.array([[0.1, 0.1], [0.5, 0.9], [0.9, 0.2]])
    feats = np.repeat(base, 3, axis=0)
    labels = cluster_ues(feats, k, np.random.default_rng(1), n_init=3)
    assert np.array_equal(np.unique(labels), np.arange(k))
    if k == 3:  # the three locations are the three clusters, numbered by distance: 0.1, 0.5, 0.9
        np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])


def test_clustering_is_deterministic_for_a_seed():
    feats = np.random.default_rng(5).random((40, 2))
    a = cluster_ues(feats, 6, np.random.default_rng(123), n_init=3)
    b = cluster_ues(feats, 6, np.random.default_rng(123), n_init=3)
    np.testing.assert_array_equal(a, b)


def test_k1_and_k_equal_n():
    feats = np.random.default_rng(8).random((7, 2))
    np.testing.assert_array_equal(cluster_ues(feats, 1, np.random.default_rng(0)), np.zeros(7, dtype=np.int64))
    labels = cluster_ues(feats, 7, np.random.default_rng(0), n_init=2)
    np.testing.assert_array_equal(np.sort(labels), np.arange(7))
    # each point its own cluster, numbered by its own distance feature
    np.testing.assert_array_equal(labels, np.argsort(np.argsort(feats[:, 0])))


def test_labels_follow_centroid_order_on_separated_blobs():
    # Three tight blobs; listed in the order far/slow, near/fast, middle. Cluster 0 must be the one with the
    # smallest mean normalised distance (the 0.1 blob), then 0.5, then 0.9.
    rng = np.random.default_rng(0)
    centres = np.array([[0.9, 0.1], [0.1, 0.8], [0.5, 0.5]])
    feats = np.concatenate([c + 0.01 * rng.standard_normal((6, 2)) for c in centres])
    labels = cluster_ues(feats, 3, np.random.default_rng(4))
    np.testing.assert_array_equal(labels, [2] * 6 + [0] * 6 + [1] * 6)


def test_labels_ordered_by_mean_distance_on_random_points():
    feats = np.random.default_rng(9).random((50, 2))
    for k in (2, 4, 7):
        labels = cluster_ues(feats, k, np.random.default_rng(k), n_init=3)
        mean_d = np.array([feats[labels == j, 0].mean() for j in range(k)])
        assert np.all(np.diff(mean_d) > 0)


@pytest.mark.parametrize("k", [0, 6])
def test_cluster_count_out_of_range_raises(k):
    with pytest.raises(ValueError):
        cluster_ues(np.random.default_rng(0).random((5, 2)), k, np.random.default_rng(0))
