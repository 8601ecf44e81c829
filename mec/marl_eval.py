"""The per-seed, per-episode results in marl-eval's JSON layout, so that users of marl-eval (instadeepai/marl-eval,
Gorsane et al., NeurIPS 2022) and of BenchMARL, which exports the same layout, re-plot them with their own tools
(aggregate scores, performance profiles, probability of improvement over rliable's statistics).

The layout (marl-eval's README, "Data Structure for Raw Experiment data"; its loader
marl_eval.utils.data_processing_utils.data_process_pipeline lower-cases every key)::

    {environment: {task: {algorithm: {run: {"step_1": {"step_count": int, metric: [one value per episode], ...},
                                            "absolute_metrics": {metric: [one value per episode], ...}}}}}}

Here:

- environment: "mec_phase<P>" (phase 1: N users, one cluster; phase 2: K clusters), "mec_phase<P>_<variant>" in the
  summary of a variant of the study (workflow.variants, workflow.scenarios, ...).
- task: one sweep point, "n<N>" in phase 1 and "k<K>" in phase 2.
- algorithm: the learned policy and every baseline by its name (mec.aggregate: the heuristics, local search, the
  oracle); not the upper bound, which is no policy. Only the policies and training seeds present at every point of
  the phase are written, since marl-eval's loader reads every task with the algorithms and runs of its first one.
- run: "run_<seed>" per training seed. A baseline does not train: each of its runs holds its one evaluation, the same
  in every run, so that every algorithm has the runs marl-eval requires (its spread over runs is zero, as it is).
- metrics (`METRICS`, mec.metrics.SUMMARY_KEYS): one value per evaluation episode, in the order of the episodes, the
  same episodes for every algorithm and run (evaluation.seed's), each the episode's own headline metric
  (mec.aggregate.per_episode_metrics). absolute_metrics holds them: the evaluation at the checkpoint the study
  evaluates (the best by the validation reward). marl-eval also needs at least one logging step with a
  "step_count": "step_1" holds the same values, with step_count the training slots (environment steps) behind the
  evaluated checkpoint (its iteration x training.train_batch_slots; 0 for a baseline). The learning curves, evaluated
  on other episodes (training.eval_seed's) and stored as means only, are in learning_curves.parquet instead.

A value is a JSON number (NaN, where an episode has none, is written as NaN, which Python's json reads). The file
is written by the workflow's aggregate_metrics rule, atomically, beside the summary tables
(results/summary/marl_eval.json; a variant's under results/variants/<name>/summary/).

marl-eval itself is not a dependency: its package (id-marl-eval 0.0.4) pins numpy < 2 (the project runs numpy 2) and
pulls rliable from git, neptune, seaborn and colorama. `problems` checks instead what its loader and DiagnoseData
require of a file; tests/test_reporting.py reads the workflow's export back with `records` and checks it against the
summary tables.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mec import aggregate, metrics
from mec.io import atomic_write

METRICS = metrics.SUMMARY_KEYS
STEP = "step_1"
ABSOLUTE = "absolute_metrics"
STEP_COUNT = "step_count"
# The columns `layout` reads: the sweep point, policy, training seed (NaN for a baseline), evaluation episode, the
# training slots behind the evaluated checkpoint (NaN or 0 for a baseline) and the metrics.
TRAINING_SLOTS = "training_slots"


def environment_name(phase: int, variant: str = "") -> str:
    return f"mec_phase{int(phase)}" + (f"_{variant.lower()}" if variant else "")


def task_name(phase: int, n: int) -> str:
    return f"{'n' if int(phase) == 1 else 'k'}{int(n)}"


def point_of(environment: str, task: str) -> tuple[int, int]:
    """(phase, N or K) of an environment and task name of the layout."""
    phase, size = re.match(r"mec_phase(\d+)", environment), re.fullmatch(r"[nk](\d+)", task)
    if phase is None or size is None:
        raise ValueError(f"not an environment and task of this layout: {environment!r}, {task!r}")
    return int(phase.group(1)), int(size.group(1))


def layout(episodes: pd.DataFrame, variant: str = "") -> dict[str, Any]:
    """The marl-eval layout of `episodes`: one row per (phase, n, policy, seed, episode) of a learned policy and per
    (phase, n, policy, episode) of a baseline (seed NaN), with the columns of METRICS and TRAINING_SLOTS."""
    data: dict[str, Any] = {}
    episodes = episodes[episodes["policy"] != aggregate.BOUND]
    for phase, of_phase in episodes.groupby("phase", sort=True):
        points = sorted(of_phase["n"].unique())
        per_point = [set(of_phase.loc[of_phase["n"] == n, "policy"]) for n in points]
        policies = sorted(set.intersection(*per_point))
        learned = of_phase[of_phase["seed"].notna()]
        seeds = sorted(set.intersection(*(set(learned.loc[learned["n"] == n, "seed"].astype(int)) for n in points)))
        if not seeds:
            continue
        tasks = {}
        for n in points:
            at_point = of_phase[of_phase["n"] == n]
            algorithms = {}
            for policy in policies:
                rows = at_point[at_point["policy"] == policy]
                algorithms[policy] = {f"run_{seed}": _run(rows, seed) for seed in seeds}
            tasks[task_name(phase, n)] = algorithms
        data[environment_name(phase, variant)] = tasks
    return data


def _run(rows: pd.DataFrame, seed: int) -> dict[str, Any]:
    """One run: a learned policy's rows of that seed, or a baseline's rows (no seed) whatever the seed."""
    own = rows[rows["seed"] == seed] if rows["seed"].notna().any() else rows
    own = own.sort_values("episode")
    if own["episode"].duplicated().any():
        raise ValueError(f"{own['policy'].iloc[0]}: two rows of one evaluation episode in one run")
    values = {name: [float(v) for v in own[name]] for name in METRICS}
    slots = own[TRAINING_SLOTS].iloc[0] if TRAINING_SLOTS in own else 0
    return {STEP: {STEP_COUNT: 0 if pd.isna(slots) else int(slots), **values}, ABSOLUTE: values}


def write(data: dict[str, Any], path: str | os.PathLike) -> None:
    """The layout as JSON at `path`, atomically."""
    text = json.dumps(data, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def read(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def records(data: dict[str, Any]) -> pd.DataFrame:
    """The absolute metrics of the layout as long rows: phase, n, policy, run (its seed), episode (its position in
    the lists) and one column per metric."""
    rows = []
    for environment, tasks in data.items():
        for task, algorithms in tasks.items():
            phase, n = point_of(environment, task)
            for algorithm, runs in algorithms.items():
                for run, steps in runs.items():
                    values = steps[ABSOLUTE]
                    for i in range(len(next(iter(values.values())))):
                        rows.append({"environment": environment, "phase": phase, "n": n, "policy": algorithm,
                                     "seed": int(run.removeprefix("run_")), "episode": i,
                                     **{name: values[name][i] for name in values}})  # fmt: skip
    return pd.DataFrame(rows)


def problems(data: dict[str, Any]) -> list[str]:
    """What marl-eval's loader (data_process_pipeline, create_matrices_for_rliable, DiagnoseData) would trip on,
    one line each; empty for a valid file. Per environment: the same algorithms in every task, the same runs in
    every algorithm, the same steps in every run, each with a step_count beside the metrics (absolute_metrics
    without one), the same metrics in every step and absolute_metrics, each a non-empty list of numbers; no comma
    in an algorithm's name; keys that stay distinct when lower-cased."""
    found: list[str] = []

    def distinct(keys: Sequence[str], where: str) -> None:
        if len({key.lower() for key in keys}) != len(keys):
            found.append(f"{where}: keys equal when lower-cased")

    if not isinstance(data, dict) or not data:
        return ["not a non-empty object of environments"]
    distinct(list(data), "environments")
    for environment, tasks in data.items():
        distinct(list(tasks), environment)
        algorithms, runs, steps, names = set(), set(), set(), set()
        for task, of_task in tasks.items():
            algorithms.add(tuple(sorted(of_task)))
            distinct(list(of_task), f"{environment}/{task}")
            for algorithm, of_algorithm in of_task.items():
                if "," in algorithm:
                    found.append(f"{environment}/{task}: algorithm {algorithm!r} has a comma")
                runs.add(tuple(sorted(of_algorithm)))
                for run, of_run in of_algorithm.items():
                    steps.add(tuple(sorted(of_run)))
                    where = f"{environment}/{task}/{algorithm}/{run}"
                    if ABSOLUTE not in of_run:
                        found.append(f"{where}: no {ABSOLUTE}")
                    for step, values in of_run.items():
                        if step != ABSOLUTE and not isinstance(values.get(STEP_COUNT), int):
                            found.append(f"{where}/{step}: no integer {STEP_COUNT}")
                        names.add(tuple(sorted(set(values) - {STEP_COUNT})))
                        for name, value in values.items():
                            if name == STEP_COUNT:
                                continue
                            if not (isinstance(value, list) and value and all(isinstance(v, (int, float))
                                                                               for v in value)):  # fmt: skip
                                found.append(f"{where}/{step}/{name}: not a non-empty list of numbers")
        for what, seen in (("algorithms", algorithms), ("runs", runs), ("steps", steps), ("metrics", names)):
            if len(seen) > 1:
                found.append(f"{environment}: not the same {what} throughout: {sorted(seen)}")
        if not any(step != ABSOLUTE for of_steps in steps for step in of_steps):
            found.append(f"{environment}: no logging step beside {ABSOLUTE}")
    return found
