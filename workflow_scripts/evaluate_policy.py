"""Rule evaluate_policy: one training job's learned policy on its sweep point's evaluation episodes.

The best checkpoint (by the per-iteration evaluation reward) is restored by the backend it records
(mec.backends.load_policy: RLlib role modules without building the Algorithm, mec.backends.rllib.policy.LearnedPolicy,
or the SB3 joint policy, mec.backends.sb3.SB3Policy) and run for every agent and episode at once on the same seeded
episodes as evaluate_baselines, through the same mec.evaluation.run_policy. Writes one row per (episode, slot) with the
baselines' schema (mec.metrics.SLOT_COLUMNS plus `policy`) and the per-task schedule (mec.evaluation.TRACE_COLUMNS
plus `policy`). With evaluation.best_of = K >= 2 both also hold the rows of the policy's best-of-K decisions
(mec.best_of, policy "<name>-best-of-K"). The provenance records each policy's decision time per slot
(mec.decision_time), which aggregation carries into the summary tables.
"""

import logging
import os
from pathlib import Path

# One thread per job, as the rule declares; set before torch and numpy start their thread pools.
os.environ["OMP_NUM_THREADS"] = str(snakemake.threads)  # noqa: F821
import mec_rule  # noqa: E402 - first of the project: puts mec on the path

import torch  # noqa: E402

import pandas as pd  # noqa: E402

from mec import backends, decision_time, io, metrics, runs  # noqa: E402
from mec.best_of import best_of_name, evaluated_best_of  # noqa: E402
from mec.config import config_from_sections, config_to_dict  # noqa: E402
from mec.evaluation import evaluation_episodes, run_policy  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402

log = logging.getLogger("evaluate_policy")


def main(smk) -> None:
    torch.set_num_threads(smk.threads)
    phase, n, seed = int(smk.wildcards.phase), int(smk.wildcards.n), int(smk.wildcards.seed)
    p = smk.params
    cfg = config_from_sections(phase, p.phase_section, scenario=p.scenario, reward=p.reward, evaluation=p.evaluation)
    setup = PhaseSetup.from_config(cfg, phase, n)
    # The training job's output is written once its run folder (RUN_STATE, rules/common.smk) holds every checkpoint.
    checkpoint = Path(smk.input.metrics).parent / "run" / "checkpoints" / "best"
    # The policy's name in every table and figure: mappo / ippo (RLlib, by training.critic) or sb3-ppo.
    policy, meta = backends.load_policy(checkpoint, cfg)
    if (meta["phase"], meta["n"], meta["seed"]) != (phase, n, seed):
        raise ValueError(f"{checkpoint}: holds phase {meta['phase']}, size {meta['n']}, seed {meta['seed']}")
    name = policy.name
    ev = cfg.evaluation
    episodes = evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed)
    # The policy's own decisions, and with evaluation.best_of = K >= 2 its best-of-K decisions beside them (a
    # centralised decision under its own name, mec.best_of), each timed on the same slots (mec.decision_time) on a
    # fresh instance, so that the timing changes no decision.
    make = {name: lambda: policy}
    if ev.best_of > 1:
        make[best_of_name(name, ev.best_of)] = lambda: evaluated_best_of(policy, ev.best_of, ev.seed)
    slots = decision_time.evaluation_slots(cfg, setup, episodes)
    frames, schedules, times = [], [], {}
    for label, build in make.items():
        frame, schedule = run_policy(cfg, setup, build(), episodes, trace=True)
        frames.append(frame.assign(policy=label))
        schedules.append(schedule.assign(policy=label))
        times[label] = decision_time.measure(build(), slots)
        summary = metrics.summarise(frame)
        log.info(
            "%s from %s (iteration %d): reward/slot %.4f  QoS %.4f  E/task %.4f J  offload %.2f  decide %.3g ms "
            "alone, %.3g ms/slot in a batch",
            label,
            checkpoint,
            meta["iteration"],
            summary["reward_per_slot"],
            summary["mean_qos"],
            summary["energy_per_task_j"],
            summary["offload_fraction"],
            times[label][decision_time.LATENCY],
            times[label][decision_time.BATCH],
        )
    provenance = {
        "config": config_to_dict(cfg),
        "phase": phase,
        "n": n,
        "n_ue": setup.n_ue,
        "n_clusters": setup.n_clusters,
        "seed": ev.seed,
        "training_seed": seed,
        "policy": name,
        "checkpoint": str(checkpoint),
        "checkpoint_iteration": meta["iteration"],
        "trained": runs.run_origin(checkpoint),  # the machine and commit of the training run
        decision_time.PROVENANCE_KEY: times,  # per policy, measured on this machine (never compared)
    }
    io.write_parquet(pd.concat(frames, ignore_index=True), smk.output.episodes, provenance)
    io.write_parquet(pd.concat(schedules, ignore_index=True), smk.output.schedule, provenance)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
