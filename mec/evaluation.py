"""Evaluating a policy on fixed evaluation episodes, with the metric definitions of mec.metrics.

Evaluation episodes are drawn from `episode_seeds(seed, episodes)`: the same seed gives every policy the very same
UEs, clusters and tasks. A policy's own randomness comes from a separate seed.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

from mec import baselines, decision_time, metrics
from mec.baselines import OraclePolicy, Policy
from mec.config import StudyConfig
from mec.optimiser import LocalSearchPolicy
from mec.policies import LOCAL_SEARCH, ORACLE, ORACLE_MAX_UE, evaluated_policy_names, parse_policy
from mec.scenario import EpisodeBatch, PhaseSetup, episode_seeds, sample_episodes
from mec.simulator import Simulator


def make_policy(name: str, phase: int, seed: int = 0) -> Policy:
    """Any baseline by its name of mec.policies (a ValueError naming the allowed names otherwise); `seed` drives
    the policy's own randomness (never the scenario's)."""
    kind = parse_policy(name, phase).kind
    if kind == ORACLE:
        return OraclePolicy()
    if kind == LOCAL_SEARCH:
        # Every decision, the spectrum split included (in phase 1 too): the oracle covers the equal split exactly,
        # the search what unequal splits add (the phase-1 upper bound of mec.bound says how much more there is).
        return LocalSearchPolicy(phase, search_spectrum=True)
    return baselines.heuristic(name, phase, seed)


def evaluation_episodes(cfg: StudyConfig, setup: PhaseSetup, n_episodes: int, n_slots: int, seed: int) -> EpisodeBatch:
    return sample_episodes(cfg.scenario, setup, n_slots, episode_seeds(seed, n_episodes))


TRACE_COLUMNS = (
    "episode",
    "slot",
    "ue",
    "cluster",
    "offload",
    "upload_start_s",
    "upload_end_s",
    "exec_start_s",
    "exec_end_s",
    "completion_time_s",
    "deadline_s",
    "qos",
)


def _trace_rows(result, slot: int, episode_index: np.ndarray) -> dict[str, np.ndarray]:
    """Per-task schedule records of one slot (times in seconds from the slot's start; NaN where not offloaded)."""
    n_b, n_ue = result.offload.shape
    offload = result.offload.ravel()
    return {
        "episode": np.repeat(episode_index, n_ue),
        "slot": np.full(n_b * n_ue, slot),
        "ue": np.tile(np.arange(n_ue), n_b),
        "cluster": result.cluster.ravel(),
        "offload": offload,
        "upload_start_s": np.where(offload, 0.0, np.nan),
        "upload_end_s": result.upload_end_s.ravel(),
        "exec_start_s": result.exec_start_s.ravel(),
        "exec_end_s": result.exec_end_s.ravel(),
        "completion_time_s": result.completion_time_s.ravel(),
        "deadline_s": result.deadline_s.ravel(),
        "qos": result.qos.ravel(),
    }


def run_policy(
    cfg: StudyConfig, setup: PhaseSetup, policy: Policy, episodes: EpisodeBatch, trace: bool = False,
    all_slots_at_once: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Step every episode of the batch to the end under `policy`; one row per (episode, slot).

    With `trace`, also return the per-task schedule (TRACE_COLUMNS), one row per (episode, slot, UE).
    With `all_slots_at_once` and no carry-over (no slot depends on an earlier one), the policy acts on every slot of
    every episode in one call (one batch of episodes x slots rows): for policies that decide each slot on its own
    state alone, such as the learned ones (the training's validation uses it).
    """
    if all_slots_at_once and not cfg.scenario.carry_over_queue and not trace:
        from mec.simulator import SimParams, resolve_slot, slot_block_state

        n_b, n_t = episodes.n_episodes, episodes.n_slots
        state = slot_block_state(episodes, SimParams.from_config(cfg, setup), n_t)
        result = resolve_slot(state, policy.act(state))
        rows = metrics.slot_rows(result, np.tile(np.arange(n_t), n_b), np.repeat(np.arange(n_b), n_t),
                                 setup.phase == 1)  # fmt: skip
        return pd.DataFrame(rows)
    sim = Simulator(cfg, setup, episodes.n_slots)
    state = sim.reset_from(episodes)
    index = np.arange(episodes.n_episodes)
    columns: dict[str, list] = {name: [] for name in metrics.SLOT_COLUMNS}
    traces: list[dict[str, np.ndarray]] = []
    while True:
        result = sim.step(policy.act(state))
        for name, values in metrics.slot_rows(result, state.slot, index, setup.phase == 1).items():
            columns[name].extend(values)
        if trace:
            traces.append(_trace_rows(result, state.slot, index))
        if sim.done:
            break
        state = sim.state()
    slots = pd.DataFrame(columns).sort_values(["episode", "slot"], ignore_index=True)
    if not trace:
        return slots
    schedule = pd.DataFrame({name: np.concatenate([t[name] for t in traces]) for name in TRACE_COLUMNS})
    return slots, schedule.sort_values(["episode", "slot", "ue"], ignore_index=True)


BOUND_COLUMN = "slot_bound"  # the per-slot upper bound on any policy's reward (mec.bound), beside every policy's row


def slot_bounds(cfg: StudyConfig, setup: PhaseSetup, episodes: EpisodeBatch) -> np.ndarray | None:
    """(episodes, slots) upper bounds on the slot reward of every policy (mec.bound.spectrum_bound), for phase 1 up
    to ORACLE_MAX_UE UEs (mec.policies); None elsewhere. Each slot is bounded with an idle server, which bounds it for
    any backlog too (a later server start only delays), so the bounds hold with scenario.carry_over_queue as well."""
    if setup.phase != 1 or setup.n_ue > ORACLE_MAX_UE:
        return None
    from mec.bound import spectrum_bound
    from mec.simulator import SimParams, slot_block_state

    n_b, n_t = episodes.n_episodes, episodes.n_slots
    state = slot_block_state(episodes, SimParams.from_config(cfg, setup), n_t)
    return spectrum_bound(state).reshape(n_b, n_t)


def stored_slot_bounds(slots: pd.DataFrame) -> pd.Series | None:
    """The upper bound of each (episode, slot) from a baselines' per-slot table (run_baselines' layout: every
    policy's rows carry the same bounds, so the first policy's are read); None where the table holds none."""
    if BOUND_COLUMN not in slots:
        return None
    first = slots[slots["policy"] == slots["policy"].iloc[0]]
    bounds = first.set_index(["episode", "slot"])[BOUND_COLUMN]
    return bounds if bounds.notna().any() else None


def run_baselines(
    cfg: StudyConfig, setup: PhaseSetup, episodes: EpisodeBatch, log: Callable[[str], None] = lambda line: None,
    time_decisions: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every baseline of the sweep point (the oracle where it is exact) on the same episodes.

    Returns the per-slot rows of all policies (with a `policy` column, and in phase 1 the slot's upper bound on any
    policy's reward in column BOUND_COLUMN, NaN where there is none) and one summary row per policy; `log` gets one
    line per policy. With `time_decisions`, each summary row also holds the policy's decision time per slot on these
    episodes' slots (mec.decision_time: the columns of DECISION_TIME_COLUMNS), measured on a fresh instance of the
    policy, so that no other value changes.
    """
    started = time.perf_counter()
    bounds = slot_bounds(cfg, setup, episodes)
    if bounds is not None:
        log(f"{'upper bound':<32s} reward/slot {bounds.mean():9.4f}  ({time.perf_counter() - started:.1f} s)")
    slots = decision_time.evaluation_slots(cfg, setup, episodes) if time_decisions else None
    frames, summaries = [], []
    for name in evaluated_policy_names(setup.phase, setup.n_ue):
        started = time.perf_counter()
        frame = run_policy(cfg, setup, make_policy(name, setup.phase), episodes)
        summary = metrics.summarise(frame)
        bound = np.nan if bounds is None else bounds[frame["episode"].to_numpy(), frame["slot"].to_numpy()]
        frames.append(frame.assign(policy=name, **{BOUND_COLUMN: bound}))
        timing = {} if slots is None else decision_time.measure(make_policy(name, setup.phase), slots)
        summaries.append({"phase": setup.phase, "n_ue": setup.n_ue, "n_clusters": setup.n_clusters, "policy": name,
                          **summary, **timing})  # fmt: skip
        decide = "" if not timing else (f"  decide {timing[decision_time.LATENCY]:.3g} ms alone, "
                                        f"{timing[decision_time.BATCH]:.3g} ms/slot in a batch")  # fmt: skip
        log(
            f"{name:<32s} reward/slot {summary['reward_per_slot']:9.4f}  QoS {summary['mean_qos']:.4f}  "
            f"E/task {summary['energy_per_task_j']:.4f} J{decide}  ({time.perf_counter() - started:.1f} s)"
        )
    return pd.concat(frames, ignore_index=True), pd.DataFrame(summaries)
