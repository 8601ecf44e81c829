"""Figures of the study: functions that take the summary tables of mec.aggregate and return matplotlib Figures.

Figures are built on `matplotlib.figure.Figure`, not pyplot: no global figure state and no GUI backend, PNG is
rendered by the Agg canvas. `save_figure` writes a file atomically (a temporary file in the same folder, then a
rename), so a killed plotting job never leaves a truncated image under the final name.

A sweep has dozens of heuristics (48 in phase 2), too many lines for one axis. `highlighted_policies` keeps the
reference points (all-local, all-offload, random, the oracle where it ran) and the best policy of each offload rule,
ranked by mean reward per slot over the sweep; the others are drawn as thin grey lines without a legend entry each.
A learned policy (statistics over training seeds) is drawn bold on top of them.

Per training run: each evaluation metric over learning (`learning_figure`, the reference set LEARNING_FIGURES) and a
Gantt view of one slot of the edge server's schedule (`schedule_figure`). Per sweep point: the learning curves of
every seed with the mean and its confidence band (`learning_curves_figure`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from mec.io import atomic_write
from mec.policies import LOCAL_SEARCH, OFFLOAD_RULES, ORACLE, offload_rule


@dataclass(frozen=True)
class MetricInfo:
    title: str  # lower-case noun phrase for titles
    axis_label: str  # y-axis label with its unit
    higher_is_better: bool


FIGURE_METRICS: dict[str, MetricInfo] = {
    "reward_per_slot": MetricInfo("reward per slot", "Reward per slot (sum over tasks) [-]", True),
    "mean_qos": MetricInfo("mean QoS", "Mean QoS per task [0-1]", True),
    "deadline_met_fraction": MetricInfo("deadline-met fraction", "Tasks finished by their deadline [fraction]", True),
    "energy_per_task_j": MetricInfo("energy per task", "Energy per task (UE + server) [J]", False),
}
RANK_METRIC = "reward_per_slot"  # the study's objective: highlighted policies are the best by it
REFERENCE_POLICIES = (ORACLE, LOCAL_SEARCH, "all-local", "all-offload", "random")
PERCENT_OF_BOUND_COLUMN = "percent_of_bound"  # mec.aggregate.PERCENT_OF_BOUND (not imported: no scipy here)

# One fixed look per role, so the same policy looks the same in every figure.
_REFERENCE_STYLE = {
    "oracle": {"color": "black", "linestyle": "--", "marker": "*"},
    "local-search": {"color": "tab:brown", "linestyle": "-.", "marker": "X"},
    "all-local": {"color": "tab:gray", "linestyle": "-", "marker": "s"},
    "all-offload": {"color": "tab:blue", "linestyle": "-", "marker": "o"},
    "random": {"color": "tab:olive", "linestyle": ":", "marker": "x"},
}
_RULE_STYLE = {
    "all-offload": {"color": "tab:cyan", "linestyle": "-", "marker": "^"},
    "greedy": {"color": "tab:red", "linestyle": "-", "marker": "D"},
    "random": {"color": "tab:purple", "linestyle": "-.", "marker": "v"},
}
_OTHER_STYLE = {"color": "0.6", "linewidth": 0.6, "alpha": 0.5, "zorder": 1}
_LEARNED_STYLE = {"color": "tab:green", "linestyle": "-", "marker": "P", "linewidth": 2.4, "markersize": 7}


def phase_name(phase: int, scenario: str | None = None) -> str:
    """'Phase 1', or 'Phase 1 (tight_deadlines)' for a variant's figures (a scenario of workflow.scenarios)."""
    return f"Phase {phase}" if not scenario else f"Phase {phase} ({scenario})"


def sweep_label(phase: int, n_ue: int | None = None) -> str:
    """x-axis label of a phase's sweep."""
    if phase == 1:
        return "Number of UEs N"
    users = f" ({n_ue} UEs)" if n_ue is not None else ""
    return f"Number of clusters K{users}"


def highlighted_policies(summary: pd.DataFrame, phase: int, statistic: str = "mean") -> list[tuple[str, str]]:
    """(policy, legend label) of the policies worth a line of their own in a phase's figures.

    The reference policies present in the table, then for each offload rule its best composed policy by the mean
    over the sweep of `statistic` of reward per slot (ties: the first name alphabetically). A best policy whose
    results equal a reference policy's at every sweep point (all-offload-fifo is all-offload) is not drawn twice:
    the reference line's label says so.
    """
    table = summary[(summary["phase"] == phase) & (summary["metric"] == RANK_METRIC)]
    by_policy = table.pivot_table(index="policy", columns="n", values=statistic)
    chosen = {name: name for name in REFERENCE_POLICIES if name in by_policy.index}
    for rule in OFFLOAD_RULES:
        candidates = [name for name in by_policy.index if offload_rule(name) == rule]
        if not candidates:
            continue
        score = by_policy.loc[candidates].mean(axis=1)
        best = sorted(candidates, key=lambda name: (-score[name], name))[0]
        twin = next((name for name in chosen if by_policy.loc[name].equals(by_policy.loc[best])), None)
        if twin is not None:
            chosen[twin] += f" (also best {rule}-*: {best})"
        else:
            chosen[best] = f"{best} (best {rule}-*)"
    return list(chosen.items())


def _interval_name(statistic: str) -> str:
    """The interval mec.aggregate gives a statistic: Student's t for the mean, a percentile bootstrap for the IQM."""
    return "t-interval" if statistic == "mean" else "bootstrap CI"


def _statistic_name(statistic: str) -> str:
    return "mean" if statistic == "mean" else "IQM"


def counted(number: int, noun: str) -> str:
    """'1 training seed', '5 training seeds'."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _better(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def _ci_band(ax, rows: pd.DataFrame, x: str, statistic: str, color, alpha: float = 0.15, zorder: int = 2) -> None:
    """Shade the confidence interval of `statistic` (columns <statistic>_ci_low/_ci_high of `rows`) along column `x`."""
    ax.fill_between(
        rows[x].to_numpy(float),
        rows[f"{statistic}_ci_low"].to_numpy(float),
        rows[f"{statistic}_ci_high"].to_numpy(float),
        color=color,
        alpha=alpha,
        linewidth=0,
        zorder=zorder,
    )


def _group_colour(index: int, count: int):
    """One colour per UE or cluster: tab10 up to ten of them, else evenly along viridis."""
    if count <= 10:
        return matplotlib.colormaps["tab10"](index)
    return matplotlib.colormaps["viridis"](index / (count - 1))


def _line_style(policy: str) -> dict:
    if policy in _REFERENCE_STYLE:
        return _REFERENCE_STYLE[policy]
    return _RULE_STYLE[offload_rule(policy)]


def sweep_figure(
    summary: pd.DataFrame,
    phase: int,
    metric: str,
    *,
    statistic: str = "mean",
    style: str = "default",
    width_in: float = 6.4,
    height_in: float = 4.0,
    sample_name: str = "evaluation episodes",
    learned: pd.DataFrame | None = None,
    scenario: str | None = None,
) -> Figure:
    """One metric against the phase's sweep (N or K): a line per highlighted policy with its confidence band
    (t-interval of a mean, bootstrap of an IQM).

    `summary` is the long table of mec.aggregate.summarise_samples with columns phase, n, n_ue, policy, metric and
    the statistic's `<statistic>`, `<statistic>_ci_low`, `<statistic>_ci_high`. `statistic` is "mean" or "iqm".
    `learned`, a table of the same layout whose samples are training seeds, adds a bold line per learned policy.
    """
    if metric not in FIGURE_METRICS:
        raise ValueError(f"metric {metric!r}: allowed {', '.join(FIGURE_METRICS)}")
    if statistic not in ("mean", "iqm"):
        raise ValueError(f"statistic {statistic!r}: allowed mean, iqm")
    info = FIGURE_METRICS[metric]
    table = summary[(summary["phase"] == phase) & (summary["metric"] == metric)].sort_values("n")
    if table.empty:
        raise ValueError(f"no rows for phase {phase}, metric {metric!r} in the summary table")
    shown = highlighted_policies(summary, phase, statistic)
    shown_names = {name for name, _ in shown}
    sizes = np.sort(table["n"].unique())
    n_ue = int(table["n_ue"].iloc[0]) if phase == 2 else None
    samples = int(table["samples"].max())
    level = float(table["ci_level"].iloc[0])

    with matplotlib.style.context(style):
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        ax = fig.add_subplot()
        handles = []
        for name, label in shown:
            rows = table[table["policy"] == name]
            look = _line_style(name)
            # The dashed oracle goes on top: a heuristic that reaches it would otherwise hide it.
            zorder = 4 if name == "oracle" else 3
            handles += ax.plot(
                rows["n"], rows[statistic], label=label, linewidth=1.6, markersize=5, zorder=zorder, **look
            )
            _ci_band(ax, rows, "n", statistic, look["color"])
        others = sorted(name for name in table["policy"].unique() if name not in shown_names)
        for name in others:
            rows = table[table["policy"] == name]
            lines = ax.plot(rows["n"], rows[statistic], **_OTHER_STYLE)
        if others:
            lines[0].set_label(f"other heuristics ({len(others)})")
            handles.append(lines[0])
        seeds = None
        if learned is not None:
            learned_rows = learned[(learned["phase"] == phase) & (learned["metric"] == metric)].sort_values("n")
            if learned_rows.empty:
                raise ValueError(f"no learned rows for phase {phase}, metric {metric!r}")
            seeds = int(learned_rows["samples"].max())
            for name, rows in learned_rows.groupby("policy", sort=True):
                # best-of-K decisions (mec.best_of) are centralised: dashed, and labelled so, beside the policy's own
                central = re.search(r"-best-of-\d+$", name) is not None
                kind = "centralised best of K of the learned policy" if central else "learned"
                label = f"{name} ({kind}, {_statistic_name(statistic)} over {counted(seeds, 'seed')})"
                style = {**_LEARNED_STYLE, "linestyle": "--"} if central else _LEARNED_STYLE
                handles[:0] = ax.plot(rows["n"], rows[statistic], label=label, zorder=5, **style)
                _ci_band(ax, rows, "n", statistic, _LEARNED_STYLE["color"], alpha=0.2)
        ax.set_xticks(sizes)
        ax.set_xlabel(sweep_label(phase, n_ue))
        ax.set_ylabel(info.axis_label)
        stat = _statistic_name(statistic)
        if seeds is None:
            title = [
                f"{phase_name(phase, scenario)} baselines: {info.title} ({_better(info.higher_is_better)})",
                f"{stat} over {samples} {sample_name}, band: {level:.0%} {_interval_name(statistic)}",
            ]
        else:
            title = [
                f"{phase_name(phase, scenario)}, learned vs baselines: {info.title} ({_better(info.higher_is_better)})",
                f"baselines: {stat} over {samples} {sample_name}; learned: {stat} over "
                f"{counted(seeds, 'training seed')}",
                f"bands: {level:.0%} {_interval_name(statistic)} of each",
            ]
        ax.set_title("\n".join(title), fontsize="medium")
        ax.grid(True, alpha=0.3)
        _legend_below(fig, handles)
    return fig


RELATIVE_SWEEP = "relative"  # the name of the sweep figure of what a reader compares (sweep_relative.png)
# The kind of a learned policy's best-of-K rows, mec.aggregate.LEARNED_CENTRAL: written out, because mec.aggregate
# imports numba (through mec.metrics) and plotting must not (tests/test_policies.py; tests/test_plotting.py checks
# the two are equal).
LEARNED_CENTRAL = "learned-central"


def relative_sweep_figure(
    comparison: pd.DataFrame,
    phase: int,
    *,
    style: str = "default",
    width_in: float = 6.4,
    height_in: float = 4.0,
    scenario: str | None = None,
) -> Figure:
    """What a reader compares along the sweep, from the comparison table (mec.aggregate.comparison_table layout):
    phase 1 the percentage of the upper bound's reward on the same episodes (mec.bound: no policy exceeds 100%), with
    a line at 100% for the bound, phase 2 the gain per UE over all-local
    ((reward - all-local's reward) / UEs) with local search as the ceiling; below, as a secondary panel, the raw
    reward per slot. Lines: each learned policy (bold, mean over training seeds with its t-interval band) and the
    reference and best composed heuristics of `highlighted_policies`. Phase 2's top panel draws the baselines
    without bands: a band of their rewards over episodes is not one of their paired differences to all-local.
    """
    table = comparison[comparison["phase"] == phase].sort_values("n")
    if table.empty:
        raise ValueError(f"no rows for phase {phase} in the comparison table")
    bound = table[table["kind"] == "bound"]
    baselines = table[~table["kind"].isin(["learned", LEARNED_CENTRAL, "bound"])]
    ranked = baselines.assign(metric=RANK_METRIC, mean=baselines["reward_per_slot"])
    shown = highlighted_policies(ranked, phase)
    # the learned policies, and their best-of-K decisions (evaluation.best_of: centralised, dashed beside them)
    learned = table[table["kind"].isin(["learned", LEARNED_CENTRAL])]
    sizes = np.sort(table["n"].unique())
    n_ue = int(table["n_ue"].iloc[0]) if phase == 2 else None
    level = float(table["ci_level"].iloc[0])
    seeds = int(learned["samples"].max()) if len(learned) else 0
    episodes = int(baselines["samples"].max()) if len(baselines) else 0
    if phase == 2:
        local = baselines[baselines["policy"] == "all-local"].set_index("n")["reward_per_slot"]
        if local.empty:
            raise ValueError("phase 2's relative figure needs the all-local baseline in the comparison table")

        def relative(rows, column="reward_per_slot"):
            return (rows[column].to_numpy(float) - local.reindex(rows["n"]).to_numpy(float)) / rows["n_ue"].to_numpy()

        y_label = "gain over all-local per UE (reward per slot / UE)"
        headline = "gain per UE over all-local (local search: the ceiling)"
    else:
        def relative(rows, column=PERCENT_OF_BOUND_COLUMN):
            return rows[column].to_numpy(float)

        y_label = "% of the upper bound's reward"
        headline = "% of the upper bound's reward on the same episodes"

    mean_reward = baselines[~baselines["policy"].isin(["oracle", "local-search"])].groupby("policy")["reward_per_slot"]
    best_name = mean_reward.mean().idxmax() if len(baselines) else None
    with matplotlib.style.context(style):
        fig = Figure(figsize=(width_in, height_in * 1.6), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
        handles = []
        for name, label in shown:
            rows = table[table["policy"] == name]
            look = _line_style(name)
            zorder = 4 if name in ("oracle", "local-search") else 3
            handles += top.plot(rows["n"], relative(rows), label=label, linewidth=1.6, markersize=5, zorder=zorder,
                                **look)  # fmt: skip
            if phase == 1 and name == best_name:  # per-episode ratios to the bound: paired, so the band is the
                # ratio's own; drawn for the best heuristic only (the others' bands would cover the panel)
                top.fill_between(rows["n"].to_numpy(float), relative(rows, f"{PERCENT_OF_BOUND_COLUMN}_ci_low"),
                                 relative(rows, f"{PERCENT_OF_BOUND_COLUMN}_ci_high"), color=look["color"],
                                 alpha=0.12, linewidth=0, zorder=2)  # fmt: skip
            bottom.plot(rows["n"], rows["reward_per_slot"], linewidth=1.2, markersize=4, zorder=zorder, **look)
            _ci_band(bottom, rows, "n", "reward_per_slot", look["color"], alpha=0.12)
        for name, rows in learned.groupby("policy", sort=True):
            central = bool((rows["kind"] == LEARNED_CENTRAL).all())
            kind = "centralised best of K of the learned policy" if central else "learned"
            label = f"{name} ({kind}, mean over {counted(seeds, 'seed')})"
            look = {**_LEARNED_STYLE, "linestyle": "--"} if central else _LEARNED_STYLE
            column = "reward_per_slot" if phase == 2 else PERCENT_OF_BOUND_COLUMN
            handles[:0] = top.plot(rows["n"], relative(rows), label=label, zorder=5, **look)
            top.fill_between(rows["n"].to_numpy(float), relative(rows, f"{column}_ci_low"),
                             relative(rows, f"{column}_ci_high"), color=_LEARNED_STYLE["color"], alpha=0.25,
                             linewidth=0, zorder=4)  # fmt: skip
            bottom.plot(rows["n"], rows["reward_per_slot"], zorder=5, **look)
            _ci_band(bottom, rows, "n", "reward_per_slot", _LEARNED_STYLE["color"], alpha=0.25)
        if phase == 1 and not bound.empty:
            handles.append(top.axhline(100.0, color="black", linestyle=":", linewidth=1.2, zorder=3,
                                       label="upper bound (100%)"))  # fmt: skip
            bottom.plot(bound["n"], bound["reward_per_slot"], color="black", linestyle=":", linewidth=1.2, zorder=3)
        top.set_ylabel(y_label)
        bottom.set_ylabel("reward per slot")
        bottom.set_xticks(sizes)
        bottom.set_xlabel(sweep_label(phase, n_ue))
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
        # The top panel's range: the learned policies, the ceiling and the best heuristic, so that the differences
        # the figure is about are visible; policies far below (all-local in phase 1, all-offload in phase 2) leave
        # it at the bottom and are read off the reward panel.
        learned_column = "reward_per_slot" if phase == 2 else PERCENT_OF_BOUND_COLUMN
        focus = [relative(rows, f"{learned_column}{end}") for _, rows in learned.groupby("policy")
                 for end in ("_ci_low", "_ci_high")]  # fmt: skip
        best = baselines.groupby("policy")["reward_per_slot"].mean()
        anchors = {"oracle", best.idxmax() if len(best) else None} if phase == 1 else {"local-search", "all-local"}
        for name in (anchors | {best.idxmax() if len(best) else None}) & set(best.index):
            focus.append(relative(table[table["policy"] == name]))
        if phase == 1 and not bound.empty:
            focus.append(np.array([100.0]))
        values = np.concatenate([v[np.isfinite(v)] for v in focus]) if focus else np.array([])
        if values.size:
            lo, hi = values.min(), values.max()
            pad = 0.25 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.01
            top.set_ylim(lo - pad, hi + pad)
        band = (f"bands: {level:.0%} t-interval of the mean ({counted(seeds, 'seed')} learned, "
                f"{counted(episodes, 'episode')} baselines)")  # fmt: skip
        top.set_title(f"{phase_name(phase, scenario)}: {headline}\n{band}", fontsize="medium")
        _legend_below(fig, handles)
    return fig


# --------------------------------------------------------------------------- one training run over learning


@dataclass(frozen=True)
class LearningFigure:
    column: str  # column of metrics.parquet (eval/...), a number or a per-UE/per-cluster list per iteration
    title: str  # lower-case noun phrase for titles
    axis_label: str  # y-axis label with its unit
    group: str | None  # "ue" or "cluster" for per-UE/per-cluster lines; None for one line
    higher_is_better: bool


# The reference set of per-run figures, by the stem of their file name (<stem>_over_learning.png). Per-UE figures
# belong to phase 1, per-cluster ones to phase 2: `learning_figure_names` gives a phase's set.
LEARNING_FIGURES: dict[str, LearningFigure] = {
    "sum_qos": LearningFigure(
        "eval/sum_qos_per_slot", "sum of QoS per slot", "Sum of QoS over the slot's tasks [-]", None, True
    ),
    "sum_energy": LearningFigure(
        "eval/sum_energy_j_per_slot",
        "sum of energy per slot",
        "Energy of the slot's tasks (UE + server) [J]",
        None,
        False,
    ),
    "per_ue_qos": LearningFigure(
        "eval/ue_qos_per_slot", "QoS of each UE", "QoS of the UE's task per slot [0-1]", "ue", True
    ),
    "per_ue_energy": LearningFigure(
        "eval/ue_energy_j_per_slot",
        "energy of each UE",
        "Energy of the UE's task per slot (UE + server) [J]",
        "ue",
        False,
    ),
    "per_cluster_qos": LearningFigure(
        "eval/cluster_qos_per_slot",
        "QoS of each cluster",
        "Sum of QoS over the cluster's tasks per slot [-]",
        "cluster",
        True,
    ),
    "per_cluster_energy": LearningFigure(
        "eval/cluster_energy_j_per_slot",
        "energy of each cluster",
        "Energy of the cluster's tasks per slot (UE + server) [J]",
        "cluster",
        False,
    ),
}
SCHEDULE_FIGURE = "edge_schedule_view"
MAX_GROUP_LEGEND = 12  # per-UE or per-cluster lines get a legend entry each up to this many


def learning_figure_names(phase: int) -> list[str]:
    """The per-run learning figures of a phase: sums, and per UE (phase 1) or per cluster (phase 2)."""
    group = "ue" if phase == 1 else "cluster"
    return [name for name, info in LEARNING_FIGURES.items() if info.group in (None, group)]


def point_title(phase: int, n: int, n_ue: int | None = None) -> str:
    """'Phase 1, N = 3 UEs' or 'Phase 2, K = 4 clusters of 100 UEs'."""
    if phase == 1:
        return f"Phase 1, N = {n} UEs"
    users = f" of {n_ue} UEs" if n_ue is not None else ""
    return f"Phase 2, K = {n} clusters{users}"


def run_title(phase: int, n: int, seed: int, n_ue: int | None = None) -> str:
    """'Phase 1, N = 3 UEs, seed 0' or 'Phase 2, K = 4 clusters of 100 UEs, seed 0'."""
    return f"{point_title(phase, n, n_ue)}, seed {seed}"


def _iteration_axis(ax, runs: pd.DataFrame, label: bool = True) -> None:
    """Whole iterations on the x axis, labelled with the slots sampled per iteration; plain numbers on the y axis
    (no offset notation: a curve that barely moves should show its values, not '1e-6 + 2.3778')."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    if label:
        first = runs.sort_values("iteration").iloc[0]
        per_iteration = int(first["slots"] // first["iteration"]) if "slots" in runs else None
        ax.set_xlabel(
            f"Training iteration ({per_iteration} sampled slots each)" if per_iteration else "Training iteration"
        )


def learning_figure(
    run: pd.DataFrame,
    name: str,
    phase: int,
    n: int,
    seed: int,
    *,
    n_ue: int | None = None,
    evaluation: str = "",
    style: str = "default",
    width_in: float = 6.4,
    height_in: float = 4.0,
) -> Figure:
    """One evaluation metric of one training run against the training iteration.

    `run` is the run's metrics.parquet (one row per iteration); `name` a key of LEARNING_FIGURES valid for the phase.
    Per-UE and per-cluster figures draw one line per UE or cluster. `evaluation` describes the per-iteration
    evaluation (episodes, slots) for the title.
    """
    if name not in learning_figure_names(phase):
        raise ValueError(
            f"learning figure {name!r} in phase {phase}: allowed {', '.join(learning_figure_names(phase))}"
        )
    info = LEARNING_FIGURES[name]
    if run.empty:
        raise ValueError("no iterations in the run's metrics")
    if info.column not in run:
        raise ValueError(f"column {info.column!r} missing from the run's metrics")
    run = run.sort_values("iteration")
    iterations = run["iteration"].to_numpy()
    with matplotlib.style.context(style):
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        ax = fig.add_subplot()
        if info.group is None:
            ax.plot(iterations, run[info.column].to_numpy(float), color="tab:green", marker="o", markersize=3)
        else:
            values = np.stack(run[info.column].to_numpy()).astype(float)  # (iterations, groups)
            word = "UE" if info.group == "ue" else "cluster"
            for g in range(values.shape[1]):
                colour = _group_colour(g, values.shape[1])
                ax.plot(iterations, values[:, g], color=colour, linewidth=1.2, label=f"{word} {g}")
            if values.shape[1] <= MAX_GROUP_LEGEND:
                ax.legend(fontsize="small", ncols=2 if values.shape[1] > 6 else 1, frameon=False)
        _iteration_axis(ax, run)
        ax.set_ylabel(info.axis_label)
        on = f" on {evaluation}" if evaluation else ""
        ax.set_title(
            f"{run_title(phase, n, seed, n_ue)}: {info.title} ({_better(info.higher_is_better)})\n"
            f"evaluated after every iteration{on}, deterministic actions",
            fontsize="medium",
        )
        ax.grid(True, alpha=0.3)
    return fig


# --------------------------------------------------------------------------- the edge server's schedule


def informative_slot(schedule: pd.DataFrame) -> tuple[int, int]:
    """(episode, slot) worth drawing: the first episode's slot with the most offloaded tasks (ties: earliest)."""
    if schedule.empty:
        raise ValueError("empty schedule")
    episode = int(schedule["episode"].min())
    rows = schedule[schedule["episode"] == episode]
    offloaded = rows.groupby("slot")["offload"].sum()
    return episode, int(offloaded.idxmax())


def schedule_figure(
    schedule: pd.DataFrame,
    phase: int,
    n: int,
    seed: int,
    *,
    policy: str = "learned",
    n_ue: int | None = None,
    style: str = "default",
    width_in: float = 6.4,
    height_in: float = 4.0,
) -> Figure:
    """Gantt view of one slot of the edge schedule (mec.evaluation.TRACE_COLUMNS rows of one policy).

    Per UE a hatched bar for the upload and a solid bar for the execution on the server, and a diamond at the task's
    deadline. Phase 1 draws every UE (local tasks as a grey bar of local execution); phase 2 draws only the offloaded
    UEs, grouped and coloured by cluster (each cluster runs on its own share of the server CPU). The figure grows
    with the number of rows drawn so every row stays readable.
    """
    episode, slot = informative_slot(schedule)
    rows = schedule[(schedule["episode"] == episode) & (schedule["slot"] == slot)]
    offloaded = rows["offload"].astype(bool)
    shown = rows if phase == 1 else rows[offloaded]
    shown = shown.sort_values(["cluster", "exec_start_s", "ue"] if phase == 2 else ["ue"])
    n_rows = max(len(shown), 1)
    height = max(height_in, 2.4 + 0.24 * n_rows)  # title and legend, then a readable row per UE
    n_clusters = int(schedule["cluster"].max()) + 1

    def colour(cluster: int):
        return "tab:blue" if phase == 1 else _group_colour(cluster, n_clusters)

    with matplotlib.style.context(style):
        fig = Figure(figsize=(width_in, height), layout="constrained")
        ax = fig.add_subplot()
        labels = []
        for y, task in enumerate(shown.itertuples(index=False)):
            if task.offload:
                c = colour(int(task.cluster))
                ax.barh(y, task.upload_end_s - task.upload_start_s, left=task.upload_start_s, height=0.6,
                        color=c, alpha=0.35, hatch="///", edgecolor=c, linewidth=0.5)  # fmt: skip
                ax.barh(y, task.exec_end_s - task.exec_start_s, left=task.exec_start_s, height=0.6, color=c)
            else:
                ax.barh(y, task.completion_time_s, left=0.0, height=0.6, color="0.75")
            ax.plot(task.deadline_s, y, marker="D", color="black", markersize=4, linestyle="none")
            labels.append(f"UE {task.ue}" + (f" (c{task.cluster})" if phase == 2 else ""))
        if shown.empty:
            ax.text(0.5, 0.5, "no task offloaded in this episode", transform=ax.transAxes, ha="center")
        ax.set_yticks(range(len(labels)), labels, fontsize="small" if len(labels) <= 30 else "x-small")
        ax.invert_yaxis()
        ax.set_xlim(left=0.0)
        ax.set_xlabel("Time from the start of the slot [s]")
        handles = [
            Patch(facecolor="0.6", alpha=0.35, hatch="///", edgecolor="0.3", label="upload"),
            Patch(facecolor="0.3", label="execution on the edge server"),
            Line2D([], [], marker="D", color="black", linestyle="none", markersize=4, label="deadline"),
        ]
        if not offloaded.all() and phase == 1:
            handles.append(Patch(facecolor="0.75", label="local execution"))
        if phase == 2:
            handles += [Patch(facecolor=colour(k), label=f"cluster {k}") for k in sorted(shown["cluster"].unique())]
        count = f"{int(offloaded.sum())} of {len(rows)} tasks offloaded"
        title = [
            f"{run_title(phase, n, seed, n_ue)}, policy {policy}",
            f"edge schedule of episode {episode}, slot {slot}: {count}",
        ]
        if phase == 2:
            title.append("offloaded UEs only, grouped by cluster")
        ax.set_title("\n".join(title), fontsize="medium")
        _legend_below(fig, handles)
        ax.grid(True, axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------- learning curves of every seed


CURVE_PANELS = ("reward_per_slot", "mean_qos", "deadline_met_fraction", "energy_per_task_j")


def learning_curves_figure(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    phase: int,
    n: int,
    *,
    n_ue: int | None = None,
    statistic: str = "mean",
    style: str = "default",
    width_in: float = 6.4,
    height_in: float = 4.0,
    references: dict[str, dict[str, float]] | None = None,
) -> Figure:
    """Learning curves of every seed of one sweep point: 2 x 2 panels (CURVE_PANELS) against the iteration.

    `runs` holds every seed's metrics.parquet rows (with a `seed` column); `curves` the long table of
    mec.aggregate.summarise_samples over seeds per iteration (metric names without the eval/ prefix). Each seed is a
    thin line, the `statistic` over seeds a thick one with its confidence band (t-interval of a mean, bootstrap of
    an IQM). `references` (label -> metric -> value, e.g. from `curve_references`) are drawn as horizontal lines in
    the panels of the metrics they have.
    """
    if statistic not in ("mean", "iqm"):
        raise ValueError(f"statistic {statistic!r}: allowed mean, iqm")
    seeds = sorted(runs["seed"].unique())
    level = float(curves["ci_level"].iloc[0])
    with matplotlib.style.context(style):
        fig = Figure(figsize=(width_in * 1.5, height_in * 1.6), layout="constrained")
        axes = fig.subplots(2, 2, sharex=True)
        for ax, metric in zip(axes.ravel(), CURVE_PANELS):
            info = FIGURE_METRICS[metric]
            for seed in seeds:
                run = runs[runs["seed"] == seed].sort_values("iteration")
                ax.plot(run["iteration"], run[f"eval/{metric}"], color="tab:green", linewidth=0.7, alpha=0.45)
            rows = curves[curves["metric"] == metric].sort_values("iteration")
            ax.plot(rows["iteration"], rows[statistic], color="tab:green", linewidth=2.2)
            _ci_band(ax, rows, "iteration", statistic, "tab:green", alpha=0.2)
            for label, values in (references or {}).items():
                if metric in values and np.isfinite(values[metric]):
                    look = _curve_reference_style(label)
                    ax.axhline(values[metric], linewidth=1.1, zorder=1, label=label, **look)
            ax.set_title(f"{info.title} ({_better(info.higher_is_better)})", fontsize="medium")
            ax.set_ylabel(info.axis_label, fontsize="small")
            ax.grid(True, alpha=0.3)
            _iteration_axis(ax, runs, label=ax in axes[1])
        fig.suptitle(
            f"{point_title(phase, n, n_ue)}: learning curves of {counted(len(seeds), 'training seed')} "
            "(evaluated after every iteration)\n"
            f"thin: one seed; thick: {_statistic_name(statistic)} over seeds; band: {level:.0%} "
            f"{_interval_name(statistic)}",
            fontsize="medium",
        )
        if references:
            handles = {}
            for ax in axes.ravel():
                for line in ax.get_lines():
                    if line.get_label() in references:
                        handles.setdefault(line.get_label(), line)
            fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(len(handles), 2),
                       fontsize="small", title="references: means over the evaluation episodes (evaluation.seed), "
                       "not the validation episodes of the curves", title_fontsize="small")  # fmt: skip
    return fig


def _curve_reference_style(label: str) -> dict:
    """The look of a reference line: the bound dotted black, the oracle and local search as elsewhere, the best
    heuristic in its offload rule's colour (grey when the label names none)."""
    name = label.split(" ")[0]
    if label.startswith("upper bound"):
        return {"color": "black", "linestyle": ":"}
    if name in _REFERENCE_STYLE:
        return {"color": _REFERENCE_STYLE[name]["color"], "linestyle": _REFERENCE_STYLE[name]["linestyle"]}
    rule = offload_rule(name)
    return {"color": _RULE_STYLE[rule]["color"] if rule else "0.35", "linestyle": "--"}


def curve_references(slots: pd.DataFrame, bound: pd.Series | None = None) -> dict[str, dict[str, float]]:
    """The reference lines of a sweep point's learning curves from its baselines' per-slot table (a `policy` column,
    mec.metrics' SLOT_COLUMNS): the upper bound's reward per slot (`bound`, per slot, where given), the oracle and
    local search where they ran, and the best heuristic by reward per slot, each with its headline metrics
    (mec.metrics.summarise over all its slots)."""
    from mec import metrics  # noqa: PLC0415 - mec.metrics imports the simulator, which this module otherwise avoids

    summary = {name: metrics.summarise(rows) for name, rows in slots.groupby("policy", sort=True)}
    out: dict[str, dict[str, float]] = {}
    if bound is not None and bound.notna().any():
        out["upper bound"] = {"reward_per_slot": float(bound.mean())}
    for name in ("oracle", "local-search"):
        if name in summary:
            out[name] = {metric: summary[name][metric] for metric in CURVE_PANELS}
    heuristics = [name for name in summary if name not in ("oracle", "local-search")]
    if heuristics:
        best = sorted(heuristics, key=lambda name: (-summary[name][RANK_METRIC], name))[0]
        out[f"{best} (best heuristic)"] = {metric: summary[best][metric] for metric in CURVE_PANELS}
    return out


# --------------------------------------------------------------------------- variants of the study

# The study's learned policy keeps the learned green; each variant gets the next colour of this cycle.
_VARIANT_COLOURS = ("tab:purple", "tab:orange", "tab:blue", "tab:red", "tab:brown", "tab:pink", "tab:olive")
_VARIANT_MARKERS = ("s", "^", "D", "v", "o", "<", ">")


def _study_label(study: str, policies: list[str], seeds: int) -> str:
    name = "the study" if study == "study" else study
    return f"{name}: {', '.join(policies)} ({counted(seeds, 'seed')})"


def comparison_figure(
    table: pd.DataFrame,
    phase: int,
    *,
    title: str,
    baselines: pd.DataFrame | None = None,
    metric: str = "reward_per_slot",
    style: str = "default",
    width_in: float = 6.4,
    height_in: float = 4.0,
) -> Figure:
    """The learned policy of the study and of each of its variants against N or K: mean over training seeds with
    its t-interval (a band along a sweep; error bars where a variant has a single point, e.g. a flat phase 2 at
    K = 1).

    `table` is mec.aggregate.variant_comparison's (column `study`, the study itself first). `baselines`, the study's
    baseline summary, adds the oracle and local search where they ran and the best heuristic over the sweep (by mean
    reward per slot) as dashed references.
    """
    if metric not in FIGURE_METRICS:
        raise ValueError(f"metric {metric!r}: allowed {', '.join(FIGURE_METRICS)}")
    info = FIGURE_METRICS[metric]
    rows = table[(table["phase"] == phase) & (table["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"no rows for phase {phase}, metric {metric!r} in the comparison table")
    studies = list(dict.fromkeys(rows["study"]))
    sizes = set(rows["n"])
    level = float(rows["ci_level"].iloc[0])
    with matplotlib.style.context(style):
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        ax = fig.add_subplot()
        handles = []
        for i, study in enumerate(studies):
            own = rows[rows["study"] == study].sort_values("n")
            if study == "study":
                look = dict(_LEARNED_STYLE)
            else:
                j = (i - 1) % len(_VARIANT_COLOURS)
                look = {"color": _VARIANT_COLOURS[j], "marker": _VARIANT_MARKERS[j], "linestyle": "-", "linewidth": 1.8}
            label = _study_label(study, sorted(own["policy"].unique()), int(own["samples"].max()))
            if len(own) == 1:
                point = own.iloc[0]
                low, high = point["mean_ci_low"], point["mean_ci_high"]
                error = None if pd.isna(low) else [[point["mean"] - low], [high - point["mean"]]]
                container = ax.errorbar(point["n"], point["mean"], yerr=error, capsize=4, zorder=5, label=label,
                                        **{**look, "linestyle": "none"})  # fmt: skip
                handles.append(container)
            else:
                handles += ax.plot(own["n"], own["mean"], label=label, zorder=5, **look)
                _ci_band(ax, own, "n", "mean", look["color"], alpha=0.2)
        if baselines is not None:
            base = baselines[(baselines["phase"] == phase) & (baselines["metric"] == metric)]
            searches = ("oracle", "local-search")  # optimisers, not heuristics
            references = [name for name in searches if name in set(base["policy"])]
            heuristics = base[~base["policy"].isin(searches)]
            if not heuristics.empty:
                score = heuristics.groupby("policy")["mean"].mean()
                references.append(sorted(score.index, key=lambda name: (-score[name], name))[0])
            for name in references:
                own = base[base["policy"] == name].sort_values("n")
                look = _REFERENCE_STYLE.get(name, {"color": "0.35", "linestyle": ":", "marker": "."})
                label = name if name in _REFERENCE_STYLE else f"{name} (best heuristic over the sweep)"
                handles += ax.plot(own["n"], own["mean"], label=label, linewidth=1.2, markersize=4, zorder=3,
                                   **{**look, "linestyle": "--" if name != "local-search" else "-."})  # fmt: skip
                _ci_band(ax, own, "n", "mean", look["color"], alpha=0.1)
                sizes |= set(own["n"])
        ax.set_xticks(sorted(sizes))
        ax.set_xlabel(sweep_label(phase))
        ax.set_ylabel(info.axis_label)
        ax.set_title(
            f"Phase {phase}, {title}: {info.title} ({_better(info.higher_is_better)})\n"
            f"learned: mean over training seeds; bands and bars: {level:.0%} t-interval",
            fontsize="medium",
        )
        ax.grid(True, alpha=0.3)
        _legend_below(fig, handles)
    return fig


def _pareto_points(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (w_energy, kind, policy) with mean QoS and energy per task and their CIs."""
    # unstack, not pivot_table: an interval that is NaN throughout (a single seed) keeps its column.
    keys = ["w_energy", "kind", "policy", "metric"]
    wide = rows.set_index(keys)[["mean", "mean_ci_low", "mean_ci_high"]].unstack("metric")
    wide.columns = [f"{metric}{'' if stat == 'mean' else stat.removeprefix('mean')}" for stat, metric in wide.columns]
    return wide.reset_index().sort_values(["kind", "policy", "w_energy"], ignore_index=True)


def _errors(points: pd.DataFrame, metric: str):
    low, high = points[f"{metric}_ci_low"].to_numpy(float), points[f"{metric}_ci_high"].to_numpy(float)
    if np.isnan(low).all():
        return None
    mean = points[metric].to_numpy(float)
    return np.nan_to_num(np.vstack([mean - low, high - mean]))


def pareto_figure(
    table: pd.DataFrame,
    phase: int,
    *,
    style: str = "default",
    width_in: float = 6.4,
    height_in: float = 4.0,
) -> Figure:
    """Mean QoS against energy per task at every energy weight w of the trade-off axis: one panel per N or K.

    The learned policy trained at each w is a green point with its t-interval over seeds on both axes, joined in
    order of w (each labelled with its w); the oracle and local search (each optimising the reward of that w) are
    joined likewise; every heuristic at every w is a grey dot and the heuristics' Pareto front (no heuristic has
    more QoS for less energy) a grey step line; all-local and all-offload (which do not depend on w) are marked.
    `table` is mec.aggregate.pareto_table's.
    """
    from mec.aggregate import pareto_front  # noqa: PLC0415 - see offload_rule (scipy, the simulator)

    rows = table[table["phase"] == phase]
    if rows.empty:
        raise ValueError(f"no rows for phase {phase} in the trade-off table")
    sizes = sorted(rows["n"].unique())
    weights = sorted(rows["w_energy"].unique())
    columns = min(len(sizes), 2)
    panels = (len(sizes) + columns - 1) // columns
    with matplotlib.style.context(style):
        fig = Figure(figsize=(width_in * (1 if columns == 1 else 1.6), height_in * (0.4 + 0.75 * panels)),
                     layout="constrained")  # fmt: skip
        axes = np.atleast_1d(fig.subplots(panels, columns, squeeze=False).ravel())
        handles: dict[str, object] = {}
        for ax, n in zip(axes, sizes):
            points = _pareto_points(rows[rows["n"] == n])
            heuristics = points[points["kind"] == "heuristic"]
            if not heuristics.empty:
                handles["heuristics"] = ax.scatter(heuristics["energy_per_task_j"], heuristics["mean_qos"], s=9,
                                                   color="0.65", zorder=1,
                                                   label="heuristics, every w (grey)")  # fmt: skip
                front = heuristics[pareto_front(heuristics["mean_qos"], heuristics["energy_per_task_j"])]
                front = front.sort_values("energy_per_task_j")
                (handles["front"],) = ax.step(front["energy_per_task_j"], front["mean_qos"], where="post",
                                              color="0.45", linestyle="--", linewidth=1.0, zorder=2,
                                              label="heuristics' Pareto front")  # fmt: skip
                for name in ("all-local", "all-offload"):
                    own = heuristics[heuristics["policy"] == name]
                    if not own.empty:
                        look = _REFERENCE_STYLE[name]
                        (handles[name],) = ax.plot(own["energy_per_task_j"].iloc[:1], own["mean_qos"].iloc[:1],
                                                   linestyle="none", marker=look["marker"], color=look["color"],
                                                   markersize=7, zorder=3, label=name)  # fmt: skip
            for kind, name in (("oracle", "oracle"), ("search", "local-search")):
                own = points[points["kind"] == kind].sort_values("w_energy")
                if not own.empty:
                    look = _REFERENCE_STYLE[name]
                    (handles[name],) = ax.plot(own["energy_per_task_j"], own["mean_qos"], zorder=4, linewidth=1.2,
                                               label=f"{name} (each w)", **look)  # fmt: skip
            for policy, own in points[points["kind"] == "learned"].groupby("policy", sort=True):
                own = own.sort_values("w_energy")
                handles[f"learned {policy}"] = ax.errorbar(
                    own["energy_per_task_j"], own["mean_qos"], xerr=_errors(own, "energy_per_task_j"),
                    yerr=_errors(own, "mean_qos"), capsize=3, zorder=5, label=f"{policy} (learned, each w)",
                    **_LEARNED_STYLE,
                )  # fmt: skip
                for point in own.itertuples(index=False):
                    ax.annotate(f"w={point.w_energy:g}", (point.energy_per_task_j, point.mean_qos), fontsize="x-small",
                                xytext=(4, 4), textcoords="offset points", color="tab:green")  # fmt: skip
            n_ue = int(rows.loc[rows["n"] == n, "n_ue"].iloc[0]) if phase == 2 else None
            ax.set_title(point_title(phase, int(n), n_ue), fontsize="medium")
            ax.set_xlabel("Energy per task [J] (lower is better)")
            ax.set_ylabel("Mean QoS per task (higher is better)")
            ax.grid(True, alpha=0.3)
        for ax in axes[len(sizes):]:
            ax.set_visible(False)
        level = float(rows["ci_level"].iloc[0])
        shown = ", ".join(f"{w:g}" for w in weights)
        fig.suptitle(
            f"Phase {phase}: QoS-energy trade-off over the energy weight w [1/J] ({shown})\n"
            f"learned: mean over training seeds, bars: {level:.0%} t-interval; baselines: mean over evaluation "
            "episodes",
            fontsize="medium",
        )
        _legend_below(fig, list(handles.values()))
    return fig


def _legend_below(fig: Figure, handles: list) -> None:
    """Legend under the axes in two columns, or one where two would not fit the figure's width."""
    legend = fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    renderer = FigureCanvasAgg(fig).get_renderer()
    if legend.get_window_extent(renderer).width > fig.bbox.width:
        legend.remove()
        fig.legend(handles=handles, loc="outside lower center", ncols=1, fontsize="small", frameon=False)


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int) -> Path:
    """Write `fig` to `path` (format from the suffix) atomically."""
    path = Path(path)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi))
