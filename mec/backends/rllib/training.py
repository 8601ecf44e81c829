"""MAPPO training of one (phase, N or K, seed) job on RLlib's new API stack, with checkpoints and resume.

The RLlib side of a job: the PPOConfig (the batched fleet sampler of mec.backends.rllib.sampler, one role module
per role of mec.backends.rllib.modules, the per-row PPO learner), the training loop, and restoring modules from a
checkpoint. The run directory (metrics, checkpoints, resume) is mec.runs', shared with the SB3 backend; each
checkpoint holds RLlib's algorithm checkpoint beside mec_checkpoint.json.

Ray's processes of a job (a private instance: gcs_server, raylet, its agents and workers) carry the job's temp
folder /tmp/ray-mec-* in their environment (MEC_RAY_TEMP_DIR) and the folder holds the driver's pid file, so they
are found and ended with the driver: by ray.shutdown() and a sweep after it (also on SIGTERM, which stops the job
cleanly), by a small watchdog process when the driver is killed (kill -9 included), and, should the watchdog be
killed too, by the next training job's start, which removes the folders and processes of dead drivers.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from mec import io, metrics, runs
from mec.backends.rllib.policy import ROLE_OF_AGENT, LearnedPolicy
from mec.config import StudyConfig, config_to_dict
from mec.envs import features
from mec.envs.fleet import FleetEnv
from mec.evaluation import evaluation_episodes, run_policy
from mec.runs import CHECKPOINT_META, LOSS_KEYS, read_checkpoint_meta, trained_roles
from mec.scenario import PhaseSetup


def env_config(cfg: StudyConfig, phase: int, n: int) -> dict:
    return {"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": cfg.training.episode_slots}


def module_specs(cfg: StudyConfig, phase: int) -> dict:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mec.backends.rllib.modules import RoleModule

    t = cfg.training

    def critic(role):
        # With marginal credit the UE rows' advantage is their own credit, never the critic's: no UE critic.
        return "none" if role == "ue" and t.ue_credit == "marginal" else t.critic

    return {
        role: RLModuleSpec(
            module_class=RoleModule,
            model_config={"role": role, "hidden": list(t.hidden), "activation": t.activation, "critic": critic(role),
                          "critic_row_layers": t.critic_row_layers},
        )
        for role in trained_roles(cfg, phase)
    }


def _map_agent(agent_id, *args, **kwargs):
    return ROLE_OF_AGENT[agent_id]


def _marginal_credit(*args, **kwargs):
    from mec.backends.rllib.modules import MarginalCredit

    return MarginalCredit()


def build_ppo_config(cfg: StudyConfig, phase: int, n: int, seed: int, batched: bool = True):
    """The RLlib PPOConfig of one job: fleet env, one module per role, per-row-ratio learner.

    batched: sample with the batched fleet runner (mec.backends.rllib.sampler); False: RLlib's own
    MultiAgentEnvRunner stepping FleetEnv one env step at a time (the same episodes; kept for benchmarks)."""
    import torch
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

    from mec.backends.rllib.sampler import BatchedFleetEnvRunner
    from mec.backends.rllib.modules import FleetPPOLearner

    t = cfg.training
    specs = module_specs(cfg, phase)
    stages = len(specs)  # env steps per slot: one per role
    use_gpu = t.use_gpu and torch.cuda.is_available()
    return (
        PPOConfig()
        .environment(FleetEnv, env_config=env_config(cfg, phase, n), normalize_actions=False, clip_actions=False)
        .env_runners(
            num_env_runners=t.num_env_runners,
            num_envs_per_env_runner=1,
            **({"env_runner_cls": BatchedFleetEnvRunner} if batched else {}),
        )
        .learners(num_learners=0, num_gpus_per_learner=1 if use_gpu else 0)
        # A list, not a set: module build order (hence initial weights) must not depend on PYTHONHASHSEED.
        .multi_agent(policies=list(specs), policy_mapping_fn=_map_agent)
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        .training(
            learner_class=FleetPPOLearner,
            use_kl_loss=False,
            lr=t.lr,
            gamma=t.gamma,
            lambda_=t.gae_lambda,
            clip_param=t.clip_param,
            entropy_coeff=t.entropy_coeff,
            vf_loss_coeff=t.vf_loss_coeff,
            train_batch_size_per_learner=t.train_batch_slots * stages,
            # RLlib slices each module's batch into minibatches of this size; every role module has exactly one
            # sample per slot, so this is the number of slots per minibatch.
            minibatch_size=t.minibatch_size,
            num_epochs=t.num_epochs,
            learner_connector=_marginal_credit if t.ue_credit == "marginal" else None,
        )
        .debugging(seed=seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=1)
    )


def _write_checkpoint(algo, target: Path, meta: dict) -> None:
    """RLlib's checkpoint, the metric rows and the metadata, atomically (mec.runs.save_checkpoint)."""
    runs.save_checkpoint(target, meta, lambda tmp: algo.save_to_path(str(tmp)))


# --------------------------------------------------------------------------- Ray's processes live and die with the job

RAY_TEMP_PREFIX = "ray-mec-"
RAY_MARKER_ENV = "MEC_RAY_TEMP_DIR"  # in the environment of every process of a job's private Ray instance
DRIVER_PID_FILE = "mec_driver.pid"  # "<pid> <start time>" of the job that owns a Ray temp folder
RAY_CONNECT_TIMEOUT_S = 10


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


def _check_ray_address(address: str) -> None:
    """A cluster address must answer within RAY_CONNECT_TIMEOUT_S; ray.init would wait far longer."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ValueError(f"training.ray_address {address}: cannot reach it ({reason} within {RAY_CONNECT_TIMEOUT_S} "
                         's); allowed: the address of a running Ray cluster (ray start --head prints it), or "" for '
                         "a private Ray instance per job") from None  # fmt: skip


@contextlib.contextmanager
def _quiet_rllib():
    """RLlib's deprecation and API-stack notices about its own code (not the user's) stay out of the job's output."""
    loggers = [logging.getLogger(name) for name in ("ray._common.deprecation", "ray.rllib")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


class _Terminated(SystemExit):
    pass


@contextlib.contextmanager
def _stop_cleanly_on_sigterm(log: Callable[[str], None], tag: str):
    """SIGTERM ends the job through its `finally` blocks (ray.shutdown, the temp folder), exit status 143. Taken
    once Ray runs: ray.init installs a SIGTERM handler of its own (which aborts the process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        log(f"{tag} stopped by SIGTERM; shutting Ray down")
        raise _Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def ray_session(t, cpus: int, log: Callable[[str], None], tag: str):
    """Ray for one job: joins training.ray_address, or starts a private instance whose processes end with the job
    (see the module doc)."""
    import ray
    import torch

    if t.ray_address:
        # Join a running Ray cluster (e.g. one started across the nodes of a SLURM allocation): its size, temp dir
        # and dashboard are the cluster's own. ray.shutdown() only disconnects this driver; the cluster stays up.
        _check_ray_address(t.ray_address)
        # Ray's C++ client retries a port that answers but is no Ray cluster for about 20 s, with a warning a second
        # on fd 2: held back, and shown only if the connection succeeds.
        with tempfile.TemporaryFile() as noise:
            saved = os.dup(2)
            os.dup2(noise.fileno(), 2)
            try:
                ray.init(address=t.ray_address, log_to_driver=False, logging_level=logging.ERROR,
                         configure_logging=True)  # fmt: skip
            except ConnectionError as exc:
                raise ValueError(f"training.ray_address {t.ray_address}: no Ray cluster there ("
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
            with _stop_cleanly_on_sigterm(log, tag):
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
        with _stop_cleanly_on_sigterm(log, tag):
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


def _learner_row(result: dict, roles: list[str]) -> dict:
    """RLlib's per-module losses as {role: {loss key: value}} (absent keys are left out)."""
    losses: dict[str, dict] = {}
    for module_id, values in result.get("learners", {}).items():
        if module_id in roles and isinstance(values, dict) and "policy_loss" in values:
            losses[module_id] = {key: float(values[key]) for key in LOSS_KEYS if key in values}
    return losses


def train(
    cfg: StudyConfig,
    phase: int,
    n: int,
    seed: int,
    out: str | os.PathLike,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
    restart_stale: bool = False,
    batched: bool = True,
) -> Path:
    """Train (or resume, or skip if complete) one job; returns the run directory.

    batched: False samples with RLlib's own env runner instead of the batched one (benchmarks compare the two).

    A run directory left by another config, size or seed (or one trained beyond training.iterations) is an error,
    or, with `restart_stale`, discarded and trained afresh, but only once everything this job needs is built and
    checked (RLlib's config, the algorithm with its env, spaces and modules). The job holds a lock on the run
    directory (mec.runs.RunLock): a second job writing the same directory is refused.
    """
    out = Path(out).absolute()  # RLlib saves and restores checkpoints by absolute path (or URI) only
    setup = PhaseSetup.from_config(cfg, phase, n)
    t = cfg.training
    tag = f"[train phase={phase} {'N' if phase == 1 else 'K'}={n} seed={seed}]"
    with runs.lock_run(out), _stop_cleanly_on_sigterm(log, tag):
        state = runs.check_run(out, cfg, phase, n, seed, restart_stale, log, tag)
        if state == "complete":
            return out
        try:
            with _quiet_rllib():
                ppo = build_ppo_config(cfg, phase, n, seed, batched=batched)
                ppo.validate()
        except ValueError as exc:  # mec.config checks these in our terms first; RLlib's own word if one slips by
            raise ValueError(f"the training config is rejected by RLlib: {str(exc).splitlines()[0]}") from None
        import torch

        # The job's cores (the rule's threads on a cluster): Ray's CPUs and torch's threads in this process, no more.
        cpus = num_cpus or t.num_cpus
        torch.set_num_threads(cpus)
        with ray_session(t, cpus, log, tag):
            with _quiet_rllib():
                algo = ppo.build_algo()  # env, spaces and modules: all built before a stale run is discarded
            try:
                _train_loop(algo, cfg, setup, phase, n, seed, out, restart_stale, log, tag, state)
            finally:
                algo.stop()
    return out


def _train_loop(algo, cfg, setup, phase, n, seed, out, restart_stale, log, tag, state) -> None:
    t = cfg.training
    runs.open_run(out, cfg, phase, n, seed, restart_stale, log, tag, checked=state)
    ckpt_dir = out / "checkpoints"
    meta_base = {"backend": "rllib", "phase": phase, "n": n, "seed": seed, "config": config_to_dict(cfg)}
    start_iter, rows, best_reward = runs.resumed_rows(out, t.checkpoint_every)
    if start_iter:
        algo.restore_from_path(str(ckpt_dir / "latest"))
        log(f"{tag} resuming after iteration {start_iter} from {ckpt_dir / 'latest'}")
    # Validation episodes (training.eval_seed) pick the best checkpoint; the study's final evaluation uses
    # other episodes (evaluation.seed), so the reported numbers are not selected on the data they report.
    episodes = evaluation_episodes(cfg, setup, t.eval_episodes, t.episode_slots, t.eval_seed)
    scales = features.FeatureScales(cfg.scenario)
    wall_before = float(rows[-1]["wall_s"]) if rows else 0.0
    started = time.perf_counter()
    for iteration in range(start_iter + 1, t.iterations + 1):
        result = algo.train()
        runs.test_hook("mid-iteration", iteration)
        modules = {mid: algo.get_module(mid) for mid in module_specs(cfg, phase)}
        frame = run_policy(cfg, setup, LearnedPolicy(modules, scales), episodes, all_slots_at_once=True)
        summary = metrics.summarise(frame)
        wall = wall_before + time.perf_counter() - started
        roles = trained_roles(cfg, phase)
        row = runs.metrics_row(
            iteration=iteration,
            env_steps=result["env_runners"].get("num_env_steps_sampled_lifetime", 0),
            slots=iteration * t.train_batch_slots,
            wall_s=wall,
            episode_return_mean=result["env_runners"].get("episode_return_mean", np.nan),
            roles=roles,
            losses=_learner_row(result, roles),
            summary=summary,
            frame=frame,
            phase=phase,
        )
        reward = summary["reward_per_slot"]
        best_reward = runs.record_iteration(out, rows, row, meta_base, iteration, reward,
                                            lambda target, meta: _write_checkpoint(algo, target, meta),
                                            t.checkpoint_every)  # fmt: skip
        per_iter = (time.perf_counter() - started) / (iteration - start_iter)
        eta = per_iter * (t.iterations - iteration)
        log(
            f"{tag} iter {iteration}/{t.iterations} eval reward/slot {reward:.4f} (best {best_reward:.4f}) "
            f"QoS {summary['mean_qos']:.3f} E/task {summary['energy_per_task_j']:.3f} J "
            f"offload {summary['offload_fraction']:.2f} elapsed {wall:.0f}s ETA {eta:.0f}s"
        )
    runs.finish_run(out, meta_base, t.iterations, io.package_versions())


def _shapes(space):
    """A space's shapes, nested like the space (Dict spaces by key)."""
    if hasattr(space, "spaces") and isinstance(space.spaces, dict):
        return {key: _shapes(sub) for key, sub in space.spaces.items()}
    return tuple(space.shape) if space.shape is not None else repr(space)


def _check_spaces(checkpoint, modules: dict, meta: dict) -> None:
    """The modules of a checkpoint must be those of its metadata's phase, with the spaces of its size."""
    from mec.config import ConfigError
    from mec.envs.fleet import FLEET_AGENT

    where = Path(checkpoint) / CHECKPOINT_META
    try:
        cfg = runs.config_of_checkpoint(meta)
        expected = trained_roles(cfg, meta["phase"])
        env = FleetEnv(env_config(cfg, meta["phase"], meta["n"])) if sorted(modules) == sorted(expected) else None
    except (ConfigError, ValueError, KeyError, TypeError) as exc:
        raise io.BadCheckpointError(
            f"{where}: its phase, size or config is not valid ({exc}); use an unaltered checkpoint"
        ) from None
    size = f"phase {meta['phase']}, {'N' if meta['phase'] == 1 else 'K'} = {meta['n']}"
    if env is None:
        raise io.BadCheckpointError(
            f"{where}: {size} trains the modules {', '.join(expected)}, but the checkpoint holds "
                         f"{', '.join(sorted(modules))}; use an unaltered checkpoint")  # fmt: skip
    for role, module in sorted(modules.items()):
        agent = FLEET_AGENT[role]
        got = (_shapes(module.observation_space), _shapes(module.action_space))
        want = (_shapes(env.observation_spaces[agent]), _shapes(env.action_spaces[agent]))
        if got != want:
            raise io.BadCheckpointError(
                f"{where}: says {size}, but the {role} module's spaces {got} are not those of that "
                             f"size {want}; use an unaltered checkpoint")  # fmt: skip


def load_modules(checkpoint: str | os.PathLike) -> tuple[dict, dict]:
    """Restore the role modules of a checkpoint without building the Algorithm; returns (modules, meta)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    meta = read_checkpoint_meta(checkpoint)
    base = Path(checkpoint).resolve() / "learner_group" / "learner" / "rl_module"  # RLlib wants absolute paths
    modules = {}
    for module_dir in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else ():
        try:
            with _quiet_rllib():  # its deprecation notice about its own restore path, on every load
                module = RLModule.from_checkpoint(str(module_dir))
        except Exception as exc:  # a corrupt pickle raises anything from UnpicklingError to EOFError
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise io.BadCheckpointError(
                f"{module_dir}: cannot restore the {module_dir.name} module ({type(exc).__name__}: "
                             f"{reason}); its module_state.pkl or metadata is corrupt: use another checkpoint of "
                             "the run (latest, best, iter_<i>) or retrain it") from None  # fmt: skip
        module.eval()
        modules[module_dir.name] = module
    if "ue" not in modules or "scheduler" not in modules:
        raise io.BadCheckpointError(
            f"checkpoint {checkpoint}: expected ue and scheduler modules, found {sorted(modules)}")
    _check_spaces(checkpoint, modules, meta)
    return modules, meta
