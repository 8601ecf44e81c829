"""MAPPO training of one (phase, N or K, seed) job on RLlib's new API stack, and restoring modules from a checkpoint.

The RLlib side of a job: the PPOConfig (the batched fleet sampler of mec.backends.rllib.sampler, one role module
per role of mec.backends.rllib.modules, the per-row PPO learner) and the backend interface of the one training loop
(mec.backends.driver: RLlibBackend builds the algorithm in a Ray session of mec.backends.rllib.session, RLlibJob
iterates, restores and saves it). The run directory (metrics, checkpoints, resume) is mec.runs'; each checkpoint
holds RLlib's algorithm checkpoint beside mec_checkpoint.json.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from pathlib import Path
from typing import Callable

import numpy as np

from mec import io, runs
from mec.backends import driver
from mec.backends.rllib.policy import ROLE_OF_AGENT, LearnedPolicy
from mec.backends.rllib.session import check_ray_address, ray_session
from mec.config import StudyConfig, config_to_dict
from mec.envs import features
from mec.envs.fleet import FleetEnv
from mec.runs import CHECKPOINT_META, LOSS_KEYS, read_checkpoint_meta, trained_roles


def env_config(cfg: StudyConfig, phase: int, n: int) -> dict:
    return {"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": cfg.training.episode_slots}


def module_specs(cfg: StudyConfig, phase: int) -> dict:
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mec.backends.rllib.modules import RoleModule

    t = cfg.training

    def hidden(role):
        # The UEs' actor may be narrower than the other roles' networks (training.ue_hidden); the UEs have no
        # critic of their own under marginal credit, so with it the width only shapes their actor.
        return list(t.ue_hidden or t.hidden) if role == "ue" else list(t.hidden)

    def critic(role):
        # With marginal credit the UE rows' advantage is their own credit, never the critic's: no UE critic.
        return "none" if role == "ue" and t.ue_credit == "marginal" else t.critic

    return {
        role: RLModuleSpec(
            module_class=RoleModule,
            model_config={"role": role, "hidden": hidden(role), "activation": t.activation, "actor": t.actor,
                          "critic": critic(role), "critic_row_layers": t.critic_row_layers},
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
            learner_config_dict={"ue_rows_per_slot": t.ue_rows_per_slot},
        )
        .debugging(seed=seed, log_level="ERROR")
        .reporting(metrics_num_episodes_for_smoothing=1)
    )


def _write_checkpoint(algo, target: Path, meta: dict) -> None:
    """RLlib's checkpoint, the metric rows and the metadata, atomically (mec.runs.save_checkpoint)."""
    runs.save_checkpoint(target, meta, lambda tmp: algo.save_to_path(str(tmp)))




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



def _learner_row(result: dict, roles: list[str]) -> dict:
    """RLlib's per-module losses as {role: {loss key: value}} (absent keys are left out)."""
    losses: dict[str, dict] = {}
    for module_id, values in result.get("learners", {}).items():
        if module_id in roles and isinstance(values, dict) and "policy_loss" in values:
            losses[module_id] = {key: float(values[key]) for key in LOSS_KEYS if key in values}
    return losses



def _unreadable_file(checkpoint: Path) -> Path | None:
    """The first pickle of an RLlib checkpoint that does not load (the one RLlib's restore stumbled on)."""
    for path in sorted(checkpoint.rglob("*.pkl")):
        try:
            with open(path, "rb") as f:
                pickle.load(f)
        except Exception:
            return path
    return None


class RLlibJob:
    """One job's RLlib Algorithm, as the training loop drives it (mec.backends.driver.Job)."""

    name = "rllib"
    all_slots_at_once = True  # the role modules decide each slot on its own state

    def __init__(self, algo, cfg: StudyConfig, phase: int):
        self.algo = algo
        self.roles = trained_roles(cfg, phase)
        self.module_ids = list(module_specs(cfg, phase))
        self.scales = features.FeatureScales(cfg.scenario)

    def restore(self, checkpoint: Path) -> None:
        try:
            self.algo.restore_from_path(str(checkpoint))
        except Exception as exc:  # a corrupt pickle raises anything from UnpicklingError to EOFError
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise driver.RestoreError(_unreadable_file(checkpoint) or checkpoint,
                                      f"{type(exc).__name__}: {reason}") from None  # fmt: skip

    def iterate(self, iteration: int) -> driver.Step:
        result = self.algo.train()
        runners = result["env_runners"]
        return driver.Step(env_steps=runners.get("num_env_steps_sampled_lifetime", 0),
                           episode_return_mean=runners.get("episode_return_mean", np.nan),
                           losses=_learner_row(result, self.roles))  # fmt: skip

    def policy(self) -> LearnedPolicy:
        return LearnedPolicy({mid: self.algo.get_module(mid) for mid in self.module_ids}, self.scales)

    def write_checkpoint(self, target: Path, meta: dict) -> None:
        _write_checkpoint(self.algo, target, meta)

    def versions(self) -> dict:
        return io.package_versions()


class RLlibBackend:
    """The RLlib backend of the training loop (mec.backends.driver.Backend).

    batched: False samples with RLlib's own env runner instead of the batched one (benchmarks compare the two)."""

    label = ""

    def __init__(self, batched: bool = True):
        self.batched = batched

    def check(self, cfg: StudyConfig) -> None:
        if cfg.training.ray_address:  # before the run directory is touched: an address that does not answer
            check_ray_address(cfg.training.ray_address)

    @contextlib.contextmanager
    def job(self, cfg: StudyConfig, phase: int, n: int, seed: int, cpus: int, log: Callable[[str], None], tag: str):
        """RLlib's config, checked; a Ray session for the job; the algorithm with its env, spaces and modules."""
        try:
            with _quiet_rllib():
                ppo = build_ppo_config(cfg, phase, n, seed, batched=self.batched)
                ppo.validate()
        except ValueError as exc:  # mec.config checks these in our terms first; RLlib's own word if one slips by
            raise ValueError(f"the training config is rejected by RLlib: {str(exc).splitlines()[0]}") from None
        import torch

        # The job's cores (the rule's threads on a cluster): Ray's CPUs and torch's threads in this process, no more.
        torch.set_num_threads(cpus)
        with ray_session(cfg.training, cpus, log, tag):
            with _quiet_rllib():
                algo = ppo.build_algo()
            try:
                yield RLlibJob(algo, cfg, phase)
            finally:
                algo.stop()


def train(cfg: StudyConfig, phase: int, n: int, seed: int, out: str | os.PathLike, batched: bool = True,
          **options) -> Path:  # fmt: skip
    """Train (or resume, or skip if complete) one job with RLlib MAPPO; returns the run directory. batched: False
    samples with RLlib's own env runner (benchmarks); `options`: those of mec.backends.driver.train (num_cpus, log,
    restart_stale)."""
    return driver.train(RLlibBackend(batched), cfg, phase, n, seed, out, **options)


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
