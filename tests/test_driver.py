"""The one training loop of both backends (mec.backends.driver) and stopping on a signal (mec.interrupt).

Ctrl-C (SIGINT to the command's whole process group, as a terminal sends it) of `mec train` ends in one line, exit
130, and a rerun resumes to exactly the uninterrupted run; of `mec evaluate` likewise, without a traceback. A corrupt
file in checkpoints/latest is one line naming it and the way out, and that way out works. A job that fails before
it trains leaves no lock file behind. Every run is tiny (phase 2, K = 2 of 8 users, 10-slot episodes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mec import interrupt, runs

ROOT = Path(__file__).resolve().parents[1]
ITERATIONS = 6
CONFIG = {
    "phase2": {"n_users": 8, "n_clusters": [2], "kmeans_n_init": 2},
    "training": {"iterations": ITERATIONS, "episode_slots": 10, "eval_episodes": 2, "train_batch_slots": 20,
                 "minibatch_size": 10, "num_epochs": 3, "checkpoint_every": 2, "num_cpus": 1,
                 "num_env_runners": 0},
}  # fmt: skip
BACKENDS = ["rllib", "sb3"]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("driver") / "config.yaml"
    path.write_text(json.dumps(CONFIG))  # JSON is YAML
    return path


def train_args(config: Path, out: Path, backend: str, *extra: str) -> list[str]:
    return ["train", "--phase", "2", "--n-clusters", "2", "--seed", "0", "--out", str(out), "--config", str(config),
            "--num-cpus", "1", "--backend", backend, *extra]  # fmt: skip


def job_env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop(runs.TEST_HOOK_ENV, None)
    return env


def mec(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mec", *args], cwd=ROOT, env=job_env(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def no_wall(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "metrics.parquet").drop(columns=["wall_s"])


@pytest.fixture(scope="module")
def straight(config, tmp_path_factory) -> dict[str, Path]:
    """The uninterrupted run of each backend."""
    found = {}
    for backend in BACKENDS:
        out = tmp_path_factory.mktemp(f"straight-{backend}") / "run"
        proc = mec(train_args(config, out, backend))
        assert proc.returncode == 0, proc.stderr[-3000:]
        found[backend] = out
    return found


class Command:
    """A `python -m mec` command in a process group of its own, as a shell runs a foreground job; its stdout is read
    line by line as it comes."""

    def __init__(self, args: list[str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "mec", *args], cwd=ROOT, env=job_env(), text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, test, seconds: float = 240) -> None:
        deadline = time.monotonic() + seconds
        while not test():
            assert self.proc.poll() is None, "".join(self.lines)[-2000:] + self.proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "".join(self.lines)[-2000:]
            time.sleep(0.01)

    def ctrl_c(self) -> tuple[int, str, str]:
        """SIGINT to the whole process group (the terminal's Ctrl-C); (exit status, stdout, stderr)."""
        os.killpg(self.proc.pid, signal.SIGINT)
        err = self.proc.stderr.read()
        self.proc.wait(timeout=120)
        self.reader.join(timeout=10)
        return self.proc.returncode, "".join(self.lines), err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def ray_folders_of(pid: int) -> list[str]:
    """The private Ray temp folders a driver owns (mec.backends.rllib.session's pid file names it)."""
    from mec.backends.rllib.session import DRIVER_PID_FILE, RAY_TEMP_PREFIX

    found = []
    for folder in Path("/tmp").glob(f"{RAY_TEMP_PREFIX}*"):
        try:
            if (folder / DRIVER_PID_FILE).read_text().split()[0] == str(pid):
                found.append(str(folder))
        except (OSError, IndexError):
            pass
    return found


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_stops_a_training_job_in_one_line_and_the_rerun_equals_the_uninterrupted_run(config, straight,
                                                                                            tmp_path, backend):  # fmt: skip
    out = tmp_path / "run"
    job = Command(train_args(config, out, backend))
    try:
        job.wait_for(lambda: any(f"iter 1/{ITERATIONS}" in line for line in job.lines))
        code, stdout, stderr = job.ctrl_c()
    finally:
        job.kill()
    assert code == 128 + signal.SIGINT, stdout[-2000:] + stderr[-3000:]
    # One line, saying where the run resumes; no KeyboardInterrupt traceback from torch, Ray or SB3.
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith(f"stopped by SIGINT: {out} resumes after iteration "), stderr
    assert stderr.strip().endswith(f"of {ITERATIONS}; rerun the same command to go on"), stderr
    assert "Traceback" not in stdout + stderr and "KeyboardInterrupt" not in stdout + stderr
    stopped_at = int(stderr.split("resumes after iteration ")[1].split()[0])
    assert 1 <= stopped_at < ITERATIONS
    assert not (out / "checkpoints" / "final").exists()
    assert runs.read_checkpoint_meta(out / "checkpoints" / "latest")["iteration"] == stopped_at
    assert ray_folders_of(job.proc.pid) == []  # Ray's temp folder (and its processes) went with the job
    assert not (out / runs.LOCK_FILE).exists() or _lock_is_free(out)

    rerun = mec(train_args(config, out, backend))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming after iteration {stopped_at}" in rerun.stdout
    pd.testing.assert_frame_equal(no_wall(out), no_wall(straight[backend]))
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def _lock_is_free(out: Path) -> bool:
    with runs.lock_run(out):
        return True


def _catches_sigterm(pid: int) -> bool:
    """Whether a process has a handler of its own for SIGTERM (mec.interrupt's, once a command has taken it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def test_ctrl_c_stops_an_evaluation_in_one_line_without_a_traceback(tmp_path):
    out = tmp_path / "slots.parquet"
    command = Command(["evaluate", "--phase", "1", "--n-ue", "8", "--policy", "local-search", "--episodes", "200",
                       "--slots", "50", "--out", str(out)])  # fmt: skip
    try:
        command.wait_for(lambda: _catches_sigterm(command.proc.pid))  # the command has taken the signals
        time.sleep(1.0)  # into the evaluation
        code, stdout, stderr = command.ctrl_c()
    finally:
        command.kill()
    assert code == 128 + signal.SIGINT, stderr[-3000:]
    assert stderr.strip().splitlines() == [
        "stopped by SIGINT: the evaluation did not finish (no output file is half-written); rerun the command"]
    assert stdout == "" and not out.exists() and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- mec.interrupt in this process


def test_a_signal_raises_stopped_prints_one_line_and_restores_the_handlers(capsys):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    unwound = []
    with pytest.raises(interrupt.Stopped) as stopped:
        with interrupt.stop_on_signals(lambda: "outer"):
            with interrupt.stop_on_signals(lambda: "inner note"):
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)  # the handler raises here
                finally:
                    unwound.append(True)
                    os.kill(os.getpid(), signal.SIGINT)  # a second signal while unwinding is ignored
    assert stopped.value.code == 128 + signal.SIGTERM and unwound == [True]
    assert capsys.readouterr().err == "stopped by SIGTERM: inner note\n"  # once, by the innermost
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_signal_in_a_deferred_section_stops_at_its_end(capsys):
    steps = []
    with pytest.raises(interrupt.Stopped) as stopped:
        with interrupt.stop_on_signals(lambda: "note"):
            with interrupt.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
                steps.append("the section went on")
            steps.append("after the section")
    assert stopped.value.code == 130 and steps == ["the section went on"]
    assert capsys.readouterr().err == "stopped by SIGINT: note\n"


# --------------------------------------------------------------------------- a corrupt checkpoint on resume


CORRUPT = {"rllib": "learner_group/learner/rl_module/ue/module_state.pkl", "sb3": "sb3_ppo.zip"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_garbage_file_in_latest_is_one_line_naming_it_and_the_way_out_it_names_works(config, straight, tmp_path,
                                                                                      backend):  # fmt: skip
    out = tmp_path / "run"
    shutil.copytree(straight[backend], out)
    shutil.rmtree(out / "checkpoints" / "final")  # not complete: it resumes from latest
    (out / "run.json").unlink()
    garbage = out / "checkpoints" / "latest" / CORRUPT[backend]
    garbage.write_bytes(np.random.default_rng(0).bytes(300))
    proc = mec(train_args(config, out, backend))
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {garbage}: cannot resume from it ("), err
    latest, periodic = out / "checkpoints" / "latest", out / "checkpoints" / f"iter_{ITERATIONS:04d}"
    assert err.endswith(f"; to resume from an earlier checkpoint: rm -r {latest} && cp -r {periodic} {latest}; or "
                        f"delete the run ({out}) to train it afresh"), err  # fmt: skip
    # The way out, as the line says it.
    command = err.split("earlier checkpoint: ")[1].split("; or")[0]
    subprocess.run(command, shell=True, check=True)
    proc = mec(train_args(config, out, backend))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming after iteration {ITERATIONS}" in proc.stdout
    pd.testing.assert_frame_equal(no_wall(out), no_wall(straight[backend]))


# --------------------------------------------------------------------------- nothing left by a job that never ran


def test_an_unreachable_ray_address_leaves_no_lock_in_a_new_out(config, tmp_path):
    out = tmp_path / "new"
    proc = mec(train_args(config, out, "rllib", "--set", "training.ray_address=127.0.0.1:9"), timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "training.ray_address" in err and "127.0.0.1:9" in err, err
    assert not out.exists() or list(out.iterdir()) == []


def test_the_lock_file_goes_with_a_job_that_wrote_nothing_and_stays_with_a_run(tmp_path):
    out = tmp_path / "run"
    with runs.lock_run(out):
        assert (out / runs.LOCK_FILE).is_file()
    assert list(out.iterdir()) == []
    with runs.lock_run(out):
        (out / "metrics.parquet").write_bytes(b"")
    assert sorted(p.name for p in out.iterdir()) == [runs.LOCK_FILE, "metrics.parquet"]
    with runs.lock_run(out):  # and it locks as before
        with pytest.raises(ValueError, match="another training job .* is writing this run directory"):
            runs.lock_run(out).__enter__()


def test_ctrl_c_ends_a_workflow_job_in_one_line_on_stderr_and_in_its_log(tmp_path):
    """Every rule's script runs its job in mec_rule.run: Ctrl-C of the workflow reaches each running job."""
    log = tmp_path / "job.log"
    code = (f"import sys, time, types; sys.path.insert(0, {str(ROOT / 'workflow_scripts')!r}); import mec_rule\n"
            "def main(smk):\n    print('ready', flush=True)\n    time.sleep(60)\n"
            f"mec_rule.run(main, types.SimpleNamespace(log=[{str(log)!r}]))\n")  # fmt: skip
    job = subprocess.Popen([sys.executable, "-c", code], env=job_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)  # fmt: skip
    try:
        assert job.stdout.readline() == "ready\n"
        os.killpg(job.pid, signal.SIGINT)
        _, err = job.communicate(timeout=60)
    finally:
        job.kill()
    line = "stopped by SIGINT: the job did not finish; rerun the workflow to run it again"
    assert job.returncode == 130 and err.strip().splitlines() == [line], err
    text = log.read_text()
    assert line in text and "Traceback" not in text and "KeyboardInterrupt" not in text, text
