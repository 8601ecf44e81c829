"""Ray's processes of a training job live and die with it: the session start, the reaping, the temp folders and the
watchdog (mec.backends.rllib.training runs its jobs in `ray_session`).

Ray's processes of a job (a private instance: gcs_server, raylet, its agents and workers) carry the job's temp
folder /tmp/ray-mec-* in their environment (MEC_RAY_TEMP_DIR) and the folder holds the driver's pid file, so they
are found and ended with the driver: by ray.shutdown() and a sweep after it (also when SIGINT or SIGTERM stops the
job, mec.interrupt), by a small watchdog process when the driver is killed (kill -9 included), and, should the
watchdog be killed too, by the next training job's start, which removes the folders and processes of dead drivers.
A job that joins a cluster (training.ray_address) only connects to it; `check_ray_address` says, within seconds and
in one line, when nothing answers there.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from mec import interrupt

RAY_TEMP_PREFIX = "ray-mec-"
RAY_MARKER_ENV = "MEC_RAY_TEMP_DIR"  # in the environment of every process of a job's private Ray instance
DRIVER_PID_FILE = "mec_driver.pid"  # "<pid> <start time>" of the job that owns a Ray temp folder


def reap_ray_session(ray_tmp: str, skip: tuple = ()) -> int:
    """SIGKILL every process whose environment carries MEC_RAY_TEMP_DIR=`ray_tmp`, or that holds a file in it open
    (but this one and `skip`), wait for them to be gone, then remove the folder; returns the number of processes
    ended. Standard library only: the watchdog runs this function's source on its own."""
    import os
    import shutil
    import signal
    import time

    marker = ("MEC_RAY_TEMP_DIR=" + ray_tmp).encode()

    def holds_file_in(pid):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(ray_tmp + "/"):
                    return True
            except OSError:
                pass
        return False

    spared = {os.getpid(), *skip}
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                found = marker in f.read().split(b"\0")
            # Ray's agents rename their process (setproctitle), which overwrites their environment; their open
            # log files in the folder tell them apart.
            found = found or holds_file_in(entry)
        except OSError:
            continue
        if found:
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
            except OSError:
                pass

    def running(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(running(pid) for pid in killed):
        time.sleep(0.05)
    for _ in range(3):  # a dying process may still write its last log line
        shutil.rmtree(ray_tmp, ignore_errors=True)
        if not os.path.exists(ray_tmp):
            break
        time.sleep(0.1)
    return len(killed)


_WATCHDOG = """
import os, sys, time
driver, ray_tmp = int(sys.argv[1]), sys.argv[2]
while os.getppid() == driver:
    time.sleep(0.2)
{source}
reap_ray_session(ray_tmp)
"""


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _driver_alive(ray_tmp: Path) -> bool:
    """Whether the job that owns a Ray temp folder still runs (by its pid file; for a folder of an older version
    without one, by its driver logs)."""
    pid_file = ray_tmp / DRIVER_PID_FILE
    if pid_file.is_file():
        try:
            pid, started = pid_file.read_text().split()
        except (OSError, ValueError):
            return time.time() - ray_tmp.stat().st_mtime < 60  # being written just now
        return _start_time(int(pid)) == started
    drivers = [p.stem.rsplit("_", 1)[-1] for p in ray_tmp.glob("session_*/logs/python-core-driver-*_*.log")]
    if not drivers:
        return time.time() - ray_tmp.stat().st_mtime < 3600
    return any(d.isdigit() and _start_time(int(d)) is not None for d in drivers)


def clean_dead_ray_sessions(log: Callable[[str], None] = lambda line: None, tag: str = "") -> list[str]:
    """Remove the Ray temp folders (and end the Ray processes) that jobs of this user left when they died."""
    cleaned = []
    for folder in Path("/tmp").glob(f"{RAY_TEMP_PREFIX}*"):
        try:
            if folder.stat().st_uid != os.getuid() or not folder.is_dir() or _driver_alive(folder):
                continue
        except OSError:
            continue
        ended = reap_ray_session(str(folder))
        log(f"{tag} removed {folder} ({ended} Ray processes): left by a training job that died")
        cleaned.append(str(folder))
    return cleaned


def check_ray_address(address: str) -> None:
    """A cluster address must answer within mec.plan.RAY_CONNECT_TIMEOUT_S; ray.init would wait far longer. The one
    check the workflow (before any job starts), `mec train` (before --out is created) and the job itself make."""
    from mec.plan import ray_address_problem

    problem = ray_address_problem(address)
    if problem is not None:
        raise ValueError(problem)


@contextlib.contextmanager
def ray_session(t, cpus: int, log: Callable[[str], None], tag: str):
    """Ray for one job: joins training.ray_address, or starts a private instance whose processes end with the job
    (see the module doc)."""
    import ray
    import torch

    if t.ray_address:
        # Join a running Ray cluster (e.g. one started across the nodes of a SLURM allocation): its size, temp dir
        # and dashboard are the cluster's own. ray.shutdown() only disconnects this driver; the cluster stays up.
        check_ray_address(t.ray_address)
        # Ray's C++ client retries a port that answers but is no Ray cluster for about 20 s, with a warning a second
        # on fd 2: held back, and shown only if the connection succeeds.
        with tempfile.TemporaryFile() as noise:
            saved = os.dup(2)
            os.dup2(noise.fileno(), 2)
            try:
                ray.init(address=t.ray_address, log_to_driver=False, logging_level=logging.ERROR,
                         configure_logging=True)  # fmt: skip
            except ConnectionError as exc:
                raise ValueError(f"config key 'training.ray_address': {t.ray_address}: no Ray cluster there ("
                                 f"{str(exc).splitlines()[0]}); allowed: the address of a running Ray cluster, or "
                                 '"" for a private instance') from None  # fmt: skip
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            noise.seek(0)
            sys.stderr.write(noise.read().decode(errors="replace"))
        try:
            nodes = len([node for node in ray.nodes() if node["Alive"]])
            log(f"{tag} Ray: joined the cluster at {t.ray_address} ({ray.cluster_resources().get('CPU', 0):g} CPUs on "
                f"{nodes} nodes); torch uses {torch.get_num_threads()} threads here")  # fmt: skip
            with interrupt.take_signals():  # ray.init took SIGTERM
                yield
        finally:
            ray.shutdown()
        return
    clean_dead_ray_sessions(log, tag)
    ray_tmp = tempfile.mkdtemp(prefix=RAY_TEMP_PREFIX, dir="/tmp")  # short path: Ray's socket names must fit
    (Path(ray_tmp) / DRIVER_PID_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG.format(source=inspect.getsource(reap_ray_session)), str(os.getpid()), ray_tmp],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != RAY_MARKER_ENV},
    )  # fmt: skip
    previous = os.environ.get(RAY_MARKER_ENV)
    os.environ[RAY_MARKER_ENV] = ray_tmp
    try:
        ray.init(
            num_cpus=cpus,
            num_gpus=None if t.use_gpu else 0,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            _temp_dir=ray_tmp,
            configure_logging=True,
        )
        log(f"{tag} Ray: a private instance with {cpus} CPUs; torch uses {torch.get_num_threads()} threads")
        with interrupt.take_signals():  # ray.init took SIGTERM
            yield
    finally:
        try:
            ray.shutdown()
        finally:
            if previous is None:
                os.environ.pop(RAY_MARKER_ENV, None)
            else:
                os.environ[RAY_MARKER_ENV] = previous
            reap_ray_session(ray_tmp, skip=(watchdog.pid,))
            watchdog.kill()
            watchdog.wait()

