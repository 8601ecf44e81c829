"""Shared helpers for the environment, module and training tests (imported by test_envs/test_modules/test_training).

Environments are kept small: phase 1 with N = 3 UEs; phase 2 with 12 users in K = 3 clusters; a few slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mec.envs.fleet import FleetEnv
from mec.envs.mec_env import MECEnv

SLOTS = 4
PHASE2_CONFIG = {"phase2": {"n_users": 12}}

# (view class, phase, n): the four combinations the study ships.
VIEWS = {"per-agent": MECEnv, "fleet": FleetEnv}
PHASES = {1: ({}, 3), 2: (PHASE2_CONFIG, 3)}


def make_env(view: str, phase: int, slots: int = SLOTS, config: dict | None = None, n: int | None = None):
    base, default_n = PHASES[phase]
    return VIEWS[view](
        {"config": base if config is None else config, "phase": phase, "n": default_n if n is None else n,
         "episode_slots": slots}
    )  # fmt: skip


def expected_stages(env) -> list[list[str]]:
    """The agents that act at each stage of a slot, in causal order, written out independently of env.stages."""
    if isinstance(env, FleetEnv):
        return ([["coordinator"]] if env.phase == 2 else []) + [["ues"], ["schedulers"]]
    ues = [f"ue_{i}" for i in range(env.n_ue)]
    if env.phase == 1:
        return [ues, ["server"]]
    return [["coordinator"], ues, [f"cluster_sched_{k}" for k in range(env.n_k)]]


def random_action(env, agent: str, rng: np.random.Generator) -> Any:
    """An action inside `agent`'s action space, drawn from `rng` (reproducible, unlike space.sample())."""
    space = env.action_spaces[agent]
    if agent == "ues":
        n = env.n_ue
        return {
            "offload": rng.integers(0, 2, n).astype(np.int8),
            "spectrum": rng.uniform(0.01, 1.0, n).astype(np.float32),
        }
    if agent.startswith("ue_"):
        return {"offload": int(rng.integers(0, 2)), "spectrum": rng.uniform(0.01, 1.0, 1).astype(np.float32)}
    return rng.uniform(space.low, space.high).astype(np.float32)


def random_actions(env, agents, rng: np.random.Generator) -> dict:
    return {a: random_action(env, a, rng) for a in agents}


def cluster_row_of(cluster: np.ndarray) -> np.ndarray:
    """(N,) row of each UE in its cluster's scheduler table: the number of lower-index UEs of the same cluster."""
    return np.array([int(np.sum(cluster[:i] == cluster[i])) for i in range(len(cluster))])


def floor_softmax(logits: np.ndarray, phi_min: float) -> np.ndarray:
    logits = np.asarray(logits, dtype=float)
    e = np.exp(logits - logits.max())
    return phi_min + (1.0 - len(logits) * phi_min) * e / e.sum()


def untrained_policy(env: FleetEnv, scenario, seed: int, name: str = "learned"):
    """A LearnedPolicy of untrained role modules (one 16-wide hidden layer) for the fleet env's roles, their weights
    drawn from `seed` under a forked torch generator (the global one is left as it was)."""
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mec.backends.rllib.modules import RoleModule
    from mec.backends.rllib.policy import ROLE_OF_AGENT, LearnedPolicy
    from mec.envs.features import FeatureScales

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        modules = {
            ROLE_OF_AGENT[a]: RLModuleSpec(module_class=RoleModule, observation_space=env.observation_spaces[a],
                                           action_space=env.action_spaces[a],
                                           model_config={"role": ROLE_OF_AGENT[a], "hidden": [16]}).build()
            for a in env.possible_agents
        }  # fmt: skip
    return LearnedPolicy(modules, FeatureScales(scenario), name=name)


# A tiny training config (a few seconds per phase): `tiny_training_evaluates` writes it with extra sections.
TINY_TRAINING = {
    "phase2": {"n_users": 8, "n_clusters": [2], "kmeans_n_init": 2},
    "training": {"iterations": 2, "episode_slots": 10, "eval_episodes": 2, "train_batch_slots": 20,
                 "minibatch_size": 10, "num_epochs": 1, "checkpoint_every": 1, "num_cpus": 1, "num_env_runners": 0},
}  # fmt: skip


def tiny_training_evaluates(tmp_path, phase: int, scenario: dict | None = None, training: dict | None = None):
    """Train the tiny config (with `scenario` / `training` keys added) through `mec train`, load its best checkpoint,
    and check `mec evaluate --best-of 2` on the validation episodes it was picked on: the policy scores what training
    recorded, best-of-2 at least that. Returns (modules, meta) of the checkpoint."""
    import json
    import os
    import subprocess
    import sys

    import pytest
    import yaml

    from mec.backends.rllib.training import load_modules

    config = {**TINY_TRAINING, "training": {**TINY_TRAINING["training"], **(training or {})}}
    if scenario:
        config["scenario"] = scenario
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}

    def mec(*args):
        proc = subprocess.run([sys.executable, "-m", "mec", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    out = tmp_path / "run"
    size = ["--n-ue", "3"] if phase == 1 else ["--n-clusters", "2"]
    mec("train", "--phase", str(phase), *size, "--seed", "0", "--out", str(out), "--config",
        str(tmp_path / "config.yaml"), "--num-cpus", "1")  # fmt: skip
    best = out / "checkpoints" / "best"
    modules, meta = load_modules(best)
    eval_seed = str(meta["config"]["training"]["eval_seed"])
    proc = mec("evaluate", "--checkpoint", str(best), "--episodes", "2", "--slots", "10", "--seed", eval_seed,
               "--best-of", "2", "--json")  # fmt: skip
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    assert len(lines) == 2
    assert lines[0]["reward_per_slot"] == pytest.approx(meta["eval_reward_per_slot"], rel=1e-9)
    assert lines[1]["reward_per_slot"] >= lines[0]["reward_per_slot"] - 1e-9
    return modules, meta
