"""MAPPO training of one (phase, N or K, seed) job on RLlib's new API stack, with checkpoints and resume.

Layout of a run directory:
  metrics.parquet          one row per finished iteration (written atomically after each iteration)
  run.json                 config, seed, package versions, status
  checkpoints/latest       the newest iteration (resume point)
  checkpoints/best         the iteration with the best evaluation reward so far
  checkpoints/iter_<i>     every `training.checkpoint_every` iterations
  checkpoints/final        the last iteration; its presence means the run is complete
Every checkpoint directory holds RLlib's algorithm checkpoint plus mec_checkpoint.json (iteration, phase, n, seed,
config), written into a temporary directory first and renamed into place, so a killed job never leaves a
checkpoint that looks complete. Rerunning the same command resumes from checkpoints/latest, drops metric rows
newer than it, and ends with exactly `training.iterations` rows; a finished run is not retrained.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mec import io, metrics
from mec.config import StudyConfig, config_from_dict, config_to_dict
from mec.envs import features
from mec.envs.fleet import FleetEnv
from mec.evaluation import evaluation_episodes, run_policy
from mec.policy import ROLE_OF_AGENT, LearnedPolicy
from mec.scenario import PhaseSetup

CHECKPOINT_META = "mec_checkpoint.json"
LOSS_KEYS = ("policy_loss", "vf_loss", "entropy", "approx_kl")


def env_config(cfg: StudyConfig, phase: int, n: int) -> dict:
    return {"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": cfg.training.episode_slots}


def trained_roles(cfg: StudyConfig, phase: int) -> list[str]:
    """The learning roles of a job, in a fixed order (also the order of the loss columns in metrics.parquet).

    No coordinator in phase 1, nor in phase 2's no-coordinator ablation (phase2.coordinator = "equal")."""
    return ["ue", "scheduler"] + (["coordinator"] if phase == 2 and cfg.phase2.coordinator == "learned" else [])


def module_specs(cfg: StudyConfig, phase: int) -> dict:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mec.modules import RoleModule

    t = cfg.training

    def critic(role):
        # With marginal credit the UE rows' advantage is their own credit, never the critic's: no UE critic.
        return "none" if role == "ue" and t.ue_credit == "marginal" else t.critic

    return {
        role: RLModuleSpec(
            module_class=RoleModule,
            model_config={"role": role, "hidden": list(t.hidden), "critic": critic(role),
                          "critic_row_layers": t.critic_row_layers},
        )
        for role in trained_roles(cfg, phase)
    }


def _map_agent(agent_id, *args, **kwargs):
    return ROLE_OF_AGENT[agent_id]


def _marginal_credit(*args, **kwargs):
    from mec.modules import MarginalCredit

    return MarginalCredit()


def build_ppo_config(cfg: StudyConfig, phase: int, n: int, seed: int, batched: bool = True):
    """The RLlib PPOConfig of one job: fleet env, one module per role, per-row-ratio learner.

    batched: sample with the batched fleet runner (mec.backends.rllib.sampler); False: RLlib's own
    MultiAgentEnvRunner stepping FleetEnv one env step at a time (the same episodes; kept for benchmarks)."""
    import torch
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

    from mec.backends.rllib.sampler import BatchedFleetEnvRunner
    from mec.modules import FleetPPOLearner

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


def _temp_dir_beside(target: Path) -> Path:
    """A fresh hidden directory next to `target`, readable like any other output (mkdtemp makes it 0700)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def _write_checkpoint(algo, target: Path, meta: dict) -> None:
    """Save into a temporary sibling, then rename over `target` (never a half-written checkpoint in place)."""
    tmp = _temp_dir_beside(target)
    algo.save_to_path(str(tmp))
    (tmp / CHECKPOINT_META).write_text(json.dumps(meta, indent=1))
    _replace_dir(tmp, target)


def _copy_checkpoint(source: Path, target: Path) -> None:
    tmp = _temp_dir_beside(target)
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    _replace_dir(tmp, target)


def _replace_dir(tmp: Path, target: Path) -> None:
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


def _learner_row(result: dict, roles: list[str]) -> dict:
    """RLlib's per-module losses as {role: {loss key: value}} (absent keys are left out)."""
    losses: dict[str, dict] = {}
    for module_id, values in result.get("learners", {}).items():
        if module_id in roles and isinstance(values, dict) and "policy_loss" in values:
            losses[module_id] = {key: float(values[key]) for key in LOSS_KEYS if key in values}
    return losses


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
    """Clean up after a kill: a kill between the two renames of _replace_dir leaves only .latest.old (put it back);
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
        _copy_checkpoint(ckpt_dir / "latest", best)
        best_reward = latest["eval_reward_per_slot"]
    periodic = ckpt_dir / f"iter_{latest['iteration']:04d}"
    if latest["iteration"] % every == 0 and not periodic.exists():
        _copy_checkpoint(ckpt_dir / "latest", periodic)
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
    _copy_checkpoint(out / "checkpoints" / "latest", out / "checkpoints" / "final")
    io.write_json({**meta_base, "status": "complete", "iterations": iterations, "versions": versions}, out / "run.json")


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
    or, with `restart_stale`, discarded and trained afresh.
    """
    out = Path(out).absolute()  # RLlib saves and restores checkpoints by absolute path (or URI) only
    setup = PhaseSetup.from_config(cfg, phase, n)
    t = cfg.training
    tag = f"[train phase={phase} {'N' if phase == 1 else 'K'}={n} seed={seed}]"
    if not open_run(out, cfg, phase, n, seed, restart_stale, log, tag):
        return out
    ckpt_dir = out / "checkpoints"
    meta_base = {"backend": "rllib", "phase": phase, "n": n, "seed": seed, "config": config_to_dict(cfg)}

    import ray
    import torch

    # The job's cores (the rule's threads on a cluster): Ray's CPUs and torch's threads in this process, no more.
    cpus = num_cpus or t.num_cpus
    torch.set_num_threads(cpus)
    ray_tmp = None
    if t.ray_address:
        # Join a running Ray cluster (e.g. one started across the nodes of a SLURM allocation): its size, temp dir
        # and dashboard are the cluster's own. ray.shutdown() in `finally` only disconnects this driver; the cluster
        # stays up for whoever started it.
        ray.init(address=t.ray_address, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
        nodes = len([node for node in ray.nodes() if node["Alive"]])
        log(f"{tag} Ray: joined the cluster at {t.ray_address} ({ray.cluster_resources().get('CPU', 0):g} CPUs on "
            f"{nodes} nodes); torch uses {torch.get_num_threads()} threads here")  # fmt: skip
    else:
        ray_tmp = tempfile.mkdtemp(prefix="ray-mec-", dir="/tmp")  # short path: Ray's socket names must fit
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
    try:
        algo = build_ppo_config(cfg, phase, n, seed, batched=batched).build_algo()
        start_iter, rows, best_reward = resumed_rows(out, t.checkpoint_every)
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
            modules = {mid: algo.get_module(mid) for mid in module_specs(cfg, phase)}
            frame = run_policy(cfg, setup, LearnedPolicy(modules, scales), episodes, all_slots_at_once=True)
            summary = metrics.summarise(frame)
            wall = wall_before + time.perf_counter() - started
            roles = trained_roles(cfg, phase)
            row = metrics_row(
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
            best_reward = record_iteration(out, rows, row, meta_base, iteration, reward,
                                           lambda target, meta: _write_checkpoint(algo, target, meta),
                                           t.checkpoint_every)  # fmt: skip
            per_iter = (time.perf_counter() - started) / (iteration - start_iter)
            eta = per_iter * (t.iterations - iteration)
            log(
                f"{tag} iter {iteration}/{t.iterations} eval reward/slot {reward:.4f} (best {best_reward:.4f}) "
                f"QoS {summary['mean_qos']:.3f} E/task {summary['energy_per_task_j']:.3f} J "
                f"offload {summary['offload_fraction']:.2f} elapsed {wall:.0f}s ETA {eta:.0f}s"
            )
        finish_run(out, meta_base, t.iterations, io.package_versions())
        algo.stop()
    finally:
        ray.shutdown()
        if ray_tmp is not None:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    return out


def load_modules(checkpoint: str | os.PathLike) -> tuple[dict, dict]:
    """Restore the role modules of a checkpoint without building the Algorithm; returns (modules, meta)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    meta = read_checkpoint_meta(checkpoint)
    base = Path(checkpoint).resolve() / "learner_group" / "learner" / "rl_module"  # RLlib wants absolute paths
    modules = {}
    for module_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        module = RLModule.from_checkpoint(str(module_dir))
        module.eval()
        modules[module_dir.name] = module
    if "ue" not in modules or "scheduler" not in modules:
        raise ValueError(f"checkpoint {checkpoint}: expected ue and scheduler modules, found {sorted(modules)}")
    return modules, meta


def config_of_checkpoint(meta: dict) -> StudyConfig:
    return config_from_dict(meta["config"])
