"""Rule aggregate_baselines: mean (Student-t CI) and IQM (bootstrap CI) per (phase, N or K, policy) over episodes.

Each sample is one evaluation episode's headline metrics (mec.aggregate.per_episode_metrics); the sweep point of
each input file comes from its recorded provenance. Writes the long table of mec.aggregate.summarise_samples, with
each policy's decision time per slot (mec.decision_time, from the provenance; NaN for older files) as columns.
"""

import logging

import mec_rule  # first of the project: puts mec on the path

import pandas as pd

from mec import aggregate, io, metrics

log = logging.getLogger("aggregate_baselines")


def main(smk) -> None:
    stats = smk.params.statistics
    samples = []
    for path in smk.input.episodes:
        point = io.read_provenance(path, remove_if_corrupt=True)
        per_episode = aggregate.per_episode_metrics(io.read_parquet(path, remove_if_corrupt=True))
        per_episode = aggregate.decision_time_columns(per_episode, point.get("decision_time"))
        sweep = {name: point[name] for name in ("phase", "n", "n_ue", "n_clusters")}
        samples.append(per_episode.assign(**sweep))
        log.info(
            "%s: %d policies x %d episodes", path, per_episode["policy"].nunique(), per_episode["episode"].nunique()
        )
    samples = pd.concat(samples, ignore_index=True)
    by = ["phase", "n", "n_ue", "n_clusters", "policy"]
    table = aggregate.summarise_samples(
        samples,
        by=by,
        metric_names=metrics.SUMMARY_KEYS,
        ci_level=stats["ci_level"],
        resamples=stats["bootstrap_resamples"],
        seed=stats["seed"],
    )
    table = aggregate.with_decision_times(table, samples, by)  # each policy's decision time per slot
    provenance = {"statistics": stats, "samples": "evaluation episodes", "inputs": list(smk.input.episodes)}
    io.write_parquet(table, smk.output.baselines, provenance)
    log.info("wrote %d rows to %s", len(table), smk.output.baselines)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
