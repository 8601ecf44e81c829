"""The PettingZoo views (mec.envs.pettingzoo_env): PettingZoo's own API and seed tests, the stage structure, and
one implementation: the same seed and actions give identical results through the RLlib per-agent env (MECEnv), the
PettingZoo Parallel and AEC envs and the gymnasium view.

Small shapes as in the other env tests: phase 1 with N = 3 UEs, phase 2 with 12 users in K = 3 clusters, 4 slots.
"""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from conftest_rl import PHASE2_CONFIG, SLOTS, make_env
from mec.envs.gym_env import MECGymEnv
from mec.envs.mec_env import MECEnv
from mec.envs.pettingzoo_env import MECAECEnv, MECParallelEnv, env, parallel_env

PHASES = pytest.mark.parametrize("phase", [1, 2])
# PettingZoo's advisories that this env triggers by design: roles differ in spaces, agent names such as "server",
# Dict UE actions, all-zero scheduler tables when nobody offloaded.
PZ_ADVISORIES = pytest.mark.filterwarnings("ignore::UserWarning:pettingzoo")


def kwargs(phase: int) -> dict:
    return {"phase": phase, "n": 3, "config": PHASE2_CONFIG if phase == 2 else {}, "episode_slots": SLOTS}


# --------------------------------------------------------------------------- PettingZoo's own tests


@PZ_ADVISORIES
@PHASES
def test_pettingzoo_api_test_passes_aec(phase):
    api_test(env(**kwargs(phase)), num_cycles=100)


@PZ_ADVISORIES
@PHASES
def test_pettingzoo_parallel_api_test_passes(phase):
    parallel_api_test(parallel_env(**kwargs(phase)), num_cycles=100)


@PZ_ADVISORIES
@PHASES
def test_pettingzoo_seed_tests_pass(phase):
    seed_test(lambda: env(**kwargs(phase)), num_cycles=50)
    parallel_seed_test(lambda: parallel_env(**kwargs(phase)), num_cycles=50)


@PHASES
def test_the_parallel_view_repeats_a_whole_episode_for_the_same_seed(phase):
    """parallel_seed_test compares only the first step; here every step of a whole episode (observations, rewards,
    terminations, truncations) must repeat for the same seed and the same actions, and another seed must differ."""

    def rollout(seed: int):
        par = parallel_env(**kwargs(phase))
        obs, _ = par.reset(seed=seed)
        rng = np.random.default_rng(0)  # the same actions for every rollout
        steps = [obs]
        while par.agents:
            actions = {}
            for agent in sorted(par.agents):
                space = par.action_space(agent)
                space.seed(int(rng.integers(2**31)))
                actions[agent] = space.sample()
            obs, rewards, terminated, truncated, _ = par.step(actions)
            steps.append((obs, rewards, terminated, truncated))
        return steps

    def flat(steps):
        out = []
        for step in steps:
            for part in step if isinstance(step, tuple) else (step,):
                for agent in sorted(part):
                    value = part[agent]
                    leaves = value.values() if isinstance(value, dict) else [value]
                    out += [np.asarray(leaf, dtype=float).ravel() for leaf in leaves]
        return np.concatenate(out)

    a, b, other = rollout(5), rollout(5), rollout(6)
    assert len(a) == len(b) > SLOTS  # several steps per slot, to the episode's end
    np.testing.assert_array_equal(flat(a), flat(b))
    assert len(a) != len(other) or not np.array_equal(flat(a), flat(other))


# --------------------------------------------------------------------------- stage structure


@PHASES
def test_parallel_env_is_one_stage_per_step_with_every_agent_live(phase):
    par = parallel_env(**kwargs(phase))
    core = par.core
    stages = core.stages
    obs, infos = par.reset(seed=3)
    assert set(obs) == set(infos) == set(par.possible_agents) == set(par.agents)
    # Nobody has requested anything yet: every scheduler's table is empty.
    for sched in core.scheduler_ids:
        assert not obs[sched].any()
    rng = np.random.default_rng(0)
    for slot in range(SLOTS):
        for s, acting in enumerate(stages):
            assert par.acting_agents == acting
            assert [a for a in par.possible_agents if infos[a]["acting"]] == acting
            actions = {a: par.action_space(a).sample() for a in par.agents}
            obs, rewards, terminations, truncations, infos = par.step(actions)
            assert set(obs) == set(rewards) == set(terminations) == set(truncations) == set(par.possible_agents)
            assert not any(terminations.values())
            last_stage = s == len(stages) - 1
            expected = float(core.last_result.reward[0]) / core.n_ue if last_stage else 0.0
            assert all(r == expected for r in rewards.values())
            assert all(t == (last_stage and slot == SLOTS - 1) for t in truncations.values())
    assert par.agents == [] and not any(i["acting"] for i in infos.values())
    assert core.sim.slot == SLOTS
    with pytest.raises(RuntimeError, match="reset"):
        par.step({})


@PHASES
def test_parallel_env_ignores_the_actions_of_agents_that_do_not_act(phase):
    """Causality: only the acting stage's actions reach the simulator; the rest may be anything or absent."""
    results = []
    for v, variant in enumerate(("absent", "random", "extreme")):
        par = parallel_env(**kwargs(phase))
        par.reset(seed=7)
        rng = np.random.default_rng(1)  # the acting agents' actions are the same in every variant
        other = np.random.default_rng(100 + v)
        for _ in range(len(par.core.stages)):
            acting = par.acting_agents
            actions = {a: random_pz_action(par, a, rng) for a in acting}
            for a in set(par.agents) - set(acting):
                if variant == "random":
                    actions[a] = random_pz_action(par, a, other)
                elif variant == "extreme":
                    space = par.action_space(a)
                    actions[a] = (
                        {"offload": 1, "spectrum": space["spectrum"].high} if a.startswith("ue_") else space.high
                    )
            par.step(actions)
        results.append(par.last_result)
    for r in results[1:]:
        np.testing.assert_array_equal(r.tasks, results[0].tasks)
        np.testing.assert_array_equal(r.reward, results[0].reward)


def test_parallel_env_requires_the_acting_agents_actions():
    par = parallel_env(**kwargs(1))
    par.reset(seed=0)
    with pytest.raises(ValueError, match="ue_1"):
        par.step({"ue_0": par.action_space("ue_0").sample(), "server": par.action_space("server").sample()})


@PHASES
def test_aec_turn_order_is_the_causal_order_within_each_slot(phase):
    aec = env(**kwargs(phase))
    aec.reset(seed=5)
    stages = aec.core.stages
    order, rewarded_at = [], []
    for agent in aec.agent_iter():
        obs, reward, terminated, truncated, info = aec.last()
        if terminated or truncated:
            aec.step(None)
            continue
        order.append(agent)
        if any(aec.rewards.values()):
            rewarded_at.append(len(order) - 1)
        aec.step(aec.action_space(agent).sample())
    slot_order = [a for stage in stages for a in stage]
    assert order == slot_order * SLOTS
    assert aec.agents == [] and aec.core.sim.slot == SLOTS
    # Rewards are handed out only when a slot's last stage has been applied (seen by the next slot's first agent).
    assert rewarded_at == [len(slot_order) * s for s in range(1, SLOTS)]


def test_views_hold_a_mecenv_and_share_its_spaces():
    for view in (parallel_env(**kwargs(2)), env(**kwargs(2))):
        assert isinstance(view.core, MECEnv)
        assert view.possible_agents == view.core.possible_agents
        for a in view.possible_agents:
            assert view.observation_space(a) == view.core.observation_spaces[a]
            assert view.action_space(a) == view.core.action_spaces[a]
            assert view.observation_space(a) is view.observation_space(a)
        view.reset(seed=1)
        assert view.state().shape == view.state_space.shape
        np.testing.assert_array_equal(view.state(), view.core.global_state())
    ue_spaces = [parallel_env(**kwargs(1)).action_space(f"ue_{i}") for i in range(2)]
    assert ue_spaces[0] is not ue_spaces[1]  # seeding one agent's space leaves the others alone


# --------------------------------------------------------------------------- one implementation, four views


def random_pz_action(par, agent, rng):
    space = par.action_space(agent)
    if agent.startswith("ue_"):
        return {"offload": int(rng.integers(0, 2)), "spectrum": rng.uniform(0.01, 1.0, 1).astype(np.float32)}
    return rng.uniform(space.low, space.high).astype(np.float32)


def stage_arrays(core: MECEnv, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One stage's decisions as arrays; every role's part is drawn so that unused parts differ too."""
    return {
        "coordinator": rng.uniform(-5, 5, core.n_k).astype(np.float32),
        "offload": rng.integers(0, 2, core.n_ue).astype(np.int8),
        "spectrum": rng.uniform(0.01, 1.0, core.n_ue).astype(np.float32),
        "scores": rng.uniform(-10, 10, (core.n_k, core.n_rows)).astype(np.float32),  # padding rows included
    }


def per_agent(core: MECEnv, role: str, arrays: dict) -> dict:
    if role == "coordinator":
        return {"coordinator": arrays["coordinator"]}
    if role == "ue":
        return {
            a: {"offload": int(arrays["offload"][i]), "spectrum": arrays["spectrum"][i : i + 1]}
            for i, a in enumerate(core.ue_ids)
        }
    return {a: arrays["scores"][k] for k, a in enumerate(core.scheduler_ids)}


def gym_table(gym_env: MECGymEnv, gym_obs: dict, agent: str) -> np.ndarray:
    core = gym_env.core
    if agent == "coordinator":
        return gym_obs["coordinator"]
    if agent in core.ue_ids:
        return gym_obs["ues"][core.ue_ids.index(agent)]
    return gym_obs["schedulers"][core.scheduler_ids.index(agent)]


def assert_same_result(a, b):
    for name in ("offload", "tasks", "cpu_share", "server_free_next_s", "reward"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@PHASES
def test_same_seed_and_actions_give_identical_results_through_rllib_pettingzoo_and_gymnasium(phase):
    k = kwargs(phase)
    rllib = make_env("per-agent", phase)
    par, aec, gym_env = MECParallelEnv(**k), MECAECEnv(**k), MECGymEnv(**k)
    rng = np.random.default_rng(42)
    seed = 17
    r_obs, _ = rllib.reset(seed=seed)
    p_obs, _ = par.reset(seed=seed)
    aec.reset(seed=seed)
    g_obs, _ = gym_env.reset(seed=seed)
    steps = 0
    while True:
        role = rllib.role
        assert gym_env.role == role and gym_obs_stage(gym_env, g_obs) == role
        # Every acting agent observes the same thing in every view.
        for agent, o in r_obs.items():
            np.testing.assert_array_equal(p_obs[agent], o)
            np.testing.assert_array_equal(gym_table(gym_env, g_obs, agent), o)
        np.testing.assert_array_equal(g_obs["state"], rllib.global_state())
        arrays = stage_arrays(rllib, rng)
        actions = per_agent(rllib, role, arrays)
        seen = r_obs
        r_obs, r_rew, _, r_trunc, _ = rllib.step(actions)
        p_obs, p_rew, _, p_trunc, _ = par.step(actions)
        g_obs, g_rew, g_term, g_trunc, _ = gym_env.step(arrays)
        for agent, action in actions.items():  # the AEC env takes them one agent at a time
            assert aec.agent_selection == agent
            np.testing.assert_array_equal(aec.last()[0], seen[agent])
            aec.step(action)
        steps += 1
        expected = {a: r_rew.get(a, 0.0) for a in rllib.possible_agents}
        assert p_rew == expected
        assert aec.rewards == expected
        assert g_rew == expected["ue_0"] and g_term is False
        done = r_trunc["__all__"]
        assert all(v == done for v in p_trunc.values()) and g_trunc == done
        assert all(aec.truncations[a] == done for a in aec.agents)
        if rllib.last_result is not None:
            for view in (par, aec, gym_env):
                assert_same_result(view.last_result, rllib.last_result)
        if done:
            break
    assert steps == SLOTS * len(rllib.stages)
    # Final (bootstrap) observations: every agent's in the RLlib and Parallel views, the first stage's in gym.
    assert set(r_obs) == set(rllib.possible_agents)
    for agent, o in r_obs.items():
        np.testing.assert_array_equal(p_obs[agent], o)
        np.testing.assert_array_equal(aec.observe(agent), o)
        if agent in rllib.stages[0]:
            np.testing.assert_array_equal(gym_table(gym_env, g_obs, agent), o)


def gym_obs_stage(gym_env: MECGymEnv, gym_obs: dict) -> str:
    return gym_env.roles[int(gym_obs["stage"])]
