"""Snakemake for `make study`, `make report` and `make reproduce`, with a Ctrl-C that ends in one line.

    python -m mec.workflow_runner <snakemake arguments>

runs `python -m snakemake <arguments>` as a child in this process's own process group and passes its stdout and
stderr on as they come, byte for byte; the exit status of a run that no signal stopped is Snakemake's own.

Ctrl-C (SIGINT to the terminal's foreground process group: make, this runner, Snakemake and its jobs) or SIGTERM:
Snakemake and its jobs take the signal themselves, as they would without the runner. Each job ends in one line in
its log (workflow_scripts/mec_rule.py, mec.interrupt), a training run keeps its latest checkpoint, Snakemake keeps
every finished job's outputs. The runner waits for all of that to finish, keeps back what Snakemake and the jobs
print after the signal (the stopped jobs, a RuleException, the failed jobs' logs, a WorkflowError), then prints one
line, "stopped by SIGINT: the workflow stopped; rerun the same command to go on (...)", and exits 130 (143 for
SIGTERM). A signal sent to this process alone (not to its group) is passed on to Snakemake and the processes under
it in its group when Snakemake shows no sign of having had it within GRACE_S seconds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_NOTE = "the workflow stopped; rerun the same command to go on (finished jobs are kept, training runs resume)"
GRACE_S = 5.0  # a signal to this process alone: how long Snakemake has to show it had it too, before it is passed on
DRAIN_S = 60.0  # after Snakemake exits: how long a process it left behind may keep its output open


class _Relay:
    """Snakemake's output, passed on until a signal arrives and kept back after it."""

    def __init__(self, wakeup: int) -> None:
        self.lock = threading.Lock()
        self.signum: int | None = None
        self.wakeup = wakeup  # the read end of signal.set_wakeup_fd's pipe: readable once a signal has come
        self.output_after_signal = False  # whether Snakemake (or a job) printed anything since the signal
        self.line_open = False  # the last byte passed to stderr was not a newline

    def stop(self, signum: int, frame=None) -> None:
        # The signal handler (the main thread, between two bytecodes): no lock, the first signal counts.
        if self.signum is None:
            self.signum = signum

    def signalled(self) -> bool:
        """Whether a signal has come, also before its Python handler has run in the main thread: pending (this
        thread blocks the signals, so the kernel holds them for the main thread) or taken (the wakeup pipe). A
        signal sent to the process group reaches this process before Snakemake can print a word about it."""
        if self.signum is not None or set(signal.sigpending()) & set(SIGNALS):
            return True
        return bool(select.select([self.wakeup], [], [], 0)[0])

    def pump(self, source, sink, is_stderr: bool) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # the main thread takes them
        fd = source.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            with self.lock:
                if self.signalled():
                    self.output_after_signal = True
                    continue
                try:
                    sink.write(chunk)
                    sink.flush()
                except (OSError, ValueError):  # our own output closed: Snakemake goes on, unheard
                    continue
                if is_stderr:
                    self.line_open = not chunk.endswith(b"\n")


def _processes_under(root: int) -> list[int]:
    """`root` and every process below it in `root`'s process group (from /proc), parents first."""
    try:
        group = os.getpgid(root)
    except OSError:
        return []
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ppid, pgrp = int(fields[1]), int(fields[2])
        if pgrp == group:
            children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def _pass_on(signum: int, root: int) -> None:
    for pid in _processes_under(root):
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def run(args: list[str]) -> int:
    """Snakemake with `args`; its exit status, or 128 + the signal's number after a signal (see the module doc)."""
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    relay = _Relay(wakeup_read)
    previous = {signum: signal.signal(signum, relay.stop) for signum in SIGNALS}
    previous_wakeup = signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        pumps = [threading.Thread(target=relay.pump, args=(source, sink, sink is sys.stderr.buffer), daemon=True)
                 for source, sink in ((proc.stdout, sys.stdout.buffer), (proc.stderr, sys.stderr.buffer))]  # fmt: skip
        for pump in pumps:
            pump.start()
        signalled_at = None
        passed_on = False
        while proc.poll() is None:
            time.sleep(0.05)
            if relay.signum is None or passed_on:
                continue
            signalled_at = signalled_at or time.monotonic()
            if relay.output_after_signal:
                passed_on = True  # Snakemake had it: it is stopping its jobs
            elif time.monotonic() - signalled_at > GRACE_S:
                passed_on = True
                _pass_on(relay.signum, proc.pid)
        deadline = time.monotonic() + DRAIN_S
        for pump in pumps:
            pump.join(timeout=max(0.0, deadline - time.monotonic()))
        with relay.lock:
            signum = relay.signum
            relay.stop(0)  # from here on the pumps keep back what they still read
            if signum:
                line = f"stopped by {signal.Signals(signum).name}: {STOP_NOTE}"
                print(("\n" if relay.line_open else "") + line, file=sys.stderr, flush=True)
    finally:
        for signum_, handler in previous.items():
            signal.signal(signum_, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(previous_wakeup)
        os.close(wakeup_write)
    if signum:
        return 128 + signum
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
