"""The batched sampler (mec.backends.rllib.sampler) against the per-episode fleet env, step by step.

For the same episode seed and the same actions, the batched stages must give FleetEnv's observations (actor and
critic; with training.actor = set each scheduler row's cluster), rewards, marginal credits and final observations
exactly, with and without carry-over (slots played as one block, or slot by slot); and the RLlib episodes built from
the arrays must hold them in FleetEnv's order.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest_rl import untrained_policy
from mec.backends.rllib.sampler import FleetSlots, build_episode, play_episodes
from mec.config import config_from_dict, config_to_dict
from mec.envs.fleet import CLUSTER_KEY, CREDIT_KEY, FLEET_AGENT, FleetEnv
from mec.scenario import PhaseSetup, sample_episodes
from mec.simulator import SimParams

SLOTS = 5
CASES = [
    (1, 3, False, "marginal", "rows"),
    (1, 4, True, "marginal", "rows"),
    (2, 3, False, "marginal", "rows"),
    (2, 2, True, "shared", "rows"),
    (1, 3, False, "marginal", "set"),
    (2, 3, False, "marginal", "set"),
    (2, 3, True, "shared", "set"),
]


def _cfg(carry_over: bool, credit: str, actor: str = "rows"):
    return config_from_dict({
        "scenario": {"carry_over_queue": carry_over},
        "phase2": {"n_users": 9, "n_clusters": [2, 3], "kmeans_n_init": 2},
        "training": {"episode_slots": SLOTS, "train_batch_slots": 2 * SLOTS, "minibatch_size": SLOTS,
                     "ue_credit": credit, "actor": actor},
    })  # fmt: skip


def _actions(role: str, n_ue: int, n_k: int, rng: np.random.Generator):
    """Arbitrary actions of one slot: mixed offloading, spectrum weights, scores, CPU logits."""
    if role == "ue":
        return {"offload": (rng.random(n_ue) < 0.6).astype(np.float32),
                "spectrum": rng.uniform(0.01, 1.0, n_ue).astype(np.float32)}  # fmt: skip
    if role == "scheduler":
        return rng.normal(0, 2, n_ue).astype(np.float32)
    return rng.normal(0, 1.5, n_k).astype(np.float32)


def _env_rollout(cfg, phase, n, seed, planned):
    """Step FleetEnv through one episode with the planned actions; per role and slot its observation dicts, and per
    slot the reward, the credit delivered with the next observation, and the final observations."""
    env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": SLOTS})
    obs, _ = env.reset(seed=seed)
    seen = {role: [] for role in planned}
    rewards, credits = [], []
    for t in range(SLOTS):
        for role in planned:
            agent = FLEET_AGENT[role]
            assert list(obs) == [agent]
            seen[role].append(obs[agent])
            obs, reward, _, truncated, info = env.step({agent: planned[role][t]})
            if "ues" in info:
                credits.append(info["ues"][CREDIT_KEY])
        rewards.append(reward[FLEET_AGENT["ue"]])
    assert truncated["__all__"]
    return seen, np.array(rewards), credits, obs


@pytest.mark.parametrize("phase, n, carry_over, credit, actor", CASES)
def test_batched_stages_equal_the_fleet_env(phase, n, carry_over, credit, actor):
    cfg = _cfg(carry_over, credit, actor)
    setup = PhaseSetup.from_config(cfg, phase, n)
    slots = FleetSlots(cfg, setup)
    rng = np.random.default_rng(7)
    planned = {role: [_actions(role, setup.n_ue, setup.n_clusters, rng) for _ in range(SLOTS)] for role in slots.roles}
    seed = 1234
    env_seen, env_rewards, env_credits, env_final = _env_rollout(cfg, phase, n, seed, planned)

    # The runner's draw of an episode seed is FleetEnv's reset draw.
    episode_seed = int(np.random.default_rng(seed).integers(2**63 - 1))
    episodes = sample_episodes(cfg.scenario, setup, SLOTS + 1, [episode_seed])
    calls = {role: 0 for role in slots.roles}

    def act(role, obs, critic_state, cluster):
        # Block mode asks for every slot at once (rows = slots), slot-by-slot mode for one slot per call.
        rows = obs.shape[0]
        assert (cluster is not None) == (role == "scheduler" and actor == "set")
        first = calls[role]
        calls[role] += rows
        chosen = planned[role][first:first + rows]
        if role == "ue":
            actions = {k: np.stack([a[k] for a in chosen]) for k in ("offload", "spectrum")}
        else:
            actions = np.stack(chosen)
        return actions, {"marker": np.arange(first, first + rows, dtype=np.float32)}

    played = play_episodes(slots, episodes, SimParams.from_config(cfg, setup), SLOTS, carry_over, act)
    assert calls == {role: SLOTS for role in slots.roles}
    for role in slots.roles:
        record = played["records"][role]
        for t in range(SLOTS):
            np.testing.assert_array_equal(record.obs[0, t], env_seen[role][t]["obs"])
            np.testing.assert_array_equal(record.state[0, t], env_seen[role][t]["state"])
            assert (record.cluster is None) == (CLUSTER_KEY not in env_seen[role][t])
            if record.cluster is not None:
                np.testing.assert_array_equal(record.cluster[0, t], env_seen[role][t][CLUSTER_KEY])
        np.testing.assert_array_equal(record.extra["marker"][0], np.arange(SLOTS))
    np.testing.assert_array_equal(played["reward"][0], env_rewards)
    if credit == "marginal":
        np.testing.assert_array_equal(played["credit"][0], np.stack(env_credits))
    else:
        assert played["credit"] is None and not env_credits
    for role in slots.roles:
        agent = FLEET_AGENT[role]
        np.testing.assert_array_equal(played["final"][role][0][0], env_final[agent]["obs"])
        np.testing.assert_array_equal(played["final"][role][1][0], env_final[agent]["state"])
        if CLUSTER_KEY in env_final[agent]:
            np.testing.assert_array_equal(played["final"][role][2][0], env_final[agent][CLUSTER_KEY])
        else:
            assert played["final"][role][2] is None

    # The RLlib episode holds the same data per agent, in FleetEnv's env-step order.
    env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": SLOTS})
    spaces = (dict(env.observation_spaces), dict(env.action_spaces))
    episode = build_episode(played, 0, slots.roles, spaces, lambda aid, *a, **k: aid, {})
    episode.to_numpy()
    assert episode.is_truncated and not episode.is_terminated
    assert episode.env_steps() == SLOTS * len(slots.roles)
    for role in slots.roles:
        agent = FLEET_AGENT[role]
        sa = episode.agent_episodes[agent]
        assert len(sa) == SLOTS
        observations = sa.get_observations()
        assert sorted(observations) == sorted(env_final[agent])
        for t in range(SLOTS):
            for key in env_seen[role][t]:
                np.testing.assert_array_equal(observations[key][t], env_seen[role][t][key])
        for key in env_final[agent]:
            np.testing.assert_array_equal(observations[key][SLOTS], env_final[agent][key])
        np.testing.assert_allclose(sa.get_rewards(), env_rewards)
        if role == "ue" and credit == "marginal":
            infos = sa.get_infos(slice(1, SLOTS + 1))
            np.testing.assert_array_equal(np.stack([i[CREDIT_KEY] for i in infos]), np.stack(env_credits))
    assert episode.get_return() == pytest.approx(len(slots.roles) * env_rewards.sum())


@pytest.mark.parametrize("phase, n", [(1, 3), (2, 3)])
def test_validation_over_all_slots_at_once_equals_slot_by_slot(phase, n):
    """The training's validation plays every slot of every episode in one batch: the same per-slot rows as stepping
    the episodes slot by slot, for a learned (per-slot) policy."""
    from mec.evaluation import evaluation_episodes, run_policy

    cfg = _cfg(False, "marginal")
    setup = PhaseSetup.from_config(cfg, phase, n)
    env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": SLOTS})
    policy = untrained_policy(env, cfg.scenario, seed=3)
    episodes = evaluation_episodes(cfg, setup, 3, 6, 11)
    stepped = run_policy(cfg, setup, policy, episodes)
    at_once = run_policy(cfg, setup, policy, episodes, all_slots_at_once=True)
    assert list(at_once.columns) == list(stepped.columns) and len(at_once) == 18
    for column in ("episode", "slot", "n_offloaded", "n_deadline_met"):
        np.testing.assert_array_equal(at_once[column], stepped[column])
    for column in ("sum_qos", "sum_energy_j", "reward"):
        np.testing.assert_allclose(at_once[column], stepped[column], rtol=1e-5)
    assert stepped["n_offloaded"].sum() > 0  # decisions that the simulator resolves differently per slot
