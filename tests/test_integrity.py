"""Nothing lost, nothing silently wrong (issue 15, items 2 to 6): real kills of `python -m mec train` resume to the
uninterrupted run row for row, metric rows travel with the checkpoints, nothing is discarded before the job is
known to run, checkpoints and workflow inputs are checked, and no Ray process or temp folder outlives a job.

Kills are timed with MEC_TEST_HOOK (mec.runs.test_hook): the job SIGKILLs itself, or pauses, at a named point.
Every run is tiny (phase 2, K = 2 of 8 users, 10-slot episodes, 20 slots per iteration, 3 epochs, 3 iterations).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mec import io, runs
from mec.config import config_from_dict, config_to_dict
from workflow_script import run_workflow_script

ROOT = Path(__file__).resolve().parents[1]
CONFIG_YAML = """\
phase2:
  n_users: 8
  n_clusters: [2]
  kmeans_n_init: 2
training:
  iterations: 3
  episode_slots: 10
  eval_episodes: 2
  train_batch_slots: 20
  minibatch_size: 10
  num_epochs: 3
  checkpoint_every: 1
  num_cpus: 1
  num_env_runners: 0
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("integrity") / "config.yaml"
    path.write_text(CONFIG_YAML)
    return path


def train_args(config: Path, out: Path, *extra: str, phase: int = 2, n: int = 2) -> list[str]:
    size = ["--n-ue", str(n)] if phase == 1 else ["--n-clusters", str(n)]
    return ["train", "--phase", str(phase), *size, "--seed", "0", "--out", str(out), "--config", str(config),
            "--num-cpus", "1", *extra]  # fmt: skip


def job_env(hook: str | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop(runs.TEST_HOOK_ENV, None)
    if hook:
        env[runs.TEST_HOOK_ENV] = hook
    return env


def mec(args: list[str], hook: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mec", *args], cwd=ROOT, env=job_env(hook), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def start(args: list[str], hook: str | None, log: Path) -> subprocess.Popen:
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, "-m", "mec", *args], cwd=ROOT, env=job_env(hook), stdout=f,
                                stderr=subprocess.STDOUT)  # fmt: skip


def wait_for(log: Path, text: str, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no {text!r} in {log} within {seconds} s")


def no_wall(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "metrics.parquet").drop(columns=["wall_s"])


def ray_debris(driver_pid: int) -> tuple[list[str], list[str]]:
    """(temp folders, processes) of the Ray instance a driver started: Ray names its session folder after the
    driver's pid, and every Ray process of the instance has files of that folder open (or has it in its env)."""
    folders = sorted(str(p) for p in Path("/tmp").glob(f"ray-mec-*/session_*_{driver_pid}"))
    session = re.compile(rf"^/tmp/ray-mec-[^/]+/session_[^/]*_{driver_pid}(/|$)")
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            links = []
            for fd in os.listdir(f"/proc/{entry}/fd"):
                try:
                    links.append(os.readlink(f"/proc/{entry}/fd/{fd}"))
                except OSError:
                    pass
        except OSError:
            continue
        if any(session.match(link) for link in links):
            alive.append(f"{entry} {Path(f'/proc/{entry}/cmdline').read_bytes()[:60]!r}")
    return folders, alive


def assert_no_ray_debris(driver_pid: int, within_s: float = 8) -> None:
    deadline = time.monotonic() + within_s
    while True:
        folders, alive = ray_debris(driver_pid)
        if not folders and not alive:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{within_s} s after the driver {driver_pid} died: folders {folders}, "
                                 f"processes {alive}")  # fmt: skip
        time.sleep(0.2)


@pytest.fixture(scope="module")
def straight(config, tmp_path_factory) -> Path:
    """The uninterrupted run every killed one must equal."""
    out = tmp_path_factory.mktemp("straight") / "run"
    proc = mec(train_args(config, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# --------------------------------------------------------------------------- item 2 (and 3, 6): real kills


@pytest.mark.parametrize(
    "hook, resumes_after, lose_metrics",
    [
        ("mid-iteration:2:kill", 1, False),  # after algo.train(), before the row is written
        ("after-checkpoint:2:kill", 2, False),  # latest, best and iter_0002 all written
        ("checkpoint-write:2:kill", 1, False),  # RLlib's files saved into .latest.<tmp>, not yet renamed
        ("after-checkpoint:2:kill", 2, True),  # ... and the run's own metrics.parquet is lost as well
    ],
)
def test_a_killed_job_resumes_to_the_uninterrupted_run_row_for_row(config, straight, tmp_path, hook, resumes_after,
                                                                   lose_metrics):  # fmt: skip
    out = tmp_path / "run"
    killed = subprocess.Popen([sys.executable, "-m", "mec", *train_args(config, out)], cwd=ROOT, env=job_env(hook),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    output, _ = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, output[-3000:]
    assert f"{runs.TEST_HOOK_ENV}: kill at" in output
    assert not (out / "checkpoints" / "final").exists()
    # Item 6: the killed driver's Ray processes and temp folder do not outlive it by more than a few seconds.
    assert_no_ray_debris(killed.pid)
    if lose_metrics:
        (out / "metrics.parquet").unlink()
    proc = mec(train_args(config, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming after iteration {resumes_after}" in proc.stdout
    resumed = no_wall(out)
    assert resumed["iteration"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(resumed, no_wall(straight))
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")) == []
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


# --------------------------------------------------------------------------- item 3: no lost history


def _fake_run(out: Path, iteration: int, rows: list[int] | None, kept_rows: list[int] | None = None) -> dict:
    """A run directory whose checkpoints/latest is at `iteration` (no backend files: the run lifecycle only)."""
    cfg = config_from_dict({"training": {"iterations": 3}})
    meta = {"backend": "rllib", "phase": 1, "n": 2, "seed": 0, "config": config_to_dict(cfg),
            "iteration": iteration, "eval_reward_per_slot": 1.0}  # fmt: skip
    latest = out / "checkpoints" / "latest"
    latest.mkdir(parents=True)
    (latest / runs.CHECKPOINT_META).write_text(json.dumps(meta))
    if rows is not None:
        io.write_parquet(pd.DataFrame({"iteration": rows, "wall_s": 1.0}), out / "metrics.parquet")
    if kept_rows is not None:
        io.write_parquet(pd.DataFrame({"iteration": kept_rows, "wall_s": 1.0}), latest / "metrics.parquet")
    return meta


def test_resume_without_the_rows_of_its_checkpoint_is_refused_in_one_line(tmp_path):
    """A checkpoint from before rows were kept in it, with the run's metrics.parquet lost: never rows [5, 6] only."""
    out = tmp_path / "run"
    _fake_run(out, 2, rows=None)
    with pytest.raises(ValueError, match=r"metrics.parquet: holds iterations none, expected exactly 1..2") as exc:
        runs.resumed_rows(out, every=1)
    assert "\n" not in str(exc.value) and str(out / "metrics.parquet") in str(exc.value)


def test_resume_takes_the_rows_kept_in_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    _fake_run(out, 2, rows=None, kept_rows=[1, 2])
    start, rows, _ = runs.resumed_rows(out, every=1)
    assert start == 2 and [r["iteration"] for r in rows] == [1, 2]
    assert pd.read_parquet(out / "metrics.parquet")["iteration"].tolist() == [1, 2]  # restored at once


def test_a_run_is_never_marked_complete_without_rows_1_to_iterations(tmp_path):
    out = tmp_path / "run"
    meta = _fake_run(out, 3, rows=[2, 3], kept_rows=[1, 2, 3])
    with pytest.raises(ValueError, match=r"metrics.parquet: holds iterations 2..3 \(2 rows\), expected exactly 1..3"):
        runs.finish_run(out, meta, 3, {})
    assert not (out / "checkpoints" / "final").exists() and not (out / "run.json").exists()


def test_the_workflow_refuses_a_training_history_with_fewer_rows_than_iterations(tmp_path):
    run = tmp_path / "phase1" / "n2" / "seed0"
    _fake_run(run, 3, rows=[1, 2])  # provenance of the file: none; the config says 3 iterations
    cfg = config_from_dict({"training": {"iterations": 3}})
    io.write_parquet(pd.DataFrame({"iteration": [1, 2], "wall_s": 1.0}), run / "metrics.parquet",
                     {"config": config_to_dict(cfg), "seed": 0})  # fmt: skip
    smk = SimpleNamespace(
        scriptdir=str(ROOT / "workflow_scripts"),
        input=SimpleNamespace(policy_episodes=[str(run / "eval" / "episodes.parquet")],
                              train_metrics=[str(run / "metrics.parquet")], baseline_episodes=[]),
        params=SimpleNamespace(statistics={"ci_level": 0.95, "bootstrap_resamples": 10, "seed": 0}),
        output=SimpleNamespace(learned=str(tmp_path / "l.parquet"), learning_curves=str(tmp_path / "c.parquet"),
                               comparison=str(tmp_path / "x.parquet")),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"seed0/metrics.parquet: holds iterations 1..2 \(2 rows\), expected exactly "
                       r"1..3; removed it: rerun the workflow to rebuild it"):  # fmt: skip
        run_workflow_script("aggregate_metrics", smk)
    assert not (run / "metrics.parquet").exists()  # Snakemake reruns its train_agents job, which resumes
    assert not (tmp_path / "l.parquet").exists()


# --------------------------------------------------------------------------- item 4: validate before deleting


@pytest.mark.parametrize("backend", ["rllib", "sb3"])
def test_a_stale_run_is_kept_when_the_job_cannot_be_built(tmp_path, monkeypatch, backend):
    """restart_stale discards a run of another config, but only once everything the job needs is built."""
    out = tmp_path / "run"
    _fake_run(out, 2, rows=[1, 2], kept_rows=[1, 2])
    (out / "checkpoints" / "final").mkdir()
    shutil.copy(out / "checkpoints" / "latest" / runs.CHECKPOINT_META, out / "checkpoints" / "final")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    cfg = config_from_dict({"training": {"iterations": 3, "lr": 0.0005, "backend": backend}})

    def cannot_build(*args, **kwargs):
        raise ValueError("cannot build this job")

    if backend == "rllib":
        from mec.backends.rllib import training as module

        monkeypatch.setattr(module, "build_ppo_config", cannot_build)
    else:
        pytest.importorskip("stable_baselines3")
        from mec.backends import sb3 as module

        monkeypatch.setattr(module, "build_model", cannot_build)
    with pytest.raises(ValueError, match="cannot build this job"):
        module.train(cfg, 1, 2, 0, out, log=lambda line: None, restart_stale=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != runs.LOCK_FILE) == before


# --------------------------------------------------------------------------- item 5: checked, not trusted


@pytest.fixture(scope="module")
def phase1_run(config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("p1") / "run"
    proc = mec(train_args(config, out, "--set", "training.iterations=1", "--set", "training.num_epochs=1",
                          phase=1, n=2))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _evaluate(checkpoint: Path, capsys) -> tuple[int, str]:
    from mec.cli import main

    code = main(["evaluate", "--checkpoint", str(checkpoint), "--episodes", "1", "--slots", "2", "--json"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    "case, message",
    [
        ("n=5", r"mec_checkpoint.json: n 5, but its run's record .*run.json says 2; use an unaltered checkpoint"),
        ("phase=2", r"mec_checkpoint.json: phase 2, but its run's record .*run.json says 1"),
        ("n=5 outside its run", r"mec_checkpoint.json: says phase 1, N = 5, but the (scheduler|ue) module's spaces"),
        ("phase=2 outside its run", r"mec_checkpoint.json: .*phase 2, K = 2 trains the modules ue, scheduler, "
                                    "coordinator, but the checkpoint holds scheduler, ue"),
        ("random bytes in mec_checkpoint.json", r"mec_checkpoint.json: corrupt \((not UTF-8 text|.*)\); use another "
                                                r"checkpoint of the run"),
        ("random bytes in module_state.pkl", r"rl_module/ue: cannot restore the ue module .*module_state.pkl or "
                                             "metadata is corrupt"),
    ],
)  # fmt: skip
def test_evaluate_checkpoint_refuses_a_tampered_or_corrupt_checkpoint_in_one_line(phase1_run, tmp_path, capsys,
                                                                                  case, message):  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(phase1_run, run)
    checkpoint = run / "checkpoints" / "final"
    if case.endswith("outside its run"):
        shutil.copytree(checkpoint, tmp_path / "alone")
        checkpoint = tmp_path / "alone"
    meta_path = checkpoint / runs.CHECKPOINT_META
    meta = json.loads(meta_path.read_text())
    rng = np.random.default_rng(0)
    if case.startswith("n=5"):
        meta_path.write_text(json.dumps({**meta, "n": 5}))
    elif case.startswith("phase=2"):
        meta_path.write_text(json.dumps({**meta, "phase": 2}))
    elif "mec_checkpoint.json" in case:
        meta_path.write_bytes(rng.bytes(300))
    else:
        (checkpoint / "learner_group" / "learner" / "rl_module" / "ue" / "module_state.pkl").write_bytes(rng.bytes(300))
    code, err = _evaluate(checkpoint, capsys)
    assert code == 2 and err.startswith("error:") and len(err.splitlines()) == 1, err
    assert re.search(message, err), err


def test_evaluate_checkpoint_still_takes_an_unaltered_checkpoint(phase1_run, capsys):
    from mec.cli import main

    code = main(["evaluate", "--checkpoint", str(phase1_run / "checkpoints" / "best"), "--episodes", "1", "--slots",
                 "2", "--json", "--best-of", "0"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["n_ue"] == 2


def test_a_truncated_baselines_parquet_is_one_line_naming_it_and_rebuilt_on_rerun(tmp_path):
    good = tmp_path / "phase1_n2" / "episodes.parquet"
    io.write_parquet(pd.DataFrame({"episode": [0], "policy": ["x"]}), good, {"phase": 1, "n": 2})
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    smk = SimpleNamespace(scriptdir=str(ROOT / "workflow_scripts"), input=SimpleNamespace(episodes=[str(good)]),
                          params=SimpleNamespace(statistics={}), output=SimpleNamespace(baselines="x.parquet"))  # fmt: skip
    with pytest.raises(io.CorruptFileError) as exc:
        run_workflow_script("aggregate_baselines", smk)
    message = str(exc.value)
    assert message.startswith(f"{good}: not a readable Parquet file (") and "\n" not in message
    assert message.endswith("removed it: rerun the workflow to rebuild it")
    assert not good.exists()  # so Snakemake's next run rebuilds it instead of failing on it forever


def test_a_corrupt_input_ends_a_workflow_job_with_one_line_in_its_log(tmp_path):
    log = tmp_path / "job.log"
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from mec import io; io.log_to_file({str(log)!r}); "
            "raise io.CorruptFileError('x.parquet: not a readable Parquet file (bad); removed it: rerun')")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: x.parquet: not a readable Parquet file (bad); removed it: rerun"
    assert "Traceback" not in log.read_text() and "x.parquet" in log.read_text()


# --------------------------------------------------------------------------- item 6: no debris, no clashes


def test_sigterm_stops_the_job_cleanly_and_a_second_job_at_the_same_out_is_refused(config, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "first.log"
    first = start(train_args(config, out), "mid-iteration:1:pause", log)
    try:
        wait_for(log, f"{runs.TEST_HOOK_ENV}: pause at mid-iteration of iteration 1", first)
        second = mec(train_args(config, out))
        assert second.returncode == 2
        err = second.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert f"error: {out}: another training job (pid {first.pid}) is writing this run directory" in err
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 128 + signal.SIGTERM, log.read_text()[-3000:]
    assert "stopped by SIGTERM" in log.read_text()
    assert_no_ray_debris(first.pid, within_s=5)


def test_the_next_start_removes_what_dead_jobs_left(tmp_path):
    from mec.backends.rllib.session import DRIVER_PID_FILE, RAY_MARKER_ENV, clean_dead_ray_sessions

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = Path(f"/tmp/ray-mec-test-dead-{os.getpid()}")
    alive = Path(f"/tmp/ray-mec-test-alive-{os.getpid()}")
    for folder, owner in ((left, dead.pid), (alive, os.getpid())):
        folder.mkdir()
        started = Path(f"/proc/{owner}/stat").read_text().rsplit(")", 1)[1].split()[19] if owner == os.getpid() else "1"
        (folder / DRIVER_PID_FILE).write_text(f"{owner} {started}\n")
    straggler = subprocess.Popen(["sleep", "300"], env={**os.environ, RAY_MARKER_ENV: str(left)})
    # Until the child has exec'd, /proc shows the parent's environment (without the marker): wait for it.
    marker = f"{RAY_MARKER_ENV}={left}".encode()
    deadline = time.monotonic() + 10
    while marker not in Path(f"/proc/{straggler.pid}/environ").read_bytes().split(b"\0"):
        assert time.monotonic() < deadline, "the straggler never showed its environment"
        time.sleep(0.01)
    try:
        cleaned = clean_dead_ray_sessions()
        assert str(left) in cleaned and str(alive) not in cleaned
        assert not left.exists() and alive.exists()
        assert straggler.wait(timeout=5) == -signal.SIGKILL
    finally:
        straggler.kill()
        shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(alive, ignore_errors=True)


@pytest.mark.parametrize("address", ["127.0.0.1:9", "10.255.255.1:6379"])
def test_an_unreachable_ray_address_fails_within_30_s_in_one_line(config, tmp_path, address):
    started = time.monotonic()
    proc = mec(train_args(config, tmp_path / "run", "--set", f"training.ray_address={address}"), timeout=120)
    # 30 s for the address itself; the margin is the job's own start (Python, torch and Ray imports), which on a
    # loaded 2-core machine took 13 s more in one run of the whole suite.
    assert time.monotonic() - started < 45
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    # Refused or silent: it does not answer; a port that answers but is no Ray cluster (a proxy): no Ray cluster there.
    key = re.escape("error: config key 'training.ray_address': ")
    assert re.match(rf"{key}{address}(:? does not answer|: no Ray cluster there) \(", err), err
    # Nothing left in --out: an address that does not answer is refused before --out is created; one that answers
    # but is no Ray cluster (a proxy here answers any address) only once the job joins it, leaving --out empty.
    run = tmp_path / "run"
    assert not run.exists() or not any(run.iterdir())


def test_a_bad_checkpoint_ends_a_workflow_job_in_one_line_without_a_traceback(tmp_path):
    """What evaluate_policy's log says about a checkpoint that does not match its run: the one line, no traceback
    (io.log_to_file treats BadCheckpointError like CorruptFileError); an unexpected error keeps its traceback."""
    code = (
        "import sys; from mec import io; io.log_to_file(sys.argv[1]); "
        "raise (io.BadCheckpointError if sys.argv[2] == 'bad' else RuntimeError)('ckpt/mec_checkpoint.json: n 5, "
        "but its run says 2; use an unaltered checkpoint')"
    )
    for kind in ("bad", "bug"):
        log = tmp_path / f"{kind}.log"
        proc = subprocess.run([sys.executable, "-c", code, str(log), kind], capture_output=True, text=True)
        assert proc.returncode == 1
        text = log.read_text()
        assert "use an unaltered checkpoint" in text
        assert ("Traceback" in text) == (kind == "bug"), text
        if kind == "bad":
            assert proc.stderr.strip().splitlines() == [
                "error: ckpt/mec_checkpoint.json: n 5, but its run says 2; use an unaltered checkpoint"]
