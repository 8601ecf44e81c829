"""training.ue_hidden: the UE role's actor widths apart from the other roles' (mec.backends.rllib.training)."""

from __future__ import annotations

import pytest
import torch
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from conftest_rl import make_env, tiny_training_evaluates
from mec.backends.rllib.modules import RoleModule
from mec.backends.rllib.training import module_specs
from mec.config import ConfigError, config_from_dict


def widths(net: torch.nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer, in order."""
    return [(layer.in_features, layer.out_features) for layer in net.modules() if isinstance(layer, torch.nn.Linear)]


@pytest.mark.parametrize("ue_hidden, want", [([], [64, 64]), ([32], [32]), ([16, 8], [16, 8])])
def test_the_ue_role_takes_ue_hidden_and_the_others_keep_hidden(ue_hidden, want):
    specs = module_specs(config_from_dict({"training": {"ue_hidden": ue_hidden}}), 2)
    assert specs["ue"].model_config["hidden"] == want
    assert specs["scheduler"].model_config["hidden"] == specs["coordinator"].model_config["hidden"] == [64, 64]


def test_the_ue_actor_is_built_with_those_widths():
    env = make_env("fleet", 2)
    spec = module_specs(config_from_dict({"training": {"ue_hidden": [8]}}), 2)["ue"]
    module = RLModuleSpec(module_class=RoleModule, observation_space=env.observation_spaces["ues"],
                          action_space=env.action_spaces["ues"], model_config=spec.model_config).build()  # fmt: skip
    n_obs = env.observation_spaces["ues"]["obs"].shape[-1]
    # One hidden layer of 8, then the three outputs (offload logit, the Beta's two); no critic (marginal credit).
    assert widths(module.actor) == [(n_obs, 8), (8, 3)]
    assert not module.has_critic


@pytest.mark.parametrize(
    "training, message",
    [
        ({"ue_hidden": [0]}, r"'training.ue_hidden\[0\]': got 0; allowed: a list of integers >= 1 \(\[\]: training.hidden\)"),
        ({"ue_hidden": 32}, r"'training.ue_hidden': got 32; allowed: a list of integers >= 1"),
        ({"ue_hidden": [32], "ue_credit": "shared", "critic_row_layers": 2},
         r"'training.critic_row_layers': got 2; allowed: 1..len\(training.ue_hidden\) = 1..1"),
    ],
)  # fmt: skip
def test_bad_ue_hidden_is_one_line_naming_it(training, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict({"training": training})
    assert "\n" not in str(info.value)


def test_a_tiny_training_with_a_narrow_ue_actor_loads_and_evaluates(tmp_path):
    modules, meta = tiny_training_evaluates(tmp_path, 2, training={"ue_hidden": [8]})
    assert meta["config"]["training"]["ue_hidden"] == [8]
    assert widths(modules["ue"].actor)[0][1] == 8
    assert widths(modules["scheduler"].actor)[0][1] != 8
