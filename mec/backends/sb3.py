"""The Stable-Baselines3 backend (training.backend: sb3): single-agent PPO on the joint decision, same study outputs.

What it trains: one SB3 PPO policy (MlpPolicy, separate actor and critic MLPs of training.hidden) that takes every
agent's decision of a slot at once, on the slot-per-step joint-action view (mec.backends.slot_env): one SB3 step
is one slot of the same simulator, its reward the slot's reward (divided by N, as every RLlib agent receives it).

Why the joint action, not agents trained in alternation: SB3 is a single-agent library, and a joint policy is the
natural single-agent reading of the problem (it is also what the reference implementation did for phase 2's UEs, see
docs/design.md, "One RLlib agent per role"), so this backend is the centralised single-agent baseline beside the
RLlib backend's MAPPO with shared per-role actors. Alternation would need frozen co-players and an iteration
schedule SB3 has no notion of, and would still not be MAPPO. Why one step per slot, not per stage: the slot's reward
arrives at its last stage, and SB3's single discount would cut the earlier stages off from it (the study's gamma is
0); a slot per step makes training.gamma a per-slot discount exactly as in RLlib, and halves or thirds the forward
passes.

Hyperparameters (config training.*): train_batch_slots -> n_steps (one env, so the batch is that many slots),
minibatch_size -> batch_size, num_epochs -> n_epochs, lr -> learning_rate, gamma, gae_lambda, clip_param -> clip_range,
entropy_coeff -> ent_coef, vf_loss_coeff -> vf_coef, hidden -> net_arch (pi and vf), activation -> activation_fn, seed.
Everything else keeps SB3's defaults (advantages normalised per minibatch, gradient norm clipped at 0.5,
state-independent log std starting at 0). training.critic, actor, ue_hidden, ue_credit, num_env_runners and
ray_address do not apply (actor and critic both see the full slot observation, so there is no per-row actor to
choose; one joint action has one reward, the slot's; sampling is one env in this process, without Ray); num_cpus
sets torch's threads. Nor does scenario.spectrum_by: the joint action sets every spectrum weight whoever would set it
(mec.backends.slot_env).

The job runs in the one training loop of both backends (mec.backends.driver: SB3Backend builds the env and model,
SB3Job iterates, restores and saves them). Outputs are those of mec.runs (same run directory layout, the same
metrics.parquet columns built by mec.runs.metrics_row, checkpoints latest/best/iter_<i>/final, each holding
sb3_ppo.zip (SB3's own save, with the optimizer state) and mec_checkpoint.json with "backend": "sb3"), so the
workflow, `mec evaluate --checkpoint` and the plots take either backend. The per-role loss columns are NaN here:
there are no role modules. SB3's joint losses are in each iteration's log line. env_steps counts this backend's env
steps, i.e. slots.

Reproducibility and resume: every iteration reseeds SB3 (python, numpy and torch generators, the env) from
(seed, iteration) and starts a fresh training episode, so an iteration depends only on the weights and optimizer
state it starts from. A run resumed from checkpoints/latest therefore continues exactly as the uninterrupted run
would have (tests/test_sb3.py checks the rows are identical). SB3 draws from the global generators, so this
reseeding is SB3's own API (set_random_seed), not a shortcut.

stable_baselines3 is imported only here, and this module only when the sb3 backend is used.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from mec import io, runs
from mec.backends import driver
from mec.backends.slot_env import SlotCodec, make_slot_env
from mec.config import StudyConfig
from mec.scenario import PhaseSetup
from mec.simulator import Decisions, SlotState

BACKEND = "sb3"
POLICY_NAME = "sb3-ppo"
MODEL_FILE = "sb3_ppo.zip"
# SB3's logger keys of the last PPO update, as printed in the progress line.
SB3_LOSS_KEYS = {"policy_loss": "train/policy_gradient_loss", "vf_loss": "train/value_loss",
                 "entropy_loss": "train/entropy_loss", "approx_kl": "train/approx_kl"}  # fmt: skip


def _ppo():
    try:
        from stable_baselines3 import PPO
    except ImportError as exc:
        raise ImportError(
            f"training.backend=sb3 needs stable-baselines3 ({exc}); install the pins: pip install -r requirements.lock"
        ) from None
    return PPO


class SB3Policy:
    """Deterministic actions of a trained SB3 policy for every evaluation episode at once: one forward pass per slot."""

    def __init__(self, policy, codec: SlotCodec, name: str = POLICY_NAME):
        if policy.observation_space.shape != codec.observation_space.shape or (
            policy.action_space.shape != codec.action_space.shape
        ):
            raise ValueError(
                f"SB3 policy spaces {policy.observation_space.shape} -> {policy.action_space.shape} do not fit this "
                f"phase and size ({codec.observation_space.shape} -> {codec.action_space.shape})"
            )
        self.policy = policy
        self.codec = codec
        self.name = name

    def act(self, state: SlotState) -> Decisions:
        actions, _ = self.policy.predict(self.codec.observe(state), deterministic=True)
        return self.codec.decisions(actions)

    def candidates(self, state: SlotState, k: int) -> Decisions:
        """K joint actions per slot for best-of-K (mec.best_of): row c * B + b holds candidate c of slot b, c = 0
        the deterministic action (predict's), the others sampled from the policy's Gaussian (torch's global
        generator: the caller seeds it), clipped to the action space as predict clips. One forward pass: the
        joint observation is the same for every candidate."""
        import torch

        obs, _ = self.policy.obs_to_tensor(self.codec.observe(state))
        with torch.no_grad():
            dist = self.policy.get_distribution(obs)
            first = dist.get_actions(deterministic=True)[None]
            every = torch.cat([first, dist.distribution.sample((k - 1,))]) if k > 1 else first
        space = self.policy.action_space
        actions = every.cpu().numpy().reshape((-1, *space.shape))
        return self.codec.decisions(np.clip(actions, space.low, space.high))


def iteration_seed(seed: int, iteration: int) -> int:
    """The seed of one training iteration's sampling and SGD (independent streams per (seed, iteration))."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


def _device(cfg: StudyConfig) -> str:
    import torch

    return "cuda" if cfg.training.use_gpu and torch.cuda.is_available() else "cpu"


def _check(cfg: StudyConfig) -> None:
    if cfg.training.minibatch_size < 2:
        raise ValueError(
            f"training.minibatch_size {cfg.training.minibatch_size}: the sb3 backend allows >= 2 "
            "(SB3 normalises advantages within each minibatch)"
        )


def make_vec_env(cfg: StudyConfig, phase: int, n: int):
    """One slot-per-step env (with SB3's Monitor, which records finished episodes' returns) in a DummyVecEnv."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([lambda: Monitor(make_slot_env(phase, n, cfg, cfg.training.episode_slots))])


def build_model(cfg: StudyConfig, vec_env, seed: int):
    """SB3 PPO with the config's training hyperparameters (see the module doc for the mapping)."""
    from torch import nn

    t = cfg.training
    return _ppo()(
        "MlpPolicy",
        vec_env,
        learning_rate=t.lr,
        n_steps=t.train_batch_slots,
        batch_size=t.minibatch_size,
        n_epochs=t.num_epochs,
        gamma=t.gamma,
        gae_lambda=t.gae_lambda,
        clip_range=t.clip_param,
        ent_coef=t.entropy_coeff,
        vf_coef=t.vf_loss_coeff,
        policy_kwargs={"net_arch": {"pi": list(t.hidden), "vf": list(t.hidden)},
                       "activation_fn": {"tanh": nn.Tanh, "relu": nn.ReLU}[t.activation]},
        seed=seed,
        device=_device(cfg),
        verbose=0,
    )


def _write_checkpoint(model, target: Path, meta: dict) -> None:
    """SB3's save, the metric rows and the metadata, atomically (mec.runs.save_checkpoint)."""
    runs.save_checkpoint(target, meta, lambda tmp: model.save(tmp / MODEL_FILE))


def train_iteration(model, seed: int, iteration: int) -> tuple[list[float], dict[str, float]]:
    """One PPO iteration (train_batch_slots slots, then num_epochs of SGD) from a fresh episode; returns the returns
    of the training episodes that finished in it and SB3's losses of the update."""
    model.set_random_seed(iteration_seed(seed, iteration))  # python, numpy, torch, the action space and the env
    model._last_obs = None  # learn() then resets the env, which draws its episode from the seed just set
    monitor = model.env.envs[0]
    finished = len(monitor.get_episode_rewards())
    model.learn(total_timesteps=model.n_steps, reset_num_timesteps=False, log_interval=None, progress_bar=False)
    returns = [float(r) for r in monitor.get_episode_rewards()[finished:]]
    losses = {key: float(model.logger.name_to_value.get(name, np.nan)) for key, name in SB3_LOSS_KEYS.items()}
    return returns, losses


class SB3Job:
    """One job's SB3 PPO model on its slot-per-step env, as the training loop drives it (mec.backends.driver.Job)."""

    name = BACKEND
    all_slots_at_once = False  # validation steps the episodes slot by slot, as it always has for this backend

    def __init__(self, cfg: StudyConfig, phase: int, n: int, seed: int, vec_env, model):
        self.cfg, self.seed, self.vec_env, self.model = cfg, seed, vec_env, model
        self.codec = SlotCodec(cfg, PhaseSetup.from_config(cfg, phase, n))

    def restore(self, checkpoint: Path) -> None:
        try:
            self.model = _load_model(checkpoint, env=self.vec_env, device=_device(self.cfg))
        except ValueError as exc:
            raise driver.RestoreError(checkpoint / MODEL_FILE, exc.reason) from None

    def iterate(self, iteration: int) -> driver.Step:
        returns, losses = train_iteration(self.model, self.seed, iteration)
        # One joint policy: no per-role losses in the metrics, SB3's own in the log line.
        return driver.Step(env_steps=self.model.num_timesteps,
                           episode_return_mean=float(np.mean(returns)) if returns else np.nan,
                           losses={"ppo": losses})  # fmt: skip

    def policy(self) -> SB3Policy:
        return SB3Policy(self.model.policy, self.codec)

    def write_checkpoint(self, target: Path, meta: dict) -> None:
        _write_checkpoint(self.model, target, meta)

    def versions(self) -> dict:
        return {**io.package_versions(), "stable-baselines3": _sb3_version()}


class SB3Backend:
    """The SB3 backend of the training loop (mec.backends.driver.Backend)."""

    label = BACKEND

    def check(self, cfg: StudyConfig) -> None:
        if cfg.training.backend != BACKEND:
            raise ValueError(f"training.backend {cfg.training.backend!r}: mec.backends.sb3 trains only {BACKEND!r}")
        _check(cfg)

    @contextlib.contextmanager
    def job(self, cfg: StudyConfig, phase: int, n: int, seed: int, cpus: int, log: Callable[[str], None], tag: str):
        """torch's threads, the env and a fresh model (a resumed job loads its weights over it)."""
        import torch

        torch.set_num_threads(cpus)
        vec_env = make_vec_env(cfg, phase, n)
        try:
            yield SB3Job(cfg, phase, n, seed, vec_env, build_model(cfg, vec_env, seed))
        finally:
            vec_env.close()


def train(cfg: StudyConfig, phase: int, n: int, seed: int, out: str | os.PathLike, **options) -> Path:
    """Train (or resume, or skip if complete) one job with SB3 PPO; returns the run directory. `options`: those of
    mec.backends.driver.train (num_cpus, log, restart_stale)."""
    return driver.train(SB3Backend(), cfg, phase, n, seed, out, **options)


def _load_model(path: Path, **kwargs):
    """SB3's PPO.load, with a corrupt file a one-line error naming it."""
    try:
        return _ppo().load(path / MODEL_FILE, **kwargs)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
        error = ValueError(f"{path / MODEL_FILE}: cannot be loaded ({reason}); it is corrupt: use another checkpoint "
                           "of the run (latest, best, iter_<i>) or retrain it")  # fmt: skip
        error.reason = reason  # for a resume, which names its own way out (SB3Job.restore)
        raise error from None


def _sb3_version() -> str:
    import stable_baselines3

    return stable_baselines3.__version__


def load_policy(checkpoint: str | os.PathLike, cfg: StudyConfig | None = None, name: str = POLICY_NAME):
    """The batched deterministic policy of an SB3 checkpoint and its metadata; `cfg` defaults to the checkpoint's."""
    meta = runs.read_checkpoint_meta(checkpoint)
    if meta.get("backend") != BACKEND:
        raise ValueError(f"checkpoint {checkpoint}: backend {meta.get('backend')!r}, not {BACKEND!r}")
    path = Path(checkpoint) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint}: no {MODEL_FILE}; an incomplete SB3 checkpoint")
    cfg = cfg if cfg is not None else runs.config_of_checkpoint(meta)
    setup = PhaseSetup.from_config(cfg, meta["phase"], meta["n"])
    model = _load_model(Path(checkpoint), device="cpu")
    model.policy.set_training_mode(False)
    try:
        return SB3Policy(model.policy, SlotCodec(cfg, setup), name=name), meta
    except ValueError as exc:
        raise io.BadCheckpointError(
            f"{path.parent / runs.CHECKPOINT_META}: says phase {meta['phase']}, size {meta['n']}, "
                         f"but {exc}; use an unaltered checkpoint") from None
