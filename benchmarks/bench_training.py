"""Training throughput of the MAPPO job: the batched sampler beside RLlib's own env runner, in the same run; one JSON.

Sections (choose with --only; run on one core: OMP_NUM_THREADS=1, Ray num_cpus=1):
  sampling    env runner sample() calls alone (episodes, features, forward passes, simulator, RLlib episodes):
              slots/s of the batched runner (mec.backends.rllib.sampler) and of RLlib's MultiAgentEnvRunner stepping
              FleetEnv one env step at a time (the layout before the batched sampler), at phase 1 N=7 and phase 2
              K=10, the default training section (one call = the whole 1000-slot batch).
  iteration   a real training job (mec.backends.rllib.training.train: sampling, learner, validation episodes,
              checkpoints) for
              --iterations iterations with each sampler; seconds per iteration from the run's metrics.parquet
              (wall_s), the first iteration left out (start-up), with RLlib's sampling and learner timers.
  runners     sampling with 2 env runners (Ray actors, one core each) against 1, on the same batch: the speed-up of
              sample() calls made in parallel (needs 2 free cores). Episodes of half the default length, so that
              the batch splits into whole episodes on 2 runners.
  compare     real training jobs of two or more config layouts (--layout NAME KEY=VALUE ...), alternating rounds:
              seconds per iteration of each and its ratio to the first (e.g. training.ue_rows_per_slot 0 against 25).
  evaluation  batched evaluation of role modules (all agents of a role in one forward pass, episodes batched)
              against a per-agent loop that calls the module once per agent and slot (compute_single_action style).
Every ratio compares two layouts measured in the same run, so it holds on a noisy machine where absolute figures
drift.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from mec import io  # noqa: E402
from mec.config import config_from_dict, config_to_dict  # noqa: E402
from mec.envs.fleet import FleetEnv  # noqa: E402
from mec.envs.mec_env import MECEnv  # noqa: E402

torch.set_num_threads(1)
POINTS = ((1, 7), (2, 10))


def _role_of(agent_id: str) -> str:
    if agent_id in ("ues",) or agent_id.startswith("ue_"):
        return "ue"
    if agent_id == "coordinator":
        return "coordinator"
    return "scheduler"


def _ray(num_cpus: int):
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _temp_dir=tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp"))  # fmt: skip
    return ray


def _sample_rate(algo, calls: int, slots_per_call: int, remote: bool = False) -> float:
    """Slots per second of `calls` sample() calls (after one warm-up call)."""
    group = algo.env_runner_group
    if remote:
        def run():
            return group.foreach_env_runner(lambda w: w.sample(), local_env_runner=False)
    else:
        def run():
            return group.local_env_runner.sample()
    run()
    started = time.perf_counter()
    for _ in range(calls):
        run()
    return calls * slots_per_call / (time.perf_counter() - started)


def sampling(cfg, calls: int, points=POINTS) -> list[dict]:
    from mec.backends.rllib.training import build_ppo_config

    ray = _ray(1)
    rows = []
    try:
        for phase, n in points:
            row = {"phase": phase, "n": n, "slots_per_call": cfg.training.train_batch_slots}
            for name, batched, k in (("batched", True, calls), ("rllib_runner", False, max(1, calls // 10))):
                algo = build_ppo_config(cfg, phase, n, 0, batched=batched).build_algo()
                row[f"{name}_slots_per_s"] = round(_sample_rate(algo, k, cfg.training.train_batch_slots), 1)
                algo.stop()
            row["speedup"] = round(row["batched_slots_per_s"] / row["rllib_runner_slots_per_s"], 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    return rows


def iteration(cfg, iterations: int, points=POINTS) -> list[dict]:
    from mec.backends.rllib.training import train

    rows = []
    for phase, n in points:
        row = {"phase": phase, "n": n, "iterations": iterations}
        for name, batched in (("batched", True), ("rllib_runner", False)):
            its = iterations if batched else max(2, iterations // 4)
            run_cfg = config_from_dict({**config_to_dict(cfg), "training": {**config_to_dict(cfg)["training"],
                                                                            "iterations": its}})  # fmt: skip
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                train(run_cfg, phase, n, 0, out, num_cpus=1, log=lambda line: None, batched=batched)
                job_s = time.perf_counter() - started
                wall = pd.read_parquet(f"{out}/metrics.parquet")["wall_s"].to_numpy()
            per_iter = float(np.diff(wall).mean())
            row[name] = {"iteration_s": round(per_iter, 3), "first_iteration_s": round(float(wall[0]), 3),
                         "job_s": round(job_s, 1), "iterations": its}  # fmt: skip
        row["speedup"] = round(row["rllib_runner"]["iteration_s"] / row["batched"]["iteration_s"], 1)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def compare(cfg, layouts: dict[str, list[str]], iterations: int, rounds: int, points=POINTS) -> list[dict]:
    """Real training jobs (the driver: sampling, learner, validation, checkpoints) of several config layouts at each
    point, in alternating rounds (a, b, a, b, ...) so that drift hits every layout alike; seconds per iteration
    (from each run's wall_s, the first iteration left out), the median over rounds, and each layout's ratio to the
    first one."""
    from mec.backends.rllib.training import train
    from mec.config_parsers import set_dotted

    rows = []
    for phase, n in points:
        times: dict[str, list[float]] = {name: [] for name in layouts}
        for _ in range(rounds):
            for name, sets in layouts.items():
                raw = config_to_dict(cfg)
                raw["training"]["iterations"] = iterations
                for item in sets:
                    key, value = item.split("=", 1)
                    set_dotted(raw, key, yaml.safe_load(value))
                with tempfile.TemporaryDirectory() as out:
                    train(config_from_dict(raw), phase, n, 0, out, num_cpus=1, log=lambda line: None)
                    wall = pd.read_parquet(f"{out}/metrics.parquet")["wall_s"].to_numpy()
                times[name].append(float(np.diff(wall).mean()))
        first = next(iter(layouts))
        medians = {name: float(np.median(t)) for name, t in times.items()}
        row = {"phase": phase, "n": n, "iterations": iterations, "rounds": rounds,
               "layouts": {name: {"sets": layouts[name], "iteration_s": round(medians[name], 3),
                                  "rounds_s": [round(x, 3) for x in times[name]],
                                  f"ratio_to_{first}": round(medians[name] / medians[first], 3)}
                           for name in layouts}}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def runners(cfg, calls: int, points=POINTS) -> list[dict]:
    """One vs two remote env runners on the same total batch (two runners sample half of it each)."""
    from mec.backends.rllib.training import build_ppo_config

    ray = _ray(2)
    rows = []
    try:
        for phase, n in points:
            row = {"phase": phase, "n": n}
            # 100-slot episodes, so that the default 1000-slot batch splits into whole episodes on 2 runners too.
            t = {**config_to_dict(cfg)["training"], "episode_slots": cfg.training.episode_slots // 2}
            row["episode_slots"] = t["episode_slots"]
            for count in (1, 2):
                run_cfg = config_from_dict({**config_to_dict(cfg), "training": {**t, "num_env_runners": count}})
                algo = build_ppo_config(run_cfg, phase, n, 0).build_algo()
                per_runner = run_cfg.training.train_batch_slots // count
                row[f"runners_{count}_slots_per_s"] = round(_sample_rate(algo, calls, per_runner * count, True), 1)
                algo.stop()
            row["speedup"] = round(row["runners_2_slots_per_s"] / row["runners_1_slots_per_s"], 2)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    return rows


def evaluation(cfg, episodes: int, slots: int, points=POINTS) -> list[dict]:
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mec.envs import features
    from mec.evaluation import evaluation_episodes, run_policy
    from mec.backends.rllib.modules import RoleModule
    from mec.backends.rllib.policy import LearnedPolicy
    from mec.scenario import PhaseSetup

    rows = []
    for phase, n in points:
        setup = PhaseSetup.from_config(cfg, phase, n)
        env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": slots})
        modules = {
            _role_of(a): RLModuleSpec(module_class=RoleModule, observation_space=env.observation_spaces[a],
                                      action_space=env.action_spaces[a],
                                      model_config={"role": _role_of(a), "hidden": [64, 64]}).build()
            for a in env.possible_agents
        }  # fmt: skip
        scales = features.FeatureScales(cfg.scenario)
        batch = evaluation_episodes(cfg, setup, episodes, slots, 1)
        policy = LearnedPolicy(modules, scales)
        run_policy(cfg, setup, policy, evaluation_episodes(cfg, setup, 2, 2, 0))  # warm-up: compiled kernels, torch
        started = time.perf_counter()
        run_policy(cfg, setup, policy, batch)
        batched = episodes * slots / (time.perf_counter() - started)

        # One forward call per agent and slot, as a compute_single_action loop does, on a single episode.
        per_agent_slots = max(5, slots // 20)
        per_env = MECEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": per_agent_slots})
        obs, _ = per_env.reset(seed=0)

        def single(role, x):
            with torch.no_grad():
                out = modules[role].forward_inference({Columns.OBS: {"obs": torch.from_numpy(x[None])}})
            a = out[Columns.ACTIONS]
            return {k: v[0].numpy() for k, v in a.items()} if isinstance(a, dict) else a[0].numpy()

        started = time.perf_counter()
        for _ in range(per_agent_slots):
            while True:
                acts = {}
                for agent, x in obs.items():
                    role = _role_of(agent)
                    a = single(role, x[None] if role == "ue" else x)
                    if role == "ue":  # with the spectrum grant (scenario.spectrum_by = scheduler) no spectrum
                        a = {"offload": int(a["offload"][0])} | ({"spectrum": a["spectrum"]} if "spectrum" in a else {})
                    acts[agent] = a
                obs, rew, _, trunc, _ = per_env.step(acts)
                if rew:
                    break
        looped = per_agent_slots / (time.perf_counter() - started)
        rows.append({"phase": phase, "n": n, "batched_slots_per_s": round(batched, 1),
                     "per_agent_loop_slots_per_s": round(looped, 2), "speedup": round(batched / looped, 1),
                     "episodes_batched": episodes})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("sampling", "iteration", "compare", "runners", "evaluation"), nargs="+",
                        help="run these sections (compare: only when asked)")  # fmt: skip
    parser.add_argument("--layout", nargs="+", action="append", default=[], metavar=("NAME", "KEY=VALUE"),
                        help="compare: a named config layout, e.g. --layout before training.ue_rows_per_slot=0 "
                             "--layout after training.ue_rows_per_slot=25 (the first is the reference)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="compare: alternating rounds per layout")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides of every section (e.g. scenario.server.cpu_ghz=24)")  # fmt: skip
    parser.add_argument("--calls", type=int, default=10, help="timed sample() calls of the batched runner")
    parser.add_argument("--iterations", type=int, default=8, help="iterations of the real job (batched sampler)")
    parser.add_argument("--quick", action="store_true", help="tiny batches: a smoke run, not a measurement")
    parser.add_argument("--points", nargs="+", default=[f"{p}:{n}" for p, n in POINTS],
                        help="sweep points as PHASE:N (default: 1:7 2:10)")  # fmt: skip
    args = parser.parse_args()
    overrides = {}
    if args.quick:
        overrides = {"training": {"episode_slots": 10, "train_batch_slots": 20, "minibatch_size": 10, "num_epochs": 1,
                                  "eval_episodes": 1}}  # fmt: skip
    from mec.config_parsers import set_dotted

    for item in args.set:
        key, value = item.split("=", 1)
        set_dotted(overrides, key, yaml.safe_load(value))
    cfg = config_from_dict(overrides)
    points = [tuple(int(x) for x in point.split(":")) for point in args.points]
    sections = args.only or ("sampling", "iteration", "runners", "evaluation")
    layouts = {layout[0]: layout[1:] for layout in args.layout}
    if "compare" in sections and len(layouts) < 2:
        parser.error("--only compare needs two or more --layout NAME KEY=VALUE ...")
    report = {"benchmark": "training", "cpu": io.machine()["cpu"], "training": config_to_dict(cfg)["training"]}
    if "sampling" in sections:
        report["sampling"] = sampling(cfg, 1 if args.quick else args.calls, points)
    if "iteration" in sections:
        report["iteration"] = iteration(cfg, 2 if args.quick else args.iterations, points)
    if "compare" in sections:
        report["set"] = args.set
        report["compare"] = compare(cfg, layouts, 2 if args.quick else args.iterations, args.rounds, points)
    if "runners" in sections:
        report["runners"] = runners(cfg, 1 if args.quick else max(2, args.calls // 2), points)
    if "evaluation" in sections:
        report["evaluation"] = evaluation(cfg, episodes=5 if args.quick else 200, slots=20 if args.quick else 200,
                                          points=points)  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
