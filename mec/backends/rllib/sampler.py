"""Batched sampling for RLlib: one env runner plays B fleet episodes together, as arrays.

`FleetSlots.play` resolves a batch of slot states in the study's causal stage order (coordinator -> UEs ->
schedulers, which with scenario.spectrum_by = scheduler also grant the spectrum) with one feature computation per
stage, one call of `act(role, obs, critic_state, cluster)` per stage (one forward pass of the role's module over
every row of every slot; `cluster`, each scheduler row's cluster, is given to the scheduler stage with
training.actor = set and is None otherwise), one call of the batched simulator kernel and, with marginal UE credit,
one kernel call over every offloading UE's counterfactual slot. Its observations, decisions, rewards and credits
are FleetEnv's (mec.envs.fleet) for the same episodes and actions; tests/test_sampler.py holds it to that.

`BatchedFleetEnvRunner` is an RLlib `MultiAgentEnvRunner` whose `sample()` plays `training.batch_episodes` whole
episodes at once and builds RLlib `MultiAgentEpisode`s from the arrays (one per episode, the same env steps,
observations, actions, rewards, infos and model outputs that stepping FleetEnv through RLlib's own runner would
record). Everything else is RLlib's: the Learner and its connectors (GAE), checkpoints, weight sync and remote env
runners (`num_env_runners`). Without carry-over (scenario.carry_over_queue off) no decision changes a later slot,
so every slot of the B episodes is one row of a single batch; with carry-over the B episodes advance slot by slot.

Randomness: episode seeds come from a numpy Generator seeded with RLlib's per-runner seed (config seed + worker
index) and drawn in the order FleetEnv's own reset draws them; action noise from torch's generator, which RLlib
seeds with the same seed. Their states, and that of numpy's global generator (RLlib's minibatch shuffles), are part
of the runner's state, so a restored checkpoint continues the very same streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from mec import physics
from mec.config import StudyConfig, config_from_dict
from mec.envs import features
from mec.envs.fleet import CLUSTER_KEY, CREDIT_KEY, FLEET_AGENT
from mec.envs.mec_env import cpu_weight_from_logits, spectrum_from_action
from mec.scenario import EpisodeBatch, PhaseSetup, sample_episodes
from mec.simulator import Decisions, SimParams, SlotResult, SlotState, local_counterfactual_rewards, resolve_slot
from mec.simulator import slot_block_state, uplink
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    SAMPLE_TIMER,
    WEIGHTS_SEQ_NO,
)

SAMPLER_STATE = "mec_sampler"


@dataclass
class StageRecord:
    """One role's part of a batch of slots: observations (R, rows, F), critic states (R, N, S), the actions as
    `act` returned them (kept for the episodes: what the module sampled, before any clipping) and, at the scheduler
    stage with training.actor = set, each row's cluster (R, N) (the fleet observation's CLUSTER_KEY; else None)."""

    obs: np.ndarray
    state: np.ndarray
    actions: Any
    extra: dict[str, np.ndarray]
    cluster: np.ndarray | None = None


RECORD_FIELDS = ("obs", "state", "actions", "extra", "cluster")


def slot_state(episodes: EpisodeBatch, params: SimParams, slot: int, server_free_s: np.ndarray) -> SlotState:
    """Slot `slot` of every episode (B rows), with the servers' carried-over availability."""
    return SlotState(
        slot=slot,
        data_bits=np.ascontiguousarray(episodes.data_bits[:, slot]),
        cycles=np.ascontiguousarray(episodes.cycles[:, slot]),
        deadline_s=np.ascontiguousarray(episodes.deadline_s[:, slot]),
        distance_m=episodes.distance_m,
        cpu_hz=episodes.cpu_hz,
        gain=episodes.gain,
        cluster=episodes.cluster,
        server_free_s=server_free_s,
        params=params,
    )


class FleetSlots:
    """The fleet view's stages as array operations over any batch of slot states."""

    def __init__(self, cfg: StudyConfig, setup: PhaseSetup):
        self.setup = setup
        self.scales = features.FeatureScales(cfg.scenario)
        self.has_coordinator = setup.phase == 2 and cfg.phase2.coordinator == "learned"
        self.marginal_credit = cfg.training.ue_credit == "marginal"
        self.row_clusters = cfg.training.actor == "set"  # FleetEnv's CLUSTER_KEY, as there
        self.grant = cfg.scenario.spectrum_by == "scheduler"  # the schedulers grant the spectrum, as in FleetEnv
        self.roles = (["coordinator"] if self.has_coordinator else []) + ["ue", "scheduler"]

    def _cluster(self, state: SlotState) -> np.ndarray | None:
        return state.cluster if self.row_clusters else None

    def _undecided(self, state: SlotState):
        n_b, n_ue = state.batch_size, state.n_ue
        return np.zeros((n_b, n_ue), dtype=bool), np.full((n_b, n_ue), np.nan)

    def first_observations(self, state: SlotState) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """{role: (obs, critic state, row clusters or None)} of every role before any decision of the slot
        (FleetEnv's observations of an episode's final, never played slot): equal CPU split, nothing offloaded."""
        equal = physics.cpu_shares(np.ones((state.batch_size, state.n_clusters)), self.setup.phi_min)
        offload, upload_end = self._undecided(state)
        ue = features.ue_features(state, equal, self.scales)
        critic = features.state_from_ue_features(ue, offload, upload_end, self.scales)
        rows = features.scheduler_rows(state, offload, upload_end, equal, self.scales)
        out = {"ue": (ue, critic, None), "scheduler": (rows, critic, self._cluster(state))}
        if self.has_coordinator:
            out["coordinator"] = (features.coordinator_features(state, self.scales), critic, None)
        return out

    def play(
        self, state: SlotState, act: Callable[[str, np.ndarray, np.ndarray, np.ndarray | None], tuple[Any, dict]]
    ) -> tuple[dict[str, StageRecord], Decisions, SlotResult, np.ndarray | None]:
        """Play every slot of `state` through the stages; `act(role, obs, critic_state, cluster) -> (actions,
        extra)`, `cluster` each scheduler row's cluster (training.actor = set) or None.

        Returns the stage records, the decisions, the resolved slots and (marginal credit) each UE's credit (R, N),
        float32, in the per-UE reward's units."""
        n_b, n_k, n_ue = state.batch_size, state.n_clusters, state.n_ue
        offload, upload_end = self._undecided(state)
        records: dict[str, StageRecord] = {}
        cpu_weight = np.ones((n_b, n_k))
        if self.has_coordinator:
            equal = physics.cpu_shares(cpu_weight, self.setup.phi_min)
            obs = features.coordinator_features(state, self.scales)
            critic = features.global_state(state, equal, offload, upload_end, self.scales)
            actions, extra = act("coordinator", obs, critic, None)
            records["coordinator"] = StageRecord(obs, critic, actions, extra)
            cpu_weight = cpu_weight_from_logits(np.asarray(actions).reshape(n_b, n_k))
        share = physics.cpu_shares(cpu_weight, self.setup.phi_min)

        ue = features.ue_features(state, share, self.scales)
        critic = features.state_from_ue_features(ue, offload, upload_end, self.scales)
        actions, extra = act("ue", ue, critic, None)
        records["ue"] = StageRecord(ue, critic, actions, extra)
        offload = np.asarray(actions["offload"]).reshape(n_b, n_ue) > 0.5
        if self.grant:  # the schedulers observe the equal split among the offloaders; their grant comes next
            spectrum = np.ones((n_b, n_ue))
        else:
            spectrum = spectrum_from_action(np.asarray(actions["spectrum"]).reshape(n_b, n_ue))
        _, upload_end = uplink(state, offload, spectrum)

        rows = features.scheduler_rows(state, offload, upload_end, share, self.scales)
        critic = features.state_from_ue_features(ue, offload, upload_end, self.scales)
        cluster = self._cluster(state)
        actions, extra = act("scheduler", rows, critic, cluster)
        records["scheduler"] = StageRecord(rows, critic, actions, extra, cluster)
        if self.grant:
            priority = np.asarray(actions["priority"], dtype=float).reshape(n_b, n_ue)
            spectrum = spectrum_from_action(np.asarray(actions["spectrum"]).reshape(n_b, n_ue))
        else:
            priority = np.asarray(actions, dtype=float).reshape(n_b, n_ue)

        decisions = Decisions(offload, spectrum, priority, cpu_weight)
        result = resolve_slot(state, decisions)
        credit = None
        if self.marginal_credit:
            counterfactual = local_counterfactual_rewards(state, decisions, actual=result.reward)
            credit = ((result.reward[:, None] - counterfactual) / n_ue).astype(np.float32)
        return records, decisions, result, credit


def _stack_time(parts: list):
    """Per-slot arrays (or dicts of them, or Nones) with B rows each -> (B, T, ...) arrays."""
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, dict):
        return {key: _stack_time([p[key] for p in parts]) for key in first}
    return np.stack(parts, axis=1)


def _by_episode(x, n_b: int, n_t: int):
    """(B * T, ...) rows (row b * T + t), or dicts of them (or None) -> (B, T, ...)."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {key: _by_episode(v, n_b, n_t) for key, v in x.items()}
    x = np.asarray(x)
    return x.reshape(n_b, n_t, *x.shape[1:])


def play_episodes(slots: FleetSlots, episodes: EpisodeBatch, params: SimParams, n_slots: int, carry_over: bool,
                  act) -> dict:  # fmt: skip
    """Play slots 0..n_slots-1 of every episode; the arrays of the episodes, each (B, T, ...):
    {role: StageRecord}, "reward" (B, T) per UE, "credit" (B, T, N) or None, and "final" {role: (obs, state,
    cluster or None)} of slot n_slots (B, ...)."""
    n_b = episodes.n_episodes
    if not carry_over:
        records, _, result, credit = slots.play(slot_block_state(episodes, params, n_slots), act)
        records = {role: StageRecord(*(_by_episode(getattr(r, f), n_b, n_slots) for f in RECORD_FIELDS))
                   for role, r in records.items()}  # fmt: skip
        reward = result.reward.reshape(n_b, n_slots)
        credit = None if credit is None else credit.reshape(n_b, n_slots, -1)
        final_free = np.zeros((n_b, params.n_clusters))
    else:
        free = np.zeros((n_b, params.n_clusters))
        per_slot = []
        for t in range(n_slots):
            rec, _, result, cr = slots.play(slot_state(episodes, params, t, free), act)
            free = result.server_free_next_s
            per_slot.append((rec, result.reward, cr))
        records = {
            role: StageRecord(*(_stack_time([getattr(p[0][role], f) for p in per_slot]) for f in RECORD_FIELDS))
            for role in per_slot[0][0]
        }  # fmt: skip
        reward = np.stack([p[1] for p in per_slot], axis=1)
        credit = None if per_slot[0][2] is None else np.stack([p[2] for p in per_slot], axis=1)
        final_free = free
    final = slots.first_observations(slot_state(episodes, params, n_slots, final_free))
    return {"records": records, "reward": reward / slots.setup.n_ue, "credit": credit, "final": final}


def _observation(obs: np.ndarray, state: np.ndarray, cluster: np.ndarray | None) -> dict[str, np.ndarray]:
    """A fleet agent's observation dict, as FleetEnv gives it (CLUSTER_KEY only where the scheduler has one)."""
    return {"obs": obs, "state": state} if cluster is None else {"obs": obs, "state": state, CLUSTER_KEY: cluster}


def _index(x, b: int, t: int):
    if isinstance(x, dict):
        return {key: v[b, t] for key, v in x.items()}
    return x[b, t]


def build_episode(played: dict, b: int, roles: list[str], agent_spaces: tuple[dict, dict], mapping_fn,
                  extra_common: dict):  # fmt: skip
    """The MultiAgentEpisode of episode b: per slot one env step per stage (only the acting fleet agent observes),
    the slot's reward to every agent at the last stage, and every agent's observation of slot T at the end
    (truncated), the credit of slot t in the `ues` agent's info of its next observation: FleetEnv's record."""
    records, reward, credit, final = played["records"], played["reward"], played["credit"], played["final"]
    agents = [FLEET_AGENT[role] for role in roles]
    n_t = reward.shape[1]
    observations, actions, rewards, infos, extras = [], [], [], [], []
    for t in range(n_t):
        for role, agent in zip(roles, agents):
            rec = records[role]
            cluster = None if rec.cluster is None else rec.cluster[b, t]
            observations.append({agent: _observation(rec.obs[b, t], rec.state[b, t], cluster)})
            info = {}
            if agent == "ues" and credit is not None and t > 0:
                info = {"ues": {CREDIT_KEY: credit[b, t - 1]}}
            infos.append(info)
            actions.append({agent: _index(rec.actions, b, t)})
            extras.append({agent: {**{k: v[b, t] for k, v in rec.extra.items()}, **extra_common}})
            rewards.append({a: float(reward[b, t]) for a in agents} if role == roles[-1] else {})
    observations.append({agent: _observation(*(None if x is None else x[b] for x in final[role]))
                         for role, agent in zip(roles, agents)})  # fmt: skip
    infos.append({"ues": {CREDIT_KEY: credit[b, n_t - 1]}} if credit is not None else {})
    done = {agent: True for agent in agents} | {"__all__": True}
    episode = MultiAgentEpisode(
        observations=observations,
        observation_space=agent_spaces[0],
        infos=infos,
        actions=actions,
        action_space=agent_spaces[1],
        rewards=rewards,
        terminateds={agent: False for agent in agents} | {"__all__": False},
        truncateds=done,
        extra_model_outputs=extras,
        len_lookback_buffer=0,
        agent_to_module_mapping_fn=mapping_fn,
    )
    return episode


class BatchedFleetEnvRunner(MultiAgentEnvRunner):
    """A MultiAgentEnvRunner over the fleet env whose sample() plays `training.batch_episodes` whole episodes
    together as arrays (see the module docstring)."""

    def __init__(self, config, **kwargs):
        super().__init__(config=config, **kwargs)
        env_config = dict(self.config.env_config)
        cfg = env_config["config"]
        self.study: StudyConfig = cfg if isinstance(cfg, StudyConfig) else config_from_dict(cfg)
        t = self.study.training
        self.setup = PhaseSetup.from_config(self.study, int(env_config["phase"]), int(env_config["n"]))
        self.episode_slots = int(env_config.get("episode_slots", t.episode_slots))
        self.params = SimParams.from_config(self.study, self.setup)
        self.slots = FleetSlots(self.study, self.setup)
        self.batch_episodes = batch_episodes(self.study)
        self.episode_rng = np.random.default_rng(self._seed)

    def _act(self, explore: bool):
        def act(role, obs, critic_state, cluster):
            module = self.module[role]
            batch = {Columns.OBS: {"obs": torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))}}
            if cluster is not None:
                batch[Columns.OBS][CLUSTER_KEY] = torch.from_numpy(np.ascontiguousarray(cluster))
            with torch.no_grad():
                out = module.forward_exploration(batch) if explore else module.forward_inference(batch)
            actions = out[Columns.ACTIONS]
            actions = {k: v.numpy() for k, v in actions.items()} if isinstance(actions, dict) else actions.numpy()
            extra = {
                Columns.ACTION_LOGP: out[Columns.ACTION_LOGP].numpy(),
                Columns.ACTION_DIST_INPUTS: out[Columns.ACTION_DIST_INPUTS].numpy(),
            }
            return actions, extra

        return act

    @override(MultiAgentEnvRunner)
    def sample(self, *, num_timesteps=None, num_episodes=None, explore=None, random_actions=False,
               force_reset=False):  # fmt: skip
        if random_actions:
            raise ValueError("random_actions: not supported by the batched fleet sampler; allowed False")
        if explore is None:
            explore = self.config.explore
        n_episodes = max(int(num_episodes or 0), self.batch_episodes)
        with self.metrics.log_time(SAMPLE_TIMER):
            seeds = [int(self.episode_rng.integers(2**63 - 1)) for _ in range(n_episodes)]
            # One slot more than is played: the episodes' final observations (for bootstrapping).
            drawn = sample_episodes(self.study.scenario, self.setup, self.episode_slots + 1, seeds)
            played = play_episodes(self.slots, drawn, self.params, self.episode_slots,
                                   self.study.scenario.carry_over_queue, self._act(explore))  # fmt: skip
            unwrapped = self.env.envs[0].unwrapped
            spaces = (
                {a: unwrapped.get_observation_space(a) for a in unwrapped.possible_agents},
                {a: unwrapped.get_action_space(a) for a in unwrapped.possible_agents},
            )
            common = {WEIGHTS_SEQ_NO: self._weights_seq_no}
            episodes = [
                build_episode(played, b, self.slots.roles, spaces, self.config.policy_mapping_fn, common)
                for b in range(n_episodes)
            ]
            for episode in episodes:
                episode.to_numpy()
            self._log_sampled(episodes)
        self._done_episodes_for_metrics.extend(episodes)
        return episodes

    def _log_sampled(self, episodes) -> None:
        env_steps = sum(e.env_steps() for e in episodes)
        self.num_env_steps_sampled_lifetime += env_steps
        m = self.metrics
        m.log_value(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
        m.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True)
        m.log_value(NUM_EPISODES, len(episodes), reduce="sum")
        m.log_value(NUM_EPISODES_LIFETIME, len(episodes), reduce="lifetime_sum")
        for agent, sa in episodes[0].agent_episodes.items():
            steps = len(sa) * len(episodes)
            m.log_value((NUM_AGENT_STEPS_SAMPLED, str(agent)), steps, reduce="sum")
            m.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, str(agent)), steps, reduce="lifetime_sum")
            m.log_value((NUM_MODULE_STEPS_SAMPLED, sa.module_id), steps, reduce="sum")
            m.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, sa.module_id), steps, reduce="lifetime_sum")

    @override(MultiAgentEnvRunner)
    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        # The generators the next iteration draws from: this runner's episode seeds, torch's (action noise) and
        # numpy's global one (RLlib's minibatch shuffles, in the learner of this same process when it is local).
        state[SAMPLER_STATE] = {
            "episode_rng": self.episode_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state().numpy().copy(),
            "numpy_global": np.random.get_state(),
        }
        return state

    @override(MultiAgentEnvRunner)
    def set_state(self, state) -> None:
        super().set_state(state)
        if SAMPLER_STATE in state:
            self.episode_rng.bit_generator.state = state[SAMPLER_STATE]["episode_rng"]
            torch.set_rng_state(torch.from_numpy(np.asarray(state[SAMPLER_STATE]["torch_rng"], dtype=np.uint8)))
            np.random.set_state(state[SAMPLER_STATE]["numpy_global"])



def batch_episodes(cfg: StudyConfig) -> int:
    """Episodes per sample() call of one env runner (training.batch_episodes; 0: the runner's share of the batch)."""
    t = cfg.training
    if t.batch_episodes:
        return t.batch_episodes
    return t.train_batch_slots // (t.episode_slots * max(1, t.num_env_runners))
