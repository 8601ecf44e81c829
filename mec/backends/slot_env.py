"""A slot-per-step joint-action view of phase 1 and phase 2: one gymnasium step plays one whole slot.

This is the view the Stable-Baselines3 backend trains on (mec.backends.sb3); it needs no RL library.

    from mec.backends.slot_env import make_slot_env
    env = make_slot_env(phase=2, n=4, config={"phase2": {"n_users": 20}}, episode_slots=10)

Why a slot per step when the stage-per-step view exists (mec.envs.gym_env): there, the slot's reward arrives on its
last stage, so a single-agent learner with one discount per step either cuts the earlier stages off from their
reward (the study trains with gamma = 0) or needs gamma = 1 within a slot, which off-the-shelf PPO cannot express.
Here one step is one slot and its reward is the slot's reward, so training.gamma applies per slot exactly as in
the RLlib backend, and a learner takes one step (one forward pass) per slot instead of two or three.

What the joint decision loses by being taken at the slot's start: nothing. The scheduler's inputs in the stage view
(which UEs offloaded, their upload end times and slack) are functions of the slot-start state and of the joint
policy's own offload and spectrum choices, and scores of UEs that run locally are ignored; so a priority per UE
chosen together with the offload decisions can express every schedule the stage view can. The coordinator's CPU
split is chosen at the same time, from the same per-cluster load table it sees in the stage view. For the same
reason scenario.spectrum_by does not apply here: whether the UEs request the spectrum weights or the schedulers
grant them, the joint policy chooses them with everything else, and the view (observation, action, dynamics) is the
same under either.

observation: Box(-4, max(8, K), (D,)) float32, the concatenation of
    ues          (N, F) every UE's features (mec.envs.features.UE_FEATURES) at the slot's start, with the equal
                 CPU split (the coordinator has not split it yet), flattened row by row
    clusters     (N, K) one-hot cluster of each UE (phase 2 only): which coordinator row a UE belongs to
    coordinator  (K, 6) the coordinator's per-cluster table (phase 2 only; also without a learned coordinator)
action: Box(-1, 1, (A,)) float32, the concatenation of
    coordinator  (K,) CPU-share logits / 5 (phase 2 with phase2.coordinator = learned only): logits = 5 * a,
                 phi = phi_min + (1 - K * phi_min) * softmax(logits), as the coordinator agent's action
    offload      (N,) a_i > 0 offloads UE i's task
    spectrum     (N,) spectrum weight w_i = 0.01 + (a_i + 1) / 2 * 0.99 (used only by offloading UEs)
    priority     (N,) server priority of UE i's task, higher runs first (ties: lower UE index first)
reward: the slot's (w_qos * sum QoS - w_energy * sum energy) / N, the number every RLlib agent receives.
Episodes end by truncation after `episode_slots` slots; the final observation is the next (never played) slot.

The dynamics are the per-agent env's array-level core (MECEnv.apply_coordinator, apply_ues, apply_priorities),
reached through the stage-per-step gymnasium env this view wraps, so reset(seed=s) draws exactly the episode
`mec/Phase<P>-v0` draws for s. `SlotCodec` holds the observation and action layout once: the env encodes one
episode with it, and mec.backends.sb3's batched policy encodes every evaluation episode with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import gymnasium as gym
import numpy as np

from mec import physics
from mec.config import StudyConfig
from mec.envs import features
from mec.envs.gym_env import MECGymEnv
from mec.envs.mec_env import LOGIT_BOUND, SPECTRUM_LOW, cpu_weight_from_logits, spectrum_from_action
from mec.scenario import PhaseSetup
from mec.simulator import Decisions, SlotState


@dataclass(frozen=True)
class JointAction:
    """A decoded batch of joint actions (B episodes): the per-role actions the env's core takes."""

    coordinator_logits: np.ndarray | None  # (B, K), None without a learned coordinator
    offload: np.ndarray  # (B, N) bool
    spectrum: np.ndarray  # (B, N) spectrum weights in [SPECTRUM_LOW, 1]
    priority: np.ndarray  # (B, N)


class SlotCodec:
    """Observation and action layout of the slot-per-step view for one (config, phase, size); see the module doc."""

    def __init__(self, cfg: StudyConfig, setup: PhaseSetup):
        self.phase, self.n_ue, self.n_k = setup.phase, setup.n_ue, setup.n_clusters
        self.phi_min = setup.phi_min
        self.has_coordinator = setup.phase == 2 and cfg.phase2.coordinator == "learned"
        self.scales = features.FeatureScales(cfg.scenario)
        n, k = self.n_ue, self.n_k
        obs_parts = [("ues", n * len(features.UE_FEATURES))]
        if self.phase == 2:
            obs_parts += [("clusters", n * k), ("coordinator", k * len(features.COORDINATOR_FEATURES))]
        act_parts = [("coordinator", k)] if self.has_coordinator else []
        act_parts += [("offload", n), ("spectrum", n), ("priority", n)]
        self.observation_parts, self.action_parts = obs_parts, act_parts
        self._act_slices = {}
        start = 0
        for name, size in act_parts:
            self._act_slices[name] = slice(start, start + size)
            start += size
        obs_size = sum(size for _, size in obs_parts)
        self.observation_space = gym.spaces.Box(-4.0, float(max(8, k)), (obs_size,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (start,), np.float32)

    def observe(self, state: SlotState) -> np.ndarray:
        """(B, D) observations of a batch of slot-start states."""
        n_b = state.batch_size
        equal_share = physics.cpu_shares(np.ones((n_b, self.n_k)), self.phi_min)
        parts = [features.ue_features(state, equal_share, self.scales).reshape(n_b, -1)]
        if self.phase == 2:
            one_hot = np.eye(self.n_k, dtype=np.float32)[state.cluster]
            parts += [one_hot.reshape(n_b, -1), features.coordinator_features(state, self.scales).reshape(n_b, -1)]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def decode(self, action: np.ndarray) -> JointAction:
        """(B, A) actions in [-1, 1] (clipped) -> the per-role actions."""
        a = np.clip(np.asarray(action, dtype=float).reshape(-1, self.action_space.shape[0]), -1.0, 1.0)
        part = {name: a[:, s] for name, s in self._act_slices.items()}
        return JointAction(
            coordinator_logits=LOGIT_BOUND * part["coordinator"] if self.has_coordinator else None,
            offload=part["offload"] > 0.0,
            spectrum=spectrum_from_action(SPECTRUM_LOW + (part["spectrum"] + 1.0) / 2.0 * (1.0 - SPECTRUM_LOW)),
            priority=part["priority"],
        )

    def decisions(self, action: np.ndarray) -> Decisions:
        """(B, A) actions -> the simulator's Decisions, by the env core's own conversions."""
        joint = self.decode(action)
        n_b = joint.offload.shape[0]
        if joint.coordinator_logits is not None:
            cpu_weight = cpu_weight_from_logits(joint.coordinator_logits)
        else:
            cpu_weight = np.ones((n_b, self.n_k))
        return Decisions(joint.offload, joint.spectrum, joint.priority, cpu_weight)


class SlotJointEnv(gym.Wrapper):
    """One step = one slot of the wrapped stage-per-step MECGymEnv, with the joint action of every agent."""

    def __init__(self, env: MECGymEnv):
        super().__init__(env)
        core = env.unwrapped.core
        self.codec = SlotCodec(core.cfg, core.setup)
        if self.codec.has_coordinator != core.has_coordinator:
            raise ValueError(f"coordinator stage {core.has_coordinator} but codec {self.codec.has_coordinator}")
        self.observation_space = self.codec.observation_space
        self.action_space = self.codec.action_space

    def _observe(self) -> np.ndarray:
        return self.codec.observe(self.env.unwrapped.core.sim.state())[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.env.reset(seed=seed, options=options)
        return self._observe(), {}

    def step(self, action: np.ndarray):
        core = self.env.unwrapped.core
        joint = self.codec.decode(action)
        if joint.coordinator_logits is not None:
            core.apply_coordinator(joint.coordinator_logits[0])
        # The joint action's spectrum weights, given at the stage that sets them (scenario.spectrum_by): the same
        # Decisions either way.
        core.apply_ues(joint.offload[0], None if core.grant else joint.spectrum[0])
        reward = core.apply_priorities(joint.priority[0], joint.spectrum[0] if core.grant else None)
        return self._observe(), reward, False, core.episode_over, {}


def make_slot_env(
    phase: int = 1,
    n: int | None = None,
    config: StudyConfig | dict | str | PathLike | None = None,
    episode_slots: int | None = None,
) -> SlotJointEnv:
    """The slot-per-step view of phase 1 (n = N UEs) or phase 2 (n = K clusters); arguments as MECGymEnv's."""
    return SlotJointEnv(MECGymEnv(phase, n, config, episode_slots))
