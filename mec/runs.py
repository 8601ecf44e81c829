"""The run directory of one training job, the same for every backend (mec.backends.rllib, mec.backends.sb3).

Layout of a run directory:
  metrics.parquet          one row per finished iteration (written atomically after each iteration)
  run.json                 config, seed, package versions, machine and source commit, status
  checkpoints/latest       the newest iteration (resume point)
  checkpoints/best         the iteration with the best evaluation reward so far
  checkpoints/iter_<i>     every `training.checkpoint_every` iterations
  checkpoints/final        the last iteration; its presence means the run is complete
  .mec.lock                 held (fcntl.flock) by the job writing the directory: a second job is refused
Every checkpoint directory holds the backend's own checkpoint, mec_checkpoint.json (iteration, phase, n, seed,
config) and metrics.parquet (a copy of the rows 1..its iteration), written into a temporary directory first and
renamed into place, so a killed job never leaves a checkpoint that looks complete. Rerunning the same command
resumes from checkpoints/latest with the rows kept in it (the run's own metrics.parquet may be newer, or lost),
and ends with exactly `training.iterations` rows; a run is never marked complete without exactly the rows
1..iterations, and a finished run is not retrained.
The one training loop (mec.backends.driver) takes the steps lock_run -> check_run -> open_run -> resumed_rows ->
record_iteration (per iteration) -> finish_run; a backend writes its checkpoints with `save_checkpoint`.

Tests only: MEC_TEST_HOOK (see `test_hook`) kills or pauses a job at a named point; unset, it does nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mec import interrupt, io, metrics
from mec.config import StudyConfig, config_from_dict, config_to_dict

CHECKPOINT_META = "mec_checkpoint.json"
METRICS = "metrics.parquet"
LOCK_FILE = ".mec.lock"
META_KEYS = ("iteration", "phase", "n", "seed", "config")
TEST_HOOK_ENV = "MEC_TEST_HOOK"
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
    fix = "use another checkpoint of the run (latest, best, iter_<i>) or retrain it"
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise io.BadCheckpointError(f"{path}: corrupt ({reason}); {fix}") from None
    missing = [key for key in META_KEYS if not isinstance(meta, dict) or key not in meta]
    if missing or not isinstance(meta["config"], dict) or not all(
        isinstance(meta[key], int) and not isinstance(meta[key], bool) for key in ("iteration", "phase", "n", "seed")
    ):
        raise io.BadCheckpointError(
            f"{path}: corrupt (needs {', '.join(META_KEYS)}: integers and a config mapping); {fix}")
    return meta


def test_hook(point: str, iteration: int) -> None:
    """For tests only, off unless MEC_TEST_HOOK is set: MEC_TEST_HOOK="<point>:<iteration>:<action>" makes the job
    kill itself with SIGKILL (action "kill") or sleep until it is killed (action "pause") when it reaches `point`
    (mid-iteration, checkpoint-write, after-checkpoint) of that iteration, after printing one line saying so. A pause
    at checkpoint-write lies in record_iteration's deferred section: SIGINT or SIGTERM wait for its end there."""
    spec = os.environ.get(TEST_HOOK_ENV)
    if not spec or spec.rsplit(":", 1)[0] != f"{point}:{iteration}":
        return
    action = spec.rsplit(":", 1)[1]
    print(f"{TEST_HOOK_ENV}: {action} at {point} of iteration {iteration} (pid {os.getpid()})", flush=True)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(3600)


def save_checkpoint(target: Path, meta: dict, save: Callable[[Path], None]) -> None:
    """Write one checkpoint atomically: `save(tmp)` (the backend's own files), the run's metrics.parquet as it is
    now (rows 1..meta["iteration"], written just before; a checkpoint saved outside a run has none) and
    mec_checkpoint.json into a temporary sibling, then
    rename it over `target` (never a half-written checkpoint in place)."""
    tmp = temp_dir_beside(target)
    save(tmp)
    test_hook("checkpoint-write", meta["iteration"])
    metrics_file = target.parent.parent / METRICS
    if metrics_file.exists():  # always in a run (record_iteration writes it first); not for a checkpoint saved alone
        _check_rows(metrics_file, read_rows(metrics_file), meta["iteration"])
        shutil.copyfile(metrics_file, tmp / METRICS)
    io.write_json(meta, tmp / CHECKPOINT_META)
    replace_dir(tmp, target)


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.parquet, or a one-line error naming it if it cannot be read."""
    return io.read_parquet(path).to_dict("records")


def _check_rows(path: Path, rows: list[dict], iterations: int) -> None:
    got = [int(r["iteration"]) for r in rows]
    if got != list(range(1, iterations + 1)):
        shown = f"{got[0]}..{got[-1]} ({len(got)} rows)" if got else "none"
        raise ValueError(f"{path}: holds iterations {shown}, expected exactly 1..{iterations}; the run's history "
                         "is incomplete: delete the run directory to train it afresh")  # fmt: skip


def check_metrics_file(path: str | os.PathLike, iterations: int | None = None, remove_if_bad: bool = False):
    """A training metrics.parquet as the workflow reads it: readable, with exactly the rows 1..iterations (default:
    the training.iterations of the config in its provenance). With `remove_if_bad` (a file the workflow produced),
    a bad file is removed, so that rerunning the workflow rebuilds it; the error says so."""
    import pandas as pd

    path = Path(path)
    frame = io.read_parquet(path, remove_if_corrupt=remove_if_bad)
    if iterations is None:
        iterations = int(io.read_provenance(path)["config"]["training"]["iterations"])
    try:
        _check_rows(path, frame.to_dict("records"), iterations)
    except ValueError as exc:
        if not remove_if_bad:
            raise
        path.unlink(missing_ok=True)
        raise io.CorruptFileError(str(exc).split("; ")[0] + "; removed it: rerun the workflow to rebuild it") from None
    assert isinstance(frame, pd.DataFrame)
    return frame


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


class RunLock:
    """An exclusive lock on a run directory (fcntl.flock on OUT/.mec.lock), held while a job writes it; a second
    job at the same --out is refused in one line. The kernel drops the lock when the holder dies, even by kill -9."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.out.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise ValueError(f"{self.out}: another training job (pid {holder}) is writing this run directory (it "
                                 f"holds {self.path}); wait for it to end or use another --out") from None  # fmt: skip
            try:  # the file locked must still be the one at the path: a job leaving removes its lock file (__exit__)
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            # A job that wrote nothing (it failed before training: an unreachable Ray cluster) leaves no lock file.
            with contextlib.suppress(OSError):
                if [entry.name for entry in os.scandir(self.out)] == [LOCK_FILE]:
                    self.path.unlink()
            os.close(self._fd)  # releases the flock
            self._fd = None


def lock_run(out: Path) -> RunLock:
    return RunLock(out)


def discard_run(out: Path) -> None:
    """Remove everything a stale run left in `out`, but not the lock file this job holds."""
    for entry in out.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def check_run(out: Path, cfg: StudyConfig, phase: int, n: int, seed: int, restart_stale: bool,
              log: Callable[[str], None], tag: str) -> str | None:
    """What a job would do with its run directory, deciding and deleting nothing: "complete" (nothing to train),
    "stale" (to be discarded, with `restart_stale`) or None (train or resume). A stale run without `restart_stale`
    is an error. A complete run of this config is complete only with its rows 1..iterations (restored from its
    final checkpoint if the run's own metrics.parquet is gone)."""
    reason = stale_reason(out, cfg, phase, n, seed)
    if reason is not None and not restart_stale:
        raise ValueError(f"{out}: cannot resume this run here ({reason}); use a new --out or delete it")
    if reason is not None:
        return "stale:" + reason
    if run_is_complete(out, cfg.training.iterations):
        _restore_rows(out, out / "checkpoints" / "final", cfg.training.iterations)
        log(f"{tag} complete: {out}/checkpoints/final exists; not retrained")
        return "complete"
    return None


def open_run(out: Path, cfg: StudyConfig, phase: int, n: int, seed: int, restart_stale: bool,
             log: Callable[[str], None], tag: str, checked: str | None = "unchecked") -> bool:
    """The run-directory steps every backend takes before training, under the job's RunLock; False if the run is
    already complete. `checked`: check_run's answer, if the job took it (before building what it needs, so that
    nothing is discarded for a job that cannot run).

    Staleness first: a complete run of another config must not pass for this one. A stale run is an error, or with
    `restart_stale` discarded. A checkpoint left half-renamed by a kill is recovered."""
    state = check_run(out, cfg, phase, n, seed, restart_stale, log, tag) if checked == "unchecked" else checked
    if state == "complete":
        return False
    if state is not None:
        log(f"{tag} discarding {out}: {state.split(':', 1)[1]}")
        discard_run(out)
    out.mkdir(parents=True, exist_ok=True)
    _recover_latest(out / "checkpoints")
    return True


def _checkpoint_rows(checkpoint: Path, iteration: int) -> list[dict] | None:
    """The rows 1..iteration kept in a checkpoint; None for a checkpoint from before they were kept."""
    path = checkpoint / METRICS
    if not path.exists():
        return None
    rows = read_rows(path)
    _check_rows(path, rows, iteration)
    return rows


def _restore_rows(out: Path, checkpoint: Path, iteration: int) -> list[dict]:
    """The rows 1..iteration of a run: from `checkpoint`'s copy (written with it, so they agree), else from the
    run's own metrics.parquet (older checkpoints); the run's metrics.parquet is rewritten from the copy when it
    does not hold them. Refuses in one line when neither holds them."""
    own = out / METRICS
    rows = _checkpoint_rows(checkpoint, iteration)
    if rows is None:
        done = read_rows(own) if own.exists() else []
        rows = [r for r in done if int(r["iteration"]) <= iteration]
        _check_rows(own, rows, iteration)
    elif not own.exists() or [int(r["iteration"]) for r in read_rows(own)][:iteration] != list(
        range(1, iteration + 1)
    ):
        shutil.copyfile(checkpoint / METRICS, out / f".{METRICS}.restore")
        os.replace(out / f".{METRICS}.restore", own)
    return rows


def resumed_rows(out: Path, every: int) -> tuple[int, list[dict], float]:
    """(iteration of checkpoints/latest, the metric rows up to it, best validation reward) of a run to resume;
    (0, [], -inf) for a fresh one. The rows are those kept in checkpoints/latest: rows the run's metrics.parquet
    holds beyond it are dropped (that iteration reruns), and a lost metrics.parquet is restored from it."""
    ckpt_dir = out / "checkpoints"
    if not (ckpt_dir / "latest").exists():
        return 0, [], -np.inf
    start_iter = int(read_checkpoint_meta(ckpt_dir / "latest")["iteration"])
    rows = _restore_rows(out, ckpt_dir / "latest", start_iter)
    return start_iter, rows, _sync_side_checkpoints(ckpt_dir, every)


def way_out(out: Path) -> str:
    """What to do with a run whose checkpoints/latest cannot be restored: resume from its newest periodic
    checkpoint, or train it afresh."""
    ckpt = out / "checkpoints"
    periodic = sorted(p for p in ckpt.glob("iter_*") if (p / CHECKPOINT_META).is_file())
    afresh = f"delete the run ({out}) to train it afresh"
    if not periodic:
        return afresh
    latest = ckpt / "latest"
    return f"to resume from an earlier checkpoint: rm -r {latest} && cp -r {periodic[-1]} {latest}; or {afresh}"


def record_iteration(out: Path, rows: list[dict], row: dict, meta_base: dict, iteration: int, reward: float,
                     write_checkpoint: Callable[[Path, dict], None], every: int) -> float:
    """Append an iteration's row and write metrics.parquet, then checkpoints/latest (`write_checkpoint(target,
    meta)`, which saves with `save_checkpoint`: a copy of metrics.parquet goes into it), then best and periodic;
    returns the best validation reward so far. Metrics first: a kill in between reruns this iteration from the
    previous checkpoint and replaces its row, so rows and checkpoints never disagree."""
    rows.append(row)
    with interrupt.deferred():  # SIGINT or SIGTERM stops the job once the iteration is recorded in full
        io.write_parquet(pd.DataFrame(rows), out / METRICS, {**meta_base, "iteration": iteration})
        meta = {**meta_base, "iteration": iteration, "eval_reward_per_slot": reward}
        write_checkpoint(out / "checkpoints" / "latest", meta)
        best = _sync_side_checkpoints(out / "checkpoints", every)
    test_hook("after-checkpoint", iteration)
    return best


def finish_run(out: Path, meta_base: dict, iterations: int, versions: dict) -> None:
    """checkpoints/final (a copy of latest; its presence marks the run complete) and run.json; only with exactly
    the rows 1..iterations in metrics.parquet and in latest."""
    latest = out / "checkpoints" / "latest"
    if int(read_checkpoint_meta(latest)["iteration"]) != iterations:
        raise ValueError(f"{latest}: at iteration {read_checkpoint_meta(latest)['iteration']}, not {iterations}; "
                         "rerun the job to finish it")  # fmt: skip
    _check_rows(out / METRICS, read_rows(out / METRICS), iterations)
    _checkpoint_rows(latest, iterations)
    copy_checkpoint(latest, out / "checkpoints" / "final")
    io.write_json({**meta_base, "status": "complete", "iterations": iterations, "versions": versions,
                   "machine": io.machine(), "commit": io.source_commit()}, out / "run.json")  # fmt: skip


def run_origin(checkpoint: str | os.PathLike) -> dict:
    """Where the run a checkpoint lies in was trained: {"machine", "commit"} from RUN/run.json (mec.io.machine,
    mec.io.source_commit); empty for a run recorded before they were, or a checkpoint outside a run directory."""
    record_path = Path(checkpoint).absolute().parent.parent / "run.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {key: record[key] for key in ("machine", "commit") if key in record}


def _check_iteration(checkpoint: Path, meta: dict) -> None:
    """A checkpoint's iteration against what its own run says: its copy of the history (rows 1..iteration), its
    folder's name (iter_<i>), the run's record run.json (no iteration past the run's; final is its last). One line
    naming the file where they disagree."""
    iteration = meta["iteration"]
    problems = []
    rows = checkpoint / METRICS
    if rows.is_file():
        got = io.read_parquet(rows, columns=["iteration"])["iteration"]
        if len(got) and int(got.iloc[-1]) != iteration:
            problems.append(f"its own history {rows} ends at iteration {int(got.iloc[-1])}")
    named = re.fullmatch(r"iter_(\d+)", checkpoint.absolute().name)
    if named and int(named.group(1)) != iteration:
        problems.append(f"its folder is {checkpoint.absolute().name}")
    record = checkpoint.absolute().parent.parent / "run.json"
    if checkpoint.absolute().parent.name == "checkpoints" and record.is_file():
        try:
            total = json.loads(record.read_text()).get("iterations")
        except (ValueError, AttributeError):
            total = None  # mec.runs names a corrupt record
        if isinstance(total, int) and (iteration > total or (checkpoint.absolute().name == "final"
                                                             and iteration != total)):  # fmt: skip
            problems.append(f"its run's record {record} says the run has {total} iterations")
    if problems:
        raise io.BadCheckpointError(f"{checkpoint / CHECKPOINT_META}: iteration {iteration}, but "
                                    f"{'; '.join(problems)}; use an unaltered checkpoint")  # fmt: skip


def check_against_run(checkpoint: Path, meta: dict) -> None:
    """A checkpoint's metadata against the record of the run it lies in (RUN/run.json, written when the run
    completed, or else the provenance of RUN/metrics.parquet): phase, size, seed and config must agree, and its
    iteration with its own history, folder and run (_check_iteration)."""
    checkpoint = Path(checkpoint)
    _check_iteration(checkpoint, meta)
    run = checkpoint.absolute().parent.parent
    if checkpoint.absolute().parent.name != "checkpoints":
        return
    record_path = run / "run.json"
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise io.BadCheckpointError(f"{record_path}: corrupt (not JSON); restore it or retrain the run") from None
    elif (run / METRICS).is_file():
        record_path = run / METRICS
        record = io.read_provenance(record_path)
    else:
        return
    for key in ("phase", "n", "seed"):
        if key in record and record[key] != meta[key]:
            raise io.BadCheckpointError(f"{checkpoint / CHECKPOINT_META}: {key} {meta[key]!r}, but its run's record "
                             f"{record_path} says {record[key]!r}; use an unaltered checkpoint")  # fmt: skip
    if isinstance(record.get("config"), dict) and _comparable(record["config"]) != _comparable(meta["config"]):
        raise io.BadCheckpointError(
            f"{checkpoint / CHECKPOINT_META}: its config differs from its run's record {record_path}; "
                         "use an unaltered checkpoint")  # fmt: skip


def config_of_checkpoint(meta: dict) -> StudyConfig:
    return config_from_dict(meta["config"])
