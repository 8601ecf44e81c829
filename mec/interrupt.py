"""Stopping a command on SIGINT (Ctrl-C) or SIGTERM: one line, a non-zero exit, nothing half-written.

`stop_on_signals(note)`: while it is entered (in the main thread), the first SIGINT or SIGTERM raises `Stopped` (a
SystemExit with status 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM) wherever the main thread runs
(torch, Ray, numpy), instead of Python's KeyboardInterrupt or the default abort. Everything on the way out runs
(`finally` blocks, context managers: Ray shuts down, the run lock is released); further signals are ignored while it
unwinds. Where it leaves, one line goes to stderr, "stopped by SIGINT: <note()>", and the Stopped goes on: uncaught,
the process ends with that status and no traceback. Nested entries (the `mec` command around a training job) print
the line once, at the innermost.

`take_signals()`: install the handlers again, after a library installed its own (ray.init takes SIGTERM).
`deferred()`: a section that a signal does not cut in two (a checkpoint being written): a signal arriving in it
stops the command as the section ends.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(SystemExit):
    """A command stopped by a signal; its code (the exit status) is 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum
        self.reported = False

    @property
    def signame(self) -> str:
        return signal.Signals(self.signum).name


class _State:
    depth = 0  # stop_on_signals entered
    stopping: int | None = None  # the signal being handled: later ones are ignored
    deferring = 0  # deferred() sections entered
    pending: int | None = None  # a signal that arrived in a deferred section


def _handler(signum: int, frame) -> None:
    if _State.stopping is not None:
        return
    if _State.deferring:
        _State.pending = signum
        return
    _State.stopping = signum
    raise Stopped(signum)


@contextlib.contextmanager
def take_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Stopped while entered (main thread only); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def stop_on_signals(note: Callable[[], str], echo: Callable[[str], None] | None = None) -> Iterator[None]:
    """Take SIGINT and SIGTERM (see the module doc); on a stop, print "stopped by <SIGNAL>: <note()>" to stderr
    (and pass it to `echo`, e.g. a job's log), once, after everything inside has unwound, and let the Stopped go on."""
    _State.depth += 1
    try:
        with take_signals():
            yield
    except Stopped as exc:
        if not exc.reported:
            exc.reported = True
            try:
                text = note()
            except Exception as error:  # the note reads the run's state; it must never hide the stop
                text = f"(its state could not be read: {type(error).__name__})"
            line = f"stopped by {exc.signame}: {text}"
            print(line, file=sys.stderr, flush=True)
            if echo is not None:
                echo(line)
        raise
    finally:
        _State.depth -= 1
        if _State.depth == 0:
            _State.stopping = _State.pending = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal arriving while this is entered stops the command when it leaves (if it leaves normally)."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
    if not _State.deferring and _State.pending is not None and _State.stopping is None:
        signum, _State.pending = _State.pending, None
        _State.stopping = signum
        raise Stopped(signum)
