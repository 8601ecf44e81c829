"""Training backends and the dispatch on them: `train` by training.backend, `load_policy` by a checkpoint's backend.

  rllib  MAPPO on RLlib's new API stack, one shared policy per role (mec.backends.rllib.training)
  sb3    Stable-Baselines3 PPO, one policy taking the joint decision of a slot (mec.backends.sb3)

Both run in one training loop (mec.backends.driver), which writes the same run directory layout and
metrics.parquet columns for either and stops cleanly on SIGINT or SIGTERM; their checkpoints record their backend in
mec_checkpoint.json ("backend"; checkpoints from before that key are RLlib's), and `load_policy` restores either as
a batched `act(SlotState) -> Decisions` policy for mec.evaluation.run_policy, after checking the checkpoint's
metadata (phase, n, seed, config) against its run's record (run.json) and its modules' spaces: a mismatch or a
corrupt file is a one-line ValueError naming the file. Each backend's library is imported only when that backend
is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from mec.config import BACKENDS, StudyConfig

# The learned policy's name in every table and figure: by backend, and for RLlib by its critic (training.critic).
RLLIB_POLICY_NAMES = {"central": "mappo", "local": "ippo"}


def checkpoint_backend(meta: dict) -> str:
    """The backend that wrote a checkpoint, from its mec_checkpoint.json."""
    backend = meta.get("backend", meta.get("config", {}).get("training", {}).get("backend", "rllib"))
    if backend not in BACKENDS:
        raise ValueError(f"checkpoint backend {backend!r}: allowed {', '.join(BACKENDS)}")
    return backend


def policy_name(meta: dict) -> str:
    """mappo / ippo (rllib, by training.critic) or sb3-ppo."""
    if checkpoint_backend(meta) == "sb3":
        from mec.backends.sb3 import POLICY_NAME

        return POLICY_NAME
    return RLLIB_POLICY_NAMES[meta["config"]["training"]["critic"]]


def train(cfg: StudyConfig, phase: int, n: int, seed: int, out: str | os.PathLike, **options) -> Path:
    """Train (or resume, or skip if complete) one job with the backend of cfg.training.backend, in the one training
    loop of mec.backends.driver; `options`: those of mec.backends.driver.train (num_cpus, log, restart_stale)."""
    from mec.backends import driver

    if cfg.training.backend == "sb3":
        from mec.backends.sb3 import SB3Backend as Backend
    else:
        from mec.backends.rllib.training import RLlibBackend as Backend
    return driver.train(Backend(), cfg, phase, n, seed, out, **options)


def load_policy(checkpoint: str | os.PathLike, cfg: StudyConfig | None = None, name: str | None = None):
    """(policy, meta) of a checkpoint of either backend: its deterministic policy batched over episodes.

    cfg: the config whose scenario scales the observation features (default: the checkpoint's own config).
    name: the policy's name (default: policy_name(meta)).
    """
    from mec.runs import check_against_run, config_of_checkpoint, read_checkpoint_meta

    meta = read_checkpoint_meta(checkpoint)
    check_against_run(checkpoint, meta)  # the metadata against the run's own record; the spaces in the backend
    name = name or policy_name(meta)
    if checkpoint_backend(meta) == "sb3":
        from mec.backends import sb3

        return sb3.load_policy(checkpoint, cfg, name=name)
    from mec.envs.features import FeatureScales
    from mec.backends.rllib.policy import LearnedPolicy
    from mec.backends.rllib.training import load_modules

    modules, meta = load_modules(checkpoint)
    cfg = cfg if cfg is not None else config_of_checkpoint(meta)
    return LearnedPolicy(modules, FeatureScales(cfg.scenario), name=name), meta
