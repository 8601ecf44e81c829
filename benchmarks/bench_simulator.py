"""Simulator throughput on one core; prints one JSON object.

For each sweep point it measures simulated slots per second
- batched: a batch of independent episodes stepped together (state -> heuristic decisions -> kernel);
- single: one un-batched episode stepped slot by slot, as an RL environment steps it;
- kernel_only: the kernel alone on pre-made decisions (what an env.step with pre-made actions costs).
Episode drawing (and k-means) at reset is excluded: it happens once per episode, not per slot.
Also the oracle's time per slot for phase 1 with N = 7.

Usage: python benchmarks/bench_simulator.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


from mec.evaluation import make_policy  # noqa: E402
from mec.config import config_from_dict  # noqa: E402
from mec.scenario import PhaseSetup, episode_seeds, sample_episodes  # noqa: E402
from mec.simulator import Simulator, resolve_slot  # noqa: E402

POLICY = {1: "greedy-edf", 2: "greedy-edf-proportional"}
TARGETS = {  # slots/s: 50x (batched) and 10x (single) the reference implementation's env.step rates
    (1, 7): {"batched": 300_000, "single": 65_000},
    (2, 10): {"batched": 25_000, "single": 5_200},
}


def _play(sim: Simulator, episodes, policy) -> float:
    """Seconds to step every episode of the batch to the end under `policy`."""
    state = sim.reset_from(episodes)
    started = time.perf_counter()
    while True:
        sim.step(policy.act(state))
        if sim.done:
            return time.perf_counter() - started
        state = sim.state()


def _run(sim: Simulator, episodes, policy, repeats: int) -> float:
    """Slots per second (summed over the batch) of stepping every episode to the end, best of `repeats`."""
    return max(episodes.n_episodes * sim.n_slots / _play(sim, episodes, policy) for _ in range(repeats))


def _kernel_only(sim: Simulator, episodes, policy, repeats: int) -> float:
    """Kernel alone on decisions made beforehand for every slot."""
    state = sim.reset_from(episodes)
    decisions = []
    while True:
        decisions.append((state, policy.act(state)))
        sim.step(decisions[-1][1])
        if sim.done:
            break
        state = sim.state()
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        for st, dec in decisions:
            resolve_slot(st, dec)
        best = max(best, episodes.n_episodes * len(decisions) / (time.perf_counter() - started))
    return best


def measure(cfg, phase: int, n: int, batch: int, slots: int, repeats: int) -> dict:
    setup = PhaseSetup.from_config(cfg, phase, n)
    sim = Simulator(cfg, setup, slots)
    policy = make_policy(POLICY[phase], phase, 0)
    many = sample_episodes(cfg.scenario, setup, slots, episode_seeds(1, batch))
    one = sample_episodes(cfg.scenario, setup, slots, episode_seeds(2, 1))
    _run(sim, one, policy, 1)  # compile
    row = {
        "phase": phase,
        "n_ue": setup.n_ue,
        "n_clusters": setup.n_clusters,
        "policy": POLICY[phase],
        "batch": batch,
        "slots_per_s_batched": round(_run(sim, many, policy, repeats)),
        "slots_per_s_single": round(_run(sim, one, policy, repeats)),
        "slots_per_s_kernel_only_single": round(_kernel_only(sim, one, policy, repeats)),
    }
    target = TARGETS.get((phase, n if phase == 2 else setup.n_ue))
    if target:
        row["target_batched"] = target["batched"]
        row["target_single"] = target["single"]
        row["meets_targets"] = (
            row["slots_per_s_batched"] >= target["batched"] and row["slots_per_s_single"] >= target["single"]
        )
    return row


def oracle_time(cfg, n_ue: int, slots: int) -> dict:
    setup = PhaseSetup.from_config(cfg, 1, n_ue)
    sim = Simulator(cfg, setup, slots)
    oracle = make_policy("oracle", 1)
    episodes = sample_episodes(cfg.scenario, setup, slots, episode_seeds(3, 1))
    oracle.act(sim.reset_from(episodes))  # compile
    return {"n_ue": n_ue, "oracle_ms_per_slot": round(1e3 * _play(sim, episodes, oracle) / slots, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer slots and repeats (a smoke run)")
    args = parser.parse_args()
    slots, repeats = (20, 1) if args.quick else (200, 3)
    cfg = config_from_dict({})
    rows = [measure(cfg, 1, n, 256, slots, repeats) for n in cfg.phase1.n_ue]
    rows += [measure(cfg, 2, k, 32, slots, repeats) for k in cfg.phase2.n_clusters]
    print(
        json.dumps(
            {
                "benchmark": "simulator",
                "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
                "slots_per_episode": slots,
                "results": rows,
                "oracle": oracle_time(cfg, 7, 50 if not args.quick else 5),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
