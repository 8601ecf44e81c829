"""Best-of-K decisions: K joint actions of a learned policy per slot, each scored by the simulator, the best kept.

For every slot of a batch, `BestOfKPolicy` draws K candidate joint actions from a learned policy: the first is the
policy's own deterministic action, the other K - 1 are sampled from its exploration distribution. The samples come
from one forward pass per role over all of them (the K - 1 times tiled slots, `tile_state`), the deterministic
action from the policy's own pass, bit for bit the action it takes alone (a pass over a batch of another size may
round differently). All K are resolved at once on the K-times tiled slot (one call of the simulator's kernel,
mec.simulator.resolve_slot), and each slot keeps the candidate with the highest reward (ties to the deterministic
one, so the result is never below the deterministic action's reward on the same slot, exactly).

This is a centralised decision, like the local search and the oracle: scoring a candidate needs every task of the
slot. Its results are reported under their own name (`best_of_name`: "mappo-best-of-16") and kind
(CENTRAL_KIND, mec.aggregate), beside the learned policy's own decisions, never instead of them.

Randomness: every act call seeds the sampling afresh from the policy's own generator (seeded by `seed`) inside
torch.random.fork_rng, so the same seed gives the same decisions for the same calls, and torch's global generator
is left as it was.

A learned policy takes part through `candidates(state, k) -> Decisions`: the decisions of K * B rows, row
c * B + b holding candidate c of slot b of `state` (c = 0 its `act`, the others sampled from torch's global
generator, in one forward pass per role: mec.backends.rllib.policy.LearnedPolicy; SB3's joint policy,
mec.backends.sb3.SB3Policy, samples all of them from the one pass that gives its deterministic action).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Protocol

import numpy as np

from mec.simulator import Decisions, SlotState, resolve_slot

# The most UE rows (candidates x slots x UEs) one act call puts through the networks and the kernel at once: with
# 64-wide hidden layers about 70 MB per activation. A batch of slots beyond it is decided in chunks of slots (the
# evaluation's batches, a slot of every episode at a time, stay far below it).
MAX_CANDIDATE_ROWS = 2**18
CENTRAL_KIND = "learned-central"  # the kind of a best-of-K policy in the summary tables (mec.aggregate)
_SUFFIX = re.compile(r"-best-of-(\d+)$")


def best_of_name(name: str, k: int) -> str:
    """The name of the best-of-`k` decisions of the learned policy `name` in every table and figure."""
    return f"{name}-best-of-{k}"


def best_of_k(name: str) -> int | None:
    """K of a best-of-K policy's name ("mappo-best-of-16" -> 16); None for any other name."""
    match = _SUFFIX.search(str(name))
    return int(match.group(1)) if match else None


def is_best_of(name: str) -> bool:
    return best_of_k(name) is not None


class CandidatePolicy(Protocol):
    name: str

    def act(self, state: SlotState) -> Decisions: ...

    def candidates(self, state: SlotState, k: int) -> Decisions: ...


def tile_state(state: SlotState, k: int) -> SlotState:
    """The slots of `state` repeated k times as one batch of k * B slots: row c * B + b is slot b."""
    tiled = {}
    for field in dataclasses.fields(state):
        value = getattr(state, field.name)
        if isinstance(value, np.ndarray):
            value = np.ascontiguousarray(np.tile(value, (k,) + (1,) * (value.ndim - 1)))
        tiled[field.name] = value
    return SlotState(**tiled)


def select(decisions: Decisions, rows: np.ndarray) -> Decisions:
    """The decisions of the given rows of a batch."""
    return Decisions(*(np.asarray(getattr(decisions, f.name))[rows] for f in dataclasses.fields(Decisions)))


class BestOfKPolicy:
    """act(state): per slot the best of K candidate joint actions of `policy` (see the module doc).

    k = 1 is the policy's own deterministic action. `seed` seeds the sampling of the candidates (an int or a
    sequence of ints, as numpy's SeedSequence takes them)."""

    def __init__(self, policy: CandidatePolicy, k: int, seed: int | tuple[int, ...] = 0, name: str | None = None):
        if int(k) < 1:
            raise ValueError(f"best-of-K with K = {k}: allowed K >= 1")
        self.policy = policy
        self.k = int(k)
        self.name = name or best_of_name(policy.name, self.k)
        self._seeds = np.random.default_rng(np.random.SeedSequence(seed))
        self.last_rewards: np.ndarray | None = None  # (K, B) rewards of the last call's candidates

    def candidates(self, state: SlotState) -> tuple[SlotState, Decisions]:
        """The K-times tiled slot and the K * B candidate decisions on it (one forward pass per role)."""
        import torch  # noqa: PLC0415 - only learned policies are sampled

        seed = int(self._seeds.integers(2**63))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # the CPU generator, the one fork_rng saves and restores
            decisions = self.policy.candidates(state, self.k)
        return tile_state(state, self.k), decisions

    def act(self, state: SlotState) -> Decisions:
        if self.k == 1:
            return self.policy.act(state)
        n_b = state.batch_size
        per_chunk = max(1, MAX_CANDIDATE_ROWS // (self.k * state.n_ue))
        if n_b <= per_chunk:
            return self._best(state)
        # A batch too large for all its candidates at once (e.g. every slot of an evaluation, timed as one batch by
        # mec.decision_time): slots in chunks, each chunk's candidates as one batch.
        parts, rewards = [], []
        for start in range(0, n_b, per_chunk):
            rows = np.arange(start, min(start + per_chunk, n_b))
            parts.append(self._best(_rows_of(state, rows)))
            rewards.append(self.last_rewards)
        self.last_rewards = np.concatenate(rewards, axis=1)
        return Decisions(*(np.concatenate([getattr(part, f.name) for part in parts])
                           for f in dataclasses.fields(Decisions)))  # fmt: skip

    def _best(self, state: SlotState) -> Decisions:
        tiled, decisions = self.candidates(state)
        n_b = state.batch_size
        reward = resolve_slot(tiled, decisions).reward.reshape(self.k, n_b)  # one kernel call for every candidate
        self.last_rewards = reward
        best = np.argmax(reward, axis=0)  # the first maximum: ties go to candidate 0, the deterministic action
        return select(decisions, best * n_b + np.arange(n_b))


def _rows_of(state: SlotState, rows: np.ndarray) -> SlotState:
    return SlotState(**{f.name: (getattr(state, f.name)[rows] if isinstance(getattr(state, f.name), np.ndarray)
                                 else getattr(state, f.name)) for f in dataclasses.fields(state)})  # fmt: skip


def evaluated_best_of(policy: CandidatePolicy, k: int, evaluation_seed: int) -> BestOfKPolicy:
    """The best-of-k decisions of `policy` as the study evaluates them (the workflow's evaluate_policy and `mec
    evaluate --checkpoint --best-of K`): its sampling seeded from the evaluation episodes' seed and K."""
    return BestOfKPolicy(policy, k, seed=(int(evaluation_seed), int(k)))
