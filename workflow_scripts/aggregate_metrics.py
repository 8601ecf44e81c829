"""Rule aggregate_metrics: the learned policy's statistics over training seeds, its learning curves, and the
comparison of every policy with the oracle at every sweep point.

- learned.parquet: the layout of baselines.parquet (mec.aggregate.summarise_samples) per (phase, N or K, policy);
  a sample is one training seed, its value the mean over the evaluation episodes.
- learning_curves.parquet: per (phase, N or K, iteration) and metric of mec.aggregate.CURVE_METRICS, the same
  statistics over seeds of each iteration's evaluation (training metrics.parquet, eval/ columns).
- comparison.parquet: one row per (phase, N or K, policy), learned and every baseline alike: mean and bootstrap CI
  of the headline metrics and, in phase 1, of the percentage of the oracle's reward on the same episodes (per
  evaluation episode for a baseline, per training seed for the learned policy; mec.aggregate.comparison_table).
"""

import logging
import sys
from pathlib import Path

# The repository's mec package, whichever environment runs this script (the .venv or the rule's conda env).
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

import pandas as pd  # noqa: E402

from mec import aggregate, io, metrics, runs  # noqa: E402
from mec.plotting import FIGURE_METRICS  # noqa: E402

log = logging.getLogger("aggregate_metrics")

POINT = ["phase", "n", "n_ue", "n_clusters"]
COMPARED = [*FIGURE_METRICS, "offload_fraction", aggregate.PERCENT_OF_ORACLE]


def learned_samples(episode_files: list[str], metric_files: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per training seed: its headline metrics (one row) and its learning curve (one row per iteration)."""
    seeds, curves = [], []
    for episodes, history in zip(episode_files, metric_files, strict=True):
        if Path(episodes).parent.parent != Path(history).parent:
            raise ValueError(f"{episodes} and {history} are not of the same training job")
        # Exactly the rows 1..training.iterations, or an error naming the file (which is removed: a rerun rebuilds it).
        history_rows = runs.check_metrics_file(history, remove_if_bad=True)
        run = io.read_provenance(episodes, remove_if_corrupt=True)
        point = {name: run[name] for name in POINT}
        for policy, slots in io.read_parquet(episodes, remove_if_corrupt=True).groupby("policy"):
            seeds.append({**point, "policy": policy, "seed": run["training_seed"], **aggregate.policy_sample(slots)})
        curve = aggregate.learning_curve_samples(history_rows)
        curves.append(curve.assign(**point, seed=run["training_seed"]))
    return pd.DataFrame(seeds), pd.concat(curves, ignore_index=True)


def baseline_samples(episode_files: list[str]) -> pd.DataFrame:
    """Per baseline and evaluation episode: its headline metrics and, where the oracle ran, its percentage of the
    oracle's reward on that episode."""
    frames = []
    for path in episode_files:
        point = io.read_provenance(path, remove_if_corrupt=True)
        per_episode = aggregate.per_episode_metrics(io.read_parquet(path, remove_if_corrupt=True))
        oracle = per_episode[per_episode["policy"] == aggregate.ORACLE].set_index("episode")["reward_per_slot"]
        percent = aggregate.percent_of_oracle(
            per_episode["reward_per_slot"], per_episode["episode"].map(oracle).to_numpy(float)
        )
        kind = per_episode["policy"].map(lambda name: "oracle" if name == aggregate.ORACLE else "heuristic")
        frames.append(
            per_episode.assign(**{name: point[name] for name in POINT}, kind=kind, sample="evaluation episodes")
            .assign(**{aggregate.PERCENT_OF_ORACLE: percent})
        )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def with_percent_of_oracle(learned: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Each seed's reward as a percentage of the oracle's mean reward over the same episodes (NaN without one)."""
    oracle = baselines[baselines["policy"] == aggregate.ORACLE].groupby(["phase", "n"])["reward_per_slot"].mean()
    keys = pd.MultiIndex.from_frame(learned[["phase", "n"]])
    reference = oracle.reindex(keys).to_numpy(float)
    percent = aggregate.percent_of_oracle(learned["reward_per_slot"], reference)
    return learned.assign(kind="learned", sample="training seeds", **{aggregate.PERCENT_OF_ORACLE: percent})


def main(smk) -> None:
    stats = smk.params.statistics
    options = {"ci_level": stats["ci_level"], "resamples": stats["bootstrap_resamples"], "seed": stats["seed"]}
    seeds, curves = learned_samples(smk.input.policy_episodes, smk.input.train_metrics)
    log.info("%d training jobs, %d iterations each at most", len(seeds), curves["iteration"].max())

    learned = aggregate.summarise_samples(seeds, by=[*POINT, "policy"], metric_names=metrics.SUMMARY_KEYS, **options)
    provenance = {"statistics": stats, "samples": "training seeds", "inputs": list(smk.input.policy_episodes)}
    io.write_parquet(learned, smk.output.learned, provenance)

    table = aggregate.summarise_samples(curves, by=[*POINT, "iteration"], metric_names=aggregate.CURVE_METRICS,
                                        **options)  # fmt: skip
    provenance = {"statistics": stats, "samples": "training seeds", "inputs": list(smk.input.train_metrics)}
    io.write_parquet(table, smk.output.learning_curves, provenance)

    baselines = baseline_samples(smk.input.baseline_episodes)
    samples = pd.concat([with_percent_of_oracle(seeds, baselines), baselines], ignore_index=True)
    comparison = aggregate.comparison_table(samples, by=[*POINT, "policy", "kind", "sample"], metric_names=COMPARED,
                                            **options)  # fmt: skip
    comparison["rank"] = (
        comparison.groupby(["phase", "n"])["reward_per_slot"].rank(ascending=False, method="min").astype(int)
    )
    comparison = comparison.sort_values(["phase", "n", "rank", "policy"], ignore_index=True)
    provenance = {
        "statistics": stats,
        "samples": "training seeds (learned), evaluation episodes (baselines)",
        "inputs": list(smk.input.policy_episodes) + list(smk.input.baseline_episodes),
    }
    io.write_parquet(comparison, smk.output.comparison, provenance)
    for _, row in comparison[comparison["kind"] == "learned"].iterrows():
        of_oracle = row[aggregate.PERCENT_OF_ORACLE]
        log.info(
            "phase %d n %d: %s reward/slot %.4f, rank %d of %d policies%s",
            row["phase"],
            row["n"],
            row["policy"],
            row["reward_per_slot"],
            row["rank"],
            (comparison["phase"].eq(row["phase"]) & comparison["n"].eq(row["n"])).sum(),
            "" if pd.isna(of_oracle) else f", {of_oracle:.1f}% of the oracle",
        )


if __name__ == "__main__":
    io.log_to_file(snakemake.log[0])  # noqa: F821
    main(snakemake)  # noqa: F821
