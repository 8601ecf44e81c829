"""Phase 1 and phase 2 as RLlib MultiAgentEnvs, thin over mec.simulator.

One slot is played in the causal order of the study, one env step per stage:
  phase 2: coordinator (sees this slot's per-cluster load) -> UEs (own task and channel, own cluster's CPU share)
           -> cluster schedulers (the requests actually made this slot, with their upload end times)
  phase 1: UEs -> server
Only the agents of the current stage get an observation; the slot is resolved after the last stage and its
reward (sum QoS * w_qos - energy * w_energy, divided by the number of UEs so that it is O(1) for any N) goes to
every agent. An episode is `episode_slots` slots long; it ends by truncation (a time limit), never termination.

Agent ids: `ue_<i>`, `server` (phase 1), `coordinator`, `cluster_sched_<k>` (phase 2).
Actions (scenario.spectrum_by = ue, the default):
  ue_<i>:        {"offload": Discrete(2) (1 = offload), "spectrum": Box(0.01, 1, (1,)) spectrum weight}
  server / cluster_sched_<k>: Box(-10, 10, (rows,)) priority score per table row (higher runs first);
                 scores of padding rows and of UEs that did not offload are ignored
  coordinator:   Box(-5, 5, (K,)) CPU-share logits: phi = phi_min + (1 - K*phi_min) * softmax(logits)
With scenario.spectrum_by = scheduler the schedulers grant the spectrum (as a 5G base station grants uplink
resources) and the UEs only decide whether to offload:
  ue_<i>:        {"offload": Discrete(2)}
  server / cluster_sched_<k>: {"priority": Box(-10, 10, (rows,)), "spectrum": Box(0.01, 1, (rows,))}, a priority
                 and a spectrum weight per table row; the simulator shares the band over every offloader's weight
                 as it shares the UEs' requests. The scheduler acts before its grant exists, so its upload features
                 (upload end, slack; the critic's upload ends too) are those of the equal split among the slot's
                 offloaders, the reference it knows before granting (mec.envs.features).
Observations: see mec.envs.features (feature by feature).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from mec import physics
from mec.config import StudyConfig, config_from_dict
from mec.envs import features
from mec.scenario import PhaseSetup
from mec.simulator import Decisions, SlotResult, Simulator, uplink

SPECTRUM_LOW = 0.01
SCORE_BOUND = 10.0
LOGIT_BOUND = 5.0


def cpu_weight_from_logits(logits: np.ndarray) -> np.ndarray:
    """Coordinator logits (..., K) -> positive CPU weights; the simulator's floor turns them into the
    floor-softmax shares phi_min + (1 - K*phi_min) * softmax(logits)."""
    logits = np.clip(np.asarray(logits, dtype=float), -LOGIT_BOUND, LOGIT_BOUND)
    return np.exp(logits - logits.max(axis=-1, keepdims=True))


def spectrum_from_action(spectrum: np.ndarray) -> np.ndarray:
    """Spectrum actions (a UE's request or a scheduler's grant) -> spectrum weights in [SPECTRUM_LOW, 1]."""
    return np.clip(np.asarray(spectrum, dtype=float), SPECTRUM_LOW, 1.0)


def scheduler_action_space(rows: int, grant: bool) -> gym.spaces.Space:
    """A scheduler's action over `rows` table rows: a priority per row, and with the grant a spectrum weight too."""
    priority = gym.spaces.Box(-SCORE_BOUND, SCORE_BOUND, (rows,), np.float32)
    if not grant:
        return priority
    return gym.spaces.Dict({"priority": priority, "spectrum": gym.spaces.Box(SPECTRUM_LOW, 1.0, (rows,), np.float32)})


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
        # Features are clipped to [-4, 8] except K * (cluster CPU share), which reaches K; cluster size * K / N
        # reaches K too.
        self.obs_high = float(max(8, self.n_k))
        self.episode_slots = int(env_config.get("episode_slots", self.cfg.training.episode_slots))
        # One extra slot is drawn so that a truncated episode can show every agent the state it would see next
        # (its bootstrap observation); it is never stepped.
        self.sim = Simulator(self.cfg, self.setup, self.episode_slots + 1)
        self.scales = features.FeatureScales(self.cfg.scenario)
        self.ue_ids = [ue_id(i) for i in range(self.n_ue)]
        self.scheduler_ids = [scheduler_id(self.phase, k) for k in range(self.n_k)]
        # Phase 2 with phase2.coordinator = "equal" (the no-coordinator ablation) has no coordinator stage: every
        # cluster keeps the equal CPU split that each slot starts with.
        self.has_coordinator = self.phase == 2 and self.cfg.phase2.coordinator == "learned"
        self.stages: list[list[str]] = ([["coordinator"]] if self.has_coordinator else []) + [
            self.ue_ids,
            self.scheduler_ids,
        ]
        self.possible_agents = [a for stage in self.stages for a in stage]
        self.agents = list(self.possible_agents)
        # scenario.spectrum_by = scheduler: the schedulers grant each offloaded task's spectrum weight with its
        # priority, the UEs request none.
        self.grant = self.cfg.scenario.spectrum_by == "scheduler"

        ue_obs = gym.spaces.Box(-4.0, self.obs_high, (len(features.UE_FEATURES),), np.float32)
        ue_act = gym.spaces.Dict(
            {"offload": gym.spaces.Discrete(2)}
            | ({} if self.grant else {"spectrum": gym.spaces.Box(SPECTRUM_LOW, 1.0, (1,), np.float32)})
        )
        sched_obs = gym.spaces.Box(-4.0, self.obs_high, (self.n_rows, len(features.SCHEDULER_FEATURES)), np.float32)
        sched_act = scheduler_action_space(self.n_rows, self.grant)
        self.observation_spaces = {a: ue_obs for a in self.ue_ids} | {a: sched_obs for a in self.scheduler_ids}
        self.action_spaces = {a: ue_act for a in self.ue_ids} | {a: sched_act for a in self.scheduler_ids}
        if self.has_coordinator:
            self.observation_spaces["coordinator"] = gym.spaces.Box(
                -4.0, self.obs_high, (self.n_k, len(features.COORDINATOR_FEATURES)), np.float32
            )
            self.action_spaces["coordinator"] = gym.spaces.Box(-LOGIT_BOUND, LOGIT_BOUND, (self.n_k,), np.float32)
        self._rng = np.random.default_rng()
        self.last_result: SlotResult | None = None
        self.last_decisions: Decisions | None = None
        self._start_slot()

    # -- array-level core (shared by this per-agent view and the fleet view) ----------------------------------------

    @property
    def stage(self) -> int:
        """Index into `stages` of the stage that acts next in this slot."""
        return self._stage

    @property
    def row_ue(self) -> np.ndarray:
        """(K, rows) UE index of each scheduler-table row, -1 for padding rows (fixed for an episode)."""
        return self._row_ue[0]

    def observe_stage(self, stage: int) -> dict[str, np.ndarray]:
        """The observations stage `stage`'s agents would get if it acted now (the decisions made so far in this slot
        stay as they are); the acting stage does not change."""
        acting = self._stage
        self._stage = stage
        try:
            return self._observe()
        finally:
            self._stage = acting

    @property
    def role(self) -> str:
        """The role that acts next: coordinator, ue or scheduler."""
        agents = self.stages[self._stage]
        return "coordinator" if agents[0] == "coordinator" else ("ue" if agents is self.ue_ids else "scheduler")

    def _cpu_share(self) -> np.ndarray:
        return physics.cpu_shares(self._cpu_weight, self.setup.phi_min)

    def role_observation(self) -> np.ndarray:
        """The acting role's observations: coordinator (K, 6), ue (N, 12), scheduler (K, rows, 7)."""
        state = self.sim.state()
        if self.role == "coordinator":
            return features.coordinator_features(state, self.scales)[0]
        if self.role == "ue":
            return features.ue_features(state, self._cpu_share(), self.scales)[0]
        rows = features.scheduler_rows(state, self._offload, self._upload_end, self._cpu_share(), self.scales)
        return features.scheduler_tables(rows, self._row_ue)[0]

    def global_state(self) -> np.ndarray:
        """(N, len(features.STATE_FEATURES)) slot state for a centralised critic: every UE's features plus the
        decisions made so far in this slot."""
        state = self.sim.state()
        return features.global_state(
            state, self._cpu_share(), self._offload, self._upload_end, self.scales
        )[0]

    def apply_coordinator(self, logits: np.ndarray) -> None:
        self._cpu_weight = cpu_weight_from_logits(np.asarray(logits).reshape(1, self.n_k))
        self._stage += 1

    def _check_spectrum(self, spectrum, who: str) -> None:
        """One line if the spectrum weights come at the wrong stage: the UEs request them, or the schedulers grant
        them (scenario.spectrum_by)."""
        if (spectrum is None) == (who == ("scheduler" if self.grant else "ue")):
            setter = "the schedulers grant them" if self.grant else "the UEs request them"
            raise ValueError(f"spectrum weights {'missing' if spectrum is None else 'given'} at the {who} stage; "
                             f"scenario.spectrum_by = {self.cfg.scenario.spectrum_by}: {setter}")  # fmt: skip

    def apply_ues(self, offload: np.ndarray, spectrum: np.ndarray | None = None) -> None:
        """The UEs' offload decisions (N,) and their requested spectrum weights (N,), which with the grant
        (spectrum_by = scheduler) they do not give: the weights are then equal until apply_priorities takes the
        grant, so the upload ends the schedulers observe are those of the equal split among the offloaders."""
        self._check_spectrum(spectrum, "ue")
        self._offload = (np.asarray(offload).reshape(1, self.n_ue) > 0.5)
        if spectrum is not None:
            self._spectrum = spectrum_from_action(np.asarray(spectrum).reshape(1, self.n_ue))
        _, self._upload_end = uplink(self.sim.state(), self._offload, self._spectrum)
        self._stage += 1

    def _per_ue(self, table: np.ndarray, fill: float) -> np.ndarray:
        """(K, rows) values of the padded tables -> (N,) per UE (every UE has a row)."""
        table = np.asarray(table, dtype=float).reshape(self.n_k, self.n_rows)
        rows = self._row_ue[0]
        valid = rows >= 0
        out = np.full(self.n_ue, fill)
        out[rows[valid]] = table[valid]
        return out

    def apply_schedulers(self, scores: np.ndarray, spectrum: np.ndarray | None = None) -> float:
        """Resolve the slot with per-row scores (K, rows) of the padded tables and, with the grant, per-row spectrum
        weights (K, rows); see apply_priorities."""
        granted = None if spectrum is None else self._per_ue(spectrum, 1.0)
        return self.apply_priorities(self._per_ue(scores, 0.0), granted)

    def apply_priorities(self, priority: np.ndarray, spectrum: np.ndarray | None = None) -> float:
        """Resolve the slot with one priority per UE (N,) and, with the grant, one granted spectrum weight per UE
        (N,); returns the per-UE reward and starts the next slot. The resolved decisions stay in last_decisions."""
        self._check_spectrum(spectrum, "scheduler")
        if spectrum is not None:
            self._spectrum = spectrum_from_action(np.asarray(spectrum).reshape(1, self.n_ue))
        priority = np.asarray(priority, dtype=float).reshape(1, self.n_ue)
        self.last_decisions = Decisions(self._offload, self._spectrum, priority, self._cpu_weight)
        self.last_result = self.sim.step(self.last_decisions)
        self._start_slot()
        return float(self.last_result.reward[0]) / self.n_ue

    @property
    def episode_over(self) -> bool:
        return self.sim.slot >= self.episode_slots

    def _final_observations(self, observe) -> dict[str, Any]:
        """Every agent's observation of the (never played) next slot, with no decisions made in it yet."""
        obs = {}
        for stage in range(len(self.stages)):
            self._stage = stage
            obs.update(observe())
        self._stage = 0
        return obs

    def _start_slot(self) -> None:
        self._stage = 0
        self._cpu_weight = np.ones((1, self.n_k))
        self._offload = np.zeros((1, self.n_ue), dtype=bool)
        self._spectrum = np.ones((1, self.n_ue))
        self._upload_end = np.full((1, self.n_ue), np.nan)

    def reset_episode(self, seed: int | None = None, rng: np.random.Generator | None = None) -> None:
        """A new episode at its first stage, without building observations (reset() and the single-agent views of
        mec.envs.gym_env start here). Its episode seed is the next draw of this env's stream: a fresh stream from
        `seed`, or `rng` itself where given (it becomes the env's stream), else the stream as it is."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if rng is not None:
            self._rng = rng
        self.sim.reset([int(self._rng.integers(2**63 - 1))])
        self._row_ue = features.cluster_rows(self.sim.episodes.cluster, self.n_k, self.n_rows)
        self.last_result = None
        self.last_decisions = None
        self._start_slot()

    # -- RLlib MultiAgentEnv API (one agent per UE, scheduler and coordinator) -----------------------------------

    def _observe(self) -> dict[str, np.ndarray]:
        obs = self.role_observation()
        if self.role == "coordinator":  # one agent, the whole per-cluster table
            return {"coordinator": obs}
        return {a: obs[i] for i, a in enumerate(self.stages[self._stage])}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.reset_episode(seed)
        return self._observe(), {}

    def step(self, action_dict: dict[str, Any]):
        agents = self.stages[self._stage]
        missing = [a for a in agents if a not in action_dict]
        if missing:
            raise ValueError(f"actions missing for agents {missing[:5]} of the current stage")
        role = self.role
        if role == "coordinator":
            self.apply_coordinator(action_dict["coordinator"])
        elif role == "ue":
            self.apply_ues(
                [int(action_dict[a]["offload"]) for a in agents],
                None if self.grant else [np.asarray(action_dict[a]["spectrum"]).reshape(-1)[0] for a in agents],
            )
        else:
            if self.grant:
                scores = np.stack([np.asarray(action_dict[a]["priority"]).reshape(-1) for a in agents])
                spectrum = np.stack([np.asarray(action_dict[a]["spectrum"]).reshape(-1) for a in agents])
            else:
                scores, spectrum = np.stack([np.asarray(action_dict[a]).reshape(-1) for a in agents]), None
            reward = self.apply_schedulers(scores, spectrum)
            return self._after_slot(reward, self.possible_agents, self._observe)
        return self._observe(), {}, {"__all__": False}, {"__all__": False}, {}

    def _after_slot(self, reward: float, agents, observe):
        rewards = {a: reward for a in agents}
        if self.episode_over:
            truncated = {a: True for a in agents} | {"__all__": True}
            terminated = {a: False for a in agents} | {"__all__": False}
            return self._final_observations(observe), rewards, terminated, truncated, {}
        return observe(), rewards, {"__all__": False}, {"__all__": False}, {}
