"""Learning sanity: short MAPPO runs for phase 1 (N = 2 and 3) beside the baselines and the oracle; prints JSON.

Each run trains with the config's hyperparameters for --iterations iterations (a few minutes on 2 cores), then
evaluates its best checkpoint on the study's evaluation episodes (evaluation.seed, episodes, slots), the same
episodes every baseline is evaluated on. "fraction_of_oracle" is the learned reward per slot over the oracle's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from mec import metrics  # noqa: E402
from mec.baselines import make_policy  # noqa: E402
from mec.config import config_from_dict  # noqa: E402
from mec.envs.features import FeatureScales  # noqa: E402
from mec.evaluation import evaluation_episodes, run_policy  # noqa: E402
from mec.policy import LearnedPolicy  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402
from mec.training import load_modules, train  # noqa: E402

BASELINES = ("random", "all-local", "all-offload", "greedy-edf", "oracle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--n-ue", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    cfg = config_from_dict({"training": {"iterations": args.iterations}})
    ev = cfg.evaluation
    rows = []
    for n in args.n_ue:
        setup = PhaseSetup.from_config(cfg, 1, n)
        episodes = evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed)
        with tempfile.TemporaryDirectory() as run_dir:
            started = time.perf_counter()
            train(cfg, 1, n, args.seed, run_dir, num_cpus=args.num_cpus, log=lambda line: None)
            train_s = time.perf_counter() - started
            modules, meta = load_modules(f"{run_dir}/checkpoints/best")
        learned = LearnedPolicy(modules, FeatureScales(cfg.scenario))
        row = {"n_ue": n, "iterations": args.iterations, "train_s": round(train_s, 1),
               "best_iteration": meta["iteration"]}  # fmt: skip
        for name, policy in [("learned", learned)] + [(b, make_policy(b, 1, 0)) for b in BASELINES]:
            summary = metrics.summarise(run_policy(cfg, setup, policy, episodes))
            row[name] = {k: round(summary[k], 4) for k in ("reward_per_slot", "mean_qos", "energy_per_task_j",
                                                             "offload_fraction")}  # fmt: skip
        row["fraction_of_oracle"] = round(row["learned"]["reward_per_slot"] / row["oracle"]["reward_per_slot"], 4)
        rows.append(row)
    print(json.dumps({"benchmark": "learning", "seed": args.seed, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
