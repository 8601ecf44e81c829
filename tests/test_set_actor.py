"""training.actor: set, the scheduler's and the coordinator's set-encoder actor (mec.backends.rllib.modules.SetActor).

Each row's output is a function of its own row and of the mean embedding of the valid rows of its table: a
scheduler row's table is its own cluster's offloaded tasks (the fleet observation's CLUSTER_KEY), a coordinator row's
is every cluster. Checked here: permutation equivariance, rows without a decision (and padding) without effect,
clusters isolated from each other, the context acting at all, the per-row actor unchanged, and a tiny training of
both phases whose checkpoint loads and evaluates (best-of-K included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from conftest_rl import make_env, tiny_training_evaluates
from mec.backends.rllib.modules import RoleModule, SetActor, mlp
from mec.envs.fleet import CLUSTER_KEY

ROOT = Path(__file__).resolve().parents[1]
N, K, B = 12, 3, 5
HIDDEN = [16, 16]
AGENT = {"scheduler": "schedulers", "coordinator": "coordinator"}


@pytest.fixture(scope="module")
def env():
    return make_env("fleet", 2, config={"phase2": {"n_users": N}, "training": {"actor": "set"}})


def build(env, role, actor="set", seed=0, hidden=HIDDEN):
    torch.manual_seed(seed)
    return RLModuleSpec(
        module_class=RoleModule,
        observation_space=env.observation_spaces[AGENT[role]],
        action_space=env.action_spaces[AGENT[role]],
        model_config={"role": role, "hidden": hidden, "actor": actor},
    ).build()


def scheduler_obs(seed=0, batch=B, n=N):
    """Scheduler observations: every cluster of every sample with at least two valid rows, the other rows zero (as
    the env gives them), clusters in [0, K)."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(0.0, 1.0, (batch, n, 7)).astype(np.float32)
    cluster = np.stack([rng.permutation(np.arange(n) % K) for _ in range(batch)])
    valid = rng.random((batch, n)) < 0.6
    for b in range(batch):
        for k in range(K):
            valid[b, np.flatnonzero(cluster[b] == k)[:2]] = True
    valid[:, -1] = False  # at least one invalid row per sample
    obs[..., 0] = valid
    obs[~valid] = 0.0
    return {"obs": torch.from_numpy(obs), CLUSTER_KEY: torch.from_numpy(cluster.astype(np.int64))}


def coordinator_obs(seed=0, batch=B):
    rng = np.random.default_rng(seed)
    return {"obs": torch.from_numpy(rng.uniform(0.0, 1.0, (batch, K, 6)).astype(np.float32))}


def scores(module, obs):
    """(B, R) the mean of each row's distribution (the channel the action is sampled around)."""
    with torch.no_grad():
        return module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS][..., 0]


def valid(obs):
    return obs["obs"][..., 0] > 0.5


def permuted(obs, perm):
    """The observation with its rows reordered by `perm` (B, R) (row r of sample b becomes row perm[b, r])."""
    at = torch.arange(perm.shape[0])[:, None]
    return {key: value[at, perm] for key, value in obs.items()}


# --------------------------------------------------------------------------- permutation equivariance


def assert_permutes_outputs(module, obs, perm):
    """Permuting each sample's rows by `perm` (B, R) permutes the module's outputs the same way."""
    want = scores(module, obs)[torch.arange(B)[:, None], perm]
    torch.testing.assert_close(scores(module, permuted(obs, perm)), want, rtol=1e-5, atol=1e-6)


def test_scheduler_rows_permuted_across_clusters_permute_the_outputs(env):
    module = build(env, "scheduler")
    obs = scheduler_obs()
    perm = torch.stack([torch.randperm(N, generator=torch.Generator().manual_seed(b)) for b in range(B)])
    assert_permutes_outputs(module, obs, perm)
    # The clusters' labels are names: renaming them changes nothing.
    renamed = {**obs, CLUSTER_KEY: torch.tensor([2, 0, 1])[obs[CLUSTER_KEY]]}
    torch.testing.assert_close(scores(module, renamed), scores(module, obs), rtol=1e-5, atol=1e-6)


def test_scheduler_rows_permuted_within_a_cluster_permute_the_outputs(env):
    module = build(env, "scheduler")
    obs = scheduler_obs(seed=1)
    perm = torch.arange(N).repeat(B, 1)
    for b in range(B):  # reverse the order of cluster 0's rows, every other row stays where it is
        rows = torch.nonzero(obs[CLUSTER_KEY][b] == 0).flatten()
        perm[b, rows] = rows.flip(0)
    assert (perm != torch.arange(N)).any()
    assert_permutes_outputs(module, obs, perm)


def test_coordinator_rows_permuted_permute_the_outputs(env):
    module = build(env, "coordinator")
    obs = coordinator_obs()
    perm = torch.stack([torch.randperm(K, generator=torch.Generator().manual_seed(b)) for b in range(B)])
    assert_permutes_outputs(module, obs, perm)


# --------------------------------------------------------------------------- rows without a decision, padding


def test_rows_without_a_decision_have_no_effect_on_any_valid_row(env):
    module = build(env, "scheduler")
    obs = scheduler_obs(seed=2)
    ok = valid(obs)
    base = scores(module, obs)
    assert (base[~ok] == 0).all()

    # Other features (and other clusters) on the rows without a decision: bit for bit the same outputs.
    changed = {key: value.clone() for key, value in obs.items()}
    garbage = torch.rand(changed["obs"].shape, generator=torch.Generator().manual_seed(3)) * 5 - 1
    garbage[..., 0] = 0.3  # below the decision threshold
    changed["obs"][~ok] = garbage[~ok]
    changed[CLUSTER_KEY][~ok] = (changed[CLUSTER_KEY][~ok] + 1) % K
    torch.testing.assert_close(scores(module, changed), base, rtol=0, atol=0)

    # Padding rows added (anywhere among the rows) or rows without a decision removed: the same outputs.
    pad = 4
    padded = {
        "obs": torch.cat([torch.zeros(B, pad, 7), obs["obs"]], dim=1),
        CLUSTER_KEY: torch.cat([torch.randint(0, K, (B, pad), generator=torch.Generator().manual_seed(4)),
                                obs[CLUSTER_KEY]], dim=1),
    }  # fmt: skip
    torch.testing.assert_close(scores(module, padded)[:, pad:], base, rtol=0, atol=0)
    for b in range(B):  # each table without any of its rows that carry no decision
        alone = {key: value[b : b + 1, ok[b]] for key, value in obs.items()}
        torch.testing.assert_close(scores(module, alone)[0], base[b, ok[b]], rtol=1e-6, atol=1e-7)


def test_tables_without_any_decision_score_nothing(env):
    module = build(env, "scheduler")
    obs = scheduler_obs(seed=7)
    empty = {key: value.clone() for key, value in obs.items()}
    empty["obs"][1] = 0.0  # sample 1: nothing offloaded
    got = scores(module, empty)
    assert (got[1] == 0).all()
    torch.testing.assert_close(got[[0, 2, 3, 4]], scores(module, obs)[[0, 2, 3, 4]], rtol=1e-6, atol=1e-7)
    assert (scores(module, {**obs, "obs": torch.zeros_like(obs["obs"])}) == 0).all()


# --------------------------------------------------------------------------- clusters, and the context acting


def test_a_cluster_sees_its_own_rows_only_and_does_see_them(env):
    module = build(env, "scheduler")
    obs = scheduler_obs(seed=5)
    base = scores(module, obs)
    changed = {key: value.clone() for key, value in obs.items()}
    in_a = (obs[CLUSTER_KEY] == 0) & valid(obs)
    target = torch.stack([torch.nonzero(in_a[b]).flatten()[0] for b in range(B)])
    at = torch.arange(B)
    changed["obs"][at, target, 1:] += 0.7  # one valid row of cluster 0 per sample, still valid
    got = scores(module, changed)
    others = (obs[CLUSTER_KEY] != 0) | ~valid(obs)
    torch.testing.assert_close(got[others], base[others], rtol=0, atol=0)
    rest_of_a = in_a.clone()
    rest_of_a[at, target] = False
    assert rest_of_a.any()
    assert (got[rest_of_a] != base[rest_of_a]).all()  # every other task of cluster 0 sees the change


def test_the_set_actor_is_one_linear_layer_over_the_row_embedding_and_its_cluster_mean(env):
    """Written out by hand from the module's weights: embedding e = act(W0 x + b0), the group mean m, then the head
    on concat(e, m) (its first layer's weight [W1 | C], C the context weights)."""
    module = build(env, "scheduler")
    obs = scheduler_obs(seed=6)
    actor = module.actor
    assert isinstance(actor, SetActor)
    with torch.no_grad():
        (embed,) = [m for m in actor.embed if isinstance(m, torch.nn.Linear)]
        first, *rest = [m for m in actor.head if isinstance(m, torch.nn.Linear)]
        weight = torch.cat([first.weight, actor.context.weight], dim=1)
        want = torch.zeros(B, N)
        for b in range(B):
            for k in range(K):
                rows = torch.nonzero((obs[CLUSTER_KEY][b] == k) & valid(obs)[b]).flatten()
                e = torch.tanh(obs["obs"][b, rows] @ embed.weight.T + embed.bias)
                x = torch.cat([e, e.mean(0, keepdim=True).expand_as(e)], dim=1) @ weight.T + first.bias
                for layer in rest:
                    x = torch.tanh(x) @ layer.weight.T + layer.bias
                want[b, rows] = x[:, 0]
    torch.testing.assert_close(scores(module, obs), want, rtol=1e-5, atol=1e-6)


def test_a_single_hidden_layer_set_actor_works(env):
    module = build(env, "coordinator", hidden=[8])
    assert scores(module, coordinator_obs()).shape == (B, K)


def test_the_set_scheduler_needs_the_row_clusters():
    rows_env = make_env("fleet", 2, config={"phase2": {"n_users": N}, "training": {"actor": "rows"}})
    assert CLUSTER_KEY not in rows_env.observation_spaces["schedulers"].spaces
    with pytest.raises(ValueError, match=CLUSTER_KEY):
        build(rows_env, "scheduler")
    with pytest.raises(ValueError, match="actor"):
        build(rows_env, "coordinator", actor="attention")


# --------------------------------------------------------------------------- the per-row actor, unchanged


@pytest.mark.parametrize("role", ["scheduler", "coordinator"])
def test_the_rows_actor_is_the_per_row_mlp_of_the_same_seed_and_ignores_the_clusters(env, role):
    """training.actor: rows builds the same weights from the same seed as before the set actor existed (the actor
    MLP first), and scores each row alone, bit for bit, with or without the clusters in the observation."""
    module = build(env, role, actor="rows", seed=11)
    torch.manual_seed(11)
    n_in = env.observation_spaces[AGENT[role]]["obs"].shape[-1]
    reference = mlp(n_in, tuple(HIDDEN), 1)
    for got, want in zip(module.actor.parameters(), reference.parameters(), strict=True):
        assert torch.equal(got, want)
    obs = scheduler_obs(seed=12) if role == "scheduler" else coordinator_obs(seed=12)
    with torch.no_grad():
        if role == "scheduler":
            want = torch.zeros(B, N)
            want[valid(obs)] = reference(obs["obs"][valid(obs)])[:, 0]
            torch.testing.assert_close(scores(module, {"obs": obs["obs"]}), want, rtol=0, atol=0)
        else:
            want = reference(obs["obs"])[..., 0]
        torch.testing.assert_close(scores(module, obs), want, rtol=0, atol=0)


# --------------------------------------------------------------------------- a tiny training, both phases

@pytest.mark.parametrize("phase", [1, 2], ids=["phase1", "phase2"])
def test_a_tiny_set_actor_training_runs_and_its_checkpoint_loads_and_evaluates(tmp_path, phase):
    modules, meta = tiny_training_evaluates(tmp_path, phase, training={"actor": "set"})
    assert meta["config"]["training"]["actor"] == "set"
    assert isinstance(modules["scheduler"].actor, SetActor)
    assert CLUSTER_KEY in modules["scheduler"].observation_space.spaces
    assert not isinstance(modules["ue"].actor, SetActor)  # the UEs decide from their own row
    if phase == 2:
        assert isinstance(modules["coordinator"].actor, SetActor)
