"""Statistics over samples: mean with its Student-t interval, interquartile mean (IQM) with a bootstrap interval.

A sample is one independent repetition of an experiment: an evaluation episode for a baseline, a training seed for a
learned policy. Each sample first gets its own headline metrics (`per_episode_metrics`, with the definitions of
mec.metrics); `summarise_samples` then reports, per group (phase, N or K, policy) and metric, the mean and the IQM with
an interval estimate for each, following the practice of reporting interval estimates over repetitions rather than a
single best run.

Intervals. The mean's is Student's t interval, mean +- t_{(1+level)/2, S-1} * s / sqrt(S): with the handful of samples
a study like this has (5 seeds), the percentile bootstrap of the mean covers the true mean far less often than its
level says (about 85% of the time for a nominal 95% with normal data; see tests/test_plotting.py), while the t
interval's coverage is exact for normal data and close to it for moderately skewed data. The IQM is the mean of the
middle half of the sorted samples with fractional weights at the quartiles (for 5 samples: 0.75, 1, 0.75 on the 2nd
to 4th, where a 25% trimmed mean would give the plain mean of the middle three); its interval is a percentile
bootstrap (no closed form), so read it as approximate. Every group resamples with a Generator seeded afresh from the
same seed, so an interval does not depend on which other groups are in the table. A group with a single sample gets
NaN bounds: one value says nothing about spread.

For a learned policy a sample is one training seed: its headline metrics pooled over the evaluation episodes
(`policy_sample`), and its learning curve from the per-iteration evaluation of its metrics.parquet
(`learning_curve_samples`). `comparison_table` puts every policy of a sweep point side by side in one wide row each,
with its percentage of the upper bound's reward on the same episodes (`percent_of_bound`): the bound (mec.bound) is at
least the reward of every policy on every slot, so the percentage is at most 100 by construction. The oracle, which
optimises everything but the spectrum split, is a baseline like the others.

Probability of improvement (`probability_of_improvement`, rliable's definition: Agarwal et al., "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS 2021). P(X > Y) is, per task, the mean over all pairs of a
run of X and a run of Y of S(x, y) (1 if x > y, 1/2 if equal, 0 otherwise), averaged over the tasks; its interval is
the percentile bootstrap that resamples the runs of X and of Y within each task (rliable's stratified bootstrap).
Given per-episode rewards (`episodes`), `comparison_table` reports it for every learned policy over the best heuristic
and over local search with the evaluation episodes as the tasks: a run of the learned policy on an episode is one
training seed's reward per slot there, a baseline's is its one evaluation of that episode. Every policy plays the same
evaluation episodes, so each pair is compared on the same episode, and the spread of load between episodes does not
blur the comparison (it would if every learned (seed, episode) sample were paired with every baseline episode).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mec import metrics

IQM_TRIM = 0.25  # the IQM is the mean of the middle half: a quarter trimmed from each end
DEFAULT_BOOTSTRAP_SEED = 0

# Columns of the long summary table, after the grouping columns.
STAT_COLUMNS = (
    "metric",
    "samples",
    "mean",
    "mean_ci_low",
    "mean_ci_high",
    "iqm",
    "iqm_ci_low",
    "iqm_ci_high",
    "ci_level",
)


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along `axis`: the mean of the middle half of the sorted samples, the samples that straddle
    the quartiles weighted by the part of them inside it (S samples, each of mass 1/S; the middle half is the mass
    from 1/4 to 3/4)."""
    x = np.sort(np.moveaxis(np.asarray(values, dtype=float), axis, -1), axis=-1)
    n = x.shape[-1]
    lower, upper = np.arange(n) / n, np.arange(1, n + 1) / n
    weights = np.clip(np.minimum(upper, 0.75) - np.maximum(lower, 0.25), 0.0, None)
    return (x * weights).sum(axis=-1) / weights.sum()


def _t_ci(values: np.ndarray, ci_level: float) -> np.ndarray:
    """(M, 2) Student-t interval of the mean of each row of `values` (M, S)."""
    n = values.shape[1]
    if n < 2:
        return np.full((values.shape[0], 2), np.nan)
    half = stats.t.ppf((1 + ci_level) / 2, n - 1) * values.std(axis=1, ddof=1) / np.sqrt(n)
    mean = values.mean(axis=1)
    return np.column_stack([mean - half, mean + half])


def _bootstrap_ci(values: np.ndarray, statistic, ci_level: float, resamples: int, seed: int) -> np.ndarray:
    """(M, 2) percentile-bootstrap interval of `statistic` for each row of `values` (M, S)."""
    if values.shape[1] < 2:
        return np.full((values.shape[0], 2), np.nan)
    if np.all(values == values[:, :1]):  # no spread: the interval is the value itself
        return np.repeat(statistic(values, axis=-1)[:, None], 2, axis=1)
    result = stats.bootstrap(
        (values,),
        statistic,
        axis=-1,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=ci_level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return np.column_stack([result.confidence_interval.low, result.confidence_interval.high])


def interval_estimates(
    values: np.ndarray, ci_level: float, resamples: int, seed: int = DEFAULT_BOOTSTRAP_SEED
) -> dict[str, np.ndarray]:
    """Mean with its Student-t interval and IQM with its bootstrap interval for each row of `values` (M metrics, S
    samples)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] == 0:
        raise ValueError("interval_estimates: got no samples; allowed at least one sample per row")
    if not 0 < ci_level < 1:
        raise ValueError(f"interval_estimates: got ci_level={ci_level!r}; allowed a number in (0, 1)")
    mean_ci = _t_ci(values, ci_level)
    iqm_ci = _bootstrap_ci(values, iqm, ci_level, resamples, seed)
    return {
        "mean": values.mean(axis=-1),
        "mean_ci_low": mean_ci[:, 0],
        "mean_ci_high": mean_ci[:, 1],
        "iqm": iqm(values),
        "iqm_ci_low": iqm_ci[:, 0],
        "iqm_ci_high": iqm_ci[:, 1],
    }


def probability_of_improvement(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ci_level: float | None = None,
    resamples: int = 0,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """rliable's probability of improvement P(X > Y) with its stratified percentile-bootstrap interval.

    `x` and `y` hold the scores of X and of Y, one row per run and one column per task (a 1-D array: one task). Per
    task, the mean over every pair of a run of X and a run of Y of S(x, y) = 1 if x > y, 1/2 if x = y, 0 if x < y (the
    Mann-Whitney U statistic over the number of pairs); then the mean over the tasks. With `ci_level` and `resamples`
    > 0, the percentile interval of that statistic over `resamples` bootstrap resamples, each drawing the runs of X and
    of Y with replacement within each task (a Generator seeded with `seed`); otherwise NaN bounds. Returns
    (probability, low, high).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x, y = (a[:, None] if a.ndim == 1 else a for a in (x, y))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or 0 in (*x.shape, *y.shape):
        raise ValueError(f"probability_of_improvement: got scores of shapes {x.shape} and {y.shape}; allowed "
                         "(runs, tasks) arrays with the same tasks and at least one run each")  # fmt: skip
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("probability_of_improvement: got a NaN or infinite score; allowed finite scores")

    def statistic(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:  # (R, runs x, T), (R, runs y, T) -> (R,)
        a, b = xs[:, :, None, :], ys[:, None, :, :]
        return ((a > b) + 0.5 * (a == b)).mean(axis=(1, 2, 3))  # every task has as many pairs: mean over all

    probability = float(statistic(x[None], y[None])[0])
    if ci_level is None or resamples <= 0:
        return probability, math.nan, math.nan
    if not 0 < ci_level < 1:
        raise ValueError(f"probability_of_improvement: got ci_level={ci_level!r}; allowed a number in (0, 1)")
    rng = np.random.default_rng(seed)
    (nx, tasks), ny = x.shape, y.shape[0]
    xs = np.take_along_axis(x[None], rng.integers(0, nx, size=(resamples, nx, tasks)), axis=1)
    ys = np.take_along_axis(y[None], rng.integers(0, ny, size=(resamples, ny, tasks)), axis=1)
    low, high = np.quantile(statistic(xs, ys), [(1 - ci_level) / 2, (1 + ci_level) / 2])
    return probability, float(low), float(high)


def per_episode_metrics(slots: pd.DataFrame, by: Sequence[str] = ("policy",)) -> pd.DataFrame:
    """One row per (`by`..., episode) with the headline metrics of mec.metrics.SUMMARY_KEYS of that episode alone."""
    keys = [*by, "episode"]
    rows = []
    for key, group in slots.groupby(keys, sort=True):
        summary = metrics.summarise(group)
        rows.append({**dict(zip(keys, key)), **{name: summary[name] for name in metrics.SUMMARY_KEYS}})
    return pd.DataFrame(rows, columns=[*keys, *metrics.SUMMARY_KEYS])


def summarise_samples(
    samples: pd.DataFrame,
    by: Sequence[str],
    metric_names: Sequence[str] = metrics.SUMMARY_KEYS,
    *,
    ci_level: float,
    resamples: int,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """Long table: one row per (`by`..., metric) with the sample count, mean, IQM and their bootstrap intervals.

    `samples` holds one row per sample (episode or seed) with a column per metric; rows are grouped by `by`.
    """
    by, metric_names = list(by), list(metric_names)
    rows = []
    for key, group in samples.groupby(by, sort=True):
        values = group[metric_names].to_numpy(dtype=float).T
        estimates = interval_estimates(values, ci_level, resamples, seed)
        for i, name in enumerate(metric_names):
            rows.append(
                {
                    **dict(zip(by, key)),
                    "metric": name,
                    "samples": values.shape[1],
                    **{stat: float(column[i]) for stat, column in estimates.items()},
                    "ci_level": ci_level,
                }
            )
    return pd.DataFrame(rows, columns=[*by, *STAT_COLUMNS])


# --------------------------------------------------------------------------- learned policies

EVAL_PREFIX = "eval/"  # per-iteration evaluation columns of a training run's metrics.parquet
# Learning-curve metrics: the headline metrics and the slot sums of the reference figures, by their bare names.
CURVE_METRICS = (
    "reward_per_slot",
    "mean_qos",
    "deadline_met_fraction",
    "energy_per_task_j",
    "offload_fraction",
    "sum_qos_per_slot",
    "sum_energy_j_per_slot",
)
ORACLE = "oracle"
# The comparison table's row of the per-slot upper bound on every policy's reward (mec.bound; phase 1), and the
# column of each policy's reward as a percentage of it on the same episodes.
BOUND = "upper-bound"
PERCENT_OF_BOUND = "percent_of_bound"


def policy_sample(slots: pd.DataFrame) -> dict[str, float]:
    """Headline metrics of one sample pooled over its per-slot rows: a training seed's value is its mean over the
    evaluation episodes (every episode has as many slots and tasks, so pooling is the mean over episodes)."""
    summary = metrics.summarise(slots)
    return {name: summary[name] for name in metrics.SUMMARY_KEYS}


def learning_curve_samples(run: pd.DataFrame, metric_names: Sequence[str] = CURVE_METRICS) -> pd.DataFrame:
    """One row per iteration of a training run's metrics.parquet: the iteration and the evaluation metrics under
    their bare names (eval/reward_per_slot -> reward_per_slot)."""
    columns = [f"{EVAL_PREFIX}{name}" for name in metric_names]
    missing = [name for name in columns if name not in run]
    if missing:
        raise ValueError(f"training metrics lack {', '.join(missing)}")
    return run[["iteration", *columns]].rename(columns=lambda name: name.removeprefix(EVAL_PREFIX))


def percent_of_bound(reward: np.ndarray, bound_reward: np.ndarray) -> np.ndarray:
    """100 * reward / the upper bound's reward on the same episodes; NaN where the bound is not positive or missing
    (a ratio to zero or a negative reward says nothing)."""
    reward, bound_reward = np.broadcast_arrays(np.asarray(reward, float), np.asarray(bound_reward, float))
    out = np.full(reward.shape, np.nan)
    np.divide(100.0 * reward, bound_reward, out=out, where=bound_reward > 0)
    return out


def comparison_table(
    samples: pd.DataFrame,
    by: Sequence[str],
    metric_names: Sequence[str],
    *,
    ci_level: float,
    resamples: int,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    episodes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Wide table: one row per (`by`...) with the sample count and, per metric, the mean (column `<metric>`), its
    Student-t interval (`<metric>_ci_low`, `<metric>_ci_high`) and the IQM (`<metric>_iqm`). A metric's NaN samples are
    left out of its statistics (a group without any keeps NaN), e.g. the percentage of the upper bound where there is
    none.

    With `episodes` (`by` must then hold "policy" and "kind", the other columns of `by` but "sample" being the sweep
    point): the rewards per slot of every policy on each evaluation episode, one row per (`by`..., training seed,
    episode) of a learned policy and per (`by`..., episode) of a baseline (columns "episode", "reward_per_slot" and,
    for a learned policy, "seed"). Each learned row (kind LEARNED, or LEARNED_CENTRAL: best-of-K decisions) then gets
    its probability of improvement over the best heuristic at its sweep point (`best_heuristic`, named in column
    BEST_HEURISTIC) and over local search, with their stratified-bootstrap intervals (columns POI_COLUMNS; NaN where
    there is no such baseline, and in every baseline's row); the tasks are the evaluation episodes (see the module's
    docstring)."""
    by = list(by)
    table = samples.groupby(by, sort=True).size().rename("samples").to_frame()
    for name in metric_names:
        rows = samples.dropna(subset=[name])
        columns = [name, f"{name}_ci_low", f"{name}_ci_high", f"{name}_iqm"]
        if rows.empty:
            table[columns] = np.nan
            continue
        long = summarise_samples(rows, by, [name], ci_level=ci_level, resamples=resamples, seed=seed)
        stats_of = long.set_index(by)[["mean", "mean_ci_low", "mean_ci_high", "iqm"]]
        table = table.join(stats_of.set_axis(columns, axis=1))
    table = table.reset_index().assign(ci_level=ci_level)
    if episodes is not None:
        table = _with_improvement(table, episodes, by, ci_level=ci_level, resamples=resamples, seed=seed)
    return table


# The comparison table's probability of improvement of a learned policy over the best heuristic at its sweep point
# (named in BEST_HEURISTIC) and over local search, each with its bootstrap interval.
POI_BEST_HEURISTIC = "poi_best_heuristic"
POI_LOCAL_SEARCH = "poi_local_search"
POI_COLUMNS = tuple(f"{name}{end}" for name in (POI_BEST_HEURISTIC, POI_LOCAL_SEARCH) for end in ("", "_ci_low",
                                                                                                  "_ci_high"))
BEST_HEURISTIC = "best_heuristic"


def best_heuristic(point: pd.DataFrame) -> str | None:
    """The best heuristic at one sweep point of a comparison table: of the policies of kind "heuristic" (local search,
    kind "search", is a reference), the highest mean reward per slot; ties: the first name. None without one."""
    rows = point[(point["kind"] == "heuristic") & (point["policy"] != LOCAL_SEARCH)]
    if rows.empty:
        return None
    return str(rows.sort_values(["reward_per_slot", "policy"], ascending=[False, True]).iloc[0]["policy"])


def _episode_runs(episodes: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, pd.DataFrame]:
    """Per (`keys`...): the rewards per slot as a (runs, evaluation episodes) frame, one run per training seed (one in
    all for a baseline, whose rows have no seed)."""
    seed = episodes["seed"] if "seed" in episodes else pd.Series(np.nan, index=episodes.index)
    frame = episodes.assign(_run=seed.fillna(-1))
    runs = {}
    for key, rows in frame.groupby(list(keys), sort=False):
        matrix = rows.pivot(index="_run", columns="episode", values="reward_per_slot")
        if matrix.isna().any().any():
            raise ValueError(f"{dict(zip(keys, key))}: not every run has a reward on every evaluation episode")
        runs[key] = matrix
    return runs


def _with_improvement(table: pd.DataFrame, episodes: pd.DataFrame, by: list[str], **options) -> pd.DataFrame:
    if not {"policy", "kind"} <= set(by) or "reward_per_slot" not in table:
        raise ValueError("the probability of improvement needs `by` with policy and kind, and reward_per_slot")
    point = [key for key in by if key not in ("policy", "kind", "sample")]
    runs = _episode_runs(episodes, [*point, "policy"])
    table = table.assign(**{BEST_HEURISTIC: None}, **dict.fromkeys(POI_COLUMNS, np.nan))
    for index in table.index[table["kind"].isin((LEARNED, LEARNED_CENTRAL))]:
        row = table.loc[index]
        at_point = table[table[point].eq(row[point]).all(axis=1)]
        best = best_heuristic(at_point)
        table.loc[index, BEST_HEURISTIC] = best
        for column, reference in ((POI_BEST_HEURISTIC, best), (POI_LOCAL_SEARCH, LOCAL_SEARCH)):
            here = tuple(row[point])
            x, y = runs.get((*here, row["policy"])), runs.get((*here, reference))
            if x is None or y is None:
                continue
            if set(x.columns) != set(y.columns):
                raise ValueError(f"{dict(zip(point, here))}: {row['policy']} and {reference} were not evaluated on "
                                 "the same episodes")  # fmt: skip
            estimate = probability_of_improvement(x.to_numpy(), y[x.columns].to_numpy(), **options)
            table.loc[index, [column, f"{column}_ci_low", f"{column}_ci_high"]] = estimate
    return table


# --------------------------------------------------------------------------- across variants of the study

LOCAL_SEARCH = "local-search"  # the per-slot local search (mec.optimiser): a reference, not a heuristic
STUDY = "study"  # the label of the study itself beside its variants
VARIANT_METRICS = ("reward_per_slot", "mean_qos", "deadline_met_fraction", "energy_per_task_j")


def baseline_kind(policy: str) -> str:
    """'oracle', 'bound' (the upper bound), 'search' (the local-search reference) or 'heuristic'."""
    if policy == ORACLE:
        return "oracle"
    if policy == BOUND:
        return "bound"
    return "search" if policy == LOCAL_SEARCH else "heuristic"


def variant_comparison(studies: Sequence[dict], learned: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The learned policy of the study and of each variant side by side: the rows of each one's learned summary
    (summarise_samples layout, VARIANT_METRICS only) with columns `study` (its label) and `description` (what it
    overrides). `studies` holds a dict with keys study and description per table of `learned`, in the same order."""
    if len(studies) != len(learned):
        raise ValueError(f"{len(studies)} studies but {len(learned)} learned summaries")
    frames = []
    for study, table in zip(studies, learned):
        # The learned policy's own decisions only: best-of-K rows (evaluation.best_of) are a centralised decision.
        rows = table[table["metric"].isin(VARIANT_METRICS) & (table["policy"].map(learned_kind) == LEARNED)]
        frames.append(rows.assign(study=study["study"], description=study["description"]))
    table = pd.concat(frames, ignore_index=True)
    order = {study["study"]: i for i, study in enumerate(studies)}
    table = table.assign(_order=table["study"].map(order))
    return table.sort_values(["_order", "phase", "n", "metric"], ignore_index=True).drop(columns="_order")


def pareto_table(studies: Sequence[dict], learned: Sequence[pd.DataFrame], baselines: Sequence[pd.DataFrame]):
    """Mean QoS, energy per task and reward per slot of every policy at every energy weight of the trade-off axis.

    `studies` holds per weight a dict with keys study (the variant's label) and w_energy, in the order of `learned`
    and `baselines` (summarise_samples layout: over training seeds, over evaluation episodes). Returns the long rows
    of those three metrics with columns w_energy, study and kind (learned, learned-central: best-of-K, oracle, search,
    heuristic).
    """
    if not len(studies) == len(learned) == len(baselines):
        raise ValueError(f"{len(studies)} weights, {len(learned)} learned and {len(baselines)} baseline summaries")
    metric_names = ("mean_qos", "energy_per_task_j", "reward_per_slot")
    frames = []
    for study, own, base in zip(studies, learned, baselines):
        tag = {"w_energy": float(study["w_energy"]), "study": study["study"]}
        frames.append(own.assign(kind=own["policy"].map(learned_kind), **tag))  # best-of-K: learned-central
        frames.append(base.assign(kind=base["policy"].map(baseline_kind), **tag))
    table = pd.concat(frames, ignore_index=True)
    table = table[table["metric"].isin(metric_names)]
    return table.sort_values(["phase", "n", "w_energy", "kind", "policy", "metric"], ignore_index=True)


def pareto_front(qos: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Mask of the points no other point dominates (as much QoS or more for as little energy or less, better in
    one of them): higher QoS and lower energy are better."""
    qos, energy = np.asarray(qos, float), np.asarray(energy, float)
    no_worse = (qos[None, :] >= qos[:, None]) & (energy[None, :] <= energy[:, None])
    better = (qos[None, :] > qos[:, None]) | (energy[None, :] < energy[:, None])
    return ~(no_worse & better).any(axis=1)


# --------------------------------------------------------------------------- hyperparameter sweep

VALIDATION_REWARD = f"{EVAL_PREFIX}reward_per_slot"  # evaluated on training.eval_seed's episodes every iteration
TUNING_COLUMNS = (
    "rank",
    "variant",
    "seeds",
    "validation_reward",
    "validation_reward_ci_low",
    "validation_reward_ci_high",
    "final_validation_reward",
    "final_validation_reward_ci_low",
    "final_validation_reward_ci_high",
    "best_iteration",
    "ci_level",
)


def tuning_sample(run: pd.DataFrame) -> dict[str, float]:
    """One tuning run's scores from its metrics.parquet: the validation reward of its best checkpoint (the highest
    per-iteration evaluation on training.eval_seed's episodes, the checkpoint the study would evaluate; ties: the
    earliest), that checkpoint's iteration, and the last iteration's validation reward."""
    if run.empty:
        raise ValueError("tuning run without iterations")
    run = run.sort_values("iteration")
    reward = run[VALIDATION_REWARD].to_numpy(float)
    best = int(np.argmax(reward))
    return {
        "best_validation_reward": float(reward[best]),
        "best_iteration": int(run["iteration"].iloc[best]),
        "final_validation_reward": float(reward[-1]),
    }


def rank_tuning(
    samples: pd.DataFrame,
    grid_keys: Sequence[str],
    *,
    ci_level: float,
    resamples: int,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """One row per grid point, best first: its grid values, the mean over seeds of the best checkpoint's validation
    reward (the ranking score) and of the last iteration's, each with its Student-t interval over seeds, and the mean
    iteration of the best checkpoint.

    `samples` holds one row per tuning run: variant, seed, best_validation_reward, best_iteration,
    final_validation_reward and a column per grid key. Ranked by the validation reward; ties by the final
    validation reward, then by the variant's name. Test episodes (evaluation.seed) never enter: a grid point is
    chosen on validation episodes only.
    """
    grid_keys = list(grid_keys)
    rows = []
    for variant, group in samples.groupby("variant", sort=True):
        values = group[["best_validation_reward", "final_validation_reward"]].to_numpy(float).T
        est = interval_estimates(values, ci_level, resamples, seed)
        first = group.iloc[0]
        rows.append({
            "variant": variant,
            **{key: first[key] for key in grid_keys},
            "seeds": len(group),
            "validation_reward": float(est["mean"][0]),
            "validation_reward_ci_low": float(est["mean_ci_low"][0]),
            "validation_reward_ci_high": float(est["mean_ci_high"][0]),
            "final_validation_reward": float(est["mean"][1]),
            "final_validation_reward_ci_low": float(est["mean_ci_low"][1]),
            "final_validation_reward_ci_high": float(est["mean_ci_high"][1]),
            "best_iteration": float(group["best_iteration"].mean()),
            "ci_level": ci_level,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table = table.sort_values(
        ["validation_reward", "final_validation_reward", "variant"], ascending=[False, False, True], ignore_index=True
    )
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table[["rank", "variant", *grid_keys, *TUNING_COLUMNS[2:]]]


# --------------------------------------------------------------------------- best-of-K and decision times

LEARNED = "learned"
LEARNED_CENTRAL = "learned-central"  # a learned policy's best-of-K decisions (mec.best_of): centralised, its own row


def learned_kind(policy: str) -> str:
    """The kind of a learned policy's row: LEARNED for its own decisions, LEARNED_CENTRAL for its best-of-K
    decisions ("mappo-best-of-16"), so that "the learned policy" rows stay the plain policy's."""
    from mec.best_of import is_best_of  # noqa: PLC0415

    return LEARNED_CENTRAL if is_best_of(policy) else LEARNED


DECISION_TIME_COLUMNS = ("decide_latency_ms", "decide_batch_ms_per_slot")  # mec.decision_time's, per policy


def decision_time_columns(rows: pd.DataFrame, times: dict) -> pd.DataFrame:
    """`rows` (with a `policy` column) with DECISION_TIME_COLUMNS from `times` ({policy: {column: ms}}, an
    evaluation file's provenance); NaN where a policy has none (e.g. files written before they were measured)."""
    times = times or {}
    return rows.assign(**{
        column: rows["policy"].map(lambda p, c=column: (times.get(p) or {}).get(c, np.nan)).astype(float)
        for column in DECISION_TIME_COLUMNS
    })  # fmt: skip


def with_decision_times(table: pd.DataFrame, samples: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """`table` (one or more rows per group `by`) with each group's mean decision times over its samples (a learned
    policy's training seeds, each timed in its own evaluation job; a baseline's one timing of its sweep point) as
    DECISION_TIME_COLUMNS; NaN where the samples have none. The timings are machine-dependent and never compared
    by `mec reproduce`; no other column changes."""
    by = list(by)
    present = [c for c in DECISION_TIME_COLUMNS if c in samples]
    means = samples.groupby(by, sort=False)[present].mean() if present else pd.DataFrame(index=pd.Index([]))
    out = table.drop(columns=[c for c in DECISION_TIME_COLUMNS if c in table])
    keys = pd.MultiIndex.from_frame(out[by]) if len(by) > 1 else pd.Index(out[by[0]])
    for column in DECISION_TIME_COLUMNS:
        values = means[column].reindex(keys).to_numpy(float) if column in means else np.full(len(out), np.nan)
        out[column] = values
    return out
