"""The RLlib environments (mec.envs): the per-agent view (MECEnv) and the fleet view (FleetEnv), phases 1 and 2.

No Ray cluster is started; only RLlib's MultiAgentEnv base class and its env pre-check are used. Values are
checked against mec.simulator (resolve_slot, uplink) computed independently from the env's simulator state.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

from conftest_rl import (
    PHASE2_CONFIG,
    SLOTS,
    VIEWS,
    cluster_row_of,
    expected_stages,
    floor_softmax,
    make_env,
    random_actions,
)
from mec.envs import features
from mec.envs.fleet import FleetEnv
from mec.envs.mec_env import MECEnv
from mec.simulator import Decisions, resolve_slot, uplink

ALL = pytest.mark.parametrize("view", list(VIEWS))
PHASES = pytest.mark.parametrize("phase", [1, 2])
# Uploads take well under a second, server tasks several seconds: every request has arrived before the first task
# ends, so the order of all but the first task is the scheduler's priority order.
SLOW_SERVER = {"scenario": {"server": {"cpu_ghz": 0.5, "bandwidth_mhz": 200.0}}}


# --------------------------------------------------------------------------- helpers driving one slot


def step_coordinator(env, logits):
    return env.step({"coordinator": np.asarray(logits, dtype=np.float32)})


def step_ues(env, offload, spectrum):
    offload = np.asarray(offload)
    spectrum = np.asarray(spectrum, dtype=np.float32)
    if isinstance(env, FleetEnv):
        return env.step({"ues": {"offload": offload.astype(np.int8), "spectrum": spectrum}})
    return env.step(
        {f"ue_{i}": {"offload": int(offload[i]), "spectrum": spectrum[i : i + 1]} for i in range(env.n_ue)}
    )


def scheduler_actions(env, priority, padding=0.0):
    """Scheduler actions giving UE i the score priority[i]; padding rows of the per-agent tables get `padding`."""
    priority = np.asarray(priority, dtype=np.float32)
    if isinstance(env, FleetEnv):
        return {"schedulers": priority}
    cluster = env.sim.episodes.cluster[0]
    rows = cluster_row_of(cluster)
    tables = np.broadcast_to(np.asarray(padding, dtype=np.float32), (env.n_k, env.n_rows)).copy()
    tables[cluster, rows] = priority
    ids = ["server"] if env.phase == 1 else [f"cluster_sched_{k}" for k in range(env.n_k)]
    return {a: tables[k] for k, a in enumerate(ids)}


def exec_order(result) -> list[int]:
    start = result.exec_start_s[0]
    offloaded = np.flatnonzero(result.offload[0])
    return [int(i) for i in offloaded[np.argsort(start[offloaded])]]


def flat(x, path=()):
    """Nested obs/reward dicts and tuples -> list of (key path, leaf) in a fixed order, for exact comparison."""
    if isinstance(x, dict):
        return [item for key in sorted(x) for item in flat(x[key], path + (key,))]
    if isinstance(x, tuple):
        return [item for i, part in enumerate(x) for item in flat(part, path + (i,))]
    return [(path, x)]


def assert_same(a, b):
    fa, fb = flat(a), flat(b)
    assert [p for p, _ in fa] == [p for p, _ in fb]
    for (_, x), (_, y) in zip(fa, fb):
        np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------- API conformance


@ALL
@PHASES
def test_rllib_multiagent_env_check_passes(view, phase):
    check_multiagent_environments(make_env(view, phase))


def test_agent_ids_of_each_view_and_phase():
    n, k = 3, 3
    ues = [f"ue_{i}" for i in range(n)]
    p1 = make_env("per-agent", 1)
    assert p1.possible_agents == ues + ["server"]
    p2 = make_env("per-agent", 2)
    assert p2.possible_agents == ["coordinator"] + [f"ue_{i}" for i in range(12)] + [
        f"cluster_sched_{j}" for j in range(k)
    ]
    assert make_env("fleet", 1).possible_agents == ["ues", "schedulers"]
    assert make_env("fleet", 2).possible_agents == ["coordinator", "ues", "schedulers"]
    for env in (p1, p2, make_env("fleet", 1), make_env("fleet", 2)):
        assert set(env.observation_spaces) == set(env.possible_agents)
        assert set(env.action_spaces) == set(env.possible_agents)
        assert env.agents == env.possible_agents


def test_reset_takes_seed_and_options_by_keyword_only():
    for cls in (MECEnv, FleetEnv):
        params = inspect.signature(cls.reset).parameters
        assert params["seed"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["options"].kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises(TypeError):
        make_env("fleet", 1).reset(3)


@ALL
@PHASES
def test_episode_takes_slots_times_stages_steps_and_ends_by_truncation(view, phase):
    env = make_env(view, phase)
    stages = expected_stages(env)
    assert len(stages) == (3 if phase == 2 else 2)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=3)
    assert info == {}
    assert sorted(obs) == sorted(stages[0])
    for agent, o in obs.items():
        assert env.observation_spaces[agent].contains(o), agent
    steps = 0
    for slot in range(SLOTS):
        for s, agents in enumerate(stages):
            obs, rewards, terminated, truncated, info = env.step(random_actions(env, agents, rng))
            steps += 1
            for agent, o in obs.items():
                assert env.observation_spaces[agent].contains(o), (slot, s, agent)
            if s < len(stages) - 1:  # mid-slot: the next stage observes, nobody is rewarded yet
                assert sorted(obs) == sorted(stages[s + 1])
                assert rewards == {}
                assert terminated == {"__all__": False} and truncated == {"__all__": False}
                continue
            # End of a slot: every agent gets the slot's reward, sum over UEs / N.
            expected_reward = float(env.last_result.reward[0]) / env.n_ue
            assert set(rewards) == set(env.possible_agents)
            assert all(r == pytest.approx(expected_reward, rel=1e-12) for r in rewards.values())
            if slot < SLOTS - 1:
                assert sorted(obs) == sorted(stages[0])
                assert terminated["__all__"] is False and truncated["__all__"] is False
            else:
                assert truncated["__all__"] is True
                assert terminated["__all__"] is False
                assert all(truncated[a] is True and terminated[a] is False for a in env.possible_agents)
                assert set(obs) == set(env.possible_agents)  # every agent's final (bootstrap) observation
    assert steps == SLOTS * len(stages)
    assert env.sim.slot == SLOTS


def rollout(env, seed, action_seed):
    rng = np.random.default_rng(action_seed)
    stages = expected_stages(env)
    record = [env.reset(seed=seed)[0]]
    for _ in range(SLOTS):
        for agents in stages:
            obs, rewards, _, _, _ = env.step(random_actions(env, agents, rng))
            record.append((obs, rewards))
    return record


@ALL
@PHASES
def test_same_seed_and_actions_give_identical_observations_and_rewards(view, phase):
    a = rollout(make_env(view, phase), seed=11, action_seed=5)
    env = make_env(view, phase)
    b = rollout(env, seed=11, action_seed=5)
    assert len(a) == len(b) == 1 + SLOTS * len(expected_stages(env))
    for x, y in zip(a, b):
        assert_same(x, y)
    # The same env instance replays it too, and a different seed gives a different episode.
    c = rollout(env, seed=11, action_seed=5)
    for x, y in zip(a, c):
        assert_same(x, y)
    other = env.reset(seed=12)[0]
    first_a = next(iter(a[0].values()))
    first_o = next(iter(other.values()))
    a0 = first_a["obs"] if isinstance(first_a, dict) else first_a
    o0 = first_o["obs"] if isinstance(first_o, dict) else first_o
    assert not np.array_equal(a0, o0)


def test_unseeded_reset_draws_a_new_episode_after_a_seeded_one():
    env = make_env("fleet", 1)
    first = env.reset(seed=4)[0]["ues"]["obs"]
    second = env.reset()[0]["ues"]["obs"]
    assert not np.array_equal(first, second)
    again = env.reset(seed=4)[0]["ues"]["obs"]
    np.testing.assert_array_equal(first, again)


# --------------------------------------------------------------------------- causal order and what each role sees


@ALL
def test_phase2_stages_observe_coordinator_then_ues_then_schedulers(view):
    env = make_env(view, 2)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    fleet = view == "fleet"
    assert list(obs) == ["coordinator"]
    obs, *_ = env.step(random_actions(env, ["coordinator"], rng))
    assert sorted(obs) == sorted(["ues"] if fleet else [f"ue_{i}" for i in range(12)])
    obs, *_ = env.step(random_actions(env, list(obs), rng))
    assert sorted(obs) == sorted(["schedulers"] if fleet else [f"cluster_sched_{k}" for k in range(3)])


def test_observe_stage_gives_a_later_stages_observations_without_moving_the_slot_on():
    env = make_env("per-agent", 2)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    env.step(random_actions(env, ["coordinator"], rng))
    assert env.stage == 1 and env.role == "ue"
    ahead = env.observe_stage(2)  # the schedulers' tables before any UE has offloaded: every row without a request
    assert sorted(ahead) == [f"cluster_sched_{k}" for k in range(env.n_k)]
    assert all(not table[:, 0].any() for table in ahead.values())
    assert env.stage == 1 and env.row_ue.shape == (env.n_k, env.n_rows)
    actions = random_actions(env, [f"ue_{i}" for i in range(env.n_ue)], rng)
    obs, *_ = env.step(actions)
    offloaded = sum(int(a["offload"]) for a in actions.values())
    assert offloaded > 0 and sum(int(table[:, 0].sum()) for table in obs.values()) == offloaded


def test_stage_agents_must_all_act():
    env = make_env("per-agent", 1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="missing"):
        env.step({"ue_0": {"offload": 1, "spectrum": np.array([0.5], np.float32)}})
    fleet = make_env("fleet", 2)
    fleet.reset(seed=0)
    with pytest.raises(ValueError, match="coordinator"):
        fleet.step({"ues": {"offload": np.zeros(12, np.int8), "spectrum": np.ones(12, np.float32)}})


@ALL
def test_coordinator_observes_every_clusters_load_table(view):
    env = make_env(view, 2)
    obs, _ = env.reset(seed=2)
    coord = obs["coordinator"]["obs"] if view == "fleet" else obs["coordinator"]
    state = env.sim.state()
    cluster = env.sim.episodes.cluster[0]
    k, n = env.n_k, env.n_ue
    assert coord.shape == (k, len(features.COORDINATOR_FEATURES))
    assert env.observation_spaces["coordinator"].contains(obs["coordinator"])
    size = np.bincount(cluster, minlength=k)
    np.testing.assert_allclose(coord[:, 0], size * k / n, rtol=1e-6)
    mean_deadline = np.array([state.deadline_s[0][cluster == j].mean() for j in range(k)])
    np.testing.assert_allclose(coord[:, 2], mean_deadline / 4.0, rtol=1e-6)


@ALL
def test_coordinator_logits_set_the_ues_relative_cpu_share_exactly(view):
    env = make_env(view, 2)
    env.reset(seed=5)
    logits = np.array([1.5, -0.5, 0.25], dtype=np.float32)
    obs, *_ = step_coordinator(env, logits)
    ue_obs = obs["ues"]["obs"] if view == "fleet" else np.stack([obs[f"ue_{i}"] for i in range(12)])
    phi = floor_softmax(logits.astype(float), env.setup.phi_min)
    assert phi.sum() == pytest.approx(1.0)
    cluster = env.sim.episodes.cluster[0]
    col = features.UE_FEATURES.index("relative_cpu_share")
    np.testing.assert_allclose(ue_obs[:, col], 3 * phi[cluster], rtol=1e-6)
    # Server time at the cluster's share / deadline (clipped to [0, 4]).
    state = env.sim.state()
    server_time = state.cycles[0] / (phi[cluster] * env.cfg.scenario.server.cpu_ghz * 1e9)
    col = features.UE_FEATURES.index("server_time_over_deadline")
    np.testing.assert_allclose(ue_obs[:, col], np.clip(server_time / state.deadline_s[0], 0, 4), rtol=1e-5)


@ALL
def test_ue_observations_stay_in_their_space_at_extreme_cpu_shares(view):
    # K = 10 (the study's largest K) and the coordinator's logits at the bounds of its action space: cluster 0 gets
    # phi = 0.02 + 0.8 * softmax_0 ~ 0.8195, so the documented feature K * phi ~ 8.2 lies above the Box's high of 8.
    env = make_env(view, 2, n=10, config=PHASE2_CONFIG)
    env.reset(seed=0)
    logits = np.full(10, -5.0, dtype=np.float32)
    logits[0] = 5.0
    obs, *_ = step_coordinator(env, logits)
    for agent, o in obs.items():
        values = o["obs"] if isinstance(o, dict) else o
        assert env.observation_spaces[agent].contains(o), f"{agent}: max {values.max()}"


@ALL
def test_scheduler_sees_exactly_this_slots_requests_and_reward_matches_the_simulator(view):
    env = make_env(view, 2)
    env.reset(seed=7)
    n, k = env.n_ue, env.n_k
    logits = np.array([0.3, -1.0, 0.8], dtype=np.float32)
    offload = np.zeros(n, dtype=bool)
    offload[[0, 2]] = True
    spectrum = np.linspace(0.2, 0.9, n).astype(np.float32)
    step_coordinator(env, logits)
    state = env.sim.state()
    cluster = env.sim.episodes.cluster[0]
    obs, rewards, *_ = step_ues(env, offload, spectrum)
    assert rewards == {}

    _, upload_end = uplink(state, offload[None], spectrum.astype(float)[None])
    upload_end = upload_end[0]
    assert np.isfinite(upload_end[[0, 2]]).all() and np.isnan(upload_end[1]).all()
    phi = floor_softmax(logits.astype(float), env.setup.phi_min)
    exec_s = state.cycles[0] / (phi[cluster] * env.cfg.scenario.server.cpu_ghz * 1e9)
    col = {name: j for j, name in enumerate(features.SCHEDULER_FEATURES)}
    if view == "fleet":
        rows = obs["schedulers"]["obs"]
        assert rows.shape == (n, len(features.SCHEDULER_FEATURES))
        np.testing.assert_array_equal(np.flatnonzero(rows[:, col["valid"]]), [0, 2])
        assert np.all(rows[~offload] == 0)
        ue_rows = rows[[0, 2]]
        # The critic's state records this slot's decisions too.
        st = obs["schedulers"]["state"]
        np.testing.assert_array_equal(st[:, len(features.UE_FEATURES)], offload.astype(np.float32))
        np.testing.assert_allclose(st[[0, 2], -1], upload_end[[0, 2]] / 4.0, rtol=1e-6)
        assert np.all(st[~offload, -1] == 0)
    else:
        row_of = cluster_row_of(cluster)
        seen = []
        for j in range(k):
            table = obs[f"cluster_sched_{j}"]
            assert table.shape == (env.n_rows, len(features.SCHEDULER_FEATURES)) == (10, 7)
            members = np.flatnonzero(cluster == j)
            for r in range(env.n_rows):
                if r >= len(members):
                    assert np.all(table[r] == 0), f"padding row {r} of cluster {j} is not zero"
                elif members[r] in (0, 2):
                    assert table[r, col["valid"]] == 1.0
                    seen.append((members[r], table[r]))
                else:
                    assert np.all(table[r] == 0), f"row of local UE {members[r]} is not zero"
        assert sorted(i for i, _ in seen) == [0, 2]
        assert all(row_of[i] < env.n_rows for i, _ in seen)
        ue_rows = np.stack([row for _, row in sorted(seen, key=lambda t: t[0])])
    np.testing.assert_allclose(ue_rows[:, col["upload_end"]], upload_end[[0, 2]] / 4.0, rtol=1e-6)
    np.testing.assert_allclose(ue_rows[:, col["exec_time"]], exec_s[[0, 2]] / 4.0, rtol=1e-5)
    np.testing.assert_allclose(ue_rows[:, col["data"]], state.data_bits[0][[0, 2]] / 80e6, rtol=1e-6)
    slack = (state.deadline_s[0] - upload_end - exec_s)[[0, 2]] / 4.0
    np.testing.assert_allclose(ue_rows[:, col["slack"]], np.clip(slack, -4, 4), rtol=1e-5, atol=1e-6)

    priority = np.array([2.0, 0.0, -1.0] + [0.0] * (n - 3), dtype=np.float32)
    w = np.exp(logits.astype(float))
    expected = resolve_slot(
        state, Decisions(offload[None], spectrum.astype(float)[None], priority.astype(float)[None], (w / w.sum())[None])
    )
    _, rewards, *_ = env.step(scheduler_actions(env, priority))
    assert set(rewards) == set(env.possible_agents)
    for r in rewards.values():
        assert r == pytest.approx(float(expected.reward[0]) / n, rel=1e-12)
    np.testing.assert_allclose(env.last_result.cpu_share[0], phi, rtol=1e-12)
    np.testing.assert_allclose(env.last_result.tasks, expected.tasks, rtol=1e-12)


def test_both_views_observe_the_same_values():
    per_agent, fleet = make_env("per-agent", 2), make_env("fleet", 2)
    obs_a, _ = per_agent.reset(seed=9)
    obs_f, _ = fleet.reset(seed=9)
    logits = np.array([0.0, 1.0, -1.0], np.float32)
    obs_a, *_ = step_coordinator(per_agent, logits)
    obs_f, *_ = step_coordinator(fleet, logits)
    np.testing.assert_array_equal(np.stack([obs_a[f"ue_{i}"] for i in range(12)]), obs_f["ues"]["obs"])
    offload = np.arange(12) % 3 != 1
    spectrum = np.full(12, 0.5, np.float32)
    obs_a, *_ = step_ues(per_agent, offload, spectrum)
    obs_f, *_ = step_ues(fleet, offload, spectrum)
    cluster = per_agent.sim.episodes.cluster[0]
    row_of = cluster_row_of(cluster)
    for i in range(12):
        np.testing.assert_array_equal(obs_a[f"cluster_sched_{cluster[i]}"][row_of[i]], obs_f["schedulers"]["obs"][i])
    priority = np.linspace(-1, 1, 12).astype(np.float32)
    _, ra, *_ = per_agent.step(scheduler_actions(per_agent, priority))
    _, rf, *_ = fleet.step(scheduler_actions(fleet, priority))
    assert ra["ue_0"] == rf["ues"]
    np.testing.assert_array_equal(per_agent.last_result.tasks, fleet.last_result.tasks)


# --------------------------------------------------------------------------- priorities


@ALL
def test_scheduler_scores_order_execution_of_the_right_ues(view):
    config = SLOW_SERVER
    orders = []
    for high in ("late", "middle"):
        env = make_env(view, 1, config=config)
        env.reset(seed=21)
        offload = np.ones(3, dtype=bool)
        spectrum = np.array([0.3, 0.6, 0.9], np.float32)
        state = env.sim.state()
        step_ues(env, offload, spectrum)
        _, up = uplink(state, offload[None], spectrum.astype(float)[None])
        first, middle, late = np.argsort(up[0])
        shortest_exec = state.cycles[0].min() / 0.5e9
        assert up[0].max() < shortest_exec  # every request is in before the first task ends
        priority = np.zeros(3, np.float32)
        priority[late if high == "late" else middle] = 5.0
        priority[middle if high == "late" else late] = -5.0
        env.step(scheduler_actions(env, priority))
        expected = [first, late, middle] if high == "late" else [first, middle, late]
        assert exec_order(env.last_result) == [int(i) for i in expected]
        orders.append(exec_order(env.last_result))
    assert orders[0] != orders[1]


def test_padding_and_local_ue_scores_are_ignored():
    config = {**PHASE2_CONFIG, **SLOW_SERVER}
    results = {}
    offload = np.ones(12, dtype=bool)
    offload[[3, 7]] = False
    variants = {
        "base": (np.linspace(1, -1, 12), 0.0),
        "padding": (np.linspace(1, -1, 12), 9.5),
        "local": (np.where(offload, np.linspace(1, -1, 12), 9.9), -9.5),
        "reversed": (np.linspace(-1, 1, 12), 0.0),
    }
    for name, (priority, padding) in variants.items():
        env = make_env("per-agent", 2, config=config)
        env.reset(seed=13)
        step_coordinator(env, np.zeros(3, np.float32))
        step_ues(env, offload, np.full(12, 0.5, np.float32))
        cluster = env.sim.episodes.cluster[0]
        assert np.bincount(cluster, minlength=3).min() < env.n_rows  # there are padding rows
        env.step(scheduler_actions(env, priority, padding))
        results[name] = env.last_result
    np.testing.assert_array_equal(results["padding"].tasks, results["base"].tasks)
    np.testing.assert_array_equal(results["local"].tasks, results["base"].tasks)
    # The valid rows' scores do matter (a cluster has >= 3 offloaders, so the test can fail).
    assert not np.array_equal(results["reversed"].exec_start_s, results["base"].exec_start_s, equal_nan=True)


# --------------------------------------------------------------------------- feature documentation


def test_feature_lists_match_the_spaces_and_the_docs():
    assert len(features.STATE_FEATURES) == len(features.UE_FEATURES) + 2
    assert features.STATE_FEATURES[-2:] == ("offloaded", "upload_end")
    for name in ("UE_FEATURES", "SCHEDULER_FEATURES", "COORDINATOR_FEATURES", "STATE_FEATURES"):
        names = getattr(features, name)
        assert len(set(names)) == len(names), name
    # The module docstring numbers every feature: UE 0..9, scheduler 0..6, state 10..11, coordinator 0..5.
    numbers = [int(m) for m in re.findall(r"^\s+(\d+) \S", features.__doc__, flags=re.M)]
    runs, run = [], [numbers[0]]
    for x in numbers[1:]:
        if x == run[-1] + 1:
            run.append(x)
        else:
            runs.append(run)
            run = [x]
    runs.append(run)
    assert runs == [
        list(range(len(features.UE_FEATURES))),
        list(range(len(features.SCHEDULER_FEATURES))),
        list(range(len(features.UE_FEATURES), len(features.STATE_FEATURES))),
        list(range(len(features.COORDINATOR_FEATURES))),
    ]
    p1, p2 = make_env("per-agent", 2), make_env("fleet", 2)
    assert p1.observation_spaces["ue_0"].shape == (len(features.UE_FEATURES),)
    assert p1.observation_spaces["cluster_sched_0"].shape == (p1.n_ue - p1.n_k + 1, len(features.SCHEDULER_FEATURES))
    assert p1.observation_spaces["coordinator"].shape == (3, len(features.COORDINATOR_FEATURES))
    assert p2.observation_spaces["ues"]["obs"].shape == (12, len(features.UE_FEATURES))
    assert p2.observation_spaces["schedulers"]["obs"].shape == (12, len(features.SCHEDULER_FEATURES))
    assert p2.observation_spaces["ues"]["state"].shape == (12, len(features.STATE_FEATURES))
    assert p2.observation_spaces["coordinator"]["obs"].shape == (3, len(features.COORDINATOR_FEATURES))


@ALL
def test_no_coordinator_ablation_plays_the_equal_cpu_split_without_a_coordinator_stage(view):
    """phase2.coordinator = equal: no coordinator agent or stage, and every slot is exactly the slot a learned
    coordinator would give with equal logits (equal shares 1/K)."""
    ablation = make_env(view, 2, config={**PHASE2_CONFIG, "phase2": {"n_users": 12, "coordinator": "equal"}})
    full = make_env(view, 2)
    assert "coordinator" not in ablation.possible_agents and "coordinator" in full.possible_agents
    assert "coordinator" not in ablation.action_spaces and "coordinator" not in ablation.observation_spaces
    ue_stage = ["ues"] if view == "fleet" else [f"ue_{i}" for i in range(ablation.n_ue)]
    obs_a, _ = ablation.reset(seed=3)
    assert sorted(obs_a) == sorted(ue_stage)  # the slot opens with the UEs' stage
    full.reset(seed=3)
    obs_f, _, _, _, _ = step_coordinator(full, np.zeros(full.n_k))
    assert set(obs_a) == set(obs_f)
    for agent in obs_a:  # the UEs see their cluster's CPU share 1/K in both
        assert_same(obs_a[agent], obs_f[agent])
    rng = np.random.default_rng(0)
    for _ in range(SLOTS):
        actions = random_actions(ablation, ue_stage, rng)
        ablation.step(actions)
        full.step(actions)
        sched = [a for a in ablation.possible_agents if a not in ue_stage]
        actions = random_actions(ablation, sched, rng)
        _, reward_a, _, _, _ = ablation.step(actions)
        _, reward_f, _, _, _ = full.step(actions)
        assert reward_a[sched[0]] == pytest.approx(reward_f[sched[0]], rel=1e-12)
        np.testing.assert_allclose(ablation.last_result.cpu_share, np.full((1, ablation.n_k), 1 / ablation.n_k))
        if ablation.episode_over:
            break
        step_coordinator(full, np.zeros(full.n_k))


def test_no_coordinator_ablation_trains_no_coordinator_module():
    from mec.config import config_from_dict
    from mec.backends.rllib.training import module_specs

    cfg = config_from_dict({"phase2": {"coordinator": "equal"}})
    assert sorted(module_specs(cfg, 2)) == ["scheduler", "ue"]
    assert sorted(module_specs(config_from_dict({}), 2)) == ["coordinator", "scheduler", "ue"]


def test_energy_ratio_and_queue_ahead_features_by_hand():
    """Two clusters of a 4-UE slot, worked out by hand. Local time / deadline: UE0 2.0, UE1 0.5, UE2 1.0, UE3 1.0
    (UE2 and UE3 tie; the lower index counts as needier). UE0, UE1, UE2 share cluster 0 (phi 0.5), UE3 is alone."""
    from conftest import build_params, build_state

    from mec.config import config_from_dict

    params = build_params(phase=2, n=2, server_cpu_hz=4e9, server_power_w=5.0, kappa=1e-27, tx_power_w=0.2)
    gcycles = np.array([2.0, 1.0, 3.0, 2.0])
    cpu_ghz = np.array([0.5, 1.0, 1.0, 0.5])
    state = build_state(
        params,
        data_bits=[1e6] * 4,
        cycles=gcycles * 1e9,
        deadline_s=[2.0, 2.0, 3.0, 4.0],
        cpu_hz=cpu_ghz * 1e9,
        gain=[1e-8] * 4,
        cluster=[0, 0, 0, 1],
    )
    scales = features.FeatureScales(config_from_dict({}).scenario)
    x = features.ue_features(state, np.array([[0.5, 0.5]]), scales)[0]
    queue = x[:, features.UE_FEATURES.index("queue_ahead_over_deadline")]
    # Execution at 2 GHz (cluster 0) / 2 GHz (cluster 1): UE0 1 s, UE1 0.5 s, UE2 1.5 s, UE3 1 s.
    # Needier tasks ahead in the same cluster: UE0 none; UE1: UE0 and UE2 (1 + 1.5 s); UE2: UE0 (1 s); UE3 none.
    np.testing.assert_allclose(queue, [0.0, 2.5 / 2.0, 1.0 / 3.0, 0.0], rtol=1e-6)
    ratio = x[:, features.UE_FEATURES.index("local_over_offload_energy")]
    rate = 5e6 * np.log2(1 + 0.2 * 1e-8 / (params.noise_w_per_hz * 5e6))  # a quarter of the 20 MHz band
    upload_j = 0.2 * 1e6 / rate
    local_j = 1e-27 * gcycles * 1e9 * (cpu_ghz * 1e9) ** 2  # kappa C f^2: 0.5, 1, 3, 0.5 J
    offload_j = 5.0 * gcycles / 4.0 + upload_j  # P C / F: 2.5, 1.25, 3.75, 2.5 J
    np.testing.assert_allclose(ratio, local_j / offload_j, rtol=1e-5)


@PHASES
def test_fleet_env_hands_each_ue_its_marginal_credit_with_its_next_observation(phase):
    """training.ue_credit = marginal: the `ues` info that comes with the UEs' next observation (the next slot's UE
    stage, or the final observations) holds (R - R with UE i local) / N, 0 for the UEs that ran locally."""
    from mec.envs.fleet import CREDIT_KEY
    from mec.simulator import local_counterfactual_rewards

    env = make_env("fleet", phase, slots=3)
    assert env.marginal_credit
    env.reset(seed=8)
    rng = np.random.default_rng(1)
    for slot in range(3):
        if phase == 2:
            _, _, _, _, infos = step_coordinator(env, rng.uniform(-1, 1, env.n_k))
            if slot > 0:  # phase 2: the credit of the last slot arrives with the coordinator's step
                np.testing.assert_allclose(infos["ues"][CREDIT_KEY], expected, rtol=1e-6, atol=1e-7)
        offload = np.array([1, 0] + [1] * (env.n_ue - 2))
        _, _, _, _, infos = step_ues(env, offload, rng.uniform(0.2, 1, env.n_ue))
        assert CREDIT_KEY not in infos.get("ues", {})
        state = env.sim.state()
        scores = rng.uniform(-1, 1, env.n_ue).astype(np.float32)
        decisions = Decisions(env._offload, env._spectrum, scores[None].astype(float), env._cpu_weight)
        expected = (
            resolve_slot(state, decisions).reward[0] - local_counterfactual_rewards(state, decisions)[0]
        ) / env.n_ue
        assert expected[1] == 0 and np.abs(expected).max() > 0
        _, rewards, _, truncated, infos = env.step({"schedulers": scores})
        assert rewards["ues"] == pytest.approx(resolve_slot(state, decisions).reward[0] / env.n_ue)
        if phase == 1 or truncated["__all__"]:
            np.testing.assert_allclose(infos["ues"][CREDIT_KEY], expected, rtol=1e-6, atol=1e-7)
        else:
            assert "ues" not in infos
    shared = make_env("fleet", phase, config={**PHASES_CONFIG[phase], "training": {"ue_credit": "shared"}})
    shared.reset(seed=8)
    assert not shared.marginal_credit
    for agents in expected_stages(shared):
        _, _, _, _, infos = shared.step(random_actions(shared, agents, rng))
        assert infos == {}


PHASES_CONFIG = {1: {}, 2: PHASE2_CONFIG}
