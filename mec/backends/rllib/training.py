"""MAPPO training of one (phase, N or K, seed) job on RLlib's new API stack, with checkpoints and resume.

The RLlib side of a job: the PPOConfig (the batched fleet sampler of mec.backends.rllib.sampler, one role module
per role of mec.backends.rllib.modules, the per-row PPO learner), the training loop, and restoring modules from a
checkpoint. The run directory (metrics, checkpoints, resume) is mec.runs', shared with the SB3 backend; each
checkpoint holds RLlib's algorithm checkpoint beside mec_checkpoint.json.
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
            model_config={"role": role, "hidden": list(t.hidden), "critic": critic(role),
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
    """Save into a temporary sibling, then rename over `target` (never a half-written checkpoint in place)."""
    tmp = runs.temp_dir_beside(target)
    algo.save_to_path(str(tmp))
    (tmp / CHECKPOINT_META).write_text(json.dumps(meta, indent=1))
    runs.replace_dir(tmp, target)


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
    or, with `restart_stale`, discarded and trained afresh.
    """
    out = Path(out).absolute()  # RLlib saves and restores checkpoints by absolute path (or URI) only
    setup = PhaseSetup.from_config(cfg, phase, n)
    t = cfg.training
    tag = f"[train phase={phase} {'N' if phase == 1 else 'K'}={n} seed={seed}]"
    if not runs.open_run(out, cfg, phase, n, seed, restart_stale, log, tag):
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
