"""Figures of the study: functions that take the summary tables of mec.aggregate and return matplotlib Figures.

Figures are built on `matplotlib.figure.Figure`, not pyplot: no global figure state and no GUI backend, PNG is
rendered by the Agg canvas. `save_figure` writes a file atomically (a temporary file in the same folder, then a
rename), so a killed plotting job never leaves a truncated image under the final name.

A sweep has dozens of heuristics (48 in phase 2), too many lines for one axis. `highlighted_policies` keeps the
reference points (all-local, all-offload, random, the oracle where it ran) and the best policy of each offload rule,
ranked by mean reward per slot over the sweep; the others are drawn as thin grey lines without a legend entry each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mec.io import atomic_write


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
REFERENCE_POLICIES = ("oracle", "all-local", "all-offload", "random")

# One fixed look per role, so the same policy looks the same in every figure.
_REFERENCE_STYLE = {
    "oracle": {"color": "black", "linestyle": "--", "marker": "*"},
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


def sweep_label(phase: int, n_ue: int | None = None) -> str:
    """x-axis label of a phase's sweep."""
    if phase == 1:
        return "Number of UEs N"
    users = f" ({n_ue} UEs)" if n_ue is not None else ""
    return f"Number of clusters K{users}"


def offload_rule(policy: str) -> str | None:
    """The offload rule of a composed heuristic name (`greedy-edf` -> `greedy`); None for the reference policies."""
    # Imported here: mec.baselines pulls in the simulator (numba, scikit-learn), which the Snakefile, importing
    # FIGURE_METRICS from this module, does not need.
    from mec.baselines import OFFLOAD_RULES  # noqa: PLC0415

    if policy in REFERENCE_POLICIES:
        return None
    return next((rule for rule in OFFLOAD_RULES if policy.startswith(f"{rule}-")), None)


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
    from mec.baselines import OFFLOAD_RULES  # noqa: PLC0415 - see offload_rule

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
) -> Figure:
    """One metric against the phase's sweep (N or K): a line per highlighted policy with its bootstrap CI band.

    `summary` is the long table of mec.aggregate.summarise_samples with columns phase, n, n_ue, policy, metric and
    the statistic's `<statistic>`, `<statistic>_ci_low`, `<statistic>_ci_high`. `statistic` is "mean" or "iqm".
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
            ax.fill_between(
                rows["n"].to_numpy(float),
                rows[f"{statistic}_ci_low"].to_numpy(float),
                rows[f"{statistic}_ci_high"].to_numpy(float),
                color=look["color"],
                alpha=0.15,
                linewidth=0,
                zorder=2,
            )
        others = sorted(name for name in table["policy"].unique() if name not in shown_names)
        for name in others:
            rows = table[table["policy"] == name]
            lines = ax.plot(rows["n"], rows[statistic], **_OTHER_STYLE)
        if others:
            lines[0].set_label(f"other heuristics ({len(others)})")
            handles.append(lines[0])
        ax.set_xticks(sizes)
        ax.set_xlabel(sweep_label(phase, n_ue))
        ax.set_ylabel(info.axis_label)
        better = "higher" if info.higher_is_better else "lower"
        ax.set_title(
            f"Phase {phase} baselines: {info.title} ({better} is better)\n"
            f"{statistic if statistic == 'mean' else 'IQM'} over {samples} {sample_name}, "
            f"band: {level:.0%} bootstrap CI",
            fontsize="medium",
        )
        ax.grid(True, alpha=0.3)
        _legend_below(fig, handles)
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
