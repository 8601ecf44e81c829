"""The gymnasium view (mec.envs.gym_env): registration, gymnasium's env checker, the stage structure, the flat-action
wrapper, and docs/environments.md (its examples run, its feature tables match mec.envs.features).

The same-seed, same-actions identity with the RLlib and PettingZoo views is in tests/test_pettingzoo.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mec.envs  # noqa: F401  (registers the ids)
from conftest_rl import PHASE2_CONFIG, SLOTS, make_env
from mec.envs import features
from mec.envs.gym_env import FlatJointAction, MECGymEnv

PHASES = pytest.mark.parametrize("phase", [1, 2])
DOC = Path(__file__).resolve().parents[1] / "docs" / "environments.md"
# gymnasium's advice to use [-1, 1] Box actions: the Dict view keeps each action in its own units on purpose
# (FlatJointAction is the normalised form).
BOX_ADVICE = pytest.mark.filterwarnings("ignore:.*symmetric and normalized space:UserWarning")


def make(phase: int, **kw):
    config = PHASE2_CONFIG if phase == 2 else {}
    return gym.make(f"mec/Phase{phase}-v0", n=3, config=config, episode_slots=SLOTS, **kw)


@BOX_ADVICE
@PHASES
def test_registered_env_passes_gymnasium_env_checker(phase):
    env = make(phase)
    assert isinstance(env.unwrapped, MECGymEnv)
    assert env.unwrapped.phase == phase and env.unwrapped.n_k == (3 if phase == 2 else 1)
    check_env(env.unwrapped)


def test_make_defaults_to_the_first_sweep_point_and_checks_render_mode():
    assert gym.make("mec/Phase1-v0", episode_slots=2).unwrapped.n_ue == 2  # phase1.n_ue[0]
    env = gym.make("mec/Phase2-v0", config=PHASE2_CONFIG, episode_slots=2).unwrapped
    assert (env.n_ue, env.n_k) == (12, 4)  # phase2.n_clusters[0]
    with pytest.raises(ValueError, match="render_mode"):
        MECGymEnv(phase=1, render_mode="human")


@PHASES
def test_one_step_per_stage_with_the_acting_table_filled_and_reward_at_slot_end(phase):
    env = make(phase).unwrapped
    roles = ["coordinator", "ue", "scheduler"] if phase == 2 else ["ue", "scheduler"]
    assert env.roles == roles
    tables = {"coordinator": "coordinator", "ue": "ues", "scheduler": "schedulers"}
    obs, info = env.reset(seed=2)
    env.action_space.seed(0)
    steps = 0
    for slot in range(SLOTS):
        for s, role in enumerate(roles):
            assert obs["stage"] == s and info["role"] == role and env.role == role
            assert obs in env.observation_space
            for other in set(roles) - {role}:
                assert not obs[tables[other]].any()
            np.testing.assert_array_equal(obs[tables[role]], env.core.role_observation())
            np.testing.assert_array_equal(obs["state"], env.core.global_state())
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            steps += 1
            assert terminated is False
            if s < len(roles) - 1:
                assert reward == 0.0 and truncated is False
            else:
                assert reward == float(env.last_result.reward[0]) / env.n_ue
                assert truncated is (slot == SLOTS - 1)
    assert steps == SLOTS * len(roles) and env.core.sim.slot == SLOTS
    assert obs["stage"] == 0  # the bootstrap observation: first stage of the unplayed next slot


@PHASES
def test_seeded_then_unseeded_resets_give_the_rllib_env_episodes(phase):
    env = make(phase).unwrapped
    rllib = make_env("per-agent", phase)
    for seed in (5, None, None, 9, None):
        obs, _ = env.reset(seed=seed)
        r_obs, _ = rllib.reset(seed=seed)
        np.testing.assert_array_equal(env.core.sim.episodes.data_bits, rllib.sim.episodes.data_bits)
        np.testing.assert_array_equal(env.core.sim.episodes.cluster, rllib.sim.episodes.cluster)
        assert obs["stage"] == 0
        expected = r_obs["coordinator"] if phase == 2 else np.stack([r_obs[a] for a in rllib.ue_ids])
        np.testing.assert_array_equal(obs["coordinator" if phase == 2 else "ues"], expected)


@BOX_ADVICE
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version:UserWarning")
@PHASES
def test_flat_joint_action_maps_onto_the_dict_action(phase):
    flat_env = FlatJointAction(make(phase))
    dict_env = make(phase).unwrapped
    assert flat_env.action_space.shape == (sum(int(np.prod(s.shape)) for s in dict_env.action_space.values()),)
    check_env(flat_env)  # gymnasium advises checking env.unwrapped; the wrapper itself passes too
    rng = np.random.default_rng(3)
    flat_env.reset(seed=4)
    dict_env.reset(seed=4)
    done = False
    while not done:
        a = rng.uniform(-1.2, 1.2, flat_env.action_space.shape).astype(np.float32)  # out of range is clipped
        mapped = flat_env.action(a)
        assert mapped in dict_env.action_space
        _, r1, _, done, _ = flat_env.step(a)
        _, r2, _, _, _ = dict_env.step(mapped)
        assert r1 == r2
    np.testing.assert_array_equal(flat_env.unwrapped.last_result.tasks, dict_env.last_result.tasks)
    # The ends of [-1, 1] are the ends of each part's range; > 0 offloads.
    size = flat_env.action_space.shape[0]
    high, low = flat_env.action(np.ones(size, np.float32)), flat_env.action(-np.ones(size, np.float32))
    for key, space in flat_env.parts:
        if key == "offload":
            assert high[key].all() and not low[key].any()
        else:
            np.testing.assert_array_equal(high[key], space.high)
            np.testing.assert_array_equal(low[key], space.low)


# --------------------------------------------------------------------------- docs/environments.md


def doc_code_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)


def test_doc_has_a_rollout_example_for_every_api():
    blocks = doc_code_blocks()
    for marker in ("MECEnv(", "parallel_env(", "agent_iter()", 'gym.make("mec/Phase1-v0"'):
        assert any(marker in b for b in blocks), marker
    assert all(len(b.strip().splitlines()) <= 15 for b in blocks)


@BOX_ADVICE
@pytest.mark.parametrize("index", range(5))
def test_doc_examples_run(index, capsys):
    blocks = doc_code_blocks()
    assert len(blocks) == 5
    exec(compile(blocks[index], f"{DOC.name}[block {index}]", "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out.strip()  # each example prints its result


def doc_table(heading: str) -> list[tuple[int, str]]:
    """(number, name) rows of the first table after the heading that starts with `heading`."""
    text = DOC.read_text()
    start = text.index(f"### {heading}")
    section = text[start : text.find("\n### ", start + 1) if "\n### " in text[start + 1 :] else None]
    return [(int(i), name) for i, name in re.findall(r"^\| (\d+) \| `(\w+)` \|", section, flags=re.M)]


def test_doc_feature_tables_match_the_feature_lists():
    ue = features.UE_FEATURES
    assert doc_table("UE observation") == list(enumerate(ue))
    assert doc_table("Scheduler observation") == list(enumerate(features.SCHEDULER_FEATURES))
    assert doc_table("Coordinator observation") == list(enumerate(features.COORDINATOR_FEATURES))
    assert doc_table("Global state") == list(enumerate(features.STATE_FEATURES))[len(ue) :]
