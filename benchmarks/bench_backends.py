"""Training throughput of the two backends on the same phase, size and batch; prints one JSON object.

For each sweep point (default phase 1 N=7 and phase 2 K=10) and backend:
  rllib  MAPPO on RLlib's new API stack (mec.backends.rllib.training.build_ppo_config: the batched fleet sampler,
         one env step per decision stage)
  sb3    Stable-Baselines3 PPO on the joint decision (mec.backends.sb3: one env step per slot)
with the config's training section (default 1000 slots per iteration, minibatches of 250 slots, 8 epochs,
hidden [64, 64]), one warm-up iteration, then --iterations timed PPO iterations (sampling and SGD; the per-iteration
validation evaluation and checkpoints of a real run are timed apart, as eval_s). Slots per second is the
comparable number: an RLlib env step is one decision stage (2 or 3 per slot), an SB3 env step is one slot.
Run on one core: OMP_NUM_THREADS=1, torch threads 1, Ray num_cpus=1, no env runners.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from mec.config import config_from_dict, config_to_dict  # noqa: E402
from mec.envs import features  # noqa: E402
from mec.evaluation import evaluation_episodes, run_policy  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402

torch.set_num_threads(1)
POINTS = ((1, 7), (2, 10))


def _eval_s(cfg, setup, policy) -> float:
    t = cfg.training
    episodes = evaluation_episodes(cfg, setup, t.eval_episodes, t.episode_slots, t.eval_seed)
    started = time.perf_counter()
    run_policy(cfg, setup, policy, episodes)
    return time.perf_counter() - started


def _rate(iteration_s: float, cfg, stages: int) -> dict:
    slots = cfg.training.train_batch_slots
    return {
        "iteration_s": round(iteration_s, 3),
        "slots_per_s": round(slots / iteration_s, 1),
        "env_steps_per_s": round(slots * stages / iteration_s, 1),
    }


def measure_rllib(cfg, phase: int, n: int, iterations: int) -> dict:
    from mec.backends.rllib import training
    from mec.backends.rllib.policy import LearnedPolicy
    from mec.runs import trained_roles

    algo = training.build_ppo_config(cfg, phase, n, seed=0).build_algo()
    algo.train()  # warm-up: module build, first compilation of the simulator kernels
    started = time.perf_counter()
    for _ in range(iterations):
        algo.train()
    iteration_s = (time.perf_counter() - started) / iterations
    modules = {mid: algo.get_module(mid) for mid in training.module_specs(cfg, phase)}
    setup = PhaseSetup.from_config(cfg, phase, n)
    eval_s = _eval_s(cfg, setup, LearnedPolicy(modules, features.FeatureScales(cfg.scenario)))
    algo.stop()
    return {**_rate(iteration_s, cfg, len(trained_roles(cfg, phase))), "eval_s": round(eval_s, 3)}


def measure_sb3(cfg, phase: int, n: int, iterations: int) -> dict:
    from mec.backends import sb3
    from mec.backends.slot_env import SlotCodec

    vec_env = sb3.make_vec_env(cfg, phase, n)
    model = sb3.build_model(cfg, vec_env, seed=0)
    sb3.train_iteration(model, 0, 1)  # warm-up
    started = time.perf_counter()
    for iteration in range(2, iterations + 2):
        sb3.train_iteration(model, 0, iteration)
    iteration_s = (time.perf_counter() - started) / iterations
    setup = PhaseSetup.from_config(cfg, phase, n)
    eval_s = _eval_s(cfg, setup, sb3.SB3Policy(model.policy, SlotCodec(cfg, setup)))
    vec_env.close()
    return {**_rate(iteration_s, cfg, 1), "eval_s": round(eval_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations per measurement")
    parser.add_argument("--points", nargs="+", default=[f"{p}:{n}" for p, n in POINTS],
                        help="sweep points as PHASE:N (default: 1:7 2:10)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny batches: a smoke run, not a measurement")
    args = parser.parse_args()
    overrides = {}
    if args.quick:
        overrides = {"training": {"episode_slots": 10, "train_batch_slots": 20, "minibatch_size": 10, "num_epochs": 1,
                                  "eval_episodes": 2}}  # fmt: skip
    cfg = config_from_dict(overrides)
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows = []
    try:
        for point in args.points:
            phase, n = (int(x) for x in point.split(":"))
            row = {"phase": phase, "n": n, "n_ue": PhaseSetup.from_config(cfg, phase, n).n_ue}
            row["rllib"] = measure_rllib(cfg, phase, n, args.iterations)
            row["sb3"] = measure_sb3(cfg, phase, n, args.iterations)
            row["sb3_over_rllib_slots_per_s"] = round(row["sb3"]["slots_per_s"] / row["rllib"]["slots_per_s"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True, file=sys.stderr)
    finally:
        ray.shutdown()
    import stable_baselines3

    t = config_to_dict(cfg)["training"]
    report = {
        "benchmark": "backends",
        "iterations_timed": args.iterations,
        "training": {k: t[k] for k in ("train_batch_slots", "minibatch_size", "num_epochs", "hidden", "episode_slots")},
        "versions": {"ray": ray.__version__, "stable_baselines3": stable_baselines3.__version__,
                     "torch": torch.__version__},  # fmt: skip
        "points": rows,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
