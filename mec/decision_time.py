"""Decision time per slot: how long a policy takes to decide one slot on one core.

Two measures on the same slots for every policy (the evaluation episodes' slots, each with an idle server,
mec.simulator.slot_block_state):
- decide_latency_ms: the latency of one slot decided alone, as a live system decides: the median over the first
  LATENCY_SLOTS slots of one `act` call each on that slot alone (a batch of one);
- decide_batch_ms_per_slot: the time per slot when a batch is decided at once: one `act` over every slot, divided
  by the number of slots (the median of up to BATCH_REPEATS such calls where they are short).
Only `act` is timed, not the simulator's resolution of its decisions (best-of-K's own resolution of its candidates
is part of its decision). Before the measures one untimed call on one slot warms up compiled kernels and caches.
Torch and the BLAS/OpenMP thread pools are held to one thread while measuring, and set back after.

The timings are machine-dependent and noisy: they sit in the summary tables as the columns of DECISION_TIME_COLUMNS,
which `mec reproduce` never compares (mec.reproduce.UNCOMPARED_COLUMNS), and they change no other value: measure a
fresh instance of a policy with its own randomness (a random heuristic, best-of-K), not the one that is evaluated.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator

import numpy as np

from mec.simulator import SlotState

LATENCY = "decide_latency_ms"
BATCH = "decide_batch_ms_per_slot"
DECISION_TIME_COLUMNS = (LATENCY, BATCH)
LATENCY_SLOTS = 32  # single-slot act calls whose median is the latency
# The batch call is repeated (up to BATCH_REPEATS calls, the median kept) while the calls so far took less than
# BATCH_REPEAT_BELOW_S: one short call is at the mercy of whatever else the machine does; a long one is not.
BATCH_REPEATS = 3
BATCH_REPEAT_BELOW_S = 2.0
PROVENANCE_KEY = "decision_time"  # {policy: {column: value}} in the provenance of an evaluation's per-slot table


def one_slot(state: SlotState, index: int) -> SlotState:
    """Slot `index` of a batch alone, as a batch of one."""
    return SlotState(**{
        name: (value[index : index + 1] if isinstance(value, np.ndarray) else value)
        for name, value in vars(state).items()
    })  # fmt: skip


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """torch (if loaded) and the BLAS/OpenMP pools at one thread; their settings back afterwards."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a dependency of scikit-learn, which the study needs
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1)
    try:
        if torch is not None:
            torch.set_num_threads(1)
        with limits:
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(threads)


def measure(policy, state: SlotState, latency_slots: int = LATENCY_SLOTS) -> dict[str, float]:
    """{LATENCY: ms, BATCH: ms per slot} of `policy` on the slots of `state` (a batch of independent slots), on one
    core; `latency_slots` single-slot calls (at most the batch's slots) give the latency's median."""
    n = state.batch_size
    if n < 1:
        raise ValueError("decision time of no slot: allowed a batch of at least one slot")
    with one_core():
        policy.act(one_slot(state, 0))  # warm-up: compiled kernels, caches, torch's first call
        single = []
        for i in range(min(latency_slots, n)):
            alone = one_slot(state, i)
            started = time.perf_counter()
            policy.act(alone)
            single.append(time.perf_counter() - started)
        batch = []
        while len(batch) < BATCH_REPEATS and (not batch or sum(batch) < BATCH_REPEAT_BELOW_S):
            started = time.perf_counter()
            policy.act(state)
            batch.append(time.perf_counter() - started)
    return {LATENCY: 1e3 * float(np.median(single)), BATCH: 1e3 * float(np.median(batch)) / n}


def evaluation_slots(cfg, setup, episodes) -> SlotState:
    """Every slot of the evaluation episodes as one batch (episode-major), each with an idle server."""
    from mec.simulator import SimParams, slot_block_state  # noqa: PLC0415

    return slot_block_state(episodes, SimParams.from_config(cfg, setup), episodes.n_slots)


def with_columns(rows, times: dict[str, dict[str, float]]):
    """A DataFrame of rows with a `policy` column, the decision-time columns added from {policy: times} (NaN where
    a policy has none)."""
    frame = rows.copy()
    for column in DECISION_TIME_COLUMNS:
        frame[column] = frame["policy"].map(lambda p: times.get(p, {}).get(column, np.nan)).astype(float)
    return frame
