"""training.ue_rows_per_slot: the UE loss on a sample of each slot's UE rows (mec.backends.rllib.modules)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

from mec.backends.rllib.modules import sample_ue_rows
from mec.config import ConfigError, config_from_dict
from mec.envs.fleet import CREDIT_KEY

SLOTS, N, F, F_STATE = 9, 12, 4, 5


def tagged_batch() -> SampleBatch:
    """A UE batch whose every per-row column carries its (slot, row) tag, so a gather can be checked column by
    column: obs = slot * 100 + row in every feature, dist inputs the same, offload = row parity, spectrum = row / N,
    credit = slot * 100 + row; per-slot columns carry the slot alone."""
    tag = (np.arange(SLOTS)[:, None] * 100 + np.arange(N)[None, :]).astype(np.float32)
    return SampleBatch({
        Columns.OBS: {"obs": torch.from_numpy(np.repeat(tag[..., None], F, axis=2)),
                      "state": torch.from_numpy(np.random.default_rng(0).random((SLOTS, N, F_STATE), np.float32))},
        Columns.ACTIONS: {"offload": torch.from_numpy((np.arange(N) % 2 == 1)[None, :].repeat(SLOTS, 0)),
                          "spectrum": torch.from_numpy(np.tile(np.arange(N, dtype=np.float32) / N, (SLOTS, 1)))},
        Columns.ACTION_DIST_INPUTS: torch.from_numpy(np.repeat(tag[..., None], 3, axis=2)),
        Columns.ACTION_LOGP: torch.arange(SLOTS, dtype=torch.float32),
        CREDIT_KEY: torch.from_numpy(tag.copy()),
        Postprocessing.ADVANTAGES: torch.arange(SLOTS, dtype=torch.float32),
        Postprocessing.VALUE_TARGETS: -torch.arange(SLOTS, dtype=torch.float32),
    })  # fmt: skip


def test_every_per_row_column_is_gathered_at_the_same_distinct_rows_and_per_slot_columns_stay_whole():
    batch = tagged_batch()
    got = sample_ue_rows(batch, 4, np.random.default_rng(7))
    obs = got[Columns.OBS]["obs"].numpy()
    assert obs.shape == (SLOTS, 4, F)
    rows = obs[..., 0] - 100 * np.arange(SLOTS)[:, None]  # the original row index of every kept row
    assert np.all((rows >= 0) & (rows < N) & (rows == np.round(rows)))
    rows = rows.astype(int)
    for s in range(SLOTS):
        assert len(set(rows[s])) == 4  # drawn without replacement
    np.testing.assert_array_equal(obs, np.repeat(obs[..., :1], F, axis=2))
    np.testing.assert_array_equal(got[Columns.ACTION_DIST_INPUTS].numpy()[..., 1], obs[..., 0])
    np.testing.assert_array_equal(got[CREDIT_KEY].numpy(), obs[..., 0])
    np.testing.assert_array_equal(got[Columns.ACTIONS]["offload"].numpy(), rows % 2 == 1)
    np.testing.assert_array_equal(got[Columns.ACTIONS]["spectrum"].numpy(), rows.astype(np.float32) / N)
    for key in (Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS, Columns.ACTION_LOGP):
        assert torch.equal(got[key], batch[key])
    assert torch.equal(got[Columns.OBS]["state"], batch[Columns.OBS]["state"])  # the critic's global state whole
    # Different slots draw different rows (12 choose 4 per slot: equal draws in all 9 would be a broken draw).
    assert len({tuple(sorted(r)) for r in rows}) > 1


def test_the_draw_follows_its_generator_and_rows_at_or_above_n_keep_the_batch():
    batch = tagged_batch()
    first = sample_ue_rows(batch, 5, np.random.default_rng(3))[CREDIT_KEY]
    assert torch.equal(first, sample_ue_rows(batch, 5, np.random.default_rng(3))[CREDIT_KEY])
    assert not torch.equal(first, sample_ue_rows(batch, 5, np.random.default_rng(4))[CREDIT_KEY])
    assert sample_ue_rows(batch, N, np.random.default_rng(3)) is batch
    assert sample_ue_rows(batch, N + 5, np.random.default_rng(3)) is batch


@pytest.fixture(scope="module")
def learner():
    from mec.backends.rllib.training import build_ppo_config, env_config
    from mec.envs.fleet import FleetEnv

    cfg = config_from_dict({"phase2": {"n_users": N, "n_clusters": [2]},
                            "training": {"hidden": [8], "ue_rows_per_slot": 4}})  # fmt: skip
    lrn = build_ppo_config(cfg, 2, 2, seed=5).build_learner(env=FleetEnv(env_config(cfg, 2, 2)))
    lrn.build()
    return lrn


def test_the_learner_hands_the_ue_loss_its_drawn_rows_afresh_each_update_and_the_same_after_a_restore(learner):
    """The learner's batch step draws the UE rows from a stream keyed by the run's seed and its update count (which
    a checkpoint restores): the same count gives the same rows, the next count other rows, other modules whole."""
    from ray.rllib.core.learner.training_data import TrainingData

    scheduler = SampleBatch({Columns.OBS: {"obs": torch.zeros(SLOTS, N, 7)}, Postprocessing.ADVANTAGES: torch.zeros(SLOTS)})

    def draw(seq_no):
        learner._weights_seq_no = seq_no
        data = TrainingData(batch=MultiAgentBatch({"ue": tagged_batch(), "scheduler": scheduler}, env_steps=SLOTS))
        batch = learner._make_batch_if_necessary(data)
        assert batch.policy_batches["scheduler"][Columns.OBS]["obs"].shape == (SLOTS, N, 7)
        return batch.policy_batches["ue"][CREDIT_KEY]

    first = draw(1)
    assert first.shape == (SLOTS, 4)
    assert torch.equal(first, draw(1))
    assert not torch.equal(first, draw(2))


@pytest.mark.parametrize(
    "training, message",
    [
        ({"ue_rows_per_slot": -1}, "'training.ue_rows_per_slot': got -1; allowed: an integer >= 0"),
        ({"ue_rows_per_slot": 10, "critic": "local", "ue_credit": "shared"}, "'training.ue_rows_per_slot': got 10; allowed: 0 with training.critic = local"),
    ],
)
def test_bad_ue_rows_per_slot_is_one_line_naming_it(training, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict({"training": training})
    assert "\n" not in str(info.value)


def test_ue_rows_with_a_local_critic_and_marginal_credit_is_allowed():
    # With marginal credit the UE module has no critic, so a local critic elsewhere reads no sampled rows.
    assert config_from_dict({"training": {"ue_rows_per_slot": 10, "critic": "local"}}).training.ue_rows_per_slot == 10
