"""Tests for mec.optimiser: the per-slot local search against its seeds, the phase-1 oracle and a hand-made slot."""

from __future__ import annotations

import numpy as np
import pytest

from mec.baselines import OraclePolicy
from mec.bound import spectrum_bound
from mec.config import config_from_dict
from mec.evaluation import make_policy
from mec.optimiser import N_STARTS, LocalSearchPolicy
from mec.policies import evaluated_policy_names, policy_names, seed_policy_names
from mec.scenario import PhaseSetup, sample_episodes
from mec.simulator import SimParams, Simulator, SlotState, resolve_slot

G = 1e-8


def _states(cfg, setup, n_batch, seed):
    """Independent random slots of phase 1, half of them with a busy server (0..2 s of carried-over work)."""
    rng = np.random.default_rng(seed)
    ep = sample_episodes(cfg.scenario, setup, 1, [int(s) for s in rng.integers(0, 2**31, n_batch)])
    busy = np.where(rng.random((n_batch, 1)) < 0.5, rng.uniform(0.0, 2.0, (n_batch, 1)), 0.0)
    return SlotState(0, ep.data_bits[:, 0].copy(), ep.cycles[:, 0].copy(), ep.deadline_s[:, 0].copy(),
                     ep.distance_m, ep.cpu_hz, ep.gain, ep.cluster, busy,
                     SimParams.from_config(cfg, setup))  # fmt: skip


def _episode_states(cfg, setup, n_episodes, n_slots, seed):
    """The states of consecutive slots of a few episodes, stepped under local search (carry-over makes them
    depend on the previous slot's decisions)."""
    sim = Simulator(cfg, setup, n_slots)
    state = sim.reset(list(range(seed, seed + n_episodes)))
    policy = make_policy("local-search", setup.phase)
    states = []
    while True:
        states.append(state)
        sim.step(policy.act(state))
        if sim.done:
            return states
        state = sim.state()


_CONFIGS = {
    "default": {},
    "carry-over": {"scenario": {"carry_over_queue": True}},
    "tradeoff": {"scenario": {"server": {"cpu_ghz": 3.0}}, "reward": {"w_energy_per_j": 0.3}},
}


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("phase", [1, 2])
def test_registered_in_both_phases(phase):
    assert "local-search" in policy_names(phase)
    assert "local-search" in evaluated_policy_names(phase, 100 if phase == 2 else 7)
    policy = make_policy("local-search", phase)
    assert isinstance(policy, LocalSearchPolicy) and policy.name == "local-search"
    # every decision in both phases, the spectrum split included
    assert policy.search_spectrum


def test_seeds_are_the_deterministic_heuristics():
    assert seed_policy_names(1) == ["all-local", "all-offload"] + [
        f"{o}-{s}" for o in ("all-offload", "greedy") for s in ("fifo", "edf", "sjf", "least-slack")
    ]
    names2 = seed_policy_names(2)
    assert len(names2) == 2 + 2 * 4 * 3 and "greedy-least-slack-urgency" in names2
    assert not any("random" in n or n in ("oracle", "local-search") for n in names2)


@pytest.mark.parametrize(("kwargs", "message"), [({"phase": 3}, "phase 3"), ({"phase": 2, "max_evaluations": 0},
                         "max_evaluations 0"), ({"phase": 1, "n_starts": 0}, "n_starts 0")])  # fmt: skip
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalSearchPolicy(**kwargs)


# --------------------------------------------------------------------------- never below its seeds


def _assert_never_below_the_seeds(states, phase):
    gains = []
    for state in states:
        policy = make_policy("local-search", phase)
        decisions, claimed, _ = policy.best(state)
        achieved = resolve_slot(state, decisions).reward
        np.testing.assert_array_equal(claimed, achieved)  # scored by the simulator's own kernel, to the bit
        best_seed = np.full(state.batch_size, -np.inf)
        for name in seed_policy_names(phase):
            reward = resolve_slot(state, make_policy(name, phase).act(state)).reward
            assert np.all(achieved >= reward), (name, np.flatnonzero(achieved < reward))  # exact, per slot
            best_seed = np.maximum(best_seed, reward)
        gains.append(achieved - best_seed)
    return np.concatenate(gains)


@pytest.mark.parametrize("cfg_name", list(_CONFIGS))
def test_phase2_never_below_any_seed_heuristic_on_any_slot(cfg_name):
    cfg = config_from_dict(_CONFIGS[cfg_name])
    setup = PhaseSetup.from_config(cfg, 2, 4)
    states = _episode_states(cfg, setup, n_episodes=2, n_slots=3, seed=11)
    if cfg_name == "carry-over":
        assert any(s.server_free_s.max() > 0 for s in states)  # the busy-server case is covered
    gains = _assert_never_below_the_seeds(states, 2)
    # not vacuous: at the default config the search clearly beats every heuristic (~+3 reward per slot)
    assert gains.mean() > 0.5 if cfg_name == "default" else gains.min() >= 0


@pytest.mark.parametrize("cfg_name", list(_CONFIGS))
def test_phase1_never_below_any_seed_heuristic_on_any_slot(cfg_name):
    cfg = config_from_dict(_CONFIGS[cfg_name])
    setup = PhaseSetup.from_config(cfg, 1, 6)
    gains = _assert_never_below_the_seeds([_states(cfg, setup, 200, seed=5)], 1)
    assert (gains > 1e-6).any()


def test_budget_of_one_evaluation_returns_the_best_seed():
    cfg = config_from_dict({})
    setup = PhaseSetup.from_config(cfg, 2, 5)
    state = _episode_states(cfg, setup, n_episodes=3, n_slots=1, seed=3)[0]
    policy = LocalSearchPolicy(2, max_evaluations=1)
    _, seed_rewards = policy.seed_candidates(state)
    decisions, reward, evaluations = policy.best(state)
    np.testing.assert_array_equal(reward, seed_rewards.max(axis=0))
    np.testing.assert_array_equal(evaluations, [N_STARTS] * 3)  # one evaluation (the start itself) per start
    np.testing.assert_array_equal(resolve_slot(state, decisions).reward, reward)


# --------------------------------------------------------------------------- the phase-1 oracle


@pytest.mark.parametrize("cfg_name", ["default", "tradeoff"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_phase1_reaches_the_oracle(cfg_name, n):
    cfg = config_from_dict(_CONFIGS[cfg_name])
    state = _states(cfg, PhaseSetup.from_config(cfg, 1, n), 150, seed=40 + n)
    _, oracle = OraclePolicy().best(state)
    decisions, reward, _ = LocalSearchPolicy(1, search_spectrum=False).best(state)
    tol = 1e-9 * (1.0 + np.abs(oracle))
    # the same decision space (equal spectrum split): never above the oracle, and here equal to it on every slot
    np.testing.assert_allclose(reward, oracle, rtol=0, atol=tol.max())
    # The registered search also moves spectrum weights: at least the oracle's mean, never above the upper bound.
    _, full, _ = make_policy("local-search", 1).best(state)
    assert full.mean() >= oracle.mean() - 1e-9 and (full <= spectrum_bound(state)).all()
    assert decisions.offload.any() and (~decisions.offload).any()
    # not vacuous: the oracle beats the best heuristic on some of these slots
    seeds = np.max([resolve_slot(state, make_policy(name, 1).act(state)).reward for name in seed_policy_names(1)],
                   axis=0)  # fmt: skip
    if n >= 3:
        assert (oracle > seeds + 1e-6).any()


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(("phase", "n"), [(1, 5), (2, 6)])
def test_deterministic(phase, n):
    cfg = config_from_dict({"scenario": {"carry_over_queue": True}})
    setup = PhaseSetup.from_config(cfg, phase, n)
    first = _episode_states(cfg, setup, n_episodes=2, n_slots=3, seed=21)
    second = _episode_states(cfg, setup, n_episodes=2, n_slots=3, seed=21)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.server_free_s, b.server_free_s)
    state = first[-1]
    runs = [make_policy("local-search", phase).best(state) for _ in range(2)]
    policy = make_policy("local-search", phase)
    runs += [policy.best(state), policy.best(state)]
    for d, reward, evaluations in runs[1:]:
        d0, reward0, evaluations0 = runs[0]
        for field in ("offload", "spectrum_weight", "priority", "cpu_weight"):
            np.testing.assert_array_equal(getattr(d, field), getattr(d0, field))
        np.testing.assert_array_equal(reward, reward0)
        np.testing.assert_array_equal(evaluations, evaluations0)


# --------------------------------------------------------------------------- a hand-made slot


def test_unequal_spectrum_beats_the_equal_split_oracle(make_params, make_state, upload_bits):
    # Reward = sum QoS (w_energy 0). Both UEs compute locally in 1.5/0.5 = 3 s against D = 1 s: QoS 0. On the
    # server each task runs 1.5/6 = 0.25 s. With the band split equally UE0 uploads for 0.9 s and UE1 for 0.05 s.
    # Oracle (equal split): both offload: UE1 runs 0.05-0.30 (QoS 1), UE0 0.90-1.15 (QoS 2 - 1.15 = 0.85): 1.85.
    # Only one offloading gets the whole band (UE0's upload 0.9 * rate(1/2)/rate(1) = 0.48 s, QoS 1), but the
    # other's QoS is 0: 1.0. With UE0's spectrum weight doubled, its share is 0.01 + 0.98 * 2/3 = 0.663: its upload
    # takes 0.9 * rate(0.5)/rate(0.663) = 0.697 s and it finishes at 0.947 s <= 1 (QoS 1), while UE1 (share 0.337)
    # uploads for 0.072 s (QoS 1): reward 2.0, the most two tasks can earn.
    p = make_params({"reward": {"w_energy_per_j": 0.0}}, n=2)
    state = make_state(p, data_bits=[upload_bits(p, G, 0.5, 0.9), upload_bits(p, G, 0.5, 0.05)],
                       cycles=[1.5e9, 1.5e9], deadline_s=[1.0, 1.0], cpu_hz=[0.5e9, 0.5e9])  # fmt: skip
    _, oracle = OraclePolicy().best(state)
    np.testing.assert_allclose(oracle, [1.85], rtol=1e-12)
    d_equal, r_equal, _ = LocalSearchPolicy(1, search_spectrum=False).best(state)  # the oracle's decision space
    np.testing.assert_allclose(r_equal, [1.85], rtol=1e-12)
    np.testing.assert_array_equal(d_equal.offload, [[True, True]])
    d, reward, _ = LocalSearchPolicy(1, search_spectrum=True).best(state)
    assert reward[0] == 2.0
    np.testing.assert_array_equal(d.offload, [[True, True]])
    assert d.spectrum_weight[0, 0] / d.spectrum_weight[0, 1] == 2.0  # the first move that reaches 2.0
    r = resolve_slot(state, d)
    np.testing.assert_allclose(r.spectrum_share, [[0.01 + 0.98 * 2 / 3, 0.01 + 0.98 / 3]], rtol=1e-12)
    np.testing.assert_allclose(r.upload_end_s[0, 0], 0.697, atol=1e-3)
    np.testing.assert_array_equal(r.qos, [[1.0, 1.0]])


def test_search_with_the_cpu_split_fixed_keeps_every_share_equal():
    """search_cpu=False (what search reaches without a coordinator): every cluster's CPU weight stays equal on every
    slot, the result is never below an equal-split seed heuristic (exact, per slot), and it is a real search (above
    the best of them on average)."""
    cfg = config_from_dict({"scenario": {"server": {"cpu_ghz": 24.0, "bandwidth_mhz": 50.0}}})
    setup = PhaseSetup.from_config(cfg, 2, 4)
    state = _states_phase2(cfg, setup)
    decisions, claimed, _ = LocalSearchPolicy(2, search_cpu=False).best(state)
    np.testing.assert_array_equal(decisions.cpu_weight, np.ones_like(decisions.cpu_weight))
    np.testing.assert_array_equal(claimed, resolve_slot(state, decisions).reward)
    equal_seeds = [name for name in seed_policy_names(2) if name.endswith("-equal") or name == "all-local"]
    best_seed = np.max([resolve_slot(state, make_policy(name, 2).act(state)).reward for name in equal_seeds], axis=0)
    assert np.all(claimed >= best_seed)
    assert claimed.mean() > best_seed.mean() + 1.0
    # The free search starts from the same seeds and more, and moves the CPU too: its split is not all equal.
    free, _, _ = LocalSearchPolicy(2).best(state)
    assert not np.all(free.cpu_weight == free.cpu_weight[:, :1])


def _states_phase2(cfg, setup, n_slots=4):
    from mec.simulator import slot_block_state

    episodes = sample_episodes(cfg.scenario, setup, n_slots, [3])
    return slot_block_state(episodes, SimParams.from_config(cfg, setup), n_slots)
