"""Tests for mec.bound: the per-slot upper bound holds against every kind of decision and is tight where it must be."""

from __future__ import annotations

import numpy as np
import pytest

from mec.baselines import OraclePolicy
from mec.bound import DEFAULT_GRID_POINTS, spectrum_bound
from mec.config import config_from_dict
from mec.evaluation import make_policy
from mec.optimiser import LocalSearchPolicy
from mec.policies import ORACLE_MAX_UE, policy_names
from mec.scenario import PhaseSetup
from mec.simulator import Decisions, Simulator, SlotState, resolve_slot

_CONFIGS = {
    "default": {},
    "tight": {"scenario": {"task": {"deadline_s": {"low": 1.0, "high": 2.0}}}},
}
# Uploads in microseconds: 1 THz of band and the (optimistic) inverse-square channel.
_INSTANT_UPLOAD = {"scenario": {"server": {"bandwidth_mhz": 1e6}, "channel": {"model": "inverse_square"}}}


def _states(overrides: dict, n: int, n_batch: int, seed: int) -> SlotState:
    """Slot 0 of n_batch episodes from a phase-1 Simulator, half of them with the server busy for 0..2 s."""
    cfg = config_from_dict(overrides)
    sim = Simulator(cfg, PhaseSetup.from_config(cfg, 1, n), n_slots=1)
    rng = np.random.default_rng(seed)
    state = sim.reset([int(s) for s in rng.integers(0, 2**31, n_batch)])
    busy = np.where(rng.random((n_batch, 1)) < 0.5, rng.uniform(0.0, 2.0, (n_batch, 1)), 0.0)
    return SlotState(state.slot, state.data_bits, state.cycles, state.deadline_s, state.distance_m, state.cpu_hz,
                     state.gain, state.cluster, busy, state.params)  # fmt: skip


def _tile(state: SlotState, r: int) -> SlotState:
    """Each slot repeated r times in a row (rows b*r .. b*r + r - 1)."""
    rep = lambda x: np.ascontiguousarray(np.repeat(x, r, axis=0))  # noqa: E731
    return SlotState(state.slot, rep(state.data_bits), rep(state.cycles), rep(state.deadline_s),
                     rep(state.distance_m), rep(state.cpu_hz), rep(state.gain), rep(state.cluster),
                     rep(state.server_free_s), state.params)  # fmt: skip


def _best_random(state: SlotState, oracle: Decisions, r: int, rng: np.random.Generator) -> np.ndarray:
    """(B,) best reward of r random decisions per slot with unequal spectrum weights (ratios up to 10^3) and
    random priorities; half of them keep the oracle's offload set and order, so they often beat it."""
    n_b, n = state.data_bits.shape
    big = _tile(state, r)
    offload = rng.random((n_b * r, n)) < 0.5
    priority = rng.random((n_b * r, n))
    keep = rng.random(n_b * r) < 0.5
    offload[keep] = np.repeat(oracle.offload, r, axis=0)[keep]
    priority[keep] = np.repeat(oracle.priority, r, axis=0)[keep]
    weight = 10.0 ** rng.uniform(-1.5, 1.5, (n_b * r, n))
    reward = resolve_slot(big, Decisions(offload, weight, priority, np.ones((n_b * r, 1)))).reward
    return reward.reshape(n_b, r).max(axis=1)


# --------------------------------------------------------------------------- validity


@pytest.mark.parametrize("cfg_name", list(_CONFIGS))
@pytest.mark.parametrize(("n", "n_batch"), [(1, 40), (2, 40), (3, 40), (5, 30), (7, 15)])
def test_bound_holds_against_every_decision(cfg_name, n, n_batch):
    state = _states(_CONFIGS[cfg_name], n, n_batch, seed=10 + n)
    bound = spectrum_bound(state)
    assert bound.shape == (n_batch,) and np.all(np.isfinite(bound))
    oracle_dec, oracle = OraclePolicy().best(state)
    rewards = {"oracle": oracle}
    for name in policy_names(1):
        rewards[name] = resolve_slot(state, make_policy(name, 1, seed=n).act(state)).reward
    rewards["local-search with spectrum"] = resolve_slot(state, LocalSearchPolicy(1, search_spectrum=True)
                                                         .act(state)).reward  # fmt: skip
    rewards["random unequal"] = _best_random(state, oracle_dec, 300, np.random.default_rng(n))
    for name, reward in rewards.items():
        above = np.flatnonzero(reward > bound)
        assert above.size == 0, f"{name} beats the bound on slots {above} by {reward[above] - bound[above]}"
    best = np.max(list(rewards.values()), axis=0)
    if n >= 2:
        # not vacuous: unequal splits beat the equal-split oracle on some slots, and the bound is above those too
        assert (best > oracle + 1e-6).any()
    # and not loose: within a few hundredths of the best decision found, on average
    assert np.mean(bound - best) < (0.01 if cfg_name == "default" else 0.05)


def test_bound_holds_without_share_floor_or_energy():
    # theta_min = 0 (shares down to 0 are allowed) and, separately, a reward of QoS alone: the special cases of
    # the share search (up = inf at share 0, psi flat in the upload).
    for overrides in ({"phase1": {"theta_min": 0.0}}, {"phase1": {"theta_min": 0.0}, "reward": {"w_energy_per_j": 0.0}},
                      {"reward": {"w_energy_per_j": 0.0}}):  # fmt: skip
        state = _states(overrides, 4, 30, seed=5)
        bound = spectrum_bound(state)
        oracle_dec, oracle = OraclePolicy().best(state)
        best = np.maximum(oracle, _best_random(state, oracle_dec, 300, np.random.default_rng(5)))
        assert np.all(best <= bound), overrides
        assert np.mean(bound - best) < 0.01, overrides


# --------------------------------------------------------------------------- tightness


def _single_ue_values(state: SlotState) -> tuple[np.ndarray, np.ndarray]:
    """Local and offloaded reward of one UE; offloaded, it has the whole band (theta = theta_min + (1 - theta_min)
    = 1) and starts at max(server free, upload end)."""
    p = state.params
    d, c, dl, f, g = (x[:, 0] for x in (state.data_bits, state.cycles, state.deadline_s, state.cpu_hz, state.gain))
    local = p.w_qos * np.clip(2.0 - (c / f) / dl, 0.0, 1.0) - p.w_energy * p.kappa * c * f**2
    up = d / (p.bandwidth_hz * np.log2(1.0 + p.tx_power_w * g / (p.bandwidth_hz * p.noise_w_per_hz)))
    end = np.maximum(state.server_free_s[:, 0], up) + c / p.server_cpu_hz
    energy = p.tx_power_w * up + p.server_power_w * c / p.server_cpu_hz
    return local, p.w_qos * np.clip(2.0 - end / dl, 0.0, 1.0) - p.w_energy * energy


@pytest.mark.parametrize("cfg_name", list(_CONFIGS))
@pytest.mark.parametrize("grid_points", [DEFAULT_GRID_POINTS, 20001])
def test_single_ue_bound_is_the_optimum_up_to_the_grid(cfg_name, grid_points):
    # One UE: every decision gives it the whole band, so the optimum is max(local, offloaded). The bound may only
    # exceed it by the grid: the start rounds down by at most Delta = H/(G - 1), H = 2D + server_free, which
    # raises the QoS by at most w_qos*Delta/D (at the default grid ~1e-3, at 20001 points ~1e-4).
    state = _states(_CONFIGS[cfg_name], 1, 300, seed=3)
    local, offloaded = _single_ue_values(state)
    exact = np.maximum(local, offloaded)
    _, oracle = OraclePolicy().best(state)
    np.testing.assert_allclose(oracle, exact, rtol=1e-12, atol=1e-12)
    bound = spectrum_bound(state, grid_points)
    dl = state.deadline_s[:, 0]
    delta = (2.0 * dl + state.server_free_s[:, 0]) / (grid_points - 1)
    gap = bound - exact
    assert np.all(gap >= 0.0)
    assert np.all(gap <= state.params.w_qos * delta / dl + 1e-9), np.max(gap - state.params.w_qos * delta / dl)
    # the slots are mixed: local and offloaded optima, the latter with idle and with busy servers
    busy = state.server_free_s[:, 0] > 0
    assert (offloaded > local).any() and (offloaded < local).any()
    assert (busy & (offloaded > local)).any() and (~busy & (offloaded > local)).any()


@pytest.mark.parametrize(("n", "n_batch"), [(2, 60), (4, 40), (6, 10)])
def test_bound_meets_the_oracle_when_uploads_are_instant(n, n_batch):
    # Uploads of ~1e-5 s: the spectrum split changes the reward by ~1e-5 at most, so the equal-split oracle is optimal
    # and the bound can only exceed it by the grid, at most w_qos*Delta*n(n+1)/(2*min D) (module doc), plus the
    # microseconds of upload the oracle pays and the bound's share-1 relaxation does not.
    state = _states(_INSTANT_UPLOAD, n, n_batch, seed=n)
    p = state.params
    band = p.bandwidth_hz / n  # the equal split
    up = state.data_bits / (band * np.log2(1.0 + p.tx_power_w * state.gain / (band * p.noise_w_per_hz)))
    assert up.max() < 1e-4  # the premise: uploads are nearly instant even at an equal split
    _, oracle = OraclePolicy().best(state)
    grid_points = 8001
    bound = spectrum_bound(state, grid_points)
    horizon = 2.0 * state.deadline_s.max(axis=1) + state.server_free_s[:, 0]
    tol = p.w_qos * horizon / (grid_points - 1) * n * (n + 1) / 2 / state.deadline_s.min(axis=1)
    tol += p.w_qos * n * up.max() / state.deadline_s.min() + p.w_energy * p.tx_power_w * up.max() * n
    gap = bound - oracle
    assert np.all(gap >= 0.0)
    assert np.all(gap <= tol), np.max(gap - tol)
    assert np.mean(gap) < 1e-3  # in practice far tighter than the worst case


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises():
    state = _states({}, 3, 2, seed=0)
    with pytest.raises(ValueError, match=r"grid_points 1; allowed an integer >= 2"):
        spectrum_bound(state, 1)
    with pytest.raises(ValueError, match=r"grid_points 0"):
        spectrum_bound(state, 0)
    with pytest.raises(ValueError, match=r"grid_points 2\.5"):
        spectrum_bound(state, 2.5)
    with pytest.raises(ValueError, match=r"lambda_evals 0; allowed an integer >= 1"):
        spectrum_bound(state, lambda_evals=0)
    # the coarsest grid (one bucket [0, H] and the last one) is allowed and still a bound
    assert np.all(spectrum_bound(state, 2) >= OraclePolicy().best(state)[1])
    two_clusters = SlotState(state.slot, state.data_bits, state.cycles, state.deadline_s, state.distance_m,
                             state.cpu_hz, state.gain, state.cluster, np.zeros((2, 2)), state.params)  # fmt: skip
    with pytest.raises(ValueError, match=r"n_clusters 2; allowed 1"):
        spectrum_bound(two_clusters)
    too_many = _states({}, ORACLE_MAX_UE + 1, 1, seed=0)
    with pytest.raises(ValueError, match=rf"n_ue {ORACLE_MAX_UE + 1}; allowed at most {ORACLE_MAX_UE}"):
        spectrum_bound(too_many)
