"""Decision time per slot of every policy on one core; prints one JSON object (or, with --markdown, the README table).

For phase 1 at N = 7 and phase 2 at K = 10 (the README's decision-time table), every baseline of the sweep point
(the heuristics, the oracle where it is exact, local search) and, with --checkpoint, the learned policy of each
checkpoint (at its own phase and size, added to the points if it is another one) and its best-of-K decisions
(--best-of, a centralised decision; the checkpoint's point under its own config), all timed on the same slots:
the evaluation episodes of the config (evaluation.seed; --episodes x --slots of them), each slot with an idle
server. Per policy (mec.decision_time):
- decide_latency_ms: median over the first --latency-slots slots of one act call on that slot alone;
- decide_batch_ms_per_slot: one act call over every slot at once, divided by the number of slots (the median of up
  to 3 calls where they are short).
Only the decision is timed, not the simulator's resolution of it (best-of-K's scoring of its candidates is part of
its decision). Timings depend on the machine and on what else runs on it: compare numbers of one run.

Usage: python benchmarks/bench_decision_time.py [--checkpoint DIR]... [--best-of K ...] [--quick] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mec import aggregate, decision_time, io, markdown  # noqa: E402
from mec.config import apply_overrides, config_from_dict, load_config  # noqa: E402
from mec.evaluation import evaluation_episodes, make_policy  # noqa: E402
from mec.policies import evaluated_policy_names  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402

POINTS = markdown.DECISION_TIME_POINTS  # ((1, 7), (2, 10))


def _row(setup: PhaseSetup, n: int, name: str, kind: str, timing: dict, n_slots: int) -> dict:
    return {"phase": setup.phase, "n": n, "n_ue": setup.n_ue, "n_clusters": setup.n_clusters, "policy": name,
            "kind": kind, **{k: round(v, 6) for k, v in timing.items()}, "batch_slots": n_slots}  # fmt: skip


def measure_point(cfg, phase: int, n: int, learned: list, best_of: list[int], episodes: int, slots: int,
                  latency_slots: int, log) -> list[dict]:  # fmt: skip
    """Decision times of every baseline of (phase, n) and of each learned policy of `learned` there (with its
    best-of-K for every K of `best_of`), on the same evaluation slots."""
    from mec.best_of import best_of_name, evaluated_best_of  # noqa: PLC0415

    setup = PhaseSetup.from_config(cfg, phase, n)
    ev = cfg.evaluation
    state = decision_time.evaluation_slots(cfg, setup, evaluation_episodes(cfg, setup, episodes, slots, ev.seed))
    candidates = [(name, aggregate.baseline_kind(name), lambda name=name: make_policy(name, phase))
                  for name in evaluated_policy_names(phase, setup.n_ue)]  # fmt: skip
    for policy in learned:
        candidates.append((policy.name, aggregate.LEARNED, lambda policy=policy: policy))
        for k in best_of:
            candidates.append((best_of_name(policy.name, k), aggregate.LEARNED_CENTRAL,
                               lambda policy=policy, k=k: evaluated_best_of(policy, k, ev.seed)))  # fmt: skip
    rows = []
    for name, kind, build in candidates:
        started = time.perf_counter()
        timing = decision_time.measure(build(), state, latency_slots)
        rows.append(_row(setup, n, name, kind, timing, state.batch_size))
        log(f"phase {phase} {markdown.size_name(phase)}={n:<3d} {name:<32s} {timing[decision_time.LATENCY]:9.4f} ms "
            f"alone  {timing[decision_time.BATCH]:9.4f} ms/slot in a batch  ({time.perf_counter() - started:.1f} s)")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a training checkpoint (e.g. RUN/checkpoints/best); its learned policy is timed at its "
                        "phase and size (repeatable)")  # fmt: skip
    parser.add_argument("--best-of", type=int, nargs="*", default=[16], metavar="K",
                        help="best-of-K decisions of each checkpoint's policy to time (default: 16)")
    parser.add_argument("--episodes", type=int, help="evaluation episodes (default: evaluation.episodes)")
    parser.add_argument("--slots", type=int, help="slots per episode (default: evaluation.slots)")
    parser.add_argument("--latency-slots", type=int, default=decision_time.LATENCY_SLOTS,
                        help=f"single-slot calls whose median is the latency (default {decision_time.LATENCY_SLOTS})")
    parser.add_argument("--quick", action="store_true", help="1 episode x 40 slots, 8 latency slots (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="print the README's table instead of the JSON")
    parser.add_argument("--config", type=Path, help="study config (default: the built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value by dotted key (repeatable)")
    args = parser.parse_args(argv)
    cfg = (load_config(args.config, args.overrides) if args.config
           else config_from_dict(apply_overrides({}, args.overrides)))  # fmt: skip
    episodes = args.episodes or (1 if args.quick else cfg.evaluation.episodes)
    slots = args.slots or (40 if args.quick else cfg.evaluation.slots)
    latency_slots = 8 if args.quick and args.latency_slots == decision_time.LATENCY_SLOTS else args.latency_slots
    if any(k < 2 for k in args.best_of):
        parser.error(f"--best-of {args.best_of}: allowed K >= 2 each")

    # A checkpoint's point is timed under the checkpoint's own config (its scenario and sizes; --set on top), the
    # baselines there too, so that every policy of a point decides the same slots.
    learned: dict[tuple[int, int], list] = {}
    configs: dict[tuple[int, int], object] = {}
    if args.checkpoint:
        from mec import backends  # noqa: PLC0415 - torch and Ray only with a checkpoint
        from mec.runs import read_checkpoint_meta  # noqa: PLC0415

        for checkpoint in args.checkpoint:
            meta = read_checkpoint_meta(checkpoint)
            point = (meta["phase"], meta["n"])
            own = configs.setdefault(point, config_from_dict(apply_overrides(meta["config"], args.overrides)))
            policy, _ = backends.load_policy(checkpoint, own)
            learned.setdefault(point, []).append(policy)
    points = list(POINTS) + [point for point in learned if point not in POINTS]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = []
    for phase, n in points:
        rows += measure_point(configs.get((phase, n), cfg), phase, n, learned.get((phase, n), []), args.best_of,
                              episodes, slots, latency_slots, log)  # fmt: skip
    if args.markdown:
        import pandas as pd  # noqa: PLC0415

        print(markdown.decision_time_markdown(pd.DataFrame(rows), points), end="")
        return
    print(json.dumps({
        "benchmark": "decision_time",
        "machine": io.machine(),
        "commit": io.source_commit(),
        "episodes": episodes,
        "slots_per_episode": slots,
        "latency_slots": latency_slots,
        "checkpoints": [str(c) for c in args.checkpoint],
        "results": rows,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
