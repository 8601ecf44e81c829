"""Learning check: short MAPPO runs beside the baselines on the study's evaluation episodes; prints JSON.

Each run trains with the config's hyperparameters (config.yaml plus --set overrides) for --iterations iterations,
then evaluates its best checkpoint (picked on the validation episodes, training.eval_seed) on the study's evaluation
episodes (evaluation.seed, episodes, slots), the same episodes every baseline is evaluated on. Phase 1 reports the
learned reward as a fraction of the oracle's; phase 2 beside all-local, the best heuristic and local search. The
validation-reward curve (every iteration) and the offload fraction along it show how learning went.

  .venv/bin/python benchmarks/bench_learning.py --phase 1 --sizes 5 7 --iterations 40
  .venv/bin/python benchmarks/bench_learning.py --phase 2 --sizes 4 --iterations 30 --set training.lr=1e-3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402

from mec import metrics  # noqa: E402
from mec.config import load_config  # noqa: E402
from mec.envs.features import FeatureScales  # noqa: E402
from mec.evaluation import evaluation_episodes, make_policy, run_policy  # noqa: E402
from mec.policies import policy_names  # noqa: E402
from mec.backends.rllib.policy import LearnedPolicy  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402
from mec.backends.rllib.training import load_modules, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = {1: ("all-local", "all-offload", "greedy-edf", "oracle"), 2: ("all-local", "local-search")}
KEYS = ("reward_per_slot", "mean_qos", "energy_per_task_j", "offload_fraction")


def summary(cfg, setup, policy, episodes) -> dict:
    s = metrics.summarise(run_policy(cfg, setup, policy, episodes))
    return {k: round(float(s[k]), 4) for k in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", type=int, choices=(1, 2), default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 3], help="N (phase 1) or K (phase 2)")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-cpus", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args()
    cfg = load_config(ROOT / "config.yaml", [f"training.iterations={args.iterations}", *args.set])
    ev = cfg.evaluation
    # Phase 2's "best heuristic": the best greedy offload x order x split combination (the issue's comparison).
    heuristics = [n for n in policy_names(args.phase) if n.startswith("greedy-") and "random" not in n]
    rows = []
    for n in args.sizes:
        setup = PhaseSetup.from_config(cfg, args.phase, n)
        episodes = evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed)
        with tempfile.TemporaryDirectory() as run_dir:
            started = time.perf_counter()
            train(cfg, args.phase, n, args.seed, run_dir, num_cpus=args.num_cpus, log=lambda line: None)
            train_s = time.perf_counter() - started
            modules, meta = load_modules(f"{run_dir}/checkpoints/best")
            history = pd.read_parquet(f"{run_dir}/metrics.parquet")
        row = {"phase": args.phase, "n": n, "iterations": args.iterations, "train_s": round(train_s, 1),
               "best_iteration": meta["iteration"],
               "validation_reward_curve": history["eval/reward_per_slot"].round(3).tolist()}  # fmt: skip
        row["validation_offload_fraction"] = history["eval/offload_fraction"].round(3).tolist()
        row["learned"] = summary(cfg, setup, LearnedPolicy(modules, FeatureScales(cfg.scenario)), episodes)
        for name in REFERENCES[args.phase]:
            row[name] = summary(cfg, setup, make_policy(name, args.phase, 0), episodes)
        learned = row["learned"]["reward_per_slot"]
        if args.phase == 1:
            row["fraction_of_oracle"] = round(learned / row["oracle"]["reward_per_slot"], 4)
        else:
            scored = {h: summary(cfg, setup, make_policy(h, 2, 0), episodes) for h in heuristics}
            best = max(scored, key=lambda h: scored[h]["reward_per_slot"])
            row["best_heuristic"] = {"name": best, **scored[best]}
            row["fraction_of_local_search"] = round(learned / row["local-search"]["reward_per_slot"], 4)
        rows.append(row)
    print(json.dumps({"benchmark": "learning", "seed": args.seed, "overrides": args.set, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
