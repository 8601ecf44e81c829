"""The role modules (mec.backends.rllib.modules.RoleModule) and the per-row PPO loss (FleetPPOLearner), torch only, no Ray cluster.

Modules are built from FleetEnv's spaces (phase 2: 12 UEs, K = 3), so their shapes are the ones training uses.
Log-probabilities are checked against closed-form densities written out here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing

from conftest_rl import make_env
from mec.backends.rllib import modules
from mec.backends.rllib.modules import FleetPPOLearner, RoleModule
from mec.envs.fleet import CLUSTER_KEY
from mec.envs.mec_env import SPECTRUM_LOW

AGENT = {"ue": "ues", "scheduler": "schedulers", "coordinator": "coordinator"}
ROLES = pytest.mark.parametrize("role", list(AGENT))
N, K, B = 12, 3, 6
HIDDEN = [16, 16]


@pytest.fixture(scope="module")
def env():
    return make_env("fleet", 2)


def build(env, role, critic="central", seed=0, activation="tanh"):
    torch.manual_seed(seed)
    agent = AGENT[role]
    return RLModuleSpec(
        module_class=RoleModule,
        observation_space=env.observation_spaces[agent],
        action_space=env.action_spaces[agent],
        model_config={"role": role, "hidden": HIDDEN, "critic": critic, "activation": activation},
    ).build()


def make_obs(env, role, seed=0, batch=B):
    """A batch of observations in the role's space; scheduler rows: about half valid, the rest all zero (as the
    env gives them), with at least one valid and one invalid row per sample."""
    rng = np.random.default_rng(seed)
    space = env.observation_spaces[AGENT[role]]
    obs = rng.uniform(0.0, 1.0, (batch,) + space["obs"].shape).astype(np.float32)
    state = rng.uniform(0.0, 1.0, (batch,) + space["state"].shape).astype(np.float32)
    if role == "scheduler":
        valid = rng.random((batch, obs.shape[1])) < 0.5
        valid[:, 0], valid[:, 1] = True, False
        obs[..., 0] = valid
        obs[~valid] = 0.0
    return {"obs": torch.from_numpy(obs), "state": torch.from_numpy(state)}


def valid_rows(role, obs):
    if role == "scheduler":
        return obs["obs"][..., 0] > 0.5
    return torch.ones(obs["obs"].shape[:2], dtype=torch.bool)


def to_numpy(actions):
    if isinstance(actions, dict):
        return {k: v.detach().numpy() for k, v in actions.items()}
    return actions.detach().numpy()


def sample_row(actions, b):
    if isinstance(actions, dict):
        return {k: v[b] for k, v in actions.items()}
    return actions[b]


# --------------------------------------------------------------------------- closed-form log-densities


def gauss_logp(x, mu, log_std):
    return -0.5 * ((x - mu) / math.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)


def ue_logp(inputs, offload, spectrum):
    """Bernoulli(sigmoid(l0)) for offload + (if offloading) Beta(1+softplus(l1), 1+softplus(l2)) at (s-0.01)/0.99."""
    l0, l1, l2 = inputs[..., 0], inputs[..., 1], inputs[..., 2]
    a = 1 + torch.nn.functional.softplus(l1)
    b = 1 + torch.nn.functional.softplus(l2)
    x = (spectrum - 0.01) / 0.99
    log_norm = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    log_beta = (a - 1) * torch.log(x) + (b - 1) * torch.log1p(-x) - log_norm
    log_bern = offload * torch.nn.functional.logsigmoid(l0) + (1 - offload) * torch.nn.functional.logsigmoid(-l0)
    return log_bern + offload * log_beta


def hand_row_logp(module, role, inputs, actions):
    if role == "ue":
        return ue_logp(inputs, actions["offload"].float(), actions["spectrum"].float())
    return gauss_logp(actions.reshape(inputs.shape[:2]), inputs[..., 0], float(module.log_std.detach()))


# --------------------------------------------------------------------------- shapes, spaces, determinism


@ROLES
def test_forward_passes_have_the_role_shapes_and_actions_lie_in_the_action_space(env, role):
    module = build(env, role)
    obs = make_obs(env, role)
    rows = {"ue": N, "scheduler": N, "coordinator": K}[role]
    # ue: 3 logits per row; Gaussian roles: the mean (plus, possibly, a log-std channel)
    n_out = {"ue": (3,), "scheduler": (1, 2), "coordinator": (1, 2)}[role]
    space = env.action_spaces[AGENT[role]]
    with torch.no_grad():
        for forward in (module.forward_inference, module.forward_exploration):
            out = forward({Columns.OBS: obs})
            inputs = out[Columns.ACTION_DIST_INPUTS]
            assert inputs.shape[:2] == (B, rows) and inputs.shape[2] in n_out
            assert out[Columns.ACTION_LOGP].shape == (B,)
            assert torch.isfinite(out[Columns.ACTION_LOGP]).all()
            actions = to_numpy(out[Columns.ACTIONS])
            if role == "ue":
                assert actions["offload"].shape == actions["spectrum"].shape == (B, N)
                assert set(np.unique(actions["offload"])) <= {0.0, 1.0}
                assert actions["spectrum"].min() >= 0.01 and actions["spectrum"].max() <= 1.0
            else:
                assert actions.shape == (B, rows)
            for b in range(B):
                assert space.contains(sample_row(actions, b)), (forward.__name__, b)
        train = module.forward_train({Columns.OBS: obs})
        assert set(train) == {Columns.ACTION_DIST_INPUTS}
        assert train[Columns.ACTION_DIST_INPUTS].shape == inputs.shape


def test_exploration_draws_both_offload_choices_and_varied_spectrum(env):
    module = build(env, "ue")
    with torch.no_grad():
        actions = to_numpy(module.forward_exploration({Columns.OBS: make_obs(env, "ue", batch=32)})[Columns.ACTIONS])
    assert 0.2 < actions["offload"].mean() < 0.8
    assert actions["spectrum"].std() > 0.05


@ROLES
def test_deterministic_inference_is_repeatable_and_is_the_distributions_centre(env, role):
    module = build(env, role)
    obs = make_obs(env, role, seed=3)
    with torch.no_grad():
        a = module.forward_inference({Columns.OBS: obs})
        b = module.forward_inference({Columns.OBS: obs})
    inputs = a[Columns.ACTION_DIST_INPUTS]
    if role == "ue":
        for key in ("offload", "spectrum"):
            torch.testing.assert_close(a[Columns.ACTIONS][key], b[Columns.ACTIONS][key], rtol=0, atol=0)
        torch.testing.assert_close(a[Columns.ACTIONS]["offload"], (inputs[..., 0] > 0).float(), rtol=0, atol=0)
        alpha = 1 + torch.nn.functional.softplus(inputs[..., 1])
        beta = 1 + torch.nn.functional.softplus(inputs[..., 2])
        torch.testing.assert_close(a[Columns.ACTIONS]["spectrum"], 0.01 + 0.99 * alpha / (alpha + beta))
    else:
        torch.testing.assert_close(a[Columns.ACTIONS], b[Columns.ACTIONS], rtol=0, atol=0)
        torch.testing.assert_close(a[Columns.ACTIONS], inputs[..., 0])
    # Exploration is random: two draws differ.
    with torch.no_grad():
        x = to_numpy(module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS])
        y = to_numpy(module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS])
    x, y = (x["spectrum"], y["spectrum"]) if role == "ue" else (x, y)
    assert not np.array_equal(x, y)


# --------------------------------------------------------------------------- log-probabilities and masking


@ROLES
def test_row_logp_matches_the_closed_form_density(env, role):
    module = build(env, role, seed=1)
    obs = make_obs(env, role, seed=1)
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
        inputs, actions = out[Columns.ACTION_DIST_INPUTS], out[Columns.ACTIONS]
        got = module.row_logp(inputs, actions)
    expected = hand_row_logp(module, role, inputs, actions)
    assert got.shape == (B, {"coordinator": K}.get(role, N))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("offload_fraction", [0.0, 0.06, 0.5, 1.0])
def test_ue_row_logp_computes_the_beta_term_on_offloaded_rows_alone_with_the_same_numbers(env, offload_fraction):
    """The spectrum's Beta term, computed only where a UE offloaded, gives bit for bit the values and gradients of
    the dense formula offload * Beta.log_prob over every row (so training is unchanged)."""
    module = build(env, "ue", seed=3)
    gen = torch.Generator().manual_seed(7)
    inputs = torch.randn(64, 100, 3, generator=gen, requires_grad=True)
    actions = {"offload": (torch.rand(64, 100, generator=gen) < offload_fraction).float(),
               "spectrum": SPECTRUM_LOW + (1 - SPECTRUM_LOW) * torch.rand(64, 100, generator=gen)}  # fmt: skip
    offload = actions["offload"]
    x = ((actions["spectrum"] - SPECTRUM_LOW) / (1 - SPECTRUM_LOW)).clamp(1e-4, 1 - 1e-4)
    beta = torch.distributions.Beta(1 + torch.nn.functional.softplus(inputs[..., 1]),
                                    1 + torch.nn.functional.softplus(inputs[..., 2]))  # fmt: skip
    dense = torch.distributions.Bernoulli(logits=inputs[..., 0]).log_prob(offload) + offload * beta.log_prob(x)
    weights = torch.randn(dense.shape, generator=gen)
    (dense_grad,) = torch.autograd.grad((dense * weights).sum(), inputs)
    got = module.row_logp(inputs, actions)
    (got_grad,) = torch.autograd.grad((got * weights).sum(), inputs)
    assert torch.equal(got, dense) and torch.equal(got_grad, dense_grad)


@ROLES
def test_reported_logp_is_the_sum_of_valid_rows_logp(env, role):
    module = build(env, role, seed=2)
    obs = make_obs(env, role, seed=2)
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
    expected = (hand_row_logp(module, role, out[Columns.ACTION_DIST_INPUTS], out[Columns.ACTIONS])
                * valid_rows(role, obs)).sum(dim=1)  # fmt: skip
    torch.testing.assert_close(out[Columns.ACTION_LOGP], expected, rtol=1e-4, atol=1e-4)
    # And the module's own row_logp reproduces it (what the learner's ratios are built from).
    own = (module.row_logp(out[Columns.ACTION_DIST_INPUTS], out[Columns.ACTIONS]) * valid_rows(role, obs)).sum(1)
    torch.testing.assert_close(out[Columns.ACTION_LOGP], own, rtol=1e-5, atol=1e-5)


def test_invalid_scheduler_rows_add_nothing_to_the_logp(env):
    module = build(env, "scheduler")
    obs = make_obs(env, "scheduler", seed=4)
    invalid = ~valid_rows("scheduler", obs)
    assert invalid.any() and (~invalid).any()
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
        inputs, actions = out[Columns.ACTION_DIST_INPUTS], out[Columns.ACTIONS]
        changed = torch.where(invalid, actions + 7.0, actions)
        mask = module.row_mask(obs["obs"])
        torch.testing.assert_close(mask, ~invalid, rtol=0, atol=0)
        base = (module.row_logp(inputs, actions) * mask).sum(1)
        moved = (module.row_logp(inputs, changed) * mask).sum(1)
        torch.testing.assert_close(base, out[Columns.ACTION_LOGP])
        torch.testing.assert_close(base, moved, rtol=0, atol=0)
        # Moving a valid row's score does change it.
        valid_moved = torch.where(~invalid, actions + 7.0, actions)
        assert not torch.allclose((module.row_logp(inputs, valid_moved) * mask).sum(1), base)


@ROLES
def test_one_rows_features_never_change_another_rows_outputs(env, role):
    module = build(env, role)
    obs = make_obs(env, role, seed=5)
    changed = {k: v.clone() for k, v in obs.items()}
    row = 0  # a valid row of every scheduler sample (see make_obs); an ordinary row for the other roles
    changed["obs"][:, row, 1:] += 0.5
    with torch.no_grad():
        a = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        b = module.forward_train({Columns.OBS: changed})[Columns.ACTION_DIST_INPUTS]
    others = [r for r in range(a.shape[1]) if r != row]
    torch.testing.assert_close(a[:, others], b[:, others], rtol=0, atol=0)
    assert not torch.allclose(a[:, row], b[:, row])


def test_scheduler_rows_without_a_decision_are_not_scored(env):
    module = build(env, "scheduler")
    obs = make_obs(env, "scheduler", seed=5)
    changed = {k: v.clone() for k, v in obs.items()}
    changed["obs"][:, 1, 1:] = 0.9  # row 1 is invalid in every sample: its features never reach the actor
    with torch.no_grad():
        a = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        b = module.forward_train({Columns.OBS: changed})[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.all(a[:, 1, 0] == 0)


def test_invalid_scheduler_rows_get_no_weight_from_the_local_critic(env):
    module = build(env, "scheduler", critic="local")
    obs = make_obs(env, "scheduler", seed=6)
    changed = {k: v.clone() for k, v in obs.items()}
    changed["obs"][:, 1, 1:] = 0.9  # row 1 is invalid in every sample
    with torch.no_grad():
        torch.testing.assert_close(
            module.compute_values({Columns.OBS: obs}), module.compute_values({Columns.OBS: changed}), rtol=0, atol=0
        )


# --------------------------------------------------------------------------- critics


@ROLES
@pytest.mark.parametrize("critic", ["central", "local"])
def test_critic_reads_only_its_input(env, role, critic):
    module = build(env, role, critic=critic)
    obs = make_obs(env, role, seed=7)
    other_state = {**obs, "state": obs["state"] + 0.3}
    other_obs = {**obs, "obs": obs["obs"].clone()}
    other_obs["obs"][..., 1:] += 0.3  # keep the scheduler's valid flags
    with torch.no_grad():
        v = module.compute_values({Columns.OBS: obs})
        v_state = module.compute_values({Columns.OBS: other_state})
        v_obs = module.compute_values({Columns.OBS: other_obs})
    assert v.shape == (B,)
    if critic == "central":
        torch.testing.assert_close(v, v_obs, rtol=0, atol=0)
        assert not torch.allclose(v, v_state)
    else:
        torch.testing.assert_close(v, v_state, rtol=0, atol=0)
        assert not torch.allclose(v, v_obs)


def test_local_critic_builds_without_a_state_space(env):
    import gymnasium as gym

    space = gym.spaces.Dict({"obs": env.observation_spaces["ues"]["obs"]})
    module = RLModuleSpec(module_class=RoleModule, observation_space=space, action_space=env.action_spaces["ues"],
                          model_config={"role": "ue", "hidden": HIDDEN, "critic": "local"}).build()  # fmt: skip
    obs = make_obs(env, "ue")
    with torch.no_grad():
        assert module.compute_values({Columns.OBS: {"obs": obs["obs"]}}).shape == (B,)


def test_unknown_role_is_refused(env):
    with pytest.raises(ValueError, match="role"):
        RLModuleSpec(module_class=RoleModule, observation_space=env.observation_spaces["ues"],
                     action_space=env.action_spaces["ues"], model_config={"role": "server"}).build()  # fmt: skip


@pytest.mark.parametrize("activation, function", [("tanh", torch.tanh), ("relu", torch.relu)])
def test_actor_and_critic_apply_the_configured_activation_after_every_hidden_layer(env, activation, function):
    """training.activation: the UE actor and the central critic written out from the module's own weights."""
    module = build(env, "coordinator", activation=activation)
    obs = make_obs(env, "coordinator", seed=8)

    def layers(seq):
        return [m for m in seq if isinstance(m, torch.nn.Linear)]

    with torch.no_grad():
        x = obs["obs"]
        *hidden, head = layers(module.actor)
        for layer in hidden:
            x = function(x @ layer.weight.T + layer.bias)
        want = x @ head.weight.T + head.bias
        got = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS][..., :1]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        (row,) = layers(module.critic_rows)
        pooled = function(obs["state"] @ row.weight.T + row.bias).mean(1)
        *hidden, head = layers(module.critic_pooled)
        for layer in hidden:
            pooled = function(pooled @ layer.weight.T + layer.bias)
        want = (pooled @ head.weight.T + head.bias)[:, 0]
        torch.testing.assert_close(module.compute_values({Columns.OBS: obs}), want, rtol=1e-5, atol=1e-6)


def test_sigmoid_form_tanh_works_in_place_with_the_out_of_place_forms_values_bit_for_bit():
    """modules._SigmoidTanh: forward 2 sigmoid(2x) - 1 and backward grad * (1 - y^2), in place, give exactly the
    numbers of the out-of-place expressions that trained the committed results, and torch.tanh's to rounding."""
    gen = torch.Generator().manual_seed(3)
    x = torch.cat([torch.randn(4000, 64, generator=gen) * 3, torch.tensor([[0.0, 1e-8, -1e-8, 20.0, -20.0, 90.0,
                                                                             -90.0, 0.5] * 8])])  # fmt: skip
    grad = torch.randn(x.shape, generator=gen)
    x_before = x.clone()
    x.requires_grad_(True)
    y = modules._SigmoidTanh.apply(x)
    y.backward(grad)
    with torch.no_grad():
        want = torch.sigmoid(2.0 * x) * 2.0 - 1.0
        want_grad = grad * (1.0 - want * want)
    assert torch.equal(y.detach(), want)
    assert torch.equal(x.grad, want_grad)
    torch.testing.assert_close(y.detach(), torch.tanh(x.detach()), rtol=0, atol=3e-7)
    assert torch.equal(x.detach(), x_before)  # the input is left as it was, not overwritten


def test_unknown_activation_is_refused(env):
    with pytest.raises(ValueError, match="activation 'gelu': allowed tanh, relu"):
        build(env, "ue", activation="gelu")


# --------------------------------------------------------------------------- old-policy log-probabilities


@pytest.mark.parametrize("role", ["scheduler", "coordinator"])
def test_stored_dist_inputs_determine_the_sampling_logp_after_an_update(env, role):
    """The learner computes the old policy's log-probabilities from the batch's ACTION_DIST_INPUTS with the
    *current* module (FleetPPOLearner: module.row_logp(batch[ACTION_DIST_INPUTS], ...)). That is only right if the
    stored inputs fully determine the sampling distribution. For the Gaussian roles the std is a module parameter
    (log_std) that is not part of the stored inputs, so after an SGD step changes it the "old" log-probabilities are
    those of a policy that never acted, and PPO's ratio and clipping ignore every change of the std."""
    module = build(env, role)
    obs = make_obs(env, role, seed=8)
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
        module.log_std.add_(0.4)  # what a few SGD steps do to the std
        old = (module.row_logp(out[Columns.ACTION_DIST_INPUTS], out[Columns.ACTIONS]) * valid_rows(role, obs)).sum(1)
    torch.testing.assert_close(old, out[Columns.ACTION_LOGP], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- the per-row PPO loss


@pytest.fixture(scope="module")
def learner():
    from mec.config import config_from_dict
    from mec.backends.rllib.training import build_ppo_config, env_config

    cfg = config_from_dict({"training": {"hidden": HIDDEN}})
    conf = build_ppo_config(cfg, 1, 3, 0)
    from mec.envs.fleet import FleetEnv

    lrn = conf.build_learner(env=FleetEnv(env_config(cfg, 1, 3)))
    lrn.build()
    assert isinstance(lrn, FleetPPOLearner)
    return lrn, conf


def learner_batch(module, role, seed, n_ue=3, batch=8):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(0, 1, (batch, n_ue, module.observation_space["obs"].shape[-1])).astype(np.float32)
    state = rng.uniform(0, 1, (batch, n_ue, module.observation_space["state"].shape[-1])).astype(np.float32)
    if role == "scheduler":
        valid = rng.random((batch, n_ue)) < 0.6
        valid[:, 0], valid[:, 1] = True, False
        obs[..., 0] = valid
        obs[~valid] = 0.0
    obs = {"obs": torch.from_numpy(obs), "state": torch.from_numpy(state)}
    if CLUSTER_KEY in module.observation_space.spaces:  # the set scheduler (the default actor): phase 1, one cluster
        obs[CLUSTER_KEY] = torch.zeros((batch, n_ue), dtype=torch.float32)
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
    return {
        Columns.OBS: obs,
        Columns.ACTIONS: out[Columns.ACTIONS],
        Columns.ACTION_DIST_INPUTS: out[Columns.ACTION_DIST_INPUTS],
        Columns.ACTION_LOGP: out[Columns.ACTION_LOGP],
        Postprocessing.ADVANTAGES: torch.from_numpy(rng.normal(size=batch).astype(np.float32)),
        Postprocessing.VALUE_TARGETS: torch.from_numpy(rng.normal(size=batch).astype(np.float32)),
    }


def loss_parts(lrn, conf, role, batch):
    module = lrn.module[role].unwrapped()
    fwd = module.forward_train(batch)
    total = lrn.compute_loss_for_module(module_id=role, config=conf.get_config_for_module(role), batch=batch,
                                        fwd_out=fwd)  # fmt: skip
    policy_loss = lrn.metrics.peek((role, "policy_loss"))
    policy_loss = float(policy_loss.detach() if torch.is_tensor(policy_loss) else policy_loss)
    return float(total.detach()), policy_loss


def expected_policy_loss(module, role, batch, old_row_logp, clip):
    """Mean over valid rows of the clipped surrogate with one probability ratio per row."""
    with torch.no_grad():
        inputs = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
        new = hand_row_logp(module, role, inputs, batch[Columns.ACTIONS])
    ratio = torch.exp(new - old_row_logp)
    adv = batch[Postprocessing.ADVANTAGES][:, None]
    surrogate = torch.min(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip))
    valid = valid_rows(role, batch[Columns.OBS]).float()
    return float(-(surrogate * valid).sum() / valid.sum())


@pytest.mark.parametrize("role", ["ue", "scheduler"])
def test_loss_takes_one_clipped_ratio_per_valid_row(learner, role):
    lrn, conf = learner
    module = lrn.module[role].unwrapped()
    batch = learner_batch(module, role, seed=10)
    with torch.no_grad():
        old_row = hand_row_logp(module, role, batch[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTIONS])
    clip = conf.get_config_for_module(role).clip_param
    # Before any update every ratio is 1: the policy loss is minus the mean advantage over valid rows.
    _, policy_loss = loss_parts(lrn, conf, role, batch)
    valid = valid_rows(role, batch[Columns.OBS]).float()
    adv = batch[Postprocessing.ADVANTAGES][:, None]
    assert policy_loss == pytest.approx(float(-(adv * valid).sum() / valid.sum()), rel=1e-5, abs=1e-6)
    # After a change of the actor's weights the ratios differ per row; some are clipped.
    state = {k: v.clone() for k, v in module.state_dict().items()}
    try:
        with torch.no_grad():
            torch.manual_seed(0)
            for p in module.actor.parameters():
                p.add_(0.3 * torch.randn_like(p))
        _, policy_loss = loss_parts(lrn, conf, role, batch)
        expected = expected_policy_loss(module, role, batch, old_row, clip)
        assert policy_loss == pytest.approx(expected, rel=1e-4, abs=1e-5)
        # One ratio per sample (the product over rows) would give a different number.
        with torch.no_grad():
            new_row = hand_row_logp(module, role, module.forward_train(batch)[Columns.ACTION_DIST_INPUTS],
                                    batch[Columns.ACTIONS])  # fmt: skip
        sample_ratio = torch.exp(((new_row - old_row) * valid).sum(1))
        sample_loss = -torch.min(adv[:, 0] * sample_ratio, adv[:, 0] * sample_ratio.clamp(1 - clip, 1 + clip)).mean()
        assert abs(float(sample_loss) - policy_loss) > 1e-3
    finally:
        module.load_state_dict(state)


def test_invalid_rows_and_masked_steps_do_not_enter_the_loss(learner):
    lrn, conf = learner
    module = lrn.module["scheduler"].unwrapped()
    batch = learner_batch(module, "scheduler", seed=11)
    invalid = ~valid_rows("scheduler", batch[Columns.OBS])
    base, base_pl = loss_parts(lrn, conf, "scheduler", batch)
    moved = {**batch, Columns.ACTIONS: torch.where(invalid, batch[Columns.ACTIONS] + 5.0, batch[Columns.ACTIONS])}
    moved_inputs = batch[Columns.ACTION_DIST_INPUTS].clone()
    moved_inputs[invalid] += 3.0
    moved[Columns.ACTION_DIST_INPUTS] = moved_inputs
    total, pl = loss_parts(lrn, conf, "scheduler", moved)
    assert total == pytest.approx(base, rel=1e-6, abs=1e-7)
    assert pl == pytest.approx(base_pl, rel=1e-6, abs=1e-7)
    # A loss mask drops whole steps: masking step 0 equals removing it from the batch.
    masked = {**batch, Columns.LOSS_MASK: torch.tensor([False] + [True] * 7)}
    removed = {k: ({kk: vv[1:] for kk, vv in v.items()} if isinstance(v, dict) else v[1:]) for k, v in batch.items()}
    m_total, m_pl = loss_parts(lrn, conf, "scheduler", masked)
    r_total, r_pl = loss_parts(lrn, conf, "scheduler", removed)
    assert m_total == pytest.approx(r_total, rel=1e-5, abs=1e-6)
    assert m_pl == pytest.approx(r_pl, rel=1e-5, abs=1e-6)
    assert m_pl != pytest.approx(base_pl, rel=1e-3)


def test_ratio_uses_the_std_that_sampled_the_actions(learner):
    """The per-row ratio of a Gaussian role must compare the new policy with the one that acted, std included."""
    lrn, conf = learner
    module = lrn.module["scheduler"].unwrapped()
    batch = learner_batch(module, "scheduler", seed=12)
    with torch.no_grad():
        old_row = hand_row_logp(module, "scheduler", batch[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTIONS])
    state = {k: v.clone() for k, v in module.state_dict().items()}
    try:
        with torch.no_grad():
            module.log_std.add_(0.5)
        _, policy_loss = loss_parts(lrn, conf, "scheduler", batch)
        clip = conf.get_config_for_module("scheduler").clip_param
        assert policy_loss == pytest.approx(expected_policy_loss(module, "scheduler", batch, old_row, clip), rel=1e-4)
    finally:
        module.load_state_dict(state)


def test_ue_rows_take_their_standardised_marginal_credit_as_advantage(learner):
    """With a CREDIT_KEY column (training.ue_credit = marginal) UE row (t, i) uses (c_ti - mean) / std over the
    minibatch's rows in place of the shared advantage of step t."""
    from mec.envs.fleet import CREDIT_KEY

    lrn, conf = learner
    module = lrn.module["ue"].unwrapped()
    batch = learner_batch(module, "ue", seed=12)
    credit = torch.from_numpy(np.random.default_rng(3).normal(0.02, 0.05, (8, 3)).astype(np.float32))
    batch = {**batch, CREDIT_KEY: credit}
    with torch.no_grad():
        old_row = hand_row_logp(module, "ue", batch[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTIONS])
    clip = conf.get_config_for_module("ue").clip_param
    adv = (credit - credit.mean()) / credit.std(unbiased=False)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    try:
        with torch.no_grad():
            torch.manual_seed(1)
            for p in module.actor.parameters():
                p.add_(0.3 * torch.randn_like(p))
            new_row = hand_row_logp(module, "ue", module.forward_train(batch)[Columns.ACTION_DIST_INPUTS],
                                    batch[Columns.ACTIONS])  # fmt: skip
        ratio = torch.exp(new_row - old_row)
        expected = float(-torch.min(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip)).mean())
        _, policy_loss = loss_parts(lrn, conf, "ue", batch)
        assert policy_loss == pytest.approx(expected, rel=1e-4, abs=1e-6)
        # The shared advantage would give another loss.
        _, shared_loss = loss_parts(lrn, conf, "ue", {k: v for k, v in batch.items() if k != CREDIT_KEY})
        assert abs(shared_loss - policy_loss) > 1e-3
    finally:
        module.load_state_dict(state)
