"""Phase 1 and phase 2 as PettingZoo environments: an AEC env and a ParallelEnv, both over MECEnv.

    from mec.envs.pettingzoo_env import env, parallel_env
    aec = env(phase=1, n=3)                                                   # N = 3 UEs
    par = parallel_env(phase=2, n=4, config={"phase2": {"n_users": 12}})      # K = 4 clusters

Agents, spaces, observations, actions and rewards are the RLlib per-agent env's (mec.envs.mec_env.MECEnv): `ue_<i>`
and `server` (phase 1); `coordinator`, `ue_<i>` and `cluster_sched_<k>` (phase 2). Both views hold a MECEnv (`.core`)
and step it through its own `step`; there is no second copy of the dynamics. `state()` is the centralised critic's
global slot state (`state_space`).

A slot is played in its causal order: coordinator (sees this slot's load) -> UEs (own task, own cluster's CPU share)
-> schedulers (the requests actually made this slot). Not every agent acts at every step, and the two APIs say so
differently:

* AEC (`env()`, MECAECEnv) is the exact turn order: `agent_selection` runs through the current stage's agents one by
  one (by index); the stage is applied when its last agent has acted, so agents of one stage decide simultaneously
  (none sees another's decision of the same stage) and every agent of a later stage sees them all. This is
  PettingZoo's own API for sequential moves, and the one to take when an agent must act only on its turn.
* Parallel (`parallel_env()`, MECParallelEnv): one step is one stage. PettingZoo's parallel API has no notion of
  agents that sit a step out: an agent leaves `agents` only by terminating or truncating and cannot come back
  (parallel_api_test asserts both), so a ParallelEnv whose `agents` were the current stage's agents would fail the
  official test. Here every agent stays live for the whole episode; each step returns every agent's observation of
  the current state, a reward for every agent (0 before a slot's last stage) and `infos[agent]["acting"]`, which is
  True for the agents whose actions the next step uses. The other agents' actions are ignored (they may be left out
  of the action dict), so a learner should drop those samples. A non-acting agent's observation is what it would
  see if it acted now (before the coordinator acts, a UE's CPU-share features assume an equal split). Causality
  holds: an agent's action is used only at its own stage, after it has observed everything its stage may see (a
  scheduler's table is all zero until the UEs have decided). A ParallelEnv whose step is a whole slot was rejected:
  it would take the schedulers' actions before the requests they order exist.

Rewards: every agent receives (w_qos * sum QoS - w_energy * sum energy) / N at the end of each slot. Episodes end
by truncation after `episode_slots` slots (never termination); the final observations are those of the (never
played) next slot, for bootstrapping.
"""

from __future__ import annotations

import copy
from os import PathLike
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import AECEnv, ParallelEnv

from mec.config import StudyConfig
from mec.envs import features
from mec.envs.gym_env import make_core
from mec.envs.mec_env import MECEnv
from mec.simulator import SlotResult

ConfigLike = StudyConfig | dict | str | PathLike | None


class _Views:
    """Every agent's observation of the current state. What MECEnv.step returned is kept; the other stages' views are
    computed on demand by MECEnv's own observation code with the stage switched (as MECEnv._final_observations does)."""

    def __init__(self, core: MECEnv):
        self.core = core
        self.stage_of = {agent: s for s, agents in enumerate(core.stages) for agent in agents}
        self._obs: dict[str, np.ndarray] = {}

    def update(self, obs: dict[str, np.ndarray]) -> None:
        self._obs = dict(obs)

    def __getitem__(self, agent: str) -> np.ndarray:
        if agent not in self._obs:
            self._obs.update(self.core.observe_stage(self.stage_of[agent]))
        return self._obs[agent]


class _MECPettingZoo:
    """What the AEC and parallel views share: the MECEnv core, agent ids, per-agent spaces, state."""

    def _setup(self, phase: int, n: int | None, config: ConfigLike, episode_slots: int | None) -> None:
        self.core = make_core(phase, n, config, episode_slots)
        core = self.core
        self.metadata = {"name": f"mec_phase{core.phase}_v0", "render_modes": [], "is_parallelizable": False}
        self.render_mode = None
        self.possible_agents = list(core.possible_agents)
        self.agents: list[str] = []
        # One space object per agent, so that seeding one agent's space does not reseed another's.
        self.observation_spaces = {a: copy.deepcopy(core.observation_spaces[a]) for a in self.possible_agents}
        self.action_spaces = {a: copy.deepcopy(core.action_spaces[a]) for a in self.possible_agents}
        self.state_space = gym.spaces.Box(-4.0, core.obs_high, (core.n_ue, len(features.STATE_FEATURES)), np.float32)
        self._views = _Views(core)

    def observation_space(self, agent: str) -> gym.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        """(N, 12) global slot state: every UE's features plus the decisions made so far in this slot."""
        return self.core.global_state()

    @property
    def acting_agents(self) -> list[str]:
        """The agents of the current stage (whose decisions the next stage step takes)."""
        return list(self.core.stages[self.core.stage]) if self.agents else []

    @property
    def last_result(self) -> SlotResult | None:
        """The last resolved slot (mec.simulator.SlotResult), None before the first slot ends."""
        return self.core.last_result

    def render(self) -> None:
        """Nothing to draw per step; schedules and metrics are plotted by mec.plotting."""
        return None

    def close(self) -> None:
        pass


class MECParallelEnv(_MECPettingZoo, ParallelEnv):
    """One step per decision stage; every agent live all episode, only `acting` agents' actions used."""

    def __init__(
        self, phase: int = 1, n: int | None = None, config: ConfigLike = None, episode_slots: int | None = None
    ):
        self._setup(phase, n, config, episode_slots)

    def _infos(self, done: bool) -> dict[str, dict[str, bool]]:
        acting = set() if done else set(self.core.stages[self.core.stage])
        return {a: {"acting": a in acting} for a in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, _ = self.core.reset(seed=seed)
        self._views.update(obs)
        self.agents = list(self.possible_agents)
        return {a: self._views[a] for a in self.agents}, self._infos(False)

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() after the episode ended: call reset()")
        acting = self.core.stages[self.core.stage]
        missing = [a for a in acting if a not in actions]
        if missing:
            raise ValueError(f"actions missing for acting agents {missing[:5]} (infos[agent]['acting'] is True)")
        obs, rewards, _, truncated, _ = self.core.step({a: actions[a] for a in acting})
        self._views.update(obs)
        done = bool(truncated["__all__"])
        agents = self.agents
        observations = {a: self._views[a] for a in agents}
        out_rewards = {a: float(rewards.get(a, 0.0)) for a in agents}
        terminations = {a: False for a in agents}
        truncations = {a: done for a in agents}
        infos = self._infos(done)
        if done:
            self.agents = []
        return observations, out_rewards, terminations, truncations, infos


class MECAECEnv(_MECPettingZoo, AECEnv):
    """The causal turn order as PettingZoo's agent-environment cycle: one agent per step, stage by stage."""

    def __init__(
        self, phase: int = 1, n: int | None = None, config: ConfigLike = None, episode_slots: int | None = None
    ):
        super().__init__()
        self._setup(phase, n, config, episode_slots)
        self._pending: dict[str, Any] = {}

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        obs, _ = self.core.reset(seed=seed)
        self._views.update(obs)
        self._pending = {}
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self.agent_selection = self.core.stages[self.core.stage][0]

    def observe(self, agent: str) -> np.ndarray:
        return self._views[agent]

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()
        stage = self.core.stages[self.core.stage]
        self._pending[agent] = action
        position = stage.index(agent)
        if position + 1 < len(stage):
            self.agent_selection = stage[position + 1]
        else:  # the stage is complete: apply it
            obs, rewards, _, truncated, _ = self.core.step(self._pending)
            self._pending = {}
            self._views.update(obs)
            for a, reward in rewards.items():
                self.rewards[a] = float(reward)
            if truncated["__all__"]:
                self.truncations = {a: True for a in self.agents}
            self.agent_selection = self.core.stages[self.core.stage][0]
        self._accumulate_rewards()


def parallel_env(
    phase: int = 1, n: int | None = None, config: ConfigLike = None, episode_slots: int | None = None
) -> MECParallelEnv:
    """Phase 1 (n = N UEs) or phase 2 (n = K clusters) as a ParallelEnv, one step per decision stage."""
    return MECParallelEnv(phase, n, config, episode_slots)


def env(phase: int = 1, n: int | None = None, config: ConfigLike = None, episode_slots: int | None = None) -> MECAECEnv:
    """Phase 1 (n = N UEs) or phase 2 (n = K clusters) as an AEC env, one agent per step in causal order."""
    return MECAECEnv(phase, n, config, episode_slots)
