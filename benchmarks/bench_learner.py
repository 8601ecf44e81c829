"""The learner's update alone, one layout of the UE log-probability against another, in the same run; one JSON.

A training job's time at K = 10 is mostly the learner (33 minibatch updates per iteration). This times
`learner_group.update` on one fixed sampled batch (the default training section: 1000 slots, 8 epochs of 250-slot
minibatches), alternating two layouts of `RoleModule.row_logp` for the UE role, each restored before the other runs:
  masked  the spectrum's Beta log-probability on the offloaded rows only (mec.backends.rllib.modules, today)
  dense   offload * Beta.log_prob over every row (the layout before; both give bit-identical values and gradients,
          tests/test_modules.py)
Rounds alternate (dense, masked, dense, masked, ...) so that drift on a noisy machine hits both alike; the report
gives each layout's median seconds per update call (one whole iteration's epochs and minibatches) and their ratio.
`--compare activation` times the activations instead: training.activation tanh (the modules' 2 sigmoid(2x) - 1,
and torch's own nn.Tanh in its place) and relu, one algorithm each, each updating on a batch it sampled itself (the
same seed, so the same size), alternating the same way.
`--compare inplace` times two implementations of the modules' sigmoid-form tanh on one algorithm and batch:
  out_of_place  2 * sigmoid(2x) - 1 and grad * (1 - y^2), every step a fresh tensor (the implementation before)
  in_place      one fresh tensor per pass, each step in place on it (mec.backends.rllib.modules, today; bit for bit
                the same values and gradients, tests/test_modules.py)
Run on one core: OMP_NUM_THREADS=1, Ray num_cpus=1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from mec.backends.rllib import modules  # noqa: E402
from mec import io  # noqa: E402
from mec.config import config_from_dict  # noqa: E402

torch.set_num_threads(1)
POINTS = ((1, 7), (2, 10))


def dense_row_logp(self, inputs, actions):
    """The layout before: the Beta term over every UE row, multiplied by the offload indicator."""
    if self.role != "ue":
        return masked_row_logp(self, inputs, actions)
    offload_dist = torch.distributions.Bernoulli(logits=inputs[..., 0])
    beta = torch.distributions.Beta(1.0 + nn.functional.softplus(inputs[..., 1]),
                                    1.0 + nn.functional.softplus(inputs[..., 2]))  # fmt: skip
    offload = actions["offload"].reshape(inputs.shape[:2]).float()
    x = ((actions["spectrum"].reshape(inputs.shape[:2]) - modules.SPECTRUM_LOW) / (1 - modules.SPECTRUM_LOW)).clamp(
        modules._EPS, 1 - modules._EPS
    )
    return offload_dist.log_prob(offload) + offload * beta.log_prob(x)


masked_row_logp = modules.RoleModule.row_logp
LAYOUTS = {"dense": dense_row_logp, "masked": masked_row_logp}


def update(algo, episodes) -> None:
    """One learner update on `episodes`: the iteration's epochs and minibatches, as training runs them."""
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    algo.learner_group.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0},
                              num_epochs=algo.config.num_epochs, minibatch_size=algo.config.minibatch_size,
                              shuffle_batch_per_epoch=algo.config.shuffle_batch_per_epoch)  # fmt: skip


def _ray_init() -> None:
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _temp_dir=tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp"))  # fmt: skip


def _medians(phase: int, n: int, rounds: int, times: dict[str, list[float]]) -> dict:
    """The report's row: each form's median seconds per update call."""
    row = {"phase": phase, "n": n, "rounds": rounds}
    for name, values in times.items():
        row[f"{name}_update_s"] = round(statistics.median(values), 3)
    return row


def alternating_point(cfg, phase: int, n: int, rounds: int, forms: dict, install, current: str) -> dict:
    """Median seconds per learner update of each of `forms`, each put in place by install(form) in turn, alternating
    on one algorithm and one sampled batch; the form named `current` (today's) is put back afterwards."""
    import ray
    from mec.backends.rllib.training import build_ppo_config

    _ray_init()
    try:
        algo = build_ppo_config(cfg, phase, n, 0).build_algo()
        algo.train()  # warm-up: compiles, fills the connectors' state
        episodes = algo.env_runner_group.local_env_runner.sample()
        times = {name: [] for name in forms}
        for _ in range(rounds):
            for name, form in forms.items():
                install(form)
                started = time.perf_counter()
                update(algo, episodes)
                times[name].append(time.perf_counter() - started)
        install(forms[current])
        algo.stop()
    finally:
        install(forms[current])
        ray.shutdown()
    return _medians(phase, n, rounds, times)


def point(cfg, phase: int, n: int, rounds: int) -> dict:
    row = alternating_point(cfg, phase, n, rounds, LAYOUTS,
                            lambda layout: setattr(modules.RoleModule, "row_logp", layout), "masked")  # fmt: skip
    row["dense_over_masked"] = round(row["dense_update_s"] / row["masked_update_s"], 2)
    return row


def activation_point(cfg, phase: int, n: int, rounds: int) -> dict:
    """Median seconds per learner update with training.activation tanh (the modules' sigmoid form and, in its place,
    torch's nn.Tanh) and relu, alternating."""
    import ray
    from mec.backends.rllib.training import build_ppo_config

    _ray_init()
    tanh = modules.ACTIVATIONS["tanh"]
    try:
        algos = {}
        # tanh: the modules' own (2 sigmoid(2x) - 1); torch_tanh: torch's nn.Tanh in its place; relu: nn.ReLU.
        for name, activation, layer in (("tanh", "tanh", tanh), ("torch_tanh", "tanh", nn.Tanh),
                                        ("relu", "relu", nn.ReLU)):  # fmt: skip
            modules.ACTIVATIONS["tanh"] = layer
            algo = build_ppo_config(dataclasses.replace(cfg, training=dataclasses.replace(
                cfg.training, activation=activation)), phase, n, 0).build_algo()  # fmt: skip
            modules.ACTIVATIONS["tanh"] = tanh
            algo.train()  # warm-up
            algos[name] = (algo, algo.env_runner_group.local_env_runner.sample())
        times = {name: [] for name in algos}
        for _ in range(rounds):
            for name, (algo, episodes) in algos.items():
                started = time.perf_counter()
                update(algo, episodes)
                times[name].append(time.perf_counter() - started)
        for algo, _ in algos.values():
            algo.stop()
    finally:
        modules.ACTIVATIONS["tanh"] = tanh
        ray.shutdown()
    row = _medians(phase, n, rounds, times)
    row["tanh_over_torch_tanh"] = round(row["tanh_update_s"] / row["torch_tanh_update_s"], 2)
    row["tanh_over_relu"] = round(row["tanh_update_s"] / row["relu_update_s"], 2)
    return row


class OutOfPlaceSigmoidTanh(torch.autograd.Function):
    """The implementation before: the same values as modules._SigmoidTanh, a fresh tensor for every step."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(2.0 * x).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1.0 - y * y)


def inplace_point(cfg, phase: int, n: int, rounds: int) -> dict:
    """Median seconds per learner update with the sigmoid-form tanh out of place and in place."""
    forms = {"out_of_place": OutOfPlaceSigmoidTanh, "in_place": modules._SigmoidTanh}
    row = alternating_point(cfg, phase, n, rounds, forms,
                            lambda form: setattr(modules, "_SigmoidTanh", form), "in_place")  # fmt: skip
    row["out_of_place_over_in_place"] = round(row["out_of_place_update_s"] / row["in_place_update_s"], 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="update calls per layout, alternating")
    parser.add_argument("--points", nargs="+", default=[f"{p}:{n}" for p, n in POINTS],
                        help="sweep points as PHASE:N (default: 1:7 2:10)")  # fmt: skip
    parser.add_argument("--compare", choices=("logp", "activation", "inplace"), default="logp",
                        help="logp: the UE log-probability layouts (default); activation: tanh vs relu; "
                             "inplace: the sigmoid-form tanh out of place vs in place")  # fmt: skip
    args = parser.parse_args()
    cfg = config_from_dict({})
    points = [tuple(int(x) for x in item.split(":")) for item in args.points]
    measure = {"logp": point, "activation": activation_point, "inplace": inplace_point}[args.compare]
    report = {"benchmark": "learner", "compare": args.compare, "cpu": io.machine()["cpu"],
              "points": [measure(cfg, p, n, args.rounds) for p, n in points]}  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
