"""Statistics over samples: mean, interquartile mean (IQM) and percentile-bootstrap confidence intervals.

A sample is one independent repetition of an experiment: an evaluation episode for a baseline, a training seed for a
learned policy. Each sample first gets its own headline metrics (`per_episode_metrics`, with the definitions of
mec.metrics); `summarise_samples` then reports, per group (phase, N or K, policy) and metric, the mean and the IQM with
a bootstrap confidence interval for each, following the practice of reporting interval estimates over repetitions
rather than a single best run.

The intervals are percentile bootstraps (scipy.stats.bootstrap): with the handful of samples a study like this has
(5 seeds), the bias-corrected BCa interval's jackknife acceleration estimate is itself unstable, and the percentile
interval is what the RL evaluation literature uses. Every group resamples with a Generator seeded afresh from the
same seed, so an interval does not depend on which other groups are in the table. A group with a single sample gets
NaN bounds: one value says nothing about spread.
"""

from __future__ import annotations

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
    """Interquartile mean along `axis` (scipy.stats.trim_mean with a quarter cut from each end)."""
    return stats.trim_mean(values, IQM_TRIM, axis=axis)


def _bootstrap_ci(values: np.ndarray, statistic, ci_level: float, resamples: int, seed: int) -> np.ndarray:
    """(M, 2) percentile-bootstrap interval of `statistic` for each row of `values` (M, S)."""
    if values.shape[1] < 2:
        return np.full((values.shape[0], 2), np.nan)
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
    """Mean and IQM with their bootstrap intervals for each row of `values` (M metrics, S samples)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] == 0:
        raise ValueError("interval_estimates: got no samples; allowed at least one sample per row")
    if not 0 < ci_level < 1:
        raise ValueError(f"interval_estimates: got ci_level={ci_level!r}; allowed a number in (0, 1)")
    mean_ci = _bootstrap_ci(values, np.mean, ci_level, resamples, seed)
    iqm_ci = _bootstrap_ci(values, iqm, ci_level, resamples, seed)
    return {
        "mean": values.mean(axis=-1),
        "mean_ci_low": mean_ci[:, 0],
        "mean_ci_high": mean_ci[:, 1],
        "iqm": iqm(values),
        "iqm_ci_low": iqm_ci[:, 0],
        "iqm_ci_high": iqm_ci[:, 1],
    }


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
