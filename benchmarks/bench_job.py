"""Wall time and peak memory of the study's jobs on one core, and the default study's projected wall time; one JSON.

For each phase it runs, as subprocesses with OMP_NUM_THREADS=1, the jobs of the config's largest sweep point (by
default phase 1 N = 7 and phase 2 K = 10, seed 0):
- train: `python -m mec train --num-cpus 1` with --iterations PPO iterations (default: the config's
  training.iterations). The per-iteration times come from the run's own metrics.parquet (wall_s after each
  iteration); start-up is the job's wall time minus the iterations' (Ray and env start, teardown). The full job is
  projected as start-up + first iteration + (training.iterations - 1) x the mean of the later iterations.
  Periodic checkpoints (every training.checkpoint_every iterations) are only inside the measured iterations if the
  run reaches one.
- evaluate: `python -m mec evaluate --checkpoint <the run's best> --out ... --schedule-out ...` on the evaluation
  episodes, as the evaluate_policy rule does (its files are written to a temporary folder).
- baselines: mec.evaluation.run_baselines on the evaluation episodes, as the evaluate_baselines rule does.

Memory: a sampler (psutil, every --sample-s seconds) walks the job's whole process tree (the Python process and
every descendant: Ray's gcs_server, raylet, dashboard and worker processes included) and sums the resident set
size (RSS; counts shared pages once per process, an upper bound) and the proportional set size (PSS; shared pages
split between the processes that map them, the honest total). The peaks of those sums are reported, beside the
processes seen. A process that has re-parented itself away from the tree would be missed (none are expected).
`tree_cpu_s` is the CPU time (user + system) of the processes of the tree at their last sample: far below the wall
time means the job waited for a busy CPU, and the load average before and after is recorded for the same reason.

Projection of the whole default study (`snakemake --cores 2`: the default target, the study and the scenarios of
workflow.scenarios, without the other variants): training jobs = sum over each one's workflow.phases of (sizes x
workflow.seeds), each followed by its evaluation job; one baselines job per size. Every job of a phase is given its
largest point's measured (train: projected) time, so smaller N are overestimated; aggregation and plotting jobs (seconds
each) are left out. The jobs are packed onto --cores cores, longest first (each training job uses training.num_cpus = 1
core). This is a projection, not a measurement.

Usage: python benchmarks/bench_job.py [--iterations 3] [--phases 1 2] [--config config.yaml] [--cores 2]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mec import io  # noqa: E402
from mec.config import load_config, study_variants, variant_config  # noqa: E402

BASELINES_SNIPPET = """
import sys
from mec.config import load_config
from mec.evaluation import evaluation_episodes, run_baselines
from mec.scenario import PhaseSetup
cfg = load_config(sys.argv[1], [])
phase, n = int(sys.argv[2]), int(sys.argv[3])
setup = PhaseSetup.from_config(cfg, phase, n)
ev = cfg.evaluation
run_baselines(cfg, setup, evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed))
"""


class TreeSampler(threading.Thread):
    """Peak summed RSS and PSS of a process and all its descendants, sampled every `interval_s`."""

    def __init__(self, pid: int, interval_s: float):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_rss = 0
        self.peak_pss = 0
        self.samples = 0
        self.names: dict[int, str] = {}
        self.cpu_s: dict[int, float] = {}
        self._finished = threading.Event()

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = pss = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    info = proc.memory_full_info()
                    times = proc.cpu_times()
                    self.names.setdefault(proc.pid, proc.name())
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            self.cpu_s[proc.pid] = times.user + times.system
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.samples += 1

    def run(self) -> None:
        while not self._finished.is_set():
            self._sample()
            self._finished.wait(self.interval_s)

    def stop(self) -> dict:
        self._finished.set()
        self.join()
        seen: dict[str, int] = {}
        for name in self.names.values():
            seen[name] = seen.get(name, 0) + 1
        return {
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "peak_pss_mb": round(self.peak_pss / 2**20, 1),
            "memory_samples": self.samples,
            "tree_cpu_s": round(sum(self.cpu_s.values()), 2),
            "processes_seen": dict(sorted(seen.items())),
        }


def run_job(cmd: list[str], log_path: Path, sample_s: float) -> dict:
    """Run one job as a subprocess on one core's settings; its wall time and its process tree's memory."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid, sample_s)
        sampler.start()
        rc = proc.wait()
    wall = time.perf_counter() - started
    memory = sampler.stop()
    if rc != 0:
        tail = log_path.read_text().strip().splitlines()[-1:] or [""]
        raise SystemExit(f"job {' '.join(cmd[2:5])} exited with status {rc}: {tail[0]} (log: {log_path})")
    return {"wall_s": round(wall, 2), **memory}


def _iteration_times(metrics_path: Path) -> list[float]:
    wall = pd.read_parquet(metrics_path)["wall_s"].to_numpy()
    return [float(t) for t in pd.Series(wall).diff().fillna(wall[0])]


def bench_phase(cfg, config_path: Path, phase: int, iterations: int, work: Path, sample_s: float) -> dict:
    sizes = cfg.phase1.n_ue if phase == 1 else cfg.phase2.n_clusters
    n = max(sizes)
    size_flag = ["--n-ue", str(n)] if phase == 1 else ["--n-clusters", str(n)]
    run_dir = work / f"phase{phase}_n{n}"
    py = [sys.executable]
    config_flags = ["--config", str(config_path)]
    train = run_job(py + ["-m", "mec", "train", "--phase", str(phase), *size_flag, "--seed", "0", "--out",
                          str(run_dir), "--num-cpus", "1", *config_flags, "--set",
                          f"training.iterations={iterations}"],  # fmt: skip
                    work / f"train_phase{phase}.log", sample_s)  # fmt: skip
    per_iter = _iteration_times(run_dir / "metrics.parquet")
    later = per_iter[1:] or per_iter
    startup = train["wall_s"] - sum(per_iter)
    full_iterations = cfg.training.iterations
    projected = startup + per_iter[0] + (full_iterations - 1) * sum(later) / len(later)
    evaluate = run_job(py + ["-m", "mec", "evaluate", "--checkpoint", str(run_dir / "checkpoints" / "best"),
                             "--out", str(work / f"eval{phase}.parquet"), "--schedule-out",
                             str(work / f"schedule{phase}.parquet"), *config_flags],  # fmt: skip
                       work / f"evaluate_phase{phase}.log", sample_s)  # fmt: skip
    baselines = run_job(py + ["-c", BASELINES_SNIPPET, str(config_path), str(phase), str(n)],
                        work / f"baselines_phase{phase}.log", sample_s)  # fmt: skip
    return {
        "n" if phase == 1 else "k": n,
        "train": {
            **train,
            "iterations_run": len(per_iter),
            "iteration_s": [round(t, 3) for t in per_iter],
            "first_iteration_s": round(per_iter[0], 3),
            "mean_later_iteration_s": round(sum(later) / len(later), 3),
            "startup_and_teardown_s": round(startup, 2),
            "projected_full_job_s": round(projected, 1),
            "projected_full_job_iterations": full_iterations,
        },
        "evaluate": evaluate,
        "baselines": baselines,
    }


def pack_longest_first(durations: list[float], cores: int) -> float:
    """Makespan of independent jobs on `cores` cores, each job to the core that frees first, longest job first."""
    free = [0.0] * cores
    for d in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def project_study(cfg, phases: dict[int, dict], cores: int) -> dict:
    """The default target: the study and each scenario of workflow.scenarios, which trains and evaluates its own jobs
    (a scenario shares none of the study's), each over its own phases, sizes and seeds."""
    jobs = {"train_agents": 0, "evaluate_policy": 0, "evaluate_baselines": 0}
    chains: list[float] = []  # a training job and its evaluation, back to back; baselines jobs alone
    variants = study_variants(cfg)
    studies = {"study": cfg, **{name: variant_config(cfg, variants[name]) for name in cfg.workflow.scenarios}}
    for study in studies.values():
        for phase in study.workflow.phases:
            if phase not in phases:
                raise SystemExit(f"--phases lacks phase {phase} of workflow.phases; the study projection needs both")
            sizes = study.phase1.n_ue if phase == 1 else study.phase2.n_clusters
            p = phases[phase]
            n_runs = len(sizes) * len(study.workflow.seeds)
            jobs["train_agents"] += n_runs
            jobs["evaluate_policy"] += n_runs
            jobs["evaluate_baselines"] += len(sizes)
            chains += [p["train"]["projected_full_job_s"] + p["evaluate"]["wall_s"]] * n_runs
            chains += [p["baselines"]["wall_s"]] * len(sizes)
    makespan = pack_longest_first(chains, cores)
    return {
        "projected": True,
        "cores": cores,
        "studies": list(studies),
        "jobs": jobs,
        "job_seconds_total": round(sum(chains), 1),
        "wall_s": round(makespan, 1),
        "wall_h": round(makespan / 3600, 2),
        "excluded": "aggregate and plot jobs; the variants outside the default target (ablations, backends, "
                    "trade-off, tuning)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml", help="study config (default: config.yaml)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="PPO iterations of each measured training job (default: training.iterations)")  # fmt: skip
    parser.add_argument("--phases", type=int, nargs="+", choices=(1, 2), default=[1, 2])
    parser.add_argument("--cores", type=int, default=2, help="cores of the projected study run (default 2)")
    parser.add_argument("--sample-s", type=float, default=0.25, help="memory sampling interval in seconds")
    parser.add_argument("--keep", type=Path, default=None, help="keep the jobs' runs and logs in this folder")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, [])
    iterations = cfg.training.iterations if args.iterations is None else args.iterations
    if iterations < 1:
        parser.error(f"--iterations {iterations}: allowed an integer >= 1")
    if args.cores < 1:
        parser.error(f"--cores {args.cores}: allowed an integer >= 1")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_job_") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        phases = {p: bench_phase(cfg, args.config.resolve(), p, iterations, work, args.sample_s) for p in args.phases}
    out = {
        "benchmark": "bench_job",
        "iterations": iterations,
        "memory_method": "psutil process-tree sampler: peak of summed RSS and of summed PSS over the job's process "
        f"and all descendants, every {args.sample_s} s",
        "phases": {f"phase{p}": v for p, v in phases.items()},
        "machine": {"cpu": io.machine()["cpu"], "cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_avg_1m_before": round(load_before[0], 2),
                    "load_avg_1m_after": round(os.getloadavg()[0], 2)},  # fmt: skip
    }
    if set(cfg.workflow.phases) <= set(phases):
        out["study_projection"] = project_study(cfg, phases, args.cores)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
