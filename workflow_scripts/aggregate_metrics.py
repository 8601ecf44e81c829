"""Rule aggregate_metrics: the learned policy's statistics over training seeds, its learning curves, and the
comparison of every policy with the upper bound (phase 1) at every sweep point.

- learned.parquet: the layout of baselines.parquet (mec.aggregate.summarise_samples) per (phase, N or K, policy);
  a sample is one training seed, its value the mean over the evaluation episodes.
- learned_seeds.parquet: those samples, one row per (phase, N or K, policy, seed): each run's headline metrics and,
  in phase 1, its percentage of the upper bound's reward on the same episodes; kind "learned" for the policy's own
  decisions, "learned-central" for its best-of-K decisions (evaluation.best_of, mec.best_of: a centralised decision,
  its own rows beside the policy's, never instead of them).
- learning_curves.parquet: per (phase, N or K, iteration) and metric of mec.aggregate.CURVE_METRICS, the same
  statistics over seeds of each iteration's evaluation (training metrics.parquet, eval/ columns).
- comparison.html: the README's tables of comparison.parquet (mec.markdown), for the HTML report.
- comparison.parquet: one row per (phase, N or K, policy), learned and every baseline alike: mean and t-interval
  of the headline metrics and, in phase 1, of the percentage of the upper bound's reward on the same episodes (per
  evaluation episode for a baseline, per training seed for the learned policy; mec.aggregate.comparison_table),
  with a row of the bound itself (policy mec.aggregate.BOUND, kind "bound": its reward per slot alone); each learned
  row also has its IQM and probability of improvement over the best heuristic and over local search (rliable's, the
  evaluation episodes as tasks: mec.aggregate.probability_of_improvement) with its bootstrap interval.
- marl_eval.json: the per-seed, per-episode results in marl-eval's JSON layout (mec.marl_eval).
learned, learned_seeds and comparison also hold each policy's decision time per slot on one core (mec.decision_time:
decide_latency_ms, decide_batch_ms_per_slot; a learned policy's the mean over its seeds' evaluation jobs, from the
evaluation tables' provenance): machine-dependent, never compared by `mec reproduce`.
"""

import logging
from pathlib import Path

import mec_rule  # first of the project: puts mec on the path

import pandas as pd

from mec import aggregate, io, markdown, marl_eval, metrics, runs
from mec.config import variant_of_folder
from mec.evaluation import stored_slot_bounds
from mec.plotting import FIGURE_METRICS

log = logging.getLogger("aggregate_metrics")

POINT = ["phase", "n", "n_ue", "n_clusters"]
COMPARED = [*FIGURE_METRICS, "offload_fraction", aggregate.PERCENT_OF_BOUND]


def learned_samples(
    episode_files: list[str], metric_files: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per training seed: its headline metrics (one row), its learning curve (one row per iteration) and its headline
    metrics on each evaluation episode (one row per episode, with the training slots behind its checkpoint)."""
    seeds, curves, episode_rows = [], [], []
    for episodes, history in zip(episode_files, metric_files, strict=True):
        if Path(episodes).parent.parent != Path(history).parent:
            raise ValueError(f"{episodes} and {history} are not of the same training job")
        # Exactly the rows 1..training.iterations, or an error naming the file (which is removed: a rerun rebuilds it).
        history_rows = runs.check_metrics_file(history, remove_if_bad=True)
        run = io.read_provenance(episodes, remove_if_corrupt=True)
        point = {name: run[name] for name in POINT}
        slot_rows = io.read_parquet(episodes, remove_if_corrupt=True)
        times = run.get("decision_time") or {}  # per policy, timed by the evaluation job (none in older files)
        for policy, slots in slot_rows.groupby("policy"):
            timing = {c: float((times.get(policy) or {}).get(c, "nan")) for c in aggregate.DECISION_TIME_COLUMNS}
            seeds.append({**point, "policy": policy, "seed": run["training_seed"], **aggregate.policy_sample(slots),
                          **timing})  # fmt: skip
        slots_trained = run.get("checkpoint_iteration", 0) * run["config"]["training"]["train_batch_slots"]
        episode_rows.append(aggregate.per_episode_metrics(slot_rows).assign(
            **point, seed=run["training_seed"], **{marl_eval.TRAINING_SLOTS: slots_trained}))
        curve = aggregate.learning_curve_samples(history_rows)
        curves.append(curve.assign(**point, seed=run["training_seed"]))
    return pd.DataFrame(seeds), pd.concat(curves, ignore_index=True), pd.concat(episode_rows, ignore_index=True)


def episode_bounds(slots: pd.DataFrame) -> pd.Series:
    """The upper bound's mean reward per slot of each evaluation episode (NaN where the table has none)."""
    bounds = stored_slot_bounds(slots)
    if bounds is None:
        return pd.Series(float("nan"), index=pd.Index(sorted(slots["episode"].unique()), name="episode"))
    return bounds.groupby(level="episode").mean()


def baseline_samples(episode_files: list[str]) -> pd.DataFrame:
    """Per baseline and evaluation episode: its headline metrics and its percentage of the upper bound's reward on
    that episode; plus one row per episode of the bound itself (reward per slot only, kind "bound")."""
    frames = []
    for path in episode_files:
        point = io.read_provenance(path, remove_if_corrupt=True)
        slots = io.read_parquet(path, remove_if_corrupt=True)
        per_episode = aggregate.decision_time_columns(aggregate.per_episode_metrics(slots), point.get("decision_time"))
        bound = episode_bounds(slots)
        if bound.notna().any():
            rows = pd.DataFrame({"policy": aggregate.BOUND, "episode": bound.index, "reward_per_slot": bound.to_numpy()})
            per_episode = pd.concat([per_episode, rows], ignore_index=True)
        percent = aggregate.percent_of_bound(
            per_episode["reward_per_slot"], per_episode["episode"].map(bound).to_numpy(float)
        )
        frames.append(
            per_episode.assign(**{name: point[name] for name in POINT}, sample="evaluation episodes",
                               kind=per_episode["policy"].map(aggregate.baseline_kind))
            .assign(**{aggregate.PERCENT_OF_BOUND: percent})
        )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def with_percent_of_bound(learned: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Each seed's reward as a percentage of the upper bound's mean reward over the same episodes (NaN without)."""
    bound = baselines[baselines["policy"] == aggregate.BOUND].groupby(["phase", "n"])["reward_per_slot"].mean()
    keys = pd.MultiIndex.from_frame(learned[["phase", "n"]])
    reference = bound.reindex(keys).to_numpy(float)
    percent = aggregate.percent_of_bound(learned["reward_per_slot"], reference)
    # A learned policy's own decisions are kind "learned"; its best-of-K decisions (mec.best_of) are centralised,
    # kind "learned-central", their own rows beside it.
    return learned.assign(kind=learned["policy"].map(aggregate.learned_kind), sample="training seeds",
                          **{aggregate.PERCENT_OF_BOUND: percent})  # fmt: skip


def main(smk) -> None:
    stats = smk.params.statistics
    options = {"ci_level": stats["ci_level"], "resamples": stats["bootstrap_resamples"], "seed": stats["seed"]}
    seeds, curves, learned_episodes = learned_samples(smk.input.policy_episodes, smk.input.train_metrics)
    log.info("%d training jobs, %d iterations each at most", len(seeds), curves["iteration"].max())

    learned = aggregate.summarise_samples(seeds, by=[*POINT, "policy"], metric_names=metrics.SUMMARY_KEYS, **options)
    learned = aggregate.with_decision_times(learned, seeds, by=[*POINT, "policy"])
    provenance = {"statistics": stats, "samples": "training seeds", "inputs": list(smk.input.policy_episodes)}
    io.write_parquet(learned, smk.output.learned, provenance)

    table = aggregate.summarise_samples(curves, by=[*POINT, "iteration"], metric_names=aggregate.CURVE_METRICS,
                                        **options)  # fmt: skip
    provenance = {"statistics": stats, "samples": "training seeds", "inputs": list(smk.input.train_metrics)}
    io.write_parquet(table, smk.output.learning_curves, provenance)

    baselines = baseline_samples(smk.input.baseline_episodes)
    seeds = with_percent_of_bound(seeds, baselines)
    provenance = {"samples": "training seeds", "inputs": list(smk.input.policy_episodes)}
    io.write_parquet(seeds.sort_values([*POINT, "policy", "seed"], ignore_index=True), smk.output.learned_seeds,
                     provenance)  # fmt: skip
    samples = pd.concat([seeds, baselines], ignore_index=True)
    # Every policy's reward per slot on each evaluation episode (per training seed for a learned one): the samples
    # of the probability of improvement, and of the marl-eval export.
    episodes = pd.concat([learned_episodes, baselines[baselines["kind"] != "bound"]], ignore_index=True)
    comparison = aggregate.comparison_table(samples, by=[*POINT, "policy", "kind", "sample"], metric_names=COMPARED,
                                            episodes=episodes, **options)  # fmt: skip
    comparison = aggregate.with_decision_times(comparison, samples, by=[*POINT, "policy"])
    # Ranks among the policies; the bound, no policy, is rank 0.
    is_bound = comparison["kind"] == "bound"
    comparison["rank"] = 0
    comparison.loc[~is_bound, "rank"] = (
        comparison[~is_bound].groupby(["phase", "n"])["reward_per_slot"].rank(ascending=False, method="min")
    ).astype(int)
    comparison = comparison.sort_values(["phase", "n", "rank", "policy"], ignore_index=True)
    provenance = {
        "statistics": stats,
        "samples": "training seeds (learned), evaluation episodes (baselines)",
        "inputs": list(smk.input.policy_episodes) + list(smk.input.baseline_episodes),
    }
    io.write_parquet(comparison, smk.output.comparison, provenance)
    variant = variant_of_folder(smk.wildcards.variant_dir)
    marl_eval.write(marl_eval.layout(episodes, variant or ""), smk.output.marl_eval)
    title = f"Variant {variant}" if variant else "The study"
    text = markdown.comparison_html(comparison, f"{title}: learned vs baselines (mean [{stats['ci_level']:.0%} CI])")
    io.atomic_write(smk.output.comparison_html, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    for _, row in comparison[comparison["kind"].isin([aggregate.LEARNED, aggregate.LEARNED_CENTRAL])].iterrows():
        of_bound = row[aggregate.PERCENT_OF_BOUND]
        log.info(
            "phase %d n %d: %s reward/slot %.4f, rank %d of %d policies%s",
            row["phase"],
            row["n"],
            row["policy"],
            row["reward_per_slot"],
            row["rank"],
            (comparison["phase"].eq(row["phase"]) & comparison["n"].eq(row["n"]) & ~is_bound).sum(),
            "" if pd.isna(of_bound) else f", {of_bound:.1f}% of the upper bound",
        )


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
