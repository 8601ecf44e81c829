"""The fleet view of the same environment: one RLlib agent per role, for training.

Phase 1 agents: `ues` (all N UEs), `schedulers` (the server); phase 2: `coordinator`, `ues`, `schedulers` (all K
cluster schedulers). A fleet agent's observation is {"obs": the role's table, "state": the global slot state for
the centralised critic}; its action holds one decision per UE / cluster. The schedulers' rows are the N UEs
themselves (row i = UE i, all zero unless it offloaded), unpadded: the network is the same for every cluster's
scheduler, so no padding is computed. With training.actor = "set" a scheduler row's output also depends on the
other rows of its own cluster, so the schedulers' observation carries CLUSTER_KEY too: (N,) the cluster of each row
(phase 1: all 0); with the per-row actor it is left out (nothing reads it). The learner takes one PPO probability
ratio per row (mec.backends.rllib.modules), so every UE decision is still its own PPO sample; grouping only saves
RLlib's per-agent bookkeeping (see docs/design.md, "One RLlib agent per role").
The dynamics are MECEnv's own array-level core: there is no second copy.

With scenario.spectrum_by = "scheduler" the `ues` action is {"offload"} alone and the `schedulers` action is
{"priority", "spectrum"}, a priority and a granted spectrum weight per row (mec.envs.mec_env).

With training.ue_credit = "marginal" the `ues` agent's info, delivered with its next observation, holds
CREDIT_KEY: (N,) each UE's marginal contribution to the slot just played, (R(a) - R(a with that UE local)) / N in
the per-agent reward's units (0 for UEs that ran locally). The learner uses it as the UE rows' advantage.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from mec.envs import features
from mec.envs.mec_env import LOGIT_BOUND, SPECTRUM_LOW, MECEnv, scheduler_action_space
from mec.simulator import local_counterfactual_rewards

# Info key of the UEs' marginal credit (training.ue_credit = "marginal"); read by
# mec.backends.rllib.modules.MarginalCredit.
CREDIT_KEY = "mec_credit"
# Observation key of the schedulers' row clusters (training.actor = "set"); read by mec.backends.rllib.modules.
CLUSTER_KEY = "cluster"

FLEET_AGENT = {"coordinator": "coordinator", "ue": "ues", "scheduler": "schedulers"}


class FleetEnv(MECEnv):
    def __init__(self, env_config: dict[str, Any] | None = None):
        super().__init__(env_config)
        n, k = self.n_ue, self.n_k
        state = gym.spaces.Box(-4.0, self.obs_high, (n, len(features.STATE_FEATURES)), np.float32)

        def obs(shape, **more):
            table = gym.spaces.Box(-4.0, self.obs_high, shape, np.float32)
            return gym.spaces.Dict({"obs": table, "state": state, **more})

        self.cluster_key = self.cfg.training.actor == "set"
        row_clusters = {CLUSTER_KEY: gym.spaces.Box(0, k - 1, (n,), np.int64)} if self.cluster_key else {}
        self.observation_spaces = {
            "ues": obs((n, len(features.UE_FEATURES))),
            "schedulers": obs((n, len(features.SCHEDULER_FEATURES)), **row_clusters),
        }
        self.action_spaces = {
            "ues": gym.spaces.Dict(
                {"offload": gym.spaces.MultiBinary(n)}
                | ({} if self.grant else {"spectrum": gym.spaces.Box(SPECTRUM_LOW, 1.0, (n,), np.float32)})
            ),
            "schedulers": scheduler_action_space(n, self.grant),
        }
        if self.has_coordinator:
            self.observation_spaces["coordinator"] = obs((k, len(features.COORDINATOR_FEATURES)))
            self.action_spaces["coordinator"] = gym.spaces.Box(-LOGIT_BOUND, LOGIT_BOUND, (k,), np.float32)
        self.possible_agents = [a for a in ("coordinator", "ues", "schedulers") if a in self.action_spaces]
        self.agents = list(self.possible_agents)
        self.marginal_credit = self.cfg.training.ue_credit == "marginal"
        self._credit: np.ndarray | None = None

    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        if self.role == "scheduler":
            state = self.sim.state()
            obs = features.scheduler_rows(state, self._offload, self._upload_end, self._cpu_share(), self.scales)[0]
            if self.cluster_key:
                return {"schedulers": {"obs": obs, "state": self.global_state(), CLUSTER_KEY: state.cluster[0]}}
        else:
            obs = self.role_observation()
        return {FLEET_AGENT[self.role]: {"obs": obs, "state": self.global_state()}}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._credit = None
        return super().reset(seed=seed, options=options)

    def _with_credit(self, step: tuple) -> tuple:
        """Hand the pending credit to the `ues` agent with its next observation."""
        obs, infos = step[0], step[-1]
        if self._credit is not None and "ues" in obs:
            infos = {**infos, "ues": {CREDIT_KEY: self._credit}}
            self._credit = None
        return (*step[:-1], infos)

    def step(self, action_dict: dict[str, Any]):
        agent = FLEET_AGENT[self.role]
        if agent not in action_dict:
            raise ValueError(f"action missing for agent {agent!r} of the current stage")
        action = action_dict[agent]
        if agent == "coordinator":
            self.apply_coordinator(action)
        elif agent == "ues":
            self.apply_ues(action["offload"], None if self.grant else action["spectrum"])
        else:
            state = self.sim.state()
            if self.grant:
                reward = self.apply_priorities(action["priority"], action["spectrum"])
            else:
                reward = self.apply_priorities(action)
            if self.marginal_credit:  # every other decision as resolved, the granted spectrum weights included
                credit = self.last_result.reward - local_counterfactual_rewards(state, self.last_decisions)[0]
                self._credit = (credit / self.n_ue).astype(np.float32)
            return self._with_credit(self._after_slot(reward, self.possible_agents, self._observe))
        return self._with_credit((self._observe(), {}, {"__all__": False}, {"__all__": False}, {}))
