"""Rule evaluate_baselines: every heuristic, and the oracle in phase 1, on one sweep point's evaluation episodes.

Writes one row per (policy, episode, slot) (mec.metrics.SLOT_COLUMNS plus `policy`) and one summary row per policy
(mec.metrics.summarise) with its decision time per slot (mec.decision_time; also in the per-slot table's
provenance, for aggregation). The config is rebuilt from the sections the rule passes as params, so the numbers
depend on exactly what Snakemake tracks.
"""

import logging
import os

# One thread per job, as the rule declares; set before numpy and scikit-learn (k-means) start their thread pools.
os.environ["OMP_NUM_THREADS"] = str(snakemake.threads)  # noqa: F821
import mec_rule  # noqa: E402 - first of the project: puts mec on the path

from mec import decision_time, io  # noqa: E402
from mec.config import config_from_sections, config_to_dict  # noqa: E402
from mec.evaluation import evaluation_episodes, run_baselines  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402

log = logging.getLogger("evaluate_baselines")


def main(smk) -> None:
    phase, n = int(smk.wildcards.phase), int(smk.wildcards.n)
    p = smk.params
    cfg = config_from_sections(phase, p.phase_section, scenario=p.scenario, reward=p.reward, evaluation=p.evaluation)
    setup = PhaseSetup.from_config(cfg, phase, n)
    ev = cfg.evaluation
    episodes = evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed)
    slots, summary = run_baselines(cfg, setup, episodes, log=log.info)
    provenance = {
        "config": config_to_dict(cfg),
        "phase": phase,
        "n": n,
        "n_ue": setup.n_ue,
        "n_clusters": setup.n_clusters,
        "seed": ev.seed,
        # each policy's decision time per slot, measured on this machine (never compared by mec reproduce)
        decision_time.PROVENANCE_KEY: {
            row["policy"]: {column: float(row[column]) for column in decision_time.DECISION_TIME_COLUMNS}
            for _, row in summary.iterrows()
        },
    }
    # Each file appears under its name only when complete (atomic writes), and Snakemake treats the job as
    # incomplete until it has finished, so a job killed between the two writes reruns.
    io.write_parquet(slots, smk.output.episodes, provenance)
    io.write_parquet(summary, smk.output.summary, provenance)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
