"""Single-agent gymnasium view of phase 1 and phase 2: one policy takes the joint decision, stage by stage.

Registered as `mec/Phase1-v0` and `mec/Phase2-v0` when `mec.envs` is imported:

    import gymnasium, mec.envs
    env = gymnasium.make("mec/Phase1-v0", n=3)                                   # N = 3 UEs
    env = gymnasium.make("mec/Phase2-v0", n=4, config={"phase2": {"n_users": 12}})  # K = 4 clusters

Why one step per stage, not per slot: the slot's decisions are causal (coordinator -> UEs -> schedulers; phase 1:
UEs -> server). A joint action for a whole slot would have to order the server queue before the requests exist. So
one gymnasium step is one decision stage, as in the RLlib env, and the observation says which stage it is:

  observation (Dict):
    stage        Discrete(S): index into `env.unwrapped.roles` (phase 1: ue, scheduler; phase 2: coordinator, ue,
                 scheduler)
    coordinator  (K, 6) per-cluster load (phase 2 only)
    ues          (N, 12) one row per UE
    schedulers   (K, rows, 7) one padded table per cluster (phase 1: K = 1, rows = N); row r of table k is the r-th
                 UE (by index) of cluster k, `env.unwrapped.row_ue` maps rows to UEs (-1: padding)
    state        (N, 14) the global slot state: every UE's features plus the decisions made so far in the slot
  Only the acting stage's table is filled; the other role tables are zero. The tables are exactly the RLlib
  per-agent observations (mec.envs.features defines every column).
  action (Dict): every role's part; only the acting stage's part is used, the rest is ignored
    coordinator  Box(-5, 5, (K,)) CPU-share logits (phase 2 only)
    offload      MultiBinary(N): 1 = offload UE i's task
    spectrum     Box(0.01, 1, (N,)) spectrum weights
    scores       Box(-10, 10, (K, rows)) priority per scheduler-table row, higher runs first (padding rows and UEs
                 that did not offload are ignored)
  With scenario.spectrum_by = scheduler the schedulers grant the spectrum: `spectrum` is left out and
    grants       Box(0.01, 1, (K, rows)) spectrum weight per scheduler-table row, taken with `scores`
  reward: 0 on the stages before the last one; on the last stage of a slot (w_qos * sum QoS - w_energy * energy) / N,
  the same number every RLlib agent receives.
  Episodes end by truncation after `episode_slots` slots (episode_slots * S steps), never by termination; the final
  observation is the first stage of the (never played) next slot, for bootstrapping.

The dynamics are MECEnv's array-level core (apply_coordinator, apply_ues, apply_schedulers), held by composition;
`env.unwrapped.core` is that MECEnv and `env.unwrapped.last_result` the last resolved slot (mec.simulator.SlotResult).
`FlatJointAction` turns the Dict action into one Box(-1, 1) vector for libraries that take no Dict actions (SB3).
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import gymnasium as gym
import numpy as np

from mec.config import StudyConfig, config_from_dict, load_config
from mec.envs import features
from mec.envs.mec_env import MECEnv
from mec.simulator import SlotResult

ENV_IDS = {1: "mec/Phase1-v0", 2: "mec/Phase2-v0"}


def make_core(
    phase: int = 1,
    n: int | None = None,
    config: StudyConfig | dict | str | PathLike | None = None,
    episode_slots: int | None = None,
) -> MECEnv:
    """The RLlib per-agent env that every other view wraps.

    n: N UEs (phase 1) or K clusters (phase 2); None takes the first value of the config's sweep (phase1.n_ue or
    phase2.n_clusters). config: a StudyConfig, a dict merged over the defaults, or the path of a config YAML.
    episode_slots: None takes training.episode_slots.
    """
    if isinstance(config, StudyConfig):
        cfg = config
    elif isinstance(config, (str, PathLike)):
        cfg = load_config(config)
    else:
        cfg = config_from_dict(config or {})
    phase = int(phase)
    if n is None and phase in (1, 2):
        n = cfg.phase1.n_ue[0] if phase == 1 else cfg.phase2.n_clusters[0]
    env_config: dict[str, Any] = {"config": cfg, "phase": phase, "n": n}
    if episode_slots is not None:
        env_config["episode_slots"] = int(episode_slots)
    return MECEnv(env_config)


class MECGymEnv(gym.Env):
    """Joint decision of every agent of one phase, one gymnasium step per decision stage (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        phase: int = 1,
        n: int | None = None,
        config: StudyConfig | dict | str | PathLike | None = None,
        episode_slots: int | None = None,
        render_mode: str | None = None,
    ):
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r}: allowed None (figures come from mec.plotting)")
        self.render_mode = None
        self.core = make_core(phase, n, config, episode_slots)
        core = self.core
        self.phase, self.n_ue, self.n_k, self.n_rows = core.phase, core.n_ue, core.n_k, core.n_rows
        self.roles = (["coordinator"] if core.has_coordinator else []) + ["ue", "scheduler"]
        self._table_key = {"coordinator": "coordinator", "ue": "ues", "scheduler": "schedulers"}
        low, high = -4.0, core.obs_high
        obs = {
            "stage": gym.spaces.Discrete(len(self.roles)),
            "ues": gym.spaces.Box(low, high, (self.n_ue, len(features.UE_FEATURES)), np.float32),
            "schedulers": gym.spaces.Box(
                low, high, (self.n_k, self.n_rows, len(features.SCHEDULER_FEATURES)), np.float32
            ),
            "state": gym.spaces.Box(low, high, (self.n_ue, len(features.STATE_FEATURES)), np.float32),
        }
        sched_act = core.action_spaces[core.scheduler_ids[0]]
        scores = sched_act["priority"] if core.grant else sched_act

        def box(space, shape):
            return gym.spaces.Box(float(space.low[0]), float(space.high[0]), shape, np.float32)

        act = {
            "offload": gym.spaces.MultiBinary(self.n_ue),
            "scores": box(scores, (self.n_k, self.n_rows)),
        }
        if core.grant:
            act["grants"] = box(sched_act["spectrum"], (self.n_k, self.n_rows))
        else:
            act["spectrum"] = box(core.action_spaces[core.ue_ids[0]]["spectrum"], (self.n_ue,))
        if core.has_coordinator:
            obs["coordinator"] = core.observation_spaces["coordinator"]
            act["coordinator"] = core.action_spaces["coordinator"]
        self.observation_space = gym.spaces.Dict(obs)
        self.action_space = gym.spaces.Dict(act)

    @property
    def last_result(self) -> SlotResult | None:
        """The last resolved slot (None before the first slot of an episode ends)."""
        return self.core.last_result

    @property
    def row_ue(self) -> np.ndarray:
        """(K, rows) UE index of each scheduler-table row, -1 for padding rows (fixed for an episode)."""
        return self.core.row_ue

    @property
    def role(self) -> str:
        """The role whose decision the next step takes: coordinator, ue or scheduler."""
        return self.core.role

    def _observation(self) -> dict[str, Any]:
        obs = {key: np.zeros(space.shape, space.dtype) for key, space in self.observation_space.items()}
        role = self.core.role
        obs["stage"] = self.roles.index(role)
        obs[self._table_key[role]] = self.core.role_observation()
        obs["state"] = self.core.global_state()
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # The env's own np_random draws the episodes: reset(seed=s) gives the episode MECEnv.reset(seed=s) gives.
        self.core.reset_episode(rng=self.np_random)
        return self._observation(), {"role": self.core.role}

    def step(self, action: dict[str, Any]):
        role = self.core.role
        reward, truncated = 0.0, False
        if role == "coordinator":
            self.core.apply_coordinator(action["coordinator"])
        elif role == "ue":
            self.core.apply_ues(action["offload"], None if self.core.grant else action["spectrum"])
        else:
            reward = self.core.apply_schedulers(action["scores"], action["grants"] if self.core.grant else None)
            truncated = self.core.episode_over
        return self._observation(), float(reward), False, truncated, {"role": self.core.role}


class FlatJointAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """One Box(-1, 1) action vector instead of the Dict, for agents that take no Dict actions (e.g. SB3).

    Layout: the Dict's parts in `self.parts` order (sorted keys: coordinator (K, phase 2), offload (N), scores
    (K * rows), spectrum (N); with the grant: coordinator, grants (K * rows), offload, scores), each flattened;
    offload[i] > 0 offloads, every other part is rescaled linearly from [-1, 1] to its bounds.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        self.parts = [(key, space) for key, space in env.action_space.items()]
        size = sum(int(np.prod(space.shape)) for _, space in self.parts)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (size,), np.float32)

    def action(self, action: np.ndarray) -> dict[str, np.ndarray]:
        flat = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        out, start = {}, 0
        for key, space in self.parts:
            size = int(np.prod(space.shape))
            x = flat[start : start + size].reshape(space.shape)
            start += size
            if isinstance(space, gym.spaces.MultiBinary):
                out[key] = (x > 0).astype(space.dtype)
            else:
                out[key] = np.clip(space.low + (x + 1.0) / 2.0 * (space.high - space.low), space.low, space.high)
                out[key] = out[key].astype(space.dtype)
        return out


def register_envs() -> None:
    """Register mec/Phase1-v0 and mec/Phase2-v0 (kwargs n, config, episode_slots go to MECGymEnv); idempotent."""
    for phase, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="mec.envs.gym_env:MECGymEnv", kwargs={"phase": phase})
