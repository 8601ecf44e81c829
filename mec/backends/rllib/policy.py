"""Learned policies as `act(state) -> Decisions` over a batch of episodes: one forward pass per role and slot.

The role modules (mec.backends.rllib.modules) see exactly the features the environments give them
(mec.envs.features), in the same causal order: coordinator -> UEs -> schedulers; the scheduler module also gets
each row's cluster (the fleet observation's CLUSTER_KEY), which its set actor pools by and its per-row actor
ignores. The conversions from module actions to simulator decisions are the environment's own (mec.envs.mec_env),
so a learned policy is evaluated on the dynamics it was trained on. Whether the schedulers grant the spectrum
(scenario.spectrum_by = scheduler) is read from the scheduler module's action space, so a checkpoint carries it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns

from mec import physics
from mec.envs import features
from mec.envs.fleet import CLUSTER_KEY
from mec.envs.mec_env import cpu_weight_from_logits, spectrum_from_action
from mec.simulator import Decisions, SlotState, uplink

ROLE_OF_AGENT = {"coordinator": "coordinator", "ues": "ue", "schedulers": "scheduler"}


class LearnedPolicy:
    """Deterministic (or sampled, with `explore`) actions of trained role modules for every agent at once."""

    def __init__(self, modules: dict, scales: features.FeatureScales, name: str = "learned", explore: bool = False):
        self.modules = modules
        self.scales = scales
        self.name = name
        self.explore = explore
        self.grant = isinstance(modules["scheduler"].action_space, gym.spaces.Dict)

    def _forward(self, role: str, obs: np.ndarray, explore: bool, cluster: np.ndarray | None = None):
        module = self.modules[role]
        batch = {Columns.OBS: {"obs": torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))}}
        if cluster is not None:
            batch[Columns.OBS][CLUSTER_KEY] = torch.from_numpy(np.ascontiguousarray(cluster))
        with torch.no_grad():
            out = module.forward_exploration(batch) if explore else module.forward_inference(batch)
        actions = out[Columns.ACTIONS]
        if isinstance(actions, dict):
            return {k: v.numpy() for k, v in actions.items()}
        return actions.numpy()

    def act(self, state: SlotState) -> Decisions:
        return self._act(state, self.explore)

    def candidates(self, state: SlotState, k: int) -> Decisions:
        """K joint actions per slot for best-of-K (mec.best_of): row c * B + b holds candidate c of slot b; c = 0 is
        the deterministic action, exactly as `act` gives it (explore off), and the K - 1 others are sampled from the
        exploration distribution (torch's global generator: the caller seeds it) in one forward pass per role over
        all (K - 1) * B rows of the tiled slots."""
        from mec.best_of import tile_state  # noqa: PLC0415

        first = self._act(state, explore=False)
        if k == 1:
            return first
        sampled = self._act(tile_state(state, k - 1), explore=True)
        return Decisions(*(np.concatenate([getattr(first, name), getattr(sampled, name)])
                           for name in ("offload", "spectrum_weight", "priority", "cpu_weight")))  # fmt: skip

    def _act(self, state: SlotState, explore: bool) -> Decisions:
        n_b, n_k = state.batch_size, state.n_clusters
        if "coordinator" in self.modules and n_k > 1:
            logits = self._forward("coordinator", features.coordinator_features(state, self.scales), explore)
            cpu_weight = cpu_weight_from_logits(logits)
        else:
            cpu_weight = np.ones((n_b, n_k))
        cpu_share = physics.cpu_shares(cpu_weight, state.params.phi_min)
        ue = self._forward("ue", features.ue_features(state, cpu_share, self.scales), explore)
        offload = np.asarray(ue["offload"]) > 0.5
        # With the grant the schedulers see the upload ends of the equal split, then grant the weights themselves.
        spectrum = np.ones((n_b, state.n_ue)) if self.grant else spectrum_from_action(ue["spectrum"])
        _, upload_end = uplink(state, offload, spectrum)
        rows = features.scheduler_rows(state, offload, upload_end, cpu_share, self.scales)
        scheduler = self._forward("scheduler", rows, explore, state.cluster)
        if self.grant:
            spectrum = spectrum_from_action(scheduler["spectrum"]).reshape(n_b, state.n_ue)
            scheduler = scheduler["priority"]
        priority = np.asarray(scheduler, dtype=float).reshape(n_b, state.n_ue)
        return Decisions(offload, spectrum, priority, cpu_weight)
