"""scenario.spectrum_by: scheduler, the spectrum grant: the schedulers grant each offloaded task its spectrum weight
with its priority, the UEs only decide whether to offload.

Checked here: a granted split resolves exactly as the same weights requested by the UEs (step by step in the
per-agent env, the fleet env and the gymnasium view, marginal credit included); the UEs have no spectrum action,
output or log-probability; the scheduler's observation is that of the equal split and never its own grant's
(causality), in the envs, the batched sampler and the learned policy alike; the scheduler module's joint (priority,
weight) row distribution; the PettingZoo and gymnasium checkers; the SB3 slot view, to which the option does not
apply; the one-line config error, the variant and config/spectrum_grant.yaml's dry run; and a tiny training of both
phases whose checkpoint evaluates. `spectrum_by: ue`, the default, is every other test's model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from conftest_rl import tiny_training_evaluates, untrained_policy
from mec.backends.rllib.modules import RoleModule, SetActor
from mec.backends.rllib.sampler import FleetSlots, play_episodes
from mec.config import ConfigError, DEFAULT_CONFIG, config_from_dict, config_to_dict, load_config, variant_configs
from mec.envs import features
from mec.envs.fleet import CLUSTER_KEY, CREDIT_KEY, FLEET_AGENT, FleetEnv
from mec.envs.gym_env import MECGymEnv
from mec.envs.mec_env import MECEnv
from mec.scenario import PhaseSetup, sample_episodes
from mec.simulator import SimParams, slot_block_state, uplink

ROOT = Path(__file__).resolve().parents[1]
SLOTS = 4
SIZES = {1: 3, 2: 3}  # N in phase 1, K in phase 2
PHASE2 = {"n_users": 10, "n_clusters": [3], "kmeans_n_init": 2}


def raw_config(by: str, actor: str = "rows", credit: str = "marginal") -> dict:
    return {"scenario": {"spectrum_by": by}, "phase2": PHASE2,
            "training": {"episode_slots": SLOTS, "train_batch_slots": 2 * SLOTS, "minibatch_size": SLOTS,
                         "actor": actor, "ue_credit": credit}}  # fmt: skip


def env_config(by: str, phase: int, **training) -> dict:
    return {"config": raw_config(by, **training), "phase": phase, "n": SIZES[phase], "episode_slots": SLOTS}


def plan(n_ue: int, n_k: int, seed: int = 5) -> list[dict]:
    """Per slot: mixed offloading, unequal spectrum weights, priorities and CPU logits, one of each per UE/cluster."""
    rng = np.random.default_rng(seed)
    return [{"offload": rng.random(n_ue) < 0.7, "weight": rng.uniform(0.01, 1.0, n_ue).astype(np.float32),
             "priority": rng.normal(0, 2, n_ue).astype(np.float32),
             "logits": rng.normal(0, 1.5, n_k).astype(np.float32)} for _ in range(SLOTS)]  # fmt: skip


def rows_of(env: MECEnv, per_ue: np.ndarray, pad: float) -> np.ndarray:
    """(K, rows) padded-table layout of per-UE values (pad where a row holds no UE)."""
    rows = env.row_ue
    return np.where(rows >= 0, per_ue[np.maximum(rows, 0)], pad).astype(np.float32)


# --------------------------------------------------------------------------- a grant resolves as the same request


def per_agent_actions(env: MECEnv, slot: dict) -> dict:
    """The slot's planned decisions as the per-agent env's actions of its current stage."""
    role = env.role
    if role == "coordinator":
        return {"coordinator": slot["logits"]}
    if role == "ue":
        requested = {} if env.grant else {"spectrum": slot["weight"]}
        return {a: {"offload": int(slot["offload"][i])} | {k: v[i:i + 1] for k, v in requested.items()}
                for i, a in enumerate(env.ue_ids)}  # fmt: skip
    priority, weight = rows_of(env, slot["priority"], 0.0), rows_of(env, slot["weight"], 0.5)
    if env.grant:
        return {a: {"priority": priority[k], "spectrum": weight[k]} for k, a in enumerate(env.scheduler_ids)}
    return {a: priority[k] for k, a in enumerate(env.scheduler_ids)}


def fleet_actions(env: FleetEnv, slot: dict) -> dict:
    role = env.role
    if role == "coordinator":
        return {"coordinator": slot["logits"]}
    if role == "ue":
        requested = {} if env.grant else {"spectrum": slot["weight"]}
        return {"ues": {"offload": slot["offload"].astype(np.int8)} | requested}
    if env.grant:
        return {"schedulers": {"priority": slot["priority"], "spectrum": slot["weight"]}}
    return {"schedulers": slot["priority"]}


def gym_actions(env: MECGymEnv, slot: dict) -> dict:
    core = env.core
    action = {"offload": slot["offload"].astype(np.int8), "scores": rows_of(core, slot["priority"], 0.0)}
    if core.has_coordinator:
        action["coordinator"] = slot["logits"]
    if core.grant:
        action["grants"] = rows_of(core, slot["weight"], 0.5)
    else:
        action["spectrum"] = slot["weight"]
    return action


def play(view: str, by: str, phase: int, slots: list[dict]):
    """Every resolved slot, the rewards and (fleet view) the credits of one episode under the planned decisions."""
    if view == "gym":
        env = MECGymEnv(phase, SIZES[phase], raw_config(by), SLOTS)
        env.reset(seed=11)
        core, step = env.core, lambda slot: env.step(gym_actions(env, slot))
    else:
        env = (MECEnv if view == "per-agent" else FleetEnv)(env_config(by, phase))
        env.reset(seed=11)
        core = env
        convert = per_agent_actions if view == "per-agent" else fleet_actions
        step = lambda slot: env.step(convert(env, slot))  # noqa: E731
    results, rewards, credits = [], [], []
    for slot in slots:
        for _ in core.stages:
            out = step(slot)
            info = out[-1]
            if view == "fleet" and "ues" in info:
                credits.append(info["ues"][CREDIT_KEY])
        rewards.append(out[1] if view == "gym" else out[1][next(iter(out[1]))])
        results.append(core.last_result)
    return results, rewards, credits


@pytest.mark.parametrize("view", ["per-agent", "fleet", "gym"])
@pytest.mark.parametrize("phase", [1, 2])
def test_a_granted_split_resolves_exactly_as_the_same_requested_weights(view, phase):
    env = MECEnv(env_config("ue", phase))
    slots = plan(env.n_ue, env.n_k)
    requested = play(view, "ue", phase, slots)
    granted = play(view, "scheduler", phase, slots)
    for got, want in zip(granted[0], requested[0], strict=True):
        np.testing.assert_array_equal(got.tasks, want.tasks)
        np.testing.assert_array_equal(got.reward, want.reward)
        np.testing.assert_array_equal(got.cpu_share, want.cpu_share)
    assert granted[1] == requested[1]
    for got, want in zip(granted[2], requested[2], strict=True):  # marginal credit: UE i local, the grant kept
        np.testing.assert_array_equal(got, want)
    assert len(granted[2]) == (SLOTS if view == "fleet" else 0)  # each slot's, with the next (or final) observation
    # The weights matter: the shares are unequal, as the plan asked.
    shares = np.concatenate([r.spectrum_share[r.offload] for r in granted[0]])
    assert shares.std() > 0.01


# --------------------------------------------------------------------------- the UEs request no spectrum


@pytest.mark.parametrize("phase", [1, 2])
def test_with_the_grant_the_ues_have_no_spectrum_action_and_the_schedulers_grant_one_per_row(phase):
    per_agent, fleet = MECEnv(env_config("scheduler", phase)), FleetEnv(env_config("scheduler", phase))
    gym_env = MECGymEnv(phase, SIZES[phase], raw_config("scheduler"), SLOTS)
    assert list(per_agent.action_spaces["ue_0"].spaces) == ["offload"]
    assert list(fleet.action_spaces["ues"].spaces) == ["offload"]
    sched = per_agent.action_spaces[per_agent.scheduler_ids[0]]
    assert list(sched.spaces) == ["priority", "spectrum"]
    assert sched["spectrum"].shape == sched["priority"].shape == (per_agent.n_rows,)
    assert (sched["spectrum"].low[0], sched["spectrum"].high[0]) == (np.float32(0.01), np.float32(1.0))
    assert fleet.action_spaces["schedulers"]["spectrum"].shape == (fleet.n_ue,)
    assert "spectrum" not in gym_env.action_space.spaces
    assert gym_env.action_space["grants"].shape == gym_env.action_space["scores"].shape
    # The observations are those of spectrum_by: ue (the same spaces).
    for view in (per_agent, fleet):
        plain = (MECEnv if view is per_agent else FleetEnv)(env_config("ue", phase))
        assert view.observation_spaces == plain.observation_spaces


@pytest.mark.parametrize("by", ["ue", "scheduler"])
def test_spectrum_weights_at_the_wrong_stage_are_one_line_errors(by):
    env = MECEnv(env_config(by, 1))
    env.reset(seed=0)
    offload, weight = np.ones(env.n_ue), np.full(env.n_ue, 0.5)
    wrong, right = (weight, None) if by == "scheduler" else (None, weight)
    message = f"^spectrum weights (given|missing) at the ue stage; scenario.spectrum_by = {by}"
    with pytest.raises(ValueError, match=message):
        env.apply_ues(offload, wrong)
    env.apply_ues(offload, right)
    with pytest.raises(ValueError) as info:
        env.apply_priorities(np.zeros(env.n_ue), weight if by == "ue" else None)
    assert "\n" not in str(info.value) and "at the scheduler stage" in str(info.value)


def build(space_env, role: str, actor: str = "rows", seed: int = 0) -> RoleModule:
    torch.manual_seed(seed)
    agent = FLEET_AGENT[role]
    return RLModuleSpec(module_class=RoleModule, observation_space=space_env.observation_spaces[agent],
                        action_space=space_env.action_spaces[agent],
                        model_config={"role": role, "hidden": [16, 16], "actor": actor}).build()  # fmt: skip


def fleet_obs(env: FleetEnv, role: str, seed: int = 3, batch: int = 6) -> dict:
    """Observations of `role` from `batch` fleet episodes, half their UEs offloading (the schedulers' rows filled)."""
    obs = []
    for b in range(batch):
        out, _ = env.reset(seed=seed + b)
        while env.role != role:
            out, *_ = env.step(fleet_actions(env, plan(env.n_ue, env.n_k, seed + b)[0]))
        obs.append(out[FLEET_AGENT[role]])
    return {key: torch.from_numpy(np.stack([o[key] for o in obs])) for key in obs[0]}


def test_the_ue_module_under_the_grant_is_the_offload_bernoulli_alone():
    env = FleetEnv(env_config("scheduler", 2))
    module = build(env, "ue")
    assert module.grant and module.n_out == 1 and module.actor[-1].out_features == 1
    obs = fleet_obs(env, "ue")
    with torch.no_grad():
        inputs = module._dist_inputs(obs)
        assert inputs.shape == (6, env.n_ue, 1)
        for out in (module.forward_exploration({Columns.OBS: obs}), module.forward_inference({Columns.OBS: obs})):
            actions = out[Columns.ACTIONS]
            assert list(actions) == ["offload"]
            bernoulli = torch.distributions.Bernoulli(logits=inputs[..., 0])
            torch.testing.assert_close(module.row_logp(inputs, actions), bernoulli.log_prob(actions["offload"]),
                                       rtol=0, atol=0)  # fmt: skip
            torch.testing.assert_close(out[Columns.ACTION_LOGP], bernoulli.log_prob(actions["offload"]).sum(1),
                                       rtol=0, atol=0)  # fmt: skip
        torch.testing.assert_close(module.row_entropy(inputs), bernoulli.entropy(), rtol=0, atol=0)
    assert module.action_space.contains({"offload": actions["offload"][0].numpy().astype(np.int8)})


@pytest.mark.parametrize("actor", ["rows", "set"])
def test_a_scheduler_row_under_the_grant_is_a_priority_and_a_weight_with_one_joint_log_probability(actor):
    env = FleetEnv(env_config("scheduler", 2, actor=actor))
    module = build(env, "scheduler", actor)
    assert module.grant and module.n_out == 3
    assert isinstance(module.actor, SetActor) == (actor == "set")
    obs = fleet_obs(env, "scheduler")
    valid = obs["obs"][..., 0] > 0.5
    assert valid.any() and not valid.all()
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
        inputs, actions = out[Columns.ACTION_DIST_INPUTS], out[Columns.ACTIONS]
        assert inputs.shape == (6, env.n_ue, 4)  # mu, the Beta's two, log-std
        assert list(actions) == ["priority", "spectrum"]
        assert env.action_spaces["schedulers"].contains({k: v[0].numpy() for k, v in actions.items()})
        # Rows without a decision are not scored (zero inputs but the log-std).
        assert torch.all(inputs[~valid][:, :3] == 0)
        normal = torch.distributions.Normal(inputs[..., 0], inputs[..., 3].exp())
        x = (actions["spectrum"] - 0.01) / 0.99
        beta = torch.distributions.Beta(1 + torch.nn.functional.softplus(inputs[..., 1]),
                                        1 + torch.nn.functional.softplus(inputs[..., 2]))  # fmt: skip
        joint = normal.log_prob(actions["priority"]) + beta.log_prob(x)
        got = module.row_logp(inputs, actions, valid)
        torch.testing.assert_close(got[valid], joint[valid], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(module.row_logp(inputs, actions)[valid], joint[valid], rtol=1e-6, atol=1e-6)
        # One log-probability per sample over its valid rows: what the PPO ratio of each row is built from.
        torch.testing.assert_close(out[Columns.ACTION_LOGP], (joint * valid).sum(1), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(module.row_entropy(inputs), normal.entropy() + beta.entropy(), rtol=1e-6,
                                   atol=1e-6)  # fmt: skip
        # Deterministic: mu and the Beta mean.
        det = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
        torch.testing.assert_close(det["priority"][valid], inputs[..., 0][valid], rtol=0, atol=0)
        torch.testing.assert_close(det["spectrum"][valid], (0.01 + 0.99 * beta.mean)[valid], rtol=1e-6, atol=1e-6)


def test_the_joint_ratio_is_one_at_the_sampling_distribution_and_trains_the_granted_weight():
    """The per-row ratio the learner takes (FleetPPOLearner: row_logp of the new over the stored inputs, valid rows):
    1 before any update, and its gradient reaches the actor outputs of the weight's Beta."""
    env = FleetEnv(env_config("scheduler", 1))
    module = build(env, "scheduler")
    obs = fleet_obs(env, "scheduler")
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
    valid = obs["obs"][..., 0] > 0.5
    new_inputs = module._dist_inputs(obs)
    ratio = torch.exp(module.row_logp(new_inputs, out[Columns.ACTIONS], valid)
                      - module.row_logp(out[Columns.ACTION_DIST_INPUTS], out[Columns.ACTIONS], valid))  # fmt: skip
    torch.testing.assert_close(ratio[valid], torch.ones_like(ratio[valid]), rtol=1e-5, atol=1e-5)
    (-(ratio * valid).sum()).backward()
    last = module.actor[-1].weight.grad
    assert last.shape[0] == 3 and torch.all(last[1:].abs().sum(1) > 0)  # the Beta's outputs are trained


# --------------------------------------------------------------------------- causality


@pytest.mark.parametrize("phase", [1, 2])
def test_the_schedulers_observation_is_the_equal_split_never_its_own_grant(phase):
    env = FleetEnv(env_config("scheduler", phase))
    plain = FleetEnv(env_config("ue", phase))
    slot = plan(env.n_ue, env.n_k)[0]
    slot["offload"][:2] = True  # at least two offloaders share the band
    seen = []
    for grant in (slot["weight"], np.full(env.n_ue, 0.3, np.float32)[::-1].copy() + slot["weight"] ** 3):
        obs, _ = env.reset(seed=4)
        plain_obs, _ = plain.reset(seed=4)
        while env.role != "scheduler":
            if env.role == "ue":  # the UEs' features do not depend on who sets the spectrum
                np.testing.assert_array_equal(obs["ues"]["obs"], plain_obs["ues"]["obs"])
                np.testing.assert_array_equal(obs["ues"]["state"], plain_obs["ues"]["state"])
            obs, *_ = env.step(fleet_actions(env, slot))
            plain_obs, *_ = plain.step(fleet_actions(plain, slot))
        state = env.sim.state()
        offload = slot["offload"][None]
        _, equal_end = uplink(state, offload, np.ones((1, env.n_ue)))
        want = features.scheduler_rows(state, offload, equal_end, env._cpu_share(), env.scales)[0]
        np.testing.assert_array_equal(obs["schedulers"]["obs"], want)
        want_state = np.clip(np.nan_to_num(equal_end[0]) / env.scales.deadline_s, 0, 4).astype(np.float32)
        np.testing.assert_array_equal(obs["schedulers"]["state"][:, -1], want_state)
        seen.append(obs["schedulers"])
        env.step({"schedulers": {"priority": slot["priority"], "spectrum": grant}})
        actual = env.last_result.upload_end_s[0][slot["offload"]]
        # The realised upload ends are the grant's, not the ones observed.
        assert not np.allclose(actual, equal_end[0][slot["offload"]])
    for key in seen[0]:
        np.testing.assert_array_equal(seen[0][key], seen[1][key])
    # With spectrum_by: ue the scheduler sees the requested split's upload ends instead.
    assert not np.array_equal(plain_obs["schedulers"]["obs"], seen[0]["obs"])


def planned_act(slots_plan: list[dict], record: dict):
    def act(role, obs, critic_state, cluster):
        record.setdefault(role, []).append((obs.copy(), critic_state.copy()))
        n_b = obs.shape[0]
        chosen = [slots_plan[t % len(slots_plan)] for t in range(n_b)]
        if role == "coordinator":
            return np.stack([c["logits"] for c in chosen]), {}
        if role == "ue":
            return {"offload": np.stack([c["offload"] for c in chosen]).astype(np.float32)}, {}
        return {"priority": np.stack([c["priority"] for c in chosen]),
                "spectrum": np.stack([c["weight"] for c in chosen])}, {}  # fmt: skip

    return act


@pytest.mark.parametrize("phase", [1, 2])
@pytest.mark.parametrize("actor", ["rows", "set"])
def test_the_batched_sampler_plays_the_grant_as_the_fleet_env(phase, actor):
    cfg = config_from_dict(raw_config("scheduler", actor=actor))
    setup = PhaseSetup.from_config(cfg, phase, SIZES[phase])
    slots = FleetSlots(cfg, setup)
    slots_plan = plan(setup.n_ue, setup.n_clusters)
    episode_seed = int(np.random.default_rng(11).integers(2**63 - 1))  # FleetEnv.reset(seed=11)'s episode
    episodes = sample_episodes(cfg.scenario, setup, SLOTS + 1, [episode_seed])
    record: dict = {}
    played = play_episodes(slots, episodes, SimParams.from_config(cfg, setup), SLOTS, False,
                           planned_act(slots_plan, record))  # fmt: skip
    env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": SIZES[phase], "episode_slots": SLOTS})
    obs, _ = env.reset(seed=11)
    rewards, credits = [], []
    for t in range(SLOTS):
        for role in slots.roles:
            agent = FLEET_AGENT[role]
            rec = played["records"][role]
            np.testing.assert_array_equal(rec.obs[0, t], obs[agent]["obs"])
            np.testing.assert_array_equal(rec.state[0, t], obs[agent]["state"])
            if CLUSTER_KEY in obs[agent]:
                np.testing.assert_array_equal(rec.cluster[0, t], obs[agent][CLUSTER_KEY])
            obs, reward, _, _, info = env.step(fleet_actions(env, slots_plan[t]))
            if "ues" in info:
                credits.append(info["ues"][CREDIT_KEY])
        rewards.append(reward["ues"])
    np.testing.assert_array_equal(played["reward"][0], rewards)
    np.testing.assert_array_equal(played["credit"][0], np.stack(credits))
    # The scheduler's inputs are the same under another grant; the slot's outcome is not.
    other = [dict(s, weight=np.float32(1.01) - s["weight"]) for s in slots_plan]
    record_other: dict = {}
    played_other = play_episodes(slots, episodes, SimParams.from_config(cfg, setup), SLOTS, False,
                                 planned_act(other, record_other))  # fmt: skip
    for (obs_a, state_a), (obs_b, state_b) in zip(record["scheduler"], record_other["scheduler"], strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(state_a, state_b)
    assert not np.array_equal(played["reward"], played_other["reward"])


@pytest.mark.parametrize("phase", [1, 2])
def test_the_learned_policy_decides_as_the_sampler_under_the_grant(phase):
    """LearnedPolicy.act (evaluation, best-of-K) and the sampler's deterministic stages give the same decisions."""
    cfg = config_from_dict(raw_config("scheduler"))
    setup = PhaseSetup.from_config(cfg, phase, SIZES[phase])
    env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": SIZES[phase], "episode_slots": SLOTS})
    policy = untrained_policy(env, cfg.scenario, seed=2)
    assert policy.grant
    params = SimParams.from_config(cfg, setup)
    episodes = sample_episodes(cfg.scenario, setup, SLOTS, [3, 4])
    state = slot_block_state(episodes, params, SLOTS)
    decisions = policy.act(state)

    def act(role, obs, critic_state, cluster):
        batch = {Columns.OBS: {"obs": torch.from_numpy(obs)}}
        if cluster is not None:
            batch[Columns.OBS][CLUSTER_KEY] = torch.from_numpy(cluster)
        with torch.no_grad():
            actions = policy.modules[role].forward_inference(batch)[Columns.ACTIONS]
        return ({k: v.numpy() for k, v in actions.items()} if isinstance(actions, dict) else actions.numpy()), {}

    _, sampled, result, _ = FleetSlots(cfg, setup).play(state, act)
    for name in ("offload", "spectrum_weight", "priority", "cpu_weight"):
        np.testing.assert_array_equal(getattr(decisions, name), getattr(sampled, name))
    assert decisions.offload.any()
    # The weights are the scheduler's grant, not the equal reference its observation assumed.
    assert np.all(decisions.spectrum_weight[decisions.offload] < 1.0)


# --------------------------------------------------------------------------- the other views


@pytest.mark.parametrize("phase", [1, 2])
def test_pettingzoo_and_gymnasium_checkers_pass_under_the_grant(phase):
    from gymnasium.utils.env_checker import check_env
    from pettingzoo.test import api_test, parallel_api_test

    from mec.envs.gym_env import FlatJointAction
    from mec.envs.pettingzoo_env import env as aec_env, parallel_env

    kwargs = {"phase": phase, "n": SIZES[phase], "config": raw_config("scheduler"), "episode_slots": 3}
    api_test(aec_env(**kwargs), num_cycles=30)
    parallel_api_test(parallel_env(**kwargs), num_cycles=30)
    gym_env = MECGymEnv(**kwargs)
    check_env(gym_env)
    flat = FlatJointAction(MECGymEnv(**kwargs))
    assert [key for key, _ in flat.parts] == (["coordinator"] if phase == 2 else []) + ["grants", "offload", "scores"]
    check_env(flat)


@pytest.mark.parametrize("phase", [1, 2])
def test_the_sb3_slot_view_is_the_same_under_either_value(phase):
    """The joint policy sets every weight itself: observation, action and rewards do not depend on spectrum_by."""
    from mec.backends.slot_env import make_slot_env

    views = [make_slot_env(phase, SIZES[phase], raw_config(by), SLOTS) for by in ("ue", "scheduler")]
    assert views[0].observation_space == views[1].observation_space
    assert views[0].action_space == views[1].action_space
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, views[0].action_space.shape).astype(np.float32) for _ in range(SLOTS)]
    runs = []
    for view in views:
        obs, _ = view.reset(seed=8)
        steps = [obs]
        for action in actions:
            obs, reward, _, truncated, _ = view.step(action)
            steps += [obs, reward, view.unwrapped.last_result.tasks]
        assert truncated
        runs.append(steps)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- config, variant, workflow


@pytest.mark.parametrize("value", ["base_station", 1, None, ["scheduler"]])
def test_a_bad_spectrum_by_is_one_line(value):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"scenario": {"spectrum_by": value}})
    message = str(info.value)
    assert "\n" not in message and "scenario.spectrum_by" in message and "one of ue, scheduler" in message


def test_spectrum_by_defaults_to_the_ue_and_the_variant_grants():
    assert DEFAULT_CONFIG.scenario.spectrum_by == "ue"
    grant = variant_configs(DEFAULT_CONFIG)["spectrum_grant"]
    assert grant.scenario.spectrum_by == "scheduler"
    assert grant.scenario.task == DEFAULT_CONFIG.scenario.task and grant.training == DEFAULT_CONFIG.training


def test_a_bad_spectrum_by_on_the_command_line_is_one_line():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "mec", "evaluate", "--phase", "1", "--n-ue", "2", "--policy",
                           "all-local", "--set", "scenario.spectrum_by=gnb"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "scenario.spectrum_by" in lines[0] and "gnb" in lines[0], proc.stderr


def test_the_spectrum_grant_config_runs_the_grant_in_both_phases_and_the_tight_scenario(tmp_path):
    """config/spectrum_grant.yaml: the grant at config/reduced.yaml's points, N = 3, 7 (spec and tight deadlines) and
    K = 10, seeds 0-2: 15 training jobs, 5 baseline jobs (dry run)."""
    from test_variants import copy_workflow, snakemake

    cfg = load_config(ROOT / "config" / "spectrum_grant.yaml")
    assert cfg.scenario.spectrum_by == "scheduler" and cfg.workflow.results_dir == "results/spectrum_grant"
    assert (cfg.phase1.n_ue, cfg.phase2.n_clusters, cfg.workflow.seeds) == ((3, 7), (10,), (0, 1, 2))
    tight = variant_configs(cfg)["tight_deadlines"]
    assert tight.scenario.spectrum_by == "scheduler" and tight.scenario.task.deadline_s.high == 2.0
    assert cfg.training == DEFAULT_CONFIG.training  # the reduced budget: fewer points and seeds, not iterations
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(workdir, "-n", "--cores", "1", "--quiet", "rules",
                       "--configfile", "config.yaml", "config/spectrum_grant.yaml")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    counts = {parts[0]: int(parts[1]) for parts in (line.split() for line in result.stdout.splitlines())
              if len(parts) == 2 and parts[1].isdigit()}  # fmt: skip
    assert counts["train_agents"] == counts["evaluate_policy"] == (2 + 1 + 2) * 3
    assert counts["evaluate_baselines"] == 2 + 1 + 2
    assert counts["plot_run_phase1"] == 2 * 2 * 3 and counts["plot_run_phase2"] == 1 * 3


# --------------------------------------------------------------------------- a tiny training

@pytest.mark.parametrize("phase", [1, 2], ids=["phase1", "phase2"])
def test_a_tiny_training_with_the_grant_runs_and_its_checkpoint_evaluates(tmp_path, phase):
    modules, meta = tiny_training_evaluates(tmp_path, phase, scenario={"spectrum_by": "scheduler"})
    assert meta["config"]["scenario"]["spectrum_by"] == "scheduler"
    assert modules["ue"].grant and list(modules["ue"].action_space.spaces) == ["offload"]
    assert modules["scheduler"].grant and list(modules["scheduler"].action_space.spaces) == ["priority", "spectrum"]
