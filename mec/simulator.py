"""Slot resolution: decisions in, per-task completion times, QoS and energy parts out.

Semantics of one slot (times are seconds from the slot's start, when every UE receives its task):
1. Spectrum: the offloading UEs share the uplink; UE i gets theta_i = theta_min + (1 - n_off*theta_min) * w_i /
   sum(w) of the bandwidth (mec.physics.floor_shares) and uploads from t = 0 at the Shannon rate of its share.
2. CPU: cluster k gets phi_k = phi_min + (1 - K*phi_min) * c_k / sum(c) of the server (phase 1: K = 1, phi = 1).
3. Server: each cluster's partition runs its offloaded tasks one at a time, non-preemptively, at phi_k * F. A task
   cannot start before its upload ends. Whenever the partition is free it starts the highest-priority task whose
   upload has ended; if none has, it waits for the next upload to end. Equal priorities go to the lower UE index.
   The partition is free from `server_free_s[k]` on (0 unless the queue is carried over).
4. Local tasks finish at C / f. QoS and energy follow mec.physics; reward = w_qos*sum QoS - w_energy*sum energy.
5. With `carry_over_queue`, work a partition has not finished by the end of the slot (slot_s) delays its
   availability in the next slot; without it every slot starts with an idle server.

`resolve_slot` is the compiled kernel (numba, one pass over a batch of independent slots). `resolve_slot_reference`
is a direct event-by-event restatement in plain numpy/Python that the tests hold the kernel to.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np

from mec import physics
from mec.config import StudyConfig
from mec.scenario import EpisodeBatch, PhaseSetup, sample_episodes

# Column layout of the kernel's per-task output array.
TASK_FIELDS = (
    "spectrum_share",
    "rate_bps",
    "upload_end_s",
    "exec_start_s",
    "exec_end_s",
    "completion_time_s",
    "qos",
    "local_energy_j",
    "tx_energy_j",
    "server_energy_j",
)
_F = {name: i for i, name in enumerate(TASK_FIELDS)}
# The columns by name, as the compiled kernels index them (numba reads module-level ints as constants).
N_TASK_COLUMNS = len(TASK_FIELDS)
SHARE, RATE, UPLOAD_END, EXEC_START, EXEC_END, COMPLETION, QOS, LOCAL_ENERGY, TX_ENERGY, SERVER_ENERGY = (
    range(N_TASK_COLUMNS)
)


# SimParams' constants in the order of the array the compiled kernels take (SimParams.kernel), and their positions
# by name (numba reads module-level ints as constants; an array passes to a kernel faster than a tuple).
KERNEL_PARAMS = ("bandwidth_hz", "noise_w_per_hz", "tx_power_w", "kappa", "server_cpu_hz", "server_power_w",
                 "theta_min", "phi_min", "w_qos", "w_energy")  # fmt: skip
BANDWIDTH_HZ, NOISE_W_PER_HZ, TX_POWER_W, KAPPA, SERVER_CPU_HZ, SERVER_POWER_W, THETA_MIN, PHI_MIN, W_QOS, W_ENERGY = (
    range(len(KERNEL_PARAMS))
)


@dataclass(frozen=True)
class SimParams:
    """Scalar constants of the system model in SI units, derived once from the config."""

    bandwidth_hz: float
    noise_w_per_hz: float
    tx_power_w: float
    kappa: float
    server_cpu_hz: float
    server_power_w: float
    theta_min: float
    phi_min: float
    w_qos: float
    w_energy: float
    slot_s: float
    carry_over_queue: bool
    n_clusters: int

    @classmethod
    def from_config(cls, cfg: StudyConfig, setup: PhaseSetup) -> "SimParams":
        sc = cfg.scenario
        return cls(
            bandwidth_hz=sc.server.bandwidth_mhz * 1e6,
            noise_w_per_hz=float(physics.dbm_to_w(sc.channel.noise_dbm_per_hz)),
            tx_power_w=sc.ue.tx_power_w,
            kappa=sc.ue.kappa,
            server_cpu_hz=sc.server.cpu_ghz * 1e9,
            server_power_w=sc.server.power_w,
            theta_min=setup.theta_min,
            phi_min=setup.phi_min,
            w_qos=cfg.reward.w_qos,
            w_energy=cfg.reward.w_energy_per_j,
            slot_s=sc.slot_s,
            carry_over_queue=sc.carry_over_queue,
            n_clusters=setup.n_clusters,
        )

    @functools.cached_property
    def kernel(self) -> np.ndarray:
        """The constants the compiled kernels take, in the order of KERNEL_PARAMS."""
        return np.array([getattr(self, name) for name in KERNEL_PARAMS], dtype=float)


@dataclass(frozen=True)
class Decisions:
    """One slot's decisions for a batch of B episodes with N UEs and K clusters.

    offload: (B, N) bool; spectrum_weight: (B, N) > 0 where offloading; priority: (B, N) finite, higher runs
    first; cpu_weight: (B, K) > 0 (phase 1: K = 1).
    """

    offload: np.ndarray
    spectrum_weight: np.ndarray
    priority: np.ndarray
    cpu_weight: np.ndarray


@dataclass(frozen=True)
class SlotState:
    """Everything about the current slot that a full-information policy may look at (arrays (B, N) or (B, K))."""

    slot: int
    data_bits: np.ndarray
    cycles: np.ndarray
    deadline_s: np.ndarray
    distance_m: np.ndarray
    cpu_hz: np.ndarray
    gain: np.ndarray
    cluster: np.ndarray
    server_free_s: np.ndarray
    params: SimParams

    @property
    def batch_size(self) -> int:
        return self.data_bits.shape[0]

    @property
    def n_ue(self) -> int:
        return self.data_bits.shape[1]

    @property
    def n_clusters(self) -> int:
        return self.server_free_s.shape[1]


@dataclass(frozen=True)
class SlotResult:
    """Per-task outcomes (B, N), per-cluster CPU shares and next-slot availability (B, K), slot reward (B,).

    Local tasks have upload_end_s = exec_start_s = exec_end_s = NaN and zero transmit and server energy.
    """

    offload: np.ndarray
    cluster: np.ndarray
    deadline_s: np.ndarray
    tasks: np.ndarray  # (B, N, len(TASK_FIELDS))
    cpu_share: np.ndarray
    server_free_next_s: np.ndarray
    reward: np.ndarray

    def __getattr__(self, name: str) -> np.ndarray:
        if name in _F:
            return self.tasks[..., _F[name]]
        raise AttributeError(name)

    @property
    def energy_j(self) -> np.ndarray:
        return self.local_energy_j + self.tx_energy_j + self.server_energy_j

    @property
    def deadline_met(self) -> np.ndarray:
        return self.completion_time_s <= self.deadline_s


@numba.njit(inline="always")
def _next_task(order, remaining, release_s, priority, free_at):
    """The server's next task among order[:remaining]: it starts at max(free_at, the earliest release) with the
    highest-priority task released by then (equal priorities: the lower UE index). Returns (position in order,
    start time)."""
    earliest = np.inf
    for r in range(remaining):
        if release_s[order[r]] < earliest:
            earliest = release_s[order[r]]
    start = free_at if free_at > earliest else earliest
    best = -1
    for r in range(remaining):
        i = order[r]
        if release_s[i] <= start:
            if best < 0:
                best = r
            else:
                pi = priority[i]
                pb = priority[order[best]]
                if pi > pb or (pi == pb and i < order[best]):
                    best = r
    return best, start


@numba.njit(cache=True)
def resolve_kernel(
    params, data_bits, cycles, deadline_s, gain, cpu_hz, cluster, server_free_s, offload, spectrum_weight,
    priority, cpu_weight, carry_over, slot_s, tasks, cpu_share, server_free_next, reward,
):  # fmt: skip
    """The compiled resolution of a batch of slots (what resolve_slot runs), writing its outputs in place: `tasks`
    (B, N, len(TASK_FIELDS)), `cpu_share` (B, K), `server_free_next` (B, K), `reward` (B,). mec.optimiser calls it
    directly to score candidates on preallocated arrays."""
    bandwidth_hz, noise, tx_power = params[BANDWIDTH_HZ], params[NOISE_W_PER_HZ], params[TX_POWER_W]
    kappa, server_hz, server_power = params[KAPPA], params[SERVER_CPU_HZ], params[SERVER_POWER_W]
    theta_min, phi_min, w_qos, w_energy = params[THETA_MIN], params[PHI_MIN], params[W_QOS], params[W_ENERGY]
    n_batch, n_ue = data_bits.shape
    n_clusters = server_free_s.shape[1]
    order = np.empty(n_ue, dtype=np.int64)
    for b in range(n_batch):
        # Spectrum shares among the offloaders.
        n_off = 0
        w_sum = 0.0
        for i in range(n_ue):
            if offload[b, i]:
                w = spectrum_weight[b, i]
                if not (w > 0.0 and w < np.inf):
                    raise ValueError("spectrum_weight must be finite and > 0 for every offloading UE")
                n_off += 1
                w_sum += w
        rest = 1.0 - n_off * theta_min
        # CPU shares of the clusters.
        c_sum = 0.0
        for k in range(n_clusters):
            c = cpu_weight[b, k]
            if not (c > 0.0 and c < np.inf):
                raise ValueError("cpu_weight must be finite and > 0 for every cluster")
            c_sum += c
        for k in range(n_clusters):
            cpu_share[b, k] = phi_min + (1.0 - n_clusters * phi_min) * cpu_weight[b, k] / c_sum
        for i in range(n_ue):
            t = tasks[b, i]
            if offload[b, i]:
                share = theta_min + rest * spectrum_weight[b, i] / w_sum
                band = bandwidth_hz * share
                rate = physics.shannon_rate_bps(band, tx_power * gain[b, i], noise)
                up = data_bits[b, i] / rate
                t[SHARE] = share
                t[RATE] = rate
                t[UPLOAD_END] = up
                t[LOCAL_ENERGY] = 0.0
                t[TX_ENERGY] = tx_power * up
                t[SERVER_ENERGY] = server_power * cycles[b, i] / server_hz
            else:
                t[SHARE] = 0.0
                t[RATE] = 0.0
                t[UPLOAD_END] = np.nan
                t[EXEC_START] = np.nan
                t[EXEC_END] = np.nan
                t[COMPLETION] = cycles[b, i] / cpu_hz[b, i]
                t[LOCAL_ENERGY] = physics.local_energy_scalar(cycles[b, i], cpu_hz[b, i], kappa)
                t[TX_ENERGY] = 0.0
                t[SERVER_ENERGY] = 0.0
        # Non-preemptive priority list scheduling with release times, one partition per cluster.
        for k in range(n_clusters):
            m = 0
            for i in range(n_ue):
                if offload[b, i] and cluster[b, i] == k:
                    order[m] = i
                    m += 1
            free_at = server_free_s[b, k]
            speed = cpu_share[b, k] * server_hz
            remaining = m
            while remaining > 0:
                best, start = _next_task(order, remaining, tasks[b, :, UPLOAD_END], priority[b], free_at)
                i = order[best]
                end = start + cycles[b, i] / speed
                tasks[b, i, EXEC_START] = start
                tasks[b, i, EXEC_END] = end
                tasks[b, i, COMPLETION] = end
                free_at = end
                remaining -= 1
                order[best] = order[remaining]
            if carry_over:
                server_free_next[b, k] = max(free_at - slot_s, 0.0)
            else:
                server_free_next[b, k] = 0.0
        sum_qos = 0.0
        sum_energy = 0.0
        for i in range(n_ue):
            t = tasks[b, i]
            q = physics.qos_scalar(t[COMPLETION], deadline_s[b, i])
            t[QOS] = q
            sum_qos += q
            sum_energy += t[LOCAL_ENERGY] + t[TX_ENERGY] + t[SERVER_ENERGY]
        reward[b] = w_qos * sum_qos - w_energy * sum_energy


def _check_shapes(state: SlotState, decisions: Decisions) -> None:
    shape = state.data_bits.shape
    for name in ("offload", "spectrum_weight", "priority"):
        got = getattr(decisions, name).shape
        if got != shape:
            raise ValueError(f"decisions.{name} has shape {got}; allowed {shape} (episodes, UEs)")
    if state.cluster.size and (state.cluster.min() < 0 or state.cluster.max() >= state.server_free_s.shape[1]):
        raise ValueError(f"cluster labels span {state.cluster.min()}..{state.cluster.max()}; allowed "
                         f"0..{state.server_free_s.shape[1] - 1} (one per cluster of server_free_s)")  # fmt: skip
    if decisions.cpu_weight.shape != state.server_free_s.shape:
        raise ValueError(
            f"decisions.cpu_weight has shape {decisions.cpu_weight.shape}; allowed {state.server_free_s.shape}"
            " (episodes, clusters)"
        )


def resolve_slot(state: SlotState, decisions: Decisions) -> SlotResult:
    """Resolve one slot for a batch of episodes with the compiled kernel."""
    _check_shapes(state, decisions)
    n_batch, n_ue = state.data_bits.shape
    n_clusters = state.server_free_s.shape[1]
    tasks = np.empty((n_batch, n_ue, N_TASK_COLUMNS))
    cpu_share = np.empty((n_batch, n_clusters))
    free_next = np.empty((n_batch, n_clusters))
    reward = np.empty(n_batch)
    offload = np.ascontiguousarray(decisions.offload, dtype=np.bool_)
    p = state.params
    resolve_kernel(
        p.kernel, state.data_bits, state.cycles, state.deadline_s, state.gain, state.cpu_hz, state.cluster,
        state.server_free_s, offload, np.asarray(decisions.spectrum_weight, dtype=float),
        np.asarray(decisions.priority, dtype=float), np.asarray(decisions.cpu_weight, dtype=float),
        p.carry_over_queue, p.slot_s, tasks, cpu_share, free_next, reward,
    )  # fmt: skip
    return SlotResult(offload, state.cluster, state.deadline_s, tasks, cpu_share, free_next, reward)


@numba.njit(cache=True)
def _counterfactual_kernel(
    params, data_bits, cycles, deadline_s, gain, cpu_hz, cluster, server_free_s, offload, spectrum_weight,
    priority, cpu_weight, out,
):  # fmt: skip
    """out[b, i]: slot b's reward with offloading UE i switched to local execution (the same semantics as
    resolve_kernel, which the tests hold it to); entries of UEs that run locally are left as they are.

    Only what UE i's switch changes is recomputed: the other offloaders' spectrum shares, upload ends and the
    server schedules; the local tasks' QoS and energy are summed once per slot."""
    bandwidth_hz, noise, tx_power = params[BANDWIDTH_HZ], params[NOISE_W_PER_HZ], params[TX_POWER_W]
    kappa, server_hz, server_power = params[KAPPA], params[SERVER_CPU_HZ], params[SERVER_POWER_W]
    theta_min, phi_min, w_qos, w_energy = params[THETA_MIN], params[PHI_MIN], params[W_QOS], params[W_ENERGY]
    n_batch, n_ue = data_bits.shape
    n_clusters = server_free_s.shape[1]
    release = np.empty(n_ue)
    order = np.empty(n_ue, dtype=np.int64)
    speed = np.empty(n_clusters)
    for b in range(n_batch):
        c_sum = 0.0
        for k in range(n_clusters):
            c_sum += cpu_weight[b, k]
        for k in range(n_clusters):
            speed[k] = (phi_min + (1.0 - n_clusters * phi_min) * cpu_weight[b, k] / c_sum) * server_hz
        n_off = 0
        w_sum = 0.0
        local_q = 0.0
        local_e = 0.0
        for j in range(n_ue):
            if offload[b, j]:
                n_off += 1
                w_sum += spectrum_weight[b, j]
            else:
                local_q += physics.qos_scalar(cycles[b, j] / cpu_hz[b, j], deadline_s[b, j])
                local_e += physics.local_energy_scalar(cycles[b, j], cpu_hz[b, j], kappa)
        for i in range(n_ue):
            if not offload[b, i]:
                continue
            sum_q = local_q + physics.qos_scalar(cycles[b, i] / cpu_hz[b, i], deadline_s[b, i])
            sum_e = local_e + physics.local_energy_scalar(cycles[b, i], cpu_hz[b, i], kappa)
            rest = 1.0 - (n_off - 1) * theta_min
            w_rest = w_sum - spectrum_weight[b, i]
            for j in range(n_ue):
                if offload[b, j] and j != i:
                    share = theta_min + rest * spectrum_weight[b, j] / w_rest
                    band = bandwidth_hz * share
                    up = data_bits[b, j] / physics.shannon_rate_bps(band, tx_power * gain[b, j], noise)
                    release[j] = up
                    sum_e += tx_power * up + server_power * cycles[b, j] / server_hz
            for k in range(n_clusters):
                m = 0
                for j in range(n_ue):
                    if offload[b, j] and j != i and cluster[b, j] == k:
                        order[m] = j
                        m += 1
                free_at = server_free_s[b, k]
                remaining = m
                while remaining > 0:
                    best, start = _next_task(order, remaining, release, priority[b], free_at)
                    j = order[best]
                    end = start + cycles[b, j] / speed[k]
                    sum_q += physics.qos_scalar(end, deadline_s[b, j])
                    free_at = end
                    remaining -= 1
                    order[best] = order[remaining]
            out[b, i] = w_qos * sum_q - w_energy * sum_e


def local_counterfactual_rewards(
    state: SlotState, decisions: Decisions, actual: np.ndarray | None = None
) -> np.ndarray:
    """(B, N) slot reward with UE i alone switched to local execution, every other decision (spectrum weights,
    priorities, CPU weights) kept; the actual reward where UE i already runs locally.

    One compiled pass (_counterfactual_kernel) over every offloading UE of every slot; `actual`, the slots' own
    rewards (B,), is resolved here unless given."""
    _check_shapes(state, decisions)
    if actual is None:
        actual = resolve_slot(state, decisions).reward
    out = np.repeat(np.asarray(actual, dtype=float)[:, None], state.n_ue, axis=1)
    _counterfactual_kernel(
        state.params.kernel, state.data_bits, state.cycles, state.deadline_s, state.gain, state.cpu_hz,
        state.cluster, state.server_free_s, np.ascontiguousarray(decisions.offload, dtype=np.bool_),
        np.asarray(decisions.spectrum_weight, dtype=float), np.asarray(decisions.priority, dtype=float),
        np.asarray(decisions.cpu_weight, dtype=float), out,
    )  # fmt: skip
    return out


def slot_block_state(episodes: EpisodeBatch, params: SimParams, n_slots: int) -> SlotState:
    """Slots 0..n_slots-1 of every episode as one batch of B * n_slots slot states, row b * n_slots + t, each with an
    idle server (valid without carry-over, where no slot depends on an earlier one)."""
    n_b = episodes.n_episodes

    def per_slot(x):
        return np.ascontiguousarray(x[:, :n_slots].reshape(n_b * n_slots, -1))

    def per_episode(x):
        return np.ascontiguousarray(np.repeat(x, n_slots, axis=0))

    return SlotState(
        slot=0,
        data_bits=per_slot(episodes.data_bits),
        cycles=per_slot(episodes.cycles),
        deadline_s=per_slot(episodes.deadline_s),
        distance_m=per_episode(episodes.distance_m),
        cpu_hz=per_episode(episodes.cpu_hz),
        gain=per_episode(episodes.gain),
        cluster=per_episode(episodes.cluster),
        server_free_s=np.zeros((n_b * n_slots, params.n_clusters)),
        params=params,
    )


def uplink(state: SlotState, offload: np.ndarray, spectrum_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spectrum shares and upload end times (NaN for local tasks) that a set of offload decisions implies.

    This is what a scheduler can know before it orders the slot's requests.
    """
    p = state.params
    share = physics.floor_shares(spectrum_weight, offload, p.theta_min)
    rate = physics.rate_bps(p.bandwidth_hz, share, p.tx_power_w, state.gain, p.noise_w_per_hz)
    upload_end = np.where(offload, physics.tx_time_s(state.data_bits, rate), np.nan)
    return share, upload_end


def resolve_slot_reference(state: SlotState, decisions: Decisions) -> SlotResult:
    """Plain-numpy, event-by-event restatement of `resolve_slot` (slow; for tests)."""
    _check_shapes(state, decisions)
    p = state.params
    offload = np.asarray(decisions.offload, dtype=bool)
    weight = np.asarray(decisions.spectrum_weight, dtype=float)
    if np.any(offload & ~(np.isfinite(weight) & (weight > 0))):
        raise ValueError("spectrum_weight must be finite and > 0 for every offloading UE")
    cpu_weight = np.asarray(decisions.cpu_weight, dtype=float)
    if np.any(~(np.isfinite(cpu_weight) & (cpu_weight > 0))):
        raise ValueError("cpu_weight must be finite and > 0 for every cluster")
    share, upload_end = uplink(state, offload, decisions.spectrum_weight)
    rate = physics.rate_bps(p.bandwidth_hz, share, p.tx_power_w, state.gain, p.noise_w_per_hz)
    n_clusters = state.server_free_s.shape[1]
    cpu_share = physics.floor_shares(decisions.cpu_weight, np.ones_like(decisions.cpu_weight, dtype=bool), p.phi_min)
    exec_start = np.full(offload.shape, np.nan)
    exec_end = np.full(offload.shape, np.nan)
    free_next = np.zeros_like(cpu_share)
    for b in range(offload.shape[0]):
        for k in range(n_clusters):
            waiting = [i for i in np.flatnonzero(offload[b] & (state.cluster[b] == k))]
            clock = state.server_free_s[b, k]
            while waiting:
                clock = max(clock, min(upload_end[b, i] for i in waiting))
                ready = [i for i in waiting if upload_end[b, i] <= clock]
                # Highest priority first; among equals the lowest UE index (max over (priority, -index)).
                chosen = max(ready, key=lambda i: (decisions.priority[b, i], -i))
                exec_start[b, chosen] = clock
                clock += physics.server_time_s(state.cycles[b, chosen], p.server_cpu_hz, cpu_share[b, k])
                exec_end[b, chosen] = clock
                waiting.remove(chosen)
            if p.carry_over_queue:
                free_next[b, k] = max(clock - p.slot_s, 0.0)
    completion = np.where(offload, exec_end, physics.local_time_s(state.cycles, state.cpu_hz))
    q = physics.qos(completion, state.deadline_s)
    local_e = np.where(offload, 0.0, physics.local_energy_j(state.cycles, state.cpu_hz, p.kappa))
    tx_e = np.where(offload, physics.tx_energy_j(p.tx_power_w, np.nan_to_num(upload_end)), 0.0)
    server_e = np.where(offload, physics.server_energy_j(state.cycles, p.server_cpu_hz, p.server_power_w), 0.0)
    columns = {
        "spectrum_share": share,
        "rate_bps": rate,
        "upload_end_s": upload_end,
        "exec_start_s": exec_start,
        "exec_end_s": exec_end,
        "completion_time_s": completion,
        "qos": q,
        "local_energy_j": local_e,
        "tx_energy_j": tx_e,
        "server_energy_j": server_e,
    }
    tasks = np.stack([columns[name] for name in TASK_FIELDS], axis=-1)
    reward = p.w_qos * q.sum(axis=-1) - p.w_energy * (local_e + tx_e + server_e).sum(axis=-1)
    return SlotResult(offload, state.cluster, state.deadline_s, tasks, cpu_share, free_next, reward)


class Simulator:
    """Steps a batch of independent episodes slot by slot (the engine under the envs and the evaluations)."""

    def __init__(self, cfg: StudyConfig, setup: PhaseSetup, n_slots: int, resolver=resolve_slot):
        self.cfg = cfg
        self.setup = setup
        self.n_slots = int(n_slots)
        self.params = SimParams.from_config(cfg, setup)
        self.resolver = resolver
        self.episodes: EpisodeBatch | None = None
        self._state: SlotState | None = None
        self.slot = 0
        self.server_free_s: np.ndarray | None = None

    def reset(self, seeds) -> SlotState:
        """Draw one episode per seed (ints or numpy SeedSequences) and return the first slot's state."""
        return self.reset_from(sample_episodes(self.cfg.scenario, self.setup, self.n_slots, seeds))

    def reset_from(self, episodes: EpisodeBatch) -> SlotState:
        """Start over on already-drawn episodes (e.g. the same evaluation episodes for every policy)."""
        if episodes.n_slots < self.n_slots or episodes.data_bits.shape[2] != self.setup.n_ue:
            raise ValueError(
                f"episodes of {episodes.n_slots} slots x {episodes.data_bits.shape[2]} UEs: allowed at least"
                f" {self.n_slots} slots x {self.setup.n_ue} UEs"
            )
        self.episodes = episodes
        # Slot-major, contiguous copies so that each slot's arrays are contiguous views for the kernel.
        self._slot_major = {
            name: np.ascontiguousarray(np.moveaxis(getattr(episodes, name), 1, 0))
            for name in ("data_bits", "cycles", "deadline_s")
        }
        self.slot = 0
        self._state = None
        self.server_free_s = np.zeros((episodes.n_episodes, self.setup.n_clusters))
        return self.state()

    @property
    def done(self) -> bool:
        return self.slot >= self.n_slots

    def state(self) -> SlotState:
        """The current slot's state (built once per slot)."""
        if self._state is None or self._state.slot != self.slot:
            self._state = self._build_state()
        return self._state

    def _build_state(self) -> SlotState:
        if self.episodes is None:
            raise RuntimeError("Simulator.state() before reset()")
        ep, s = self.episodes, self.slot
        if s >= self.n_slots:
            raise RuntimeError(f"episode over: all {self.n_slots} slots were stepped; call reset()")
        return SlotState(
            slot=s,
            data_bits=self._slot_major["data_bits"][s],
            cycles=self._slot_major["cycles"][s],
            deadline_s=self._slot_major["deadline_s"][s],
            distance_m=ep.distance_m,
            cpu_hz=ep.cpu_hz,
            gain=ep.gain,
            cluster=ep.cluster,
            server_free_s=self.server_free_s,
            params=self.params,
        )

    def step(self, decisions: Decisions) -> SlotResult:
        result = self.resolver(self.state(), decisions)
        self.server_free_s = result.server_free_next_s
        self.slot += 1
        return result
