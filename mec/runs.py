"""The run directory of one training job, the same for every backend (mec.backends.rllib, mec.backends.sb3).

Layout of a run directory:
  metrics.parquet          one row per finished iteration (written atomically after each iteration)
  run.json                 config, seed, package versions, status
  checkpoints/latest       the newest iteration (resume point)
  checkpoints/best         the iteration with the best evaluation reward so far
  checkpoints/iter_<i>     every `training.checkpoint_every` iterations
  checkpoints/final        the last iteration; its presence means the run is complete
Every checkpoint directory holds the backend's own checkpoint plus mec_checkpoint.json (iteration, phase, n, seed,
config), written into a temporary directory first and renamed into place, so a killed job never leaves a
checkpoint that looks complete. Rerunning the same command resumes from checkpoints/latest, drops metric rows
newer than it, and ends with exactly `training.iterations` rows; a finished run is not retrained.
A backend writes its checkpoints with `temp_dir_beside` + `replace_dir` and takes the steps open_run ->
resumed_rows -> record_iteration (per iteration) -> finish_run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mec import io, metrics
from mec.config import StudyConfig, config_from_dict, config_to_dict

CHECKPOINT_META = "mec_checkpoint.json"
LOSS_KEYS = ("policy_loss", "vf_loss", "entropy", "approx_kl")


def trained_roles(cfg: StudyConfig, phase: int) -> list[str]:
    """The learning roles of a job, in a fixed order (also the order of the loss columns in metrics.parquet).

    No coordinator in phase 1, nor in phase 2's no-coordinator ablation (phase2.coordinator = "equal")."""
    return ["ue", "scheduler"] + (["coordinator"] if phase == 2 and cfg.phase2.coordinator == "learned" else [])


def temp_dir_beside(target: Path) -> Path:
    """A fresh hidden directory next to `target`, readable like any other output (mkdtemp makes it 0700)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def copy_checkpoint(source: Path, target: Path) -> None:
    tmp = temp_dir_beside(target)
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    replace_dir(tmp, target)


def replace_dir(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_checkpoint_meta(checkpoint: str | os.PathLike) -> dict:
    path = Path(checkpoint) / CHECKPOINT_META
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint}: no {CHECKPOINT_META}; not a checkpoint of this study")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"checkpoint {checkpoint}: {CHECKPOINT_META} is corrupt ({exc.msg})") from None


def metrics_row(
    *,
    iteration: int,
    env_steps: int,
    slots: int,
    wall_s: float,
    episode_return_mean: float,
    roles: list[str],
    losses: dict[str, dict],
    summary: dict,
    frame: pd.DataFrame,
    phase: int,
) -> dict:
    """One metrics.parquet row, the same columns for every backend: a loss column per (role of `roles`, LOSS_KEYS)
    in that order, NaN where the backend has no such loss (e.g. one joint policy instead of role modules)."""
    row = {
        "iteration": iteration,
        "env_steps": int(env_steps),
        "slots": int(slots),
        "wall_s": float(wall_s),
        "train/episode_return_mean": float(episode_return_mean),
    }
    for role in roles:
        for key in LOSS_KEYS:
            row[f"train/{role}/{key}"] = float(losses.get(role, {}).get(key, np.nan))
    return {**row, **_eval_row(summary, frame, phase)}


def _eval_row(summary: dict, frame: pd.DataFrame, phase: int) -> dict:
    row = {f"eval/{k}": v for k, v in summary.items() if k in metrics.SUMMARY_KEYS}
    row["eval/sum_qos_per_slot"] = float(frame["sum_qos"].mean())
    row["eval/sum_energy_j_per_slot"] = float(frame["sum_energy_j"].mean())
    group = "ue" if phase == 1 else "cluster"
    qos = np.mean(np.stack(frame["group_qos"].to_numpy()), axis=0)
    energy = np.mean(np.stack(frame["group_energy_j"].to_numpy()), axis=0)
    row[f"eval/{group}_qos_per_slot"] = qos.tolist()
    row[f"eval/{group}_energy_j_per_slot"] = energy.tolist()
    return row


def run_is_complete(out: Path, iterations: int) -> bool:
    final = out / "checkpoints" / "final"
    return (final / CHECKPOINT_META).is_file() and read_checkpoint_meta(final)["iteration"] >= iterations


def _comparable(config: dict) -> dict:
    """The config without training.iterations: a run may be extended to more iterations."""
    return {**config, "training": {k: v for k, v in config["training"].items() if k != "iterations"}}


def resume_point(out: Path) -> dict | None:
    """The metadata of the checkpoint a run directory would resume from, if any."""
    checkpoints = Path(out) / "checkpoints"
    # .latest.old: a kill between the two renames of a checkpoint update; train() puts it back.
    for name in ("latest", ".latest.old"):
        if (checkpoints / name / CHECKPOINT_META).is_file():
            return read_checkpoint_meta(checkpoints / name)
    return None


def stale_reason(out: Path, cfg: StudyConfig, phase: int, n: int, seed: int) -> str | None:
    """Why a run directory cannot be resumed by this job, or None if it can (or holds nothing)."""
    meta = resume_point(out)
    if meta is None:
        return None
    if (meta["phase"], meta["n"], meta["seed"]) != (phase, n, seed):
        return f"it holds phase {meta['phase']}, size {meta['n']}, seed {meta['seed']}"
    if _comparable(meta["config"]) != _comparable(config_to_dict(cfg)):
        return "it was trained with another config"
    if meta["iteration"] > cfg.training.iterations:
        return f"it went to iteration {meta['iteration']}, beyond training.iterations={cfg.training.iterations}"
    return None


def _recover_latest(ckpt_dir: Path) -> None:
    """Clean up after a kill: a kill between the two renames of replace_dir leaves only .latest.old (put it back);
    a kill while saving or copying leaves a hidden temporary directory (remove it)."""
    old = ckpt_dir / ".latest.old"
    if not (ckpt_dir / "latest").exists() and old.exists():
        old.rename(ckpt_dir / "latest")
    for leftover in ckpt_dir.glob(".*") if ckpt_dir.exists() else ():
        shutil.rmtree(leftover, ignore_errors=True)


def _sync_side_checkpoints(ckpt_dir: Path, every: int) -> float:
    """Make best and the periodic copy agree with latest (also after a kill between the copies); returns the best
    evaluation reward so far."""
    latest = read_checkpoint_meta(ckpt_dir / "latest")
    best = ckpt_dir / "best"
    best_reward = read_checkpoint_meta(best)["eval_reward_per_slot"] if best.exists() else -np.inf
    if latest["eval_reward_per_slot"] > best_reward:
        copy_checkpoint(ckpt_dir / "latest", best)
        best_reward = latest["eval_reward_per_slot"]
    periodic = ckpt_dir / f"iter_{latest['iteration']:04d}"
    if latest["iteration"] % every == 0 and not periodic.exists():
        copy_checkpoint(ckpt_dir / "latest", periodic)
    return float(best_reward)


def open_run(out: Path, cfg: StudyConfig, phase: int, n: int, seed: int, restart_stale: bool,
             log: Callable[[str], None], tag: str) -> bool:
    """The run-directory steps every backend takes before training; False if the run is already complete.

    Staleness first: a complete run of another config must not pass for this one. A stale run is an error, or with
    `restart_stale` discarded. A checkpoint left half-renamed by a kill is recovered."""
    reason = stale_reason(out, cfg, phase, n, seed)
    if reason is not None and not restart_stale:
        raise ValueError(f"{out}: cannot resume this run here ({reason}); use a new --out or delete it")
    if reason is not None:
        log(f"{tag} discarding {out}: {reason}")
        shutil.rmtree(out)
    if run_is_complete(out, cfg.training.iterations):
        log(f"{tag} complete: {out}/checkpoints/final exists; not retrained")
        return False
    out.mkdir(parents=True, exist_ok=True)
    _recover_latest(out / "checkpoints")
    return True


def resumed_rows(out: Path, every: int) -> tuple[int, list[dict], float]:
    """(iteration of checkpoints/latest, the metric rows up to it, best validation reward) of a run to resume;
    (0, [], -inf) for a fresh one. Rows newer than the checkpoint are dropped: that iteration reruns."""
    ckpt_dir = out / "checkpoints"
    if not (ckpt_dir / "latest").exists():
        return 0, [], -np.inf
    start_iter = int(read_checkpoint_meta(ckpt_dir / "latest")["iteration"])
    rows = []
    if (out / "metrics.parquet").exists():
        done = pd.read_parquet(out / "metrics.parquet")
        rows = done[done["iteration"] <= start_iter].to_dict("records")
    return start_iter, rows, _sync_side_checkpoints(ckpt_dir, every)


def record_iteration(out: Path, rows: list[dict], row: dict, meta_base: dict, iteration: int, reward: float,
                     write_checkpoint: Callable[[Path, dict], None], every: int) -> float:
    """Append an iteration's row and write metrics.parquet, then checkpoints/latest (`write_checkpoint(target,
    meta)`), then best and periodic; returns the best validation reward so far. Metrics first: a kill in between
    reruns this iteration from the previous checkpoint and replaces its row, so rows and checkpoints never disagree."""
    rows.append(row)
    io.write_parquet(pd.DataFrame(rows), out / "metrics.parquet", {**meta_base, "iteration": iteration})
    meta = {**meta_base, "iteration": iteration, "eval_reward_per_slot": reward}
    write_checkpoint(out / "checkpoints" / "latest", meta)
    return _sync_side_checkpoints(out / "checkpoints", every)


def finish_run(out: Path, meta_base: dict, iterations: int, versions: dict) -> None:
    """checkpoints/final (a copy of latest; its presence marks the run complete) and run.json."""
    copy_checkpoint(out / "checkpoints" / "latest", out / "checkpoints" / "final")
    io.write_json({**meta_base, "status": "complete", "iterations": iterations, "versions": versions}, out / "run.json")


def config_of_checkpoint(meta: dict) -> StudyConfig:
    return config_from_dict(meta["config"])
