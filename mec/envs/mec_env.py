"""Phase 1 and phase 2 as RLlib MultiAgentEnvs, thin over mec.simulator.

One slot is played in the causal order of the study, one env step per stage:
  phase 2: coordinator (sees this slot's per-cluster load) -> UEs (own task and channel, own cluster's CPU share)
           -> cluster schedulers (the requests actually made this slot, with their upload end times)
  phase 1: UEs -> server
Only the agents of the current stage get an observation; the slot is resolved after the last stage and its
reward (sum QoS * w_qos - energy * w_energy, divided by the number of UEs so that it is O(1) for any N) goes to
every agent. An episode is `episode_slots` slots long; it ends by truncation (a time limit), never termination.

Agent ids: `ue_<i>`, `server` (phase 1), `coordinator`, `cluster_sched_<k>` (phase 2).
Actions:
  ue_<i>:        {"offload": Discrete(2) (1 = offload), "spectrum": Box(0.01, 1, (1,)) spectrum weight}
  server / cluster_sched_<k>: Box(-10, 10, (rows,)) priority score per table row (higher runs first);
                 scores of padding rows and of UEs that did not offload are ignored
  coordinator:   Box(-5, 5, (K,)) CPU-share logits: phi = phi_min + (1 - K*phi_min) * softmax(logits)
Observations: see mec.envs.features (feature by feature).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from mec.config import StudyConfig, config_from_dict
from mec.envs import features
from mec.scenario import PhaseSetup
from mec.simulator import Decisions, SlotResult, Simulator, uplink

SPECTRUM_LOW = 0.01
SCORE_BOUND = 10.0
LOGIT_BOUND = 5.0


def ue_id(i: int) -> str:
    return f"ue_{i}"


def scheduler_id(phase: int, k: int) -> str:
    return "server" if phase == 1 else f"cluster_sched_{k}"


class MECEnv(MultiAgentEnv):
    """env_config: {"config": StudyConfig or its dict, "phase": 1 | 2, "n": N (phase 1) or K (phase 2)}."""

    def __init__(self, env_config: dict[str, Any] | None = None):
        super().__init__()
        env_config = dict(env_config or {})
        cfg = env_config.get("config", {})
        self.cfg: StudyConfig = cfg if isinstance(cfg, StudyConfig) else config_from_dict(cfg)
        self.phase = int(env_config.get("phase", 1))
        self.setup = PhaseSetup.from_config(self.cfg, self.phase, int(env_config.get("n", 2)))
        self.n_ue, self.n_k = self.setup.n_ue, self.setup.n_clusters
        # No cluster is empty, so none holds more than N - K + 1 UEs: every UE always has a row.
        self.n_rows = self.n_ue - self.n_k + 1
        self.sim = Simulator(self.cfg, self.setup, env_config.get("episode_slots", self.cfg.training.episode_slots))
        self.scales = features.FeatureScales(self.cfg.scenario)
        self.ue_ids = [ue_id(i) for i in range(self.n_ue)]
        self.scheduler_ids = [scheduler_id(self.phase, k) for k in range(self.n_k)]
        self.stages: list[list[str]] = ([["coordinator"]] if self.phase == 2 else []) + [self.ue_ids, self.scheduler_ids]
        self.possible_agents = [a for stage in self.stages for a in stage]
        self.agents = list(self.possible_agents)

        ue_obs = gym.spaces.Box(-4.0, 8.0, (len(features.UE_FEATURES),), np.float32)
        ue_act = gym.spaces.Dict(
            {"offload": gym.spaces.Discrete(2), "spectrum": gym.spaces.Box(SPECTRUM_LOW, 1.0, (1,), np.float32)}
        )
        sched_obs = gym.spaces.Box(-4.0, 8.0, (self.n_rows, len(features.SCHEDULER_FEATURES)), np.float32)
        sched_act = gym.spaces.Box(-SCORE_BOUND, SCORE_BOUND, (self.n_rows,), np.float32)
        self.observation_spaces = {a: ue_obs for a in self.ue_ids} | {a: sched_obs for a in self.scheduler_ids}
        self.action_spaces = {a: ue_act for a in self.ue_ids} | {a: sched_act for a in self.scheduler_ids}
        if self.phase == 2:
            self.observation_spaces["coordinator"] = gym.spaces.Box(
                -4.0, 8.0, (self.n_k, len(features.COORDINATOR_FEATURES)), np.float32
            )
            self.action_spaces["coordinator"] = gym.spaces.Box(-LOGIT_BOUND, LOGIT_BOUND, (self.n_k,), np.float32)
        self._rng = np.random.default_rng()
        self.last_result: SlotResult | None = None

    # -- helpers --------------------------------------------------------------------------------------------------

    def _cpu_share(self) -> np.ndarray:
        w = self._cpu_weight
        phi_min = self.setup.phi_min
        return phi_min + (1.0 - self.n_k * phi_min) * w / w.sum(axis=1, keepdims=True)

    def _observe(self) -> dict[str, np.ndarray]:
        state = self.sim.state()
        agents = self.stages[self._stage]
        if agents[0] == "coordinator":
            return {"coordinator": features.coordinator_features(state, self.scales)[0]}
        if agents is self.ue_ids:
            obs = features.ue_features(state, self._cpu_share(), self.scales)[0]
            return {a: obs[i] for i, a in enumerate(agents)}
        tables, self._row_ue = features.scheduler_tables(
            state, self._offload, self._upload_end, self._cpu_share(), self.n_rows, self.scales
        )
        return {a: tables[0, k] for k, a in enumerate(agents)}

    # -- gymnasium / RLlib API ------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        episode_seed = int(self._rng.integers(2**63 - 1))
        self.sim.reset([episode_seed])
        self._start_slot()
        return self._observe(), {}

    def _start_slot(self) -> None:
        self._stage = 0
        self._cpu_weight = np.ones((1, self.n_k))
        self._offload = np.zeros((1, self.n_ue), dtype=bool)
        self._spectrum = np.ones((1, self.n_ue))
        self._upload_end = np.full((1, self.n_ue), np.nan)

    def step(self, action_dict: dict[str, Any]):
        agents = self.stages[self._stage]
        missing = [a for a in agents if a not in action_dict]
        if missing:
            raise ValueError(f"actions missing for agents {missing[:5]} of the current stage")
        if agents[0] == "coordinator":
            logits = np.clip(np.asarray(action_dict["coordinator"], dtype=float), -LOGIT_BOUND, LOGIT_BOUND)
            self._cpu_weight = np.exp(logits - logits.max())[None, :]
        elif agents is self.ue_ids:
            for i, a in enumerate(agents):
                act = action_dict[a]
                self._offload[0, i] = int(act["offload"]) == 1
                self._spectrum[0, i] = float(np.clip(np.asarray(act["spectrum"]).reshape(-1)[0], SPECTRUM_LOW, 1.0))
            _, self._upload_end = uplink(self.sim.state(), self._offload, self._spectrum)
        else:
            return self._resolve(action_dict)
        self._stage += 1
        return self._observe(), {}, {"__all__": False}, {"__all__": False}, {}

    def _resolve(self, action_dict):
        priority = np.zeros((1, self.n_ue))
        for k, a in enumerate(self.scheduler_ids):
            scores = np.asarray(action_dict[a], dtype=float).reshape(-1)
            rows = self._row_ue[0, k]
            valid = rows >= 0
            priority[0, rows[valid]] = scores[valid]
        decisions = Decisions(self._offload.copy(), self._spectrum.copy(), priority, self._cpu_weight.copy())
        self.last_result = self.sim.step(decisions)
        reward = float(self.last_result.reward[0]) / self.n_ue
        rewards = {a: reward for a in self.possible_agents}
        if self.sim.done:
            truncated = {a: True for a in self.possible_agents} | {"__all__": True}
            terminated = {a: False for a in self.possible_agents} | {"__all__": False}
            return {}, rewards, terminated, truncated, {}
        self._start_slot()
        return self._observe(), rewards, {"__all__": False}, {"__all__": False}, {}
