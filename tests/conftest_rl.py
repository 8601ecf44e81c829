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
