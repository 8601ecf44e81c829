"""Ctrl-C of the workflow's entry points (`make study`, `make report`, `make reproduce`: mec.workflow_runner) ends in
one line, exit 130 (143 for SIGTERM); a run that no signal stops passes Snakemake's output and exit status on as
they are.

The fast tests run the runner (and `make study`) on a stand-in for Snakemake (a `snakemake` module first on
PYTHONPATH that prints a few lines, waits, and on a signal prints what Snakemake prints then); the slow one runs the
tiny study (.test/config.yaml) in a copy of the workflow, stops it with Ctrl-C while its training jobs run, and
reruns it to the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mec import workflow_runner

ROOT = Path(__file__).resolve().parents[1]
LINE = f"stopped by SIGINT: {workflow_runner.STOP_NOTE}"

FAKE_SNAKEMAKE = '''
import os, signal, sys, time
def stop(signum, frame):
    print("Terminating processes on user request, this might take some time.", file=sys.stderr, flush=True)
    print("job output after the signal", flush=True)
    time.sleep(0.5)  # the jobs stopping
    print("RuleException:\\nCalledProcessError ... exit status 130.\\nWorkflowError:\\nAt least one job did not "
          "complete successfully.", file=sys.stderr, flush=True)
    sys.exit(1)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("Building DAG of jobs...", file=sys.stderr, flush=True)
print("args " + " ".join(sys.argv[1:]), flush=True)
if os.environ.get("FAKE_EXIT"):
    sys.exit(int(os.environ["FAKE_EXIT"]))
time.sleep(120)
sys.exit(5)
'''


@pytest.fixture
def fake_env(tmp_path) -> dict:
    """The environment of a command whose `python -m snakemake` is the stand-in."""
    package = tmp_path / "fake" / "snakemake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_SNAKEMAKE)
    return {**os.environ, "PYTHONPATH": str(tmp_path / "fake"), "OMP_NUM_THREADS": "1"}


def _default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


class Foreground:
    """A command in a process group of its own (as a shell runs a foreground job), stdout and stderr read as they
    come, each line with the time it arrived."""

    def __init__(self, args: list[str], env: dict, cwd: Path = ROOT):
        # A terminal's foreground job starts with SIGINT and SIGTERM at their default action; a test process may have
        # inherited them ignored (a shell's background job without job control ignores SIGINT, and an ignored signal
        # stays ignored across exec, so make would then ignore Ctrl-C).
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, preexec_fn=_default_signals)  # fmt: skip
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self.readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]  # fmt: skip
        for reader in self.readers:
            reader.start()
        self.signalled_at = float("inf")

    @staticmethod
    def _read(stream, lines) -> None:
        for line in stream:
            lines.append((time.monotonic(), line))

    def text(self, lines, after: bool | None = None) -> str:
        return "".join(line for at, line in lines if after is None or (at >= self.signalled_at) == after)

    def wait_for(self, test, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not test():
            assert self.proc.poll() is None, self.text(self.out)[-3000:] + self.text(self.err)[-3000:]
            assert time.monotonic() < deadline, self.text(self.out)[-3000:] + self.text(self.err)[-3000:]
            time.sleep(0.05)

    def signal(self, signum: int, group: bool = True, timeout: float = 300) -> int:
        self.signalled_at = time.monotonic()
        (os.killpg if group else os.kill)(self.proc.pid, signum)
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "mec.workflow_runner", *args]


# --------------------------------------------------------------------------- on a stand-in for Snakemake


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_runner_in_one_line_after_what_snakemake_printed_before_it(fake_env, signum):
    command = Foreground(runner("--cores", "2"), fake_env)
    try:
        command.wait_for(lambda: "args --cores 2\n" in command.text(command.out), 60)
        command.wait_for(lambda: command.err, 10)
        code = command.signal(signum)
    finally:
        command.kill()
    name = signal.Signals(signum).name
    assert code == 128 + signum
    assert command.text(command.out) == "args --cores 2\n"  # the job output after the signal is kept back
    assert command.text(command.err) == f"Building DAG of jobs...\nstopped by {name}: {workflow_runner.STOP_NOTE}\n"


def test_a_run_that_no_signal_stops_keeps_snakemakes_output_and_exit_status(fake_env):
    proc = subprocess.run(runner("-n", "all"), env={**fake_env, "FAKE_EXIT": "3"}, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "args -n all\n", "Building DAG of jobs...\n")
    proc = subprocess.run(runner(), env={**fake_env, "FAKE_EXIT": "0"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "args \n"


def test_a_signal_to_the_runner_alone_reaches_snakemake(fake_env):
    command = Foreground(runner(), fake_env)
    try:
        command.wait_for(lambda: command.out and command.err, 60)
        code = command.signal(signal.SIGINT, group=False, timeout=workflow_runner.GRACE_S + 30)
    finally:
        command.kill()
    assert code == 130 and command.text(command.err, after=True) == LINE + "\n"


def test_ctrl_c_of_make_study_is_the_runners_one_line_and_make_stops_on_the_signal(fake_env):
    if subprocess.run(["make", "-q", "venv"], cwd=ROOT).returncode != 0:
        pytest.skip("the project venv is not current (run `make venv`)")
    command = Foreground(["make", "--no-print-directory", "study", "CONFIG=.test/config.yaml"], fake_env)
    try:
        command.wait_for(lambda: command.out and command.err, 120)
        code = command.signal(signal.SIGINT)
    finally:
        command.kill()
    # make ends on the signal (a shell shows exit status 130), without its "*** [Makefile:NN: study] Error 130".
    assert code == -signal.SIGINT, command.text(command.err)
    assert command.text(command.err, after=True) == LINE + "\n"
    assert command.text(command.out, after=True) == ""
    assert "--workflow-profile profiles/default --configfile .test/config.yaml" in command.text(command.out)


# --------------------------------------------------------------------------- the tiny study


def test_ctrl_c_of_the_tiny_study_is_one_line_exit_130_and_the_rerun_completes(tmp_path):
    from test_workflow import RESULTS, copy_workflow, train_outputs

    workdir = copy_workflow(tmp_path / "workflow")
    targets = sorted(train_outputs(1, 2, 0) | train_outputs(1, 3, 0))
    args = runner("--workflow-profile", "profiles/default", "--configfile", ".test/config.yaml", "--cores", "2",
                  *targets)  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = workdir / RESULTS / "logs" / "train_agents"
    command = Foreground(args, env, cwd=workdir)
    try:
        # a training job has started: its log has its first line (Ray is starting or training runs)
        command.wait_for(lambda: any(log.stat().st_size for log in logs.glob("*.log")), 300)
        time.sleep(2)
        code = command.signal(signal.SIGINT)
    finally:
        command.kill()
    after = command.text(command.err, after=True)
    everything = command.text(command.out) + command.text(command.err)
    assert code == 130, everything[-5000:]
    assert [line for line in after.splitlines() if line.strip()] == [LINE], after
    assert command.text(command.out, after=True).strip() == ""
    assert "Traceback" not in everything and "KeyboardInterrupt" not in everything, everything[-5000:]
    assert "localrule train_agents" in command.text(command.err, after=False)  # the output before it came through
    # a stopped job says so in its log, in one line
    assert any("stopped by SIGINT" in log.read_text() for log in logs.glob("*.log"))

    rerun = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert all((workdir / target).is_file() for target in targets)
