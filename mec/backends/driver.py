"""One training job, for every backend: the one loop that starts or restores, iterates, evaluates on the validation
episodes, writes the metrics row and the checkpoints atomically, and stops cleanly on SIGINT or SIGTERM.

A backend (RLlibBackend in mec.backends.rllib.training, SB3Backend in mec.backends.sb3) implements a small interface:

  Backend.label         its word in the job's log tag ("" for RLlib, "sb3")
  Backend.check(cfg)    what it can refuse before the run directory is touched (a bad value, an unreachable Ray)
  Backend.job(...)      a context manager that builds everything one job needs (env, spaces, modules, Ray) and
                        yields a Job; it tears it all down on the way out, however the job ends
  Job.name              the backend recorded in every checkpoint ("backend" in mec_checkpoint.json)
  Job.all_slots_at_once whether its validation may act on every slot at once (mec.evaluation.run_policy)
  Job.restore(ckpt)     continue from a checkpoint of this run; a file that cannot be read raises RestoreError
  Job.iterate(i)        one training iteration: a Step (env steps so far, mean training return, losses)
  Job.policy()          the current deterministic policy, batched, for the validation episodes
  Job.write_checkpoint(target, meta)   its files, the rows and the metadata, atomically (mec.runs.save_checkpoint)
  Job.versions()        the package versions recorded in run.json

The run directory's steps (lock, staleness, resume rows, metrics, checkpoints, completion) are mec.runs'; this
module puts them in their one order. Same config and seed give the same rows whichever way the job is cut into
resumed pieces, as long as the backend's Job restores every random state it draws from.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Protocol

from mec import interrupt, io, metrics, runs
from mec.config import StudyConfig, config_to_dict
from mec.evaluation import evaluation_episodes, run_policy
from mec.scenario import PhaseSetup


@dataclass
class Step:
    """What one training iteration reports. losses: {module: {loss key: value}}; a role's (mec.runs.LOSS_KEYS) go
    into its metrics columns, every module's into the log line (SB3's joint policy: "ppo", no role columns)."""

    env_steps: int
    episode_return_mean: float
    losses: dict[str, dict[str, float]] = field(default_factory=dict)


class RestoreError(Exception):
    """A checkpoint file the backend cannot resume from: `path`, and why (one line)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


class Job(Protocol):
    name: str
    all_slots_at_once: bool

    def restore(self, checkpoint: Path) -> None: ...
    def iterate(self, iteration: int) -> Step: ...
    def policy(self): ...
    def write_checkpoint(self, target: Path, meta: dict) -> None: ...
    def versions(self) -> dict: ...


class Backend(Protocol):
    label: str

    def check(self, cfg: StudyConfig) -> None: ...
    def job(self, cfg: StudyConfig, phase: int, n: int, seed: int, cpus: int, log: Callable[[str], None],
            tag: str) -> ContextManager[Job]: ...  # fmt: skip


def job_tag(label: str, phase: int, n: int, seed: int) -> str:
    return f"[train{' ' + label if label else ''} phase={phase} {'N' if phase == 1 else 'K'}={n} seed={seed}]"


def train(
    backend: Backend,
    cfg: StudyConfig,
    phase: int,
    n: int,
    seed: int,
    out: str | os.PathLike,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
    restart_stale: bool = False,
) -> Path:
    """Train (or resume, or skip if complete) one job; returns the run directory.

    A run directory left by another config, size or seed (or one trained beyond training.iterations) is an error,
    or, with `restart_stale`, discarded and trained afresh, but only once everything this job needs is built. The
    job holds a lock on the run directory (mec.runs.RunLock): a second job writing it is refused. SIGINT or SIGTERM
    stops it (mec.interrupt) with one line on stderr saying where the run resumes; rerunning the job resumes it."""
    out = Path(out).absolute()  # RLlib saves and restores checkpoints by absolute path (or URI) only
    tag = job_tag(backend.label, phase, n, seed)
    with interrupt.stop_on_signals(lambda: _stop_note(out, cfg.training.iterations)):
        backend.check(cfg)
        with runs.lock_run(out):
            state = runs.check_run(out, cfg, phase, n, seed, restart_stale, log, tag)
            if state == "complete":
                return out
            with backend.job(cfg, phase, n, seed, num_cpus or cfg.training.num_cpus, log, tag) as job:
                runs.open_run(out, cfg, phase, n, seed, restart_stale, log, tag, checked=state)
                _iterate(job, cfg, phase, n, seed, out, log, tag)
    return out


def _iterate(job: Job, cfg: StudyConfig, phase: int, n: int, seed: int, out: Path, log: Callable[[str], None],
             tag: str) -> None:  # fmt: skip
    t = cfg.training
    latest = out / "checkpoints" / "latest"
    meta_base = {"backend": job.name, "phase": phase, "n": n, "seed": seed, "config": config_to_dict(cfg)}
    start_iter, rows, best_reward = runs.resumed_rows(out, t.checkpoint_every)
    if start_iter:
        try:
            job.restore(latest)
        except RestoreError as exc:
            raise io.BadCheckpointError(f"{exc.path}: cannot resume from it ({exc.reason}); {runs.way_out(out)}")
        log(f"{tag} resuming after iteration {start_iter} from {latest}")
    # Validation episodes (training.eval_seed) pick the best checkpoint; the study's final evaluation uses other
    # episodes (evaluation.seed), so the reported numbers are not selected on the data they report.
    setup = PhaseSetup.from_config(cfg, phase, n)
    episodes = evaluation_episodes(cfg, setup, t.eval_episodes, t.episode_slots, t.eval_seed)
    roles = runs.trained_roles(cfg, phase)
    wall_before = float(rows[-1]["wall_s"]) if rows else 0.0
    started = time.perf_counter()
    for iteration in range(start_iter + 1, t.iterations + 1):
        step = job.iterate(iteration)
        runs.test_hook("mid-iteration", iteration)
        frame = run_policy(cfg, setup, job.policy(), episodes, all_slots_at_once=job.all_slots_at_once)
        summary = metrics.summarise(frame)
        wall = wall_before + time.perf_counter() - started
        row = runs.metrics_row(
            iteration=iteration,
            env_steps=step.env_steps,
            slots=iteration * t.train_batch_slots,
            wall_s=wall,
            episode_return_mean=step.episode_return_mean,
            roles=roles,
            losses=step.losses,
            summary=summary,
            frame=frame,
            phase=phase,
        )
        reward = summary["reward_per_slot"]
        best_reward = runs.record_iteration(out, rows, row, meta_base, iteration, reward, job.write_checkpoint,
                                            t.checkpoint_every)  # fmt: skip
        eta = (time.perf_counter() - started) / (iteration - start_iter) * (t.iterations - iteration)
        losses = " ".join(f"| {module} " + " ".join(f"{key} {value:.4g}" for key, value in values.items())
                          for module, values in step.losses.items())  # fmt: skip
        log(
            f"{tag} iter {iteration}/{t.iterations} eval reward/slot {reward:.4f} (best {best_reward:.4f}) "
            f"QoS {summary['mean_qos']:.3f} E/task {summary['energy_per_task_j']:.3f} J "
            f"offload {summary['offload_fraction']:.2f} {losses + ' ' if losses else ''}| elapsed {wall:.0f}s "
            f"ETA {eta:.0f}s"
        )
    runs.finish_run(out, meta_base, t.iterations, job.versions())


def _stop_note(out: Path, iterations: int) -> str:
    """Where a stopped job's run stands, read from its directory once everything has unwound."""
    if runs.run_is_complete(out, iterations):
        return f"{out} is complete"
    meta = runs.resume_point(out)
    if meta is None:
        return f"{out} holds no checkpoint yet; rerun the same command to start the run"
    return (f"{out} resumes after iteration {meta['iteration']} of {iterations}; rerun the same command to go "
            "on")  # fmt: skip
