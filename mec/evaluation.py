"""Evaluating a policy on fixed evaluation episodes, with the metric definitions of mec.metrics.

Evaluation episodes are drawn from `episode_seeds(seed, episodes)`: the same seed gives every policy the very same
UEs, clusters and tasks. A policy's own randomness comes from a separate seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mec import metrics
from mec.baselines import Policy
from mec.config import StudyConfig
from mec.scenario import EpisodeBatch, PhaseSetup, episode_seeds, sample_episodes
from mec.simulator import Simulator


def evaluation_episodes(cfg: StudyConfig, setup: PhaseSetup, n_episodes: int, n_slots: int, seed: int) -> EpisodeBatch:
    return sample_episodes(cfg.scenario, setup, n_slots, episode_seeds(seed, n_episodes))


def run_policy(cfg: StudyConfig, setup: PhaseSetup, policy: Policy, episodes: EpisodeBatch) -> pd.DataFrame:
    """Step every episode of the batch to the end under `policy`; one row per (episode, slot)."""
    sim = Simulator(cfg, setup, episodes.n_slots)
    state = sim.reset_from(episodes)
    index = np.arange(episodes.n_episodes)
    columns: dict[str, list] = {name: [] for name in metrics.SLOT_COLUMNS}
    while True:
        result = sim.step(policy.act(state))
        for name, values in metrics.slot_rows(result, state.slot, index, setup.phase == 1).items():
            columns[name].extend(values)
        if sim.done:
            break
        state = sim.state()
    return pd.DataFrame(columns).sort_values(["episode", "slot"], ignore_index=True)
