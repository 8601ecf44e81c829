"""Heuristic policies and the phase-1 oracle.

Every policy has the interface the learned agents are evaluated through: `act(state: SlotState) -> Decisions`
for a batch of episodes. A heuristic is three rules applied in the slot's causal order:

1. CPU split (coordinator, phase 2): `equal`; `proportional` to the cycles each cluster's UEs would offload under
   an equal split (the offload rule is run once to predict them); `urgency`, the same prediction weighted by
   1/deadline (offloaded cycles per second of deadline).
2. Offload rule (UEs), always with an equal spectrum split among offloaders: `all-offload`, `random` (each UE
   offloads with probability 1/2), `greedy` (see `greedy_offload`).
3. Server order (schedulers), as priorities (higher runs first): `fifo` (earliest upload end), `edf` (earliest
   deadline), `sjf` (fewest cycles), `least-slack` (smallest deadline - upload end - execution time), `random`.

The names of the policies, and parsing a name into these rules, are mec.policies'; mec.evaluation.make_policy builds
any policy by name.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np

from mec import physics
from mec.policies import CPU_SPLITS, OFFLOAD_RULES, ORACLE_MAX_UE, SERVER_ORDERS, PolicySpec, parse_policy
from mec.simulator import (
    BANDWIDTH_HZ,
    KAPPA,
    NOISE_W_PER_HZ,
    SERVER_CPU_HZ,
    SERVER_POWER_W,
    TX_POWER_W,
    W_ENERGY,
    W_QOS,
    Decisions,
    SlotState,
    uplink,
)


class Policy(Protocol):
    name: str

    def act(self, state: SlotState) -> Decisions: ...


# --- offload rules ---------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _greedy_kernel(params, data_bits, cycles, deadline_s, gain, cpu_hz, cluster, server_free_s, cpu_share, offload):
    bandwidth_hz, noise, tx_power = params[BANDWIDTH_HZ], params[NOISE_W_PER_HZ], params[TX_POWER_W]
    kappa, server_hz, server_power = params[KAPPA], params[SERVER_CPU_HZ], params[SERVER_POWER_W]
    w_qos, w_energy = params[W_QOS], params[W_ENERGY]
    n_batch, n_ue = data_bits.shape
    n_clusters = server_free_s.shape[1]
    queue_s = np.empty(n_clusters)
    for b in range(n_batch):
        for k in range(n_clusters):
            queue_s[k] = server_free_s[b, k]
        n_off = 0
        for i in np.argsort(deadline_s[b], kind="mergesort"):
            c, d, f = cycles[b, i], deadline_s[b, i], cpu_hz[b, i]
            q_local = physics.qos_scalar(c / f, d)
            r_local = w_qos * q_local - w_energy * physics.local_energy_scalar(c, f, kappa)
            band = bandwidth_hz / (n_off + 1)
            up = data_bits[b, i] / physics.shannon_rate_bps(band, tx_power * gain[b, i], noise)
            k = cluster[b, i]
            run_s = c / (cpu_share[b, k] * server_hz)
            done = max(up, queue_s[k]) + run_s
            q_off = physics.qos_scalar(done, d)
            r_off = w_qos * q_off - w_energy * (tx_power * up + server_power * c / server_hz)
            if r_off > r_local:
                offload[b, i] = True
                queue_s[k] = done
                n_off += 1
            else:
                offload[b, i] = False


def greedy_offload(state: SlotState, cpu_share: np.ndarray) -> np.ndarray:
    """Offload iff the estimated reward of offloading beats local execution, given the load so far.

    UEs decide one after another in deadline order. For UE i the estimate assumes an equal spectrum split among
    itself and the UEs that already chose to offload, and that its task runs on its cluster's partition after the
    work already queued there (the partition's carried-over backlog plus earlier offloaders). It compares
    w_qos*QoS - w_energy*energy of both options with the model's own formulas.
    """
    offload = np.zeros(state.data_bits.shape, dtype=np.bool_)
    _greedy_kernel(
        state.params.kernel, state.data_bits, state.cycles, state.deadline_s, state.gain, state.cpu_hz,
        state.cluster, state.server_free_s, np.ascontiguousarray(cpu_share), offload,
    )  # fmt: skip
    return offload


def _offload(rule: str, state: SlotState, cpu_share: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rule == "all-offload":
        return np.ones(state.data_bits.shape, dtype=bool)
    if rule == "all-local":
        return np.zeros(state.data_bits.shape, dtype=bool)
    if rule == "random":
        return rng.random(state.data_bits.shape) < 0.5
    if rule == "greedy":
        return greedy_offload(state, cpu_share)
    raise ValueError(f"offload rule {rule!r}: allowed {', '.join(OFFLOAD_RULES)}")


# --- server orders ---------------------------------------------------------------------------------------------


def server_priority(
    order: str, state: SlotState, upload_end_s: np.ndarray, cpu_share_of_task: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Priorities (higher first) of one server-order rule; local tasks get -inf-free finite values too."""
    if order == "fifo":
        return -np.nan_to_num(upload_end_s)
    if order == "edf":
        return -state.deadline_s
    if order == "sjf":
        return -state.cycles
    if order == "least-slack":
        run_s = physics.server_time_s(state.cycles, state.params.server_cpu_hz, cpu_share_of_task)
        return -(state.deadline_s - np.nan_to_num(upload_end_s) - run_s)
    if order == "random":
        return rng.random(state.data_bits.shape)
    raise ValueError(f"server order {order!r}: allowed {', '.join(SERVER_ORDERS)}")


# --- CPU splits ------------------------------------------------------------------------------------------------


def _per_cluster_sum(values: np.ndarray, cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    out = np.zeros((values.shape[0], n_clusters))
    np.add.at(out, (np.arange(values.shape[0])[:, None], cluster), values)
    return out


def cpu_shares(state: SlotState, weight: np.ndarray) -> np.ndarray:
    """The floored CPU shares that positive cpu weights imply (what the simulator will apply)."""
    return physics.cpu_shares(weight, state.params.phi_min)


# --- composed heuristics ---------------------------------------------------------------------------------------


@dataclass
class HeuristicPolicy:
    """Split rule -> offload rule -> server order, applied in the slot's causal order."""

    name: str
    offload_rule: str
    server_order: str
    cpu_split: str
    rng: np.random.Generator

    def _cpu_weight(self, state: SlotState) -> np.ndarray:
        n_b, n_k = state.batch_size, state.n_clusters
        equal = np.ones((n_b, n_k))
        if self.cpu_split == "equal" or n_k == 1:
            return equal
        if self.cpu_split == "random":
            return self.rng.dirichlet(np.ones(n_k), size=n_b) + 1e-12
        predicted = _offload(self.offload_rule, state, cpu_shares(state, equal), self.rng)
        if self.cpu_split == "proportional":
            load = np.where(predicted, state.cycles, 0.0)
        elif self.cpu_split == "urgency":
            load = np.where(predicted, state.cycles / state.deadline_s, 0.0)
        else:
            raise ValueError(f"cpu split {self.cpu_split!r}: allowed {', '.join(CPU_SPLITS)}")
        weight = _per_cluster_sum(load, state.cluster, n_k)
        # A cluster predicted to offload nothing keeps only the floor; all-zero rows fall back to equal.
        return np.where(weight.sum(axis=1, keepdims=True) > 0, np.maximum(weight, 1e-12), equal)

    def act(self, state: SlotState) -> Decisions:
        cpu_weight = self._cpu_weight(state)
        if self.cpu_split == "equal" or state.n_clusters == 1:
            share = np.full(cpu_weight.shape, 1.0 / state.n_clusters)  # floor + (1 - K*floor)/K
        else:
            share = cpu_shares(state, cpu_weight)
        offload = _offload(self.offload_rule, state, share, self.rng)
        spectrum_weight = np.ones(offload.shape)
        upload_end = task_share = None
        if self.server_order in ("fifo", "least-slack"):  # the only orders that look at upload ends
            _, upload_end = uplink(state, offload, spectrum_weight)
            task_share = np.take_along_axis(share, state.cluster, axis=1)
        priority = server_priority(self.server_order, state, upload_end, task_share, self.rng)
        return Decisions(offload, spectrum_weight, priority, cpu_weight)


# --- oracle ----------------------------------------------------------------------------------------------------


def _permutations_by_size(n: int) -> list[np.ndarray]:
    """For m = 0..n, all orderings of range(m) as an (m!, m) array."""
    return [
        np.array(list(itertools.permutations(range(m))), dtype=np.int64).reshape(math.factorial(m), m)
        for m in range(n + 1)
    ]


@numba.njit(cache=True)
def _oracle_kernel(params, data_bits, cycles, deadline_s, gain, cpu_hz, server_free_s, perms_flat, perm_offsets,
                   best_mask, best_rank, best_reward):  # fmt: skip
    bandwidth_hz, noise, tx_power = params[BANDWIDTH_HZ], params[NOISE_W_PER_HZ], params[TX_POWER_W]
    kappa, server_hz, server_power = params[KAPPA], params[SERVER_CPU_HZ], params[SERVER_POWER_W]
    w_qos, w_energy = params[W_QOS], params[W_ENERGY]
    n_batch, n_ue = data_bits.shape
    members = np.empty(n_ue, dtype=np.int64)
    release = np.empty(n_ue)
    run = np.empty(n_ue)
    done = np.zeros(n_ue, dtype=np.bool_)
    for b in range(n_batch):
        best_reward[b] = -np.inf
        for mask in range(1 << n_ue):
            m = 0
            local_value = 0.0
            for i in range(n_ue):
                if (mask >> i) & 1:
                    members[m] = i
                    m += 1
                else:
                    c, f = cycles[b, i], cpu_hz[b, i]
                    q = physics.qos_scalar(c / f, deadline_s[b, i])
                    local_value += w_qos * q - w_energy * physics.local_energy_scalar(c, f, kappa)
            off_energy = 0.0
            if m > 0:
                band = bandwidth_hz / m  # equal split: the floor theta_min cancels out (theta = 1/m)
                for j in range(m):
                    i = members[j]
                    up = data_bits[b, i] / physics.shannon_rate_bps(band, tx_power * gain[b, i], noise)
                    release[j] = up
                    run[j] = cycles[b, i] / server_hz
                    off_energy += tx_power * up + server_power * cycles[b, i] / server_hz
            base = local_value - w_energy * off_energy
            start_p = perm_offsets[m]
            n_perm = (perm_offsets[m + 1] - start_p) // m if m > 0 else 1  # the empty set: one (empty) order
            for p in range(n_perm):
                # perm lists members by rank: perm[0] has the highest priority.
                perm = perms_flat[start_p + p * m: start_p + (p + 1) * m]
                for j in range(m):
                    done[j] = False
                clock = server_free_s[b, 0]
                value = base
                for _ in range(m):
                    earliest = np.inf
                    for j in range(m):
                        if not done[j] and release[j] < earliest:
                            earliest = release[j]
                    if clock < earliest:
                        clock = earliest
                    chosen = -1
                    for r in range(m):
                        j = perm[r]
                        if not done[j] and release[j] <= clock:
                            chosen = j
                            break
                    done[chosen] = True
                    clock += run[chosen]
                    q = physics.qos_scalar(clock, deadline_s[b, members[chosen]])
                    value += w_qos * q
                if value > best_reward[b]:
                    best_reward[b] = value
                    for i in range(n_ue):
                        best_mask[b, i] = False
                        best_rank[b, i] = 0
                    for r in range(m):
                        i = members[perm[r]]
                        best_mask[b, i] = True
                        best_rank[b, i] = m - r


@dataclass
class OraclePolicy:
    """Exhaustive per-slot optimum for phase 1 (one server, N <= 8).

    It maximises the slot reward w_qos*sum QoS - w_energy*sum energy over every offload set and every priority
    order of the offloaded tasks, with the spectrum split equally among the offloaders and the simulator's own
    server semantics (non-preemptive, release at upload end, highest priority among the uploaded tasks first, server
    free from its carried-over backlog). Priority orders cover every schedule those semantics can produce. The
    spectrum split is not optimised: a policy with an unequal split can exceed this "oracle". It is myopic: with
    carry_over_queue it does not weigh the backlog it leaves to the next slot.
    """

    name: str = "oracle"

    def __post_init__(self):
        self._perms = _permutations_by_size(ORACLE_MAX_UE)

    def best(self, state: SlotState) -> tuple[Decisions, np.ndarray]:
        """Optimal decisions and the slot reward they achieve (B,)."""
        n_b, n = state.data_bits.shape
        if state.n_clusters != 1 or n > ORACLE_MAX_UE:
            raise ValueError(f"oracle: allowed phase 1 with at most {ORACLE_MAX_UE} UEs; got {n} UEs, "
                             f"{state.n_clusters} clusters")  # fmt: skip
        perms = self._perms[: n + 1]
        flat = np.concatenate([p.ravel() for p in perms])
        offsets = np.concatenate([[0], np.cumsum([p.size for p in perms])]).astype(np.int64)
        mask = np.zeros((n_b, n), dtype=np.bool_)
        rank = np.zeros((n_b, n), dtype=np.int64)
        reward = np.empty(n_b)
        _oracle_kernel(state.params.kernel, state.data_bits, state.cycles, state.deadline_s, state.gain,
                       state.cpu_hz, state.server_free_s, flat, offsets, mask, rank, reward)  # fmt: skip
        return Decisions(mask, np.ones((n_b, n)), rank.astype(float), np.ones((n_b, 1))), reward

    def act(self, state: SlotState) -> Decisions:
        return self.best(state)[0]


# --- by name --------------------------------------------------------------------------------------------------


def heuristic(name: str, phase: int, seed: int = 0) -> HeuristicPolicy:
    """The heuristic of a name of mec.policies; `seed` drives its own randomness (never the scenario's)."""
    spec: PolicySpec = parse_policy(name, phase)
    if spec.kind != "heuristic":
        raise ValueError(f"policy {name!r} is not a heuristic: build it with mec.evaluation.make_policy")
    return HeuristicPolicy(name, spec.offload_rule, spec.server_order, spec.cpu_split, np.random.default_rng(seed))
