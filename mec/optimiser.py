"""A full-information per-slot optimiser: local search over one slot's decisions, seeded from the heuristics.

`LocalSearchPolicy` ("local-search") is a reference, not an agent: like the oracle it sees every task of the slot
and maximises the slot's own reward. Unlike the oracle it scales to phase 2 (100 UEs, K clusters) and also searches
the spectrum and CPU splits, at the price of optimality: it stops at a local optimum (or at its evaluation budget).

For each episode of the batch:
1. Seeds. Every deterministic heuristic of the phase (mec.policies.seed_policy_names: no `random` part) acts on the
   slot, and in phase 2 also one "focus" seed per cluster k (all free CPU to k, greedy offload for those shares,
   EDF, equal spectrum). The `N_STARTS` seeds with the highest distinct slot rewards each start a search; the best
   end point is kept. The best seed is always a start, so the result is never below any deterministic heuristic on any slot.
2. First-improvement hill climbing from each start. Passes over these neighbourhoods, each move kept iff it raises
   the slot reward (by more than a relative 1e-12, so float noise cannot cycle), until a whole pass improves nothing
   or the start has spent `max_evaluations` reward evaluations:
   - flip: one UE's offload bit; a UE turned on keeps its priority, then tries every place in its cluster's order;
   - exchange: one offloading UE goes local while one local UE offloads (same load, other task);
   - order: move one offloader to another place in its cluster's order; swap two offloaders of one cluster;
   - CPU (phase 2): move a fraction `CPU_STEPS` of the total CPU weight from one cluster to another (at most all the
     donor has), alone and together with turning on a local UE of the receiving cluster (a starved cluster gains
     nothing from either move alone);
   - spectrum (`search_spectrum`): scale one offloader's spectrum weight by `SPECTRUM_FACTORS`. The heuristics and
     the oracle keep an equal split, so with it the search can beat the phase-1 "oracle"; the registered policy
     (`local-search`) searches it in both phases, and with it off the search covers exactly the oracle's space.
   Moves are visited in a fixed order (UEs and clusters by index) and nothing is random: the same state always
   gives the same decisions (the `seed` of mec.evaluation.make_policy is not used).

Every candidate is scored by the simulator's own compiled kernel (`mec.simulator.resolve_kernel`) on the episode's
slot, so the reward the search reports is the reward `resolve_slot` gives its decisions, to the last bit. It is
myopic like the oracle: under `carry_over_queue` it ignores the backlog it leaves to the next slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from mec import baselines
from mec.policies import seed_policy_names
from mec.simulator import N_TASK_COLUMNS, Decisions, SlotState, resolve_kernel, resolve_slot

# Reward evaluations one search (one start of one episode-slot) may spend. At the default config a phase-2 search
# converges in ~6-7k evaluations of ~1 us (N = 100): the cap only bounds the worst case (~20-40 ms per start).
MAX_EVALUATIONS = 20_000
# Searches per episode-slot, from the best seeds with distinct rewards: a second and third start add ~0.1 reward per
# slot at the default config (they tend to favour other clusters with the CPU) for 3x the time.
N_STARTS = 3
# Fractions of the total CPU weight moved between two clusters in one move (capped at what the donor has).
CPU_STEPS = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
# Factors one offloader's spectrum weight is scaled by in one move.
SPECTRUM_FACTORS = (2.0, 0.5, 1.25, 0.8)
# Bounds of a spectrum weight (the seeds' are 1): without them a UE's weight could creep towards 0 or inf by
# ever smaller gains.
SPECTRUM_WEIGHT_RANGE = (1e-3, 1e3)
# Relative improvement a move needs to be kept.
_REL_TOL = 1e-12


@numba.njit(cache=True)
def _rerank(pr):
    """Replace the priorities of row 0 by 1..N in the same order (ties to the lower index, as the kernel breaks
    them): the schedule is unchanged and every gap can take a value (rank + 0.5) between two neighbours."""
    n = pr.shape[1]
    order = np.argsort(pr[0, ::-1].copy(), kind="mergesort")  # reversed, so ties put the higher index first
    for r in range(n):
        pr[0, n - 1 - order[r]] = r + 1.0


# The search works on one candidate at a time: (1, N) and (1, K) rows. `slot` bundles the slot's state, the
# simulator's parameters and the kernel's output buffers; off, sw, pr, cw are the candidate's decisions.


@numba.njit(cache=True)
def _score(slot, off, sw, pr, cw):
    """The candidate's slot reward, by the simulator's own kernel."""
    params, db, cy, dl, gn, ch, cl, sf, carry_over, slot_s, tasks, share, free_next, rew = slot
    resolve_kernel(params, db, cy, dl, gn, ch, cl, sf, off, sw, pr, cw, carry_over, slot_s, tasks, share,
                   free_next, rew)  # fmt: skip
    return rew[0]


@numba.njit(cache=True)
def _better(r, best):
    return r > best + _REL_TOL * (1.0 + abs(best))


@numba.njit(cache=True)
def _insertion_slots(i, off, cl, pr, slots):
    """Priorities that put UE i just above each other offloader of its cluster, or below all of them (count out)."""
    m = 0
    low = np.inf
    for j in range(off.shape[1]):
        if j != i and off[0, j] and cl[0, j] == cl[0, i]:
            slots[m] = pr[0, j] + 0.5
            m += 1
            low = min(low, pr[0, j])
    if m > 0:
        slots[m] = low - 0.5
        m += 1
    return m


@numba.njit(cache=True)
def _flip_pass(slot, off, sw, pr, cw, slots, best, used, budget):
    """Flip one UE; a UE turned on first keeps its priority, then tries every place in its cluster's order."""
    cl = slot[6]
    improved = False
    for i in range(off.shape[1]):
        if used >= budget:
            break
        off[0, i] = not off[0, i]
        r = _score(slot, off, sw, pr, cw)
        used += 1
        if _better(r, best):
            best, improved = r, True
            continue
        if off[0, i]:
            old = pr[0, i]
            kept = False
            for s in range(_insertion_slots(i, off, cl, pr, slots)):
                if used >= budget:
                    break
                pr[0, i] = slots[s]
                r = _score(slot, off, sw, pr, cw)
                used += 1
                if _better(r, best):
                    best, improved, kept = r, True, True
                    _rerank(pr)
                    break
            if kept:
                continue
            pr[0, i] = old
        off[0, i] = not off[0, i]
    return best, used, improved


@numba.njit(cache=True)
def _exchange_pass(slot, off, sw, pr, cw, best, used, budget):
    """Offloader i goes local while local UE j offloads."""
    n = off.shape[1]
    improved = False
    for i in range(n):
        for j in range(n):
            if used >= budget or not off[0, i]:
                break
            if off[0, j]:
                continue
            off[0, i] = False
            off[0, j] = True
            r = _score(slot, off, sw, pr, cw)
            used += 1
            if _better(r, best):
                best, improved = r, True
            else:
                off[0, i] = True
                off[0, j] = False
    return best, used, improved


@numba.njit(cache=True)
def _order_pass(slot, off, sw, pr, cw, slots, best, used, budget):
    """Move one offloader to another place in its cluster's order; swap two offloaders of one cluster."""
    cl = slot[6]
    n = off.shape[1]
    improved = False
    for i in range(n):
        if not off[0, i]:
            continue
        old = pr[0, i]
        for s in range(_insertion_slots(i, off, cl, pr, slots)):
            if used >= budget:
                break
            pr[0, i] = slots[s]
            r = _score(slot, off, sw, pr, cw)
            used += 1
            if _better(r, best):
                best, improved = r, True
                _rerank(pr)
                break
            pr[0, i] = old
        for j in range(i + 1, n):
            if used >= budget:
                break
            if not off[0, j] or cl[0, j] != cl[0, i]:
                continue
            pr[0, i], pr[0, j] = pr[0, j], pr[0, i]
            r = _score(slot, off, sw, pr, cw)
            used += 1
            if _better(r, best):
                best, improved = r, True
            else:
                pr[0, i], pr[0, j] = pr[0, j], pr[0, i]
    return best, used, improved


@numba.njit(cache=True)
def _cpu_pass(slot, off, sw, pr, cw, cpu_steps, best, used, budget):
    """Move CPU weight from cluster a to cluster c, alone and with a local UE of c turned on."""
    cl = slot[6]
    n, n_k = off.shape[1], cw.shape[1]
    improved = False
    for a in range(n_k):
        for c in range(n_k):
            if a == c:
                continue
            for s in range(cpu_steps.shape[0]):
                if used >= budget:
                    break
                total = cw[0].sum()
                old_a = cw[0, a]
                old_c = cw[0, c]
                if old_a <= 1e-9 * total:  # a donor at its floor has nothing to give
                    break
                moved = min(cpu_steps[s] * total, old_a)
                cw[0, a] = max(old_a - moved, 1e-12 * total)
                cw[0, c] = old_c + moved
                r = _score(slot, off, sw, pr, cw)
                used += 1
                if _better(r, best):
                    best, improved = r, True
                    continue
                kept = False
                for i in range(n):
                    if used >= budget:
                        break
                    if off[0, i] or cl[0, i] != c:
                        continue
                    off[0, i] = True
                    r = _score(slot, off, sw, pr, cw)
                    used += 1
                    if _better(r, best):
                        best, improved, kept = r, True, True
                        break
                    off[0, i] = False
                if not kept:
                    cw[0, a] = old_a
                    cw[0, c] = old_c
    return best, used, improved


@numba.njit(cache=True)
def _spectrum_pass(slot, off, sw, pr, cw, factors, best, used, budget):
    """Scale one offloader's spectrum weight (kept within SPECTRUM_WEIGHT_RANGE)."""
    low, high = SPECTRUM_WEIGHT_RANGE
    improved = False
    for i in range(off.shape[1]):
        if not off[0, i]:
            continue
        for f in range(factors.shape[0]):
            if used >= budget:
                break
            old = sw[0, i]
            scaled = old * factors[f]
            if not (low <= scaled <= high):
                continue
            sw[0, i] = scaled
            r = _score(slot, off, sw, pr, cw)
            used += 1
            if _better(r, best):
                best, improved = r, True
            else:
                sw[0, i] = old
    return best, used, improved


@numba.njit(cache=True)
def _search_kernel(params, data_bits, cycles, deadline_s, gain, cpu_hz, cluster, server_free_s, carry_over, slot_s,
                   offload, spectrum_weight, priority, cpu_weight, cpu_steps, spectrum_factors, search_spectrum,
                   max_evaluations, reward, evaluations):  # fmt: skip
    """Improve each row's decisions in place (one independent search per row); reward (B,), evaluations (B,) out."""
    n_batch, n = data_bits.shape
    n_k = server_free_s.shape[1]
    db = np.empty((1, n))
    cy = np.empty((1, n))
    dl = np.empty((1, n))
    gn = np.empty((1, n))
    ch = np.empty((1, n))
    cl = np.empty((1, n), dtype=np.int64)
    sf = np.empty((1, n_k))
    slot = (params, db, cy, dl, gn, ch, cl, sf, carry_over, slot_s, np.empty((1, n, N_TASK_COLUMNS)),
            np.empty((1, n_k)), np.empty((1, n_k)), np.empty(1))  # fmt: skip
    off = np.empty((1, n), dtype=np.bool_)
    sw = np.empty((1, n))
    pr = np.empty((1, n))
    cw = np.empty((1, n_k))
    slots = np.empty(n + 1)  # candidate priorities of one insertion
    for b in range(n_batch):
        db[0] = data_bits[b]
        cy[0] = cycles[b]
        dl[0] = deadline_s[b]
        gn[0] = gain[b]
        ch[0] = cpu_hz[b]
        cl[0] = cluster[b]
        sf[0] = server_free_s[b]
        off[0] = offload[b]
        sw[0] = spectrum_weight[b]
        pr[0] = priority[b]
        cw[0] = cpu_weight[b]
        _rerank(pr)
        best = _score(slot, off, sw, pr, cw)
        used = 1
        improved = True
        while improved and used < max_evaluations:
            best, used, i1 = _flip_pass(slot, off, sw, pr, cw, slots, best, used, max_evaluations)
            best, used, i2 = _exchange_pass(slot, off, sw, pr, cw, best, used, max_evaluations)
            best, used, i3 = _order_pass(slot, off, sw, pr, cw, slots, best, used, max_evaluations)
            i4 = i5 = False
            if n_k > 1:
                best, used, i4 = _cpu_pass(slot, off, sw, pr, cw, cpu_steps, best, used, max_evaluations)
            if search_spectrum:
                best, used, i5 = _spectrum_pass(slot, off, sw, pr, cw, spectrum_factors, best, used, max_evaluations)
            improved = i1 or i2 or i3 or i4 or i5
        offload[b] = off[0]
        spectrum_weight[b] = sw[0]
        priority[b] = pr[0]
        cpu_weight[b] = cw[0]
        reward[b] = best
        evaluations[b] = used


@dataclass
class LocalSearchPolicy:
    """Per-slot local search over offload sets, priority orders, CPU and spectrum splits (see the module doc)."""

    phase: int
    name: str = "local-search"
    max_evaluations: int = MAX_EVALUATIONS
    n_starts: int = N_STARTS
    search_spectrum: bool = True
    # False: every cluster keeps an equal CPU share (the seeds' CPU weights are made equal and the CPU moves are
    # off): what the search reaches without a coordinator, to measure what the split is worth.
    search_cpu: bool = True
    seeds: list = field(init=False, repr=False)

    def __post_init__(self):
        if self.phase not in (1, 2):
            raise ValueError(f"phase {self.phase!r}: allowed 1 or 2")
        if self.max_evaluations < 1:
            raise ValueError(f"max_evaluations {self.max_evaluations}: allowed an integer >= 1")
        if self.n_starts < 1:
            raise ValueError(f"n_starts {self.n_starts}: allowed an integer >= 1")
        self.seeds = [baselines.heuristic(name, self.phase) for name in seed_policy_names(self.phase)]

    def _focus_seeds(self, state: SlotState) -> list[Decisions]:
        """Phase 2: for each cluster k, all free CPU to k, greedy offload for those shares, EDF, equal spectrum."""
        n_b, n_k = state.batch_size, state.n_clusters
        out = []
        for k in range(n_k):
            weight = np.full((n_b, n_k), 1e-12)
            weight[:, k] = 1.0
            offload = baselines.greedy_offload(state, baselines.cpu_shares(state, weight))
            out.append(Decisions(offload, np.ones(offload.shape), -state.deadline_s, weight))
        return out

    def seed_candidates(self, state: SlotState) -> tuple[list[Decisions], np.ndarray]:
        """Every seed's decisions and their slot rewards (seeds, B)."""
        candidates = [p.act(state) for p in self.seeds]
        if state.n_clusters > 1 and self.search_cpu:
            candidates += self._focus_seeds(state)
        if not self.search_cpu:
            candidates = [Decisions(d.offload, d.spectrum_weight, d.priority, np.ones_like(d.cpu_weight))
                          for d in candidates]  # fmt: skip
        return candidates, np.stack([resolve_slot(state, d).reward for d in candidates])

    def _starts(self, rewards: np.ndarray) -> list[tuple[int, int]]:
        """(episode, seed) pairs to search from: per episode the n_starts best seeds with distinct rewards
        (identical decisions score identically), best first; ties go to the earlier seed."""
        pairs = []
        for b in range(rewards.shape[1]):
            taken: list[float] = []
            for c in np.argsort(-rewards[:, b], kind="stable"):
                if rewards[c, b] not in taken:
                    taken.append(rewards[c, b])
                    pairs.append((b, int(c)))
                if len(taken) == self.n_starts:
                    break
        return pairs

    def best(self, state: SlotState) -> tuple[Decisions, np.ndarray, np.ndarray]:
        """The searched decisions, their slot reward (B,) and the reward evaluations each episode used (B,)."""
        candidates, seed_rewards = self.seed_candidates(state)
        pairs = self._starts(seed_rewards)
        rows = np.array([b for b, _ in pairs])

        def start(name, dtype):
            return np.ascontiguousarray([getattr(candidates[c], name)[b] for b, c in pairs], dtype=dtype)

        offload = start("offload", np.bool_)
        # Every UE keeps a positive spectrum weight, so a UE the search turns on has a valid one.
        spectrum_weight = np.where(offload, start("spectrum_weight", float), 1.0)
        priority = start("priority", float)  # the kernel turns them into ranks 1..N in the same order
        cpu_weight = start("cpu_weight", float)
        reward = np.empty(len(pairs))
        evaluations = np.zeros(len(pairs), dtype=np.int64)
        p = state.params
        cpu_steps = np.array(CPU_STEPS if self.search_cpu else (), dtype=float)
        tiled = {name: np.ascontiguousarray(getattr(state, name)[rows]) for name in
                 ("data_bits", "cycles", "deadline_s", "gain", "cpu_hz", "server_free_s")}  # fmt: skip
        _search_kernel(
            p.kernel, tiled["data_bits"], tiled["cycles"], tiled["deadline_s"], tiled["gain"], tiled["cpu_hz"],
            np.ascontiguousarray(state.cluster[rows], dtype=np.int64), tiled["server_free_s"], p.carry_over_queue,
            p.slot_s, offload, spectrum_weight, priority, cpu_weight, cpu_steps, np.array(SPECTRUM_FACTORS),
            self.search_spectrum, self.max_evaluations, reward, evaluations,
        )  # fmt: skip
        # The best start of each episode (the first of equals: the better seed).
        chosen = np.array([max(np.flatnonzero(rows == b), key=lambda j: (reward[j], -j))
                           for b in range(state.batch_size)])  # fmt: skip
        decisions = Decisions(offload[chosen], spectrum_weight[chosen], priority[chosen], cpu_weight[chosen])
        used = np.bincount(rows, weights=evaluations, minlength=state.batch_size).astype(np.int64)
        return decisions, reward[chosen], used

    def act(self, state: SlotState) -> Decisions:
        return self.best(state)[0]
