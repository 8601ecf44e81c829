"""Training and evaluation throughput of the MAPPO setup; prints one JSON object.

Sections (choose with --only):
  throughput  RLlib PPO iterations on the fleet env (the training layout) beside the same loop on a no-op env with
              identical spaces (the ceiling RLlib itself allows), for phase 1 N=7 and phase 2 K=4 and K=10; plus
              the per-agent layout (one RLlib agent per UE and scheduler) on the same dynamics and modules.
  evaluation  batched evaluation of role modules (all agents of a role in one forward pass, episodes batched)
              against a per-agent loop that calls the module once per agent and slot (compute_single_action style).
Run on one core: OMP_NUM_THREADS=1, Ray num_cpus=1, no env runners.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mec.config import config_from_dict, config_to_dict  # noqa: E402
from mec.envs.fleet import FleetEnv  # noqa: E402
from mec.envs.mec_env import MECEnv  # noqa: E402

torch.set_num_threads(1)


class NoopFleetEnv(FleetEnv):
    """FleetEnv's spaces and stage structure with no simulation: constant observations, zero reward."""

    def reset(self, *, seed=None, options=None):
        self._slot, self._stage_i = 0, 0
        self._zero = {a: {k: np.zeros(sp.shape, np.float32) for k, sp in self.observation_spaces[a].items()}
                      for a in self.possible_agents}  # fmt: skip
        return {self.possible_agents[0]: self._zero[self.possible_agents[0]]}, {}

    def step(self, action_dict):
        self._stage_i += 1
        if self._stage_i < len(self.possible_agents):
            agent = self.possible_agents[self._stage_i]
            return {agent: self._zero[agent]}, {}, {"__all__": False}, {"__all__": False}, {}
        self._stage_i = 0
        self._slot += 1
        rewards = {a: 0.0 for a in self.possible_agents}
        if self._slot >= self.episode_slots:
            done = {a: True for a in self.possible_agents} | {"__all__": True}
            alive = {a: False for a in self.possible_agents} | {"__all__": False}
            return dict(self._zero), rewards, alive, done, {}
        first = self.possible_agents[0]
        return {first: self._zero[first]}, rewards, {"__all__": False}, {"__all__": False}, {}


class PerAgentEnv(MECEnv):
    """The per-agent view with observations wrapped as {"obs": ...} for the role modules (local critics)."""

    def __init__(self, env_config=None):
        import gymnasium as gym

        super().__init__(env_config)
        self.observation_spaces = {a: gym.spaces.Dict({"obs": sp}) for a, sp in self.observation_spaces.items()}

    def _observe(self):
        return {a: {"obs": o} for a, o in super()._observe().items()}


def _role_of(agent_id: str) -> str:
    if agent_id in ("ues",) or agent_id.startswith("ue_"):
        return "ue"
    if agent_id == "coordinator":
        return "coordinator"
    return "scheduler"


def _ppo(env_cls, cfg, phase, n, critic):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mec.modules import FleetPPOLearner, RoleModule

    t = cfg.training
    roles = ["ue", "scheduler"] + (["coordinator"] if phase == 2 else [])
    specs = {
        r: RLModuleSpec(module_class=RoleModule, model_config={"role": r, "hidden": list(t.hidden), "critic": critic})
        for r in roles
    }
    env_config = {"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": t.episode_slots}
    return (
        PPOConfig()
        .environment(env_cls, env_config=env_config, normalize_actions=False, clip_actions=False)
        .env_runners(num_env_runners=0)
        .multi_agent(policies=set(specs), policy_mapping_fn=lambda aid, *a, **k: _role_of(aid))
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
        .training(learner_class=FleetPPOLearner, use_kl_loss=False, gamma=0.0,
                  train_batch_size_per_learner=t.train_batch_slots * len(roles),
                  minibatch_size=t.minibatch_size, num_epochs=t.num_epochs)  # fmt: skip
        .debugging(seed=0, log_level="ERROR")
    )


def _measure_training(env_cls, cfg, phase, n, critic, iterations) -> dict:
    algo = _ppo(env_cls, cfg, phase, n, critic).build_algo()
    algo.train()  # warm-up (first iteration includes set-up costs)
    sample_s = learn_s = 0.0
    env_steps = agent_steps = 0
    started = time.perf_counter()
    for _ in range(iterations):
        r = algo.train()
        sample_s += r["timers"]["env_runner_sampling_timer"]
        learn_s += r["timers"]["learner_update_timer"]
        env_steps += r["env_runners"]["num_env_steps_sampled"]
        agent_steps += r["env_runners"]["num_agent_steps_sampled"] if isinstance(
            r["env_runners"]["num_agent_steps_sampled"], (int, float)) else sum(
            r["env_runners"]["num_agent_steps_sampled"].values())  # fmt: skip
    wall = time.perf_counter() - started
    algo.stop()
    stages = 3 if phase == 2 else 2
    return {
        "iteration_s": round(wall / iterations, 2),
        "sampling_s_per_iter": round(sample_s / iterations, 2),
        "learning_s_per_iter": round(learn_s / iterations, 2),
        "env_steps_per_s": round(env_steps / wall, 1),
        "slots_per_s": round(env_steps / stages / wall, 1),
        "agent_steps_per_s": round(agent_steps / wall, 1),
    }


POINTS = ((1, 7), (2, 4), (2, 10))


def throughput(cfg, iterations: int, per_agent: bool, points=POINTS) -> list[dict]:
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows = []
    try:
        for phase, n in points:
            row = {"phase": phase, "n": n}
            row["fleet"] = _measure_training(FleetEnv, cfg, phase, n, cfg.training.critic, iterations)
            row["noop_ceiling"] = _measure_training(NoopFleetEnv, cfg, phase, n, cfg.training.critic, iterations)
            row["fleet_over_ceiling"] = round(row["fleet"]["slots_per_s"] / row["noop_ceiling"]["slots_per_s"], 3)
            if per_agent:
                # Local critics in both layouts here: the per-agent view carries no global state.
                row["fleet_local_critic"] = _measure_training(FleetEnv, cfg, phase, n, "local", iterations)
                row["per_agent_local_critic"] = _measure_training(PerAgentEnv, cfg, phase, n, "local", iterations)
            rows.append(row)
            print(json.dumps(row), flush=True, file=__import__("sys").stderr)
    finally:
        ray.shutdown()
    return rows


def evaluation(cfg, episodes: int, slots: int) -> list[dict]:
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from mec.envs import features
    from mec.evaluation import evaluation_episodes, run_policy
    from mec.modules import RoleModule
    from mec.policy import LearnedPolicy
    from mec.scenario import PhaseSetup

    rows = []
    for phase, n in ((1, 7), (2, 10)):
        setup = PhaseSetup.from_config(cfg, phase, n)
        env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": slots})
        modules = {
            _role_of(a): RLModuleSpec(module_class=RoleModule, observation_space=env.observation_spaces[a],
                                      action_space=env.action_spaces[a],
                                      model_config={"role": _role_of(a), "hidden": [64, 64]}).build()
            for a in env.possible_agents
        }  # fmt: skip
        scales = features.FeatureScales(cfg.scenario)
        batch = evaluation_episodes(cfg, setup, episodes, slots, 1)
        policy = LearnedPolicy(modules, scales)
        run_policy(cfg, setup, policy, evaluation_episodes(cfg, setup, 2, 2, 0))  # warm-up: compiled kernels, torch
        started = time.perf_counter()
        run_policy(cfg, setup, policy, batch)
        batched = episodes * slots / (time.perf_counter() - started)

        # One forward call per agent and slot, as a compute_single_action loop does, on a single episode.
        per_agent_slots = max(5, slots // 20)
        per_env = MECEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": per_agent_slots})
        obs, _ = per_env.reset(seed=0)

        def single(role, x):
            with torch.no_grad():
                out = modules[role].forward_inference({Columns.OBS: {"obs": torch.from_numpy(x[None])}})
            a = out[Columns.ACTIONS]
            return {k: v[0].numpy() for k, v in a.items()} if isinstance(a, dict) else a[0].numpy()

        started = time.perf_counter()
        for _ in range(per_agent_slots):
            while True:
                acts = {}
                for agent, x in obs.items():
                    role = _role_of(agent)
                    a = single(role, x[None] if role == "ue" else x)
                    acts[agent] = {"offload": int(a["offload"][0]), "spectrum": a["spectrum"]} if role == "ue" else a
                obs, rew, _, trunc, _ = per_env.step(acts)
                if rew:
                    break
        looped = per_agent_slots / (time.perf_counter() - started)
        rows.append({"phase": phase, "n": n, "batched_slots_per_s": round(batched, 1),
                     "per_agent_loop_slots_per_s": round(looped, 2), "speedup": round(batched / looped, 1),
                     "episodes_batched": episodes})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("throughput", "evaluation"), help="run one section")
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations per measurement")
    parser.add_argument("--no-per-agent", action="store_true", help="skip the (slow) per-agent layout")
    parser.add_argument("--quick", action="store_true", help="tiny batches: a smoke run, not a measurement")
    parser.add_argument("--points", nargs="+", default=[f"{p}:{n}" for p, n in POINTS],
                        help="throughput sweep points as PHASE:N (default: 1:7 2:4 2:10)")  # fmt: skip
    args = parser.parse_args()
    overrides = {}
    if args.quick:
        overrides = {"training": {"episode_slots": 10, "train_batch_slots": 20, "minibatch_size": 10, "num_epochs": 1}}
    cfg = config_from_dict(overrides)
    report = {"benchmark": "training", "training": config_to_dict(cfg)["training"]}
    if args.only in (None, "evaluation"):
        report["evaluation"] = evaluation(cfg, episodes=5 if args.quick else 200, slots=20 if args.quick else 200)
    if args.only in (None, "throughput"):
        points = [tuple(int(x) for x in point.split(":")) for point in args.points]
        report["throughput"] = throughput(cfg, 1 if args.quick else args.iterations, not args.no_per_agent, points)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
