"""Every metric of the study, defined once.

Per-slot rows (one per episode and slot) are the unit of record; every summary is a ratio of their sums, so a
summary over more episodes is never an average of averages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mec.simulator import SlotResult

# Per-slot columns: sums over the slot's tasks (energies in joules).
SLOT_COLUMNS = (
    "episode",
    "slot",
    "n_tasks",
    "n_offloaded",
    "n_deadline_met",
    "sum_qos",
    "sum_energy_j",
    "local_energy_j",
    "transmit_energy_j",
    "server_energy_j",
    "reward",
    "group_qos",
    "group_energy_j",
)

SUMMARY_KEYS = (
    "mean_qos",
    "deadline_met_fraction",
    "energy_per_task_j",
    "reward_per_slot",
    "offload_fraction",
    "local_energy_j",
    "transmit_energy_j",
    "server_energy_j",
)


def _group_sums(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros((values.shape[0], n_groups))
    np.add.at(out, (np.arange(values.shape[0])[:, None], group), values)
    return out


def slot_rows(
    result: SlotResult, slot: int | np.ndarray, episode_index: np.ndarray, per_ue_groups: bool
) -> dict[str, list]:
    """Column-wise per-slot records of a batch of slots: one slot of every episode (`slot` an int), or any rows of
    (episode, slot) pairs (`slot` an array beside `episode_index`).

    group_qos / group_energy_j hold the slot's sums per UE (phase 1, `per_ue_groups`) or per cluster (phase 2).
    """
    n_b, n_ue = result.offload.shape
    groups = np.broadcast_to(np.arange(n_ue), (n_b, n_ue)) if per_ue_groups else result.cluster
    n_groups = n_ue if per_ue_groups else result.cpu_share.shape[1]
    energy = result.energy_j
    return {
        "episode": episode_index.tolist(),
        "slot": np.broadcast_to(np.asarray(slot), (n_b,)).tolist(),
        "n_tasks": [n_ue] * n_b,
        "n_offloaded": result.offload.sum(axis=1).tolist(),
        "n_deadline_met": result.deadline_met.sum(axis=1).tolist(),
        "sum_qos": result.qos.sum(axis=1).tolist(),
        "sum_energy_j": energy.sum(axis=1).tolist(),
        "local_energy_j": result.local_energy_j.sum(axis=1).tolist(),
        "transmit_energy_j": result.tx_energy_j.sum(axis=1).tolist(),
        "server_energy_j": result.server_energy_j.sum(axis=1).tolist(),
        "reward": result.reward.tolist(),
        "group_qos": _group_sums(result.qos, groups, n_groups).tolist(),
        "group_energy_j": _group_sums(energy, groups, n_groups).tolist(),
    }


def summarise(slots: pd.DataFrame) -> dict[str, float]:
    """Headline metrics of a set of per-slot rows (per task unless named per slot)."""
    n_tasks = float(slots["n_tasks"].sum())
    per_episode_reward = slots.groupby("episode")["reward"].mean()
    return {
        "mean_qos": float(slots["sum_qos"].sum() / n_tasks),
        "deadline_met_fraction": float(slots["n_deadline_met"].sum() / n_tasks),
        "energy_per_task_j": float(slots["sum_energy_j"].sum() / n_tasks),
        "reward_per_slot": float(slots["reward"].mean()),
        "reward_per_slot_episode_std": float(per_episode_reward.std(ddof=1)) if len(per_episode_reward) > 1 else 0.0,
        "offload_fraction": float(slots["n_offloaded"].sum() / n_tasks),
        "local_energy_j": float(slots["local_energy_j"].sum() / n_tasks),
        "transmit_energy_j": float(slots["transmit_energy_j"].sum() / n_tasks),
        "server_energy_j": float(slots["server_energy_j"].sum() / n_tasks),
        "episodes": int(slots["episode"].nunique()),
        "slots": int(len(slots)),
        "tasks": int(n_tasks),
    }
