"""Markdown from the summary tables: the tables of the variants, the tuning sweep, the results section of
docs/results.md and the README's short headline table, and the atomic splice of both into their files.

Every number comes from a summary table of mec.aggregate (means with their Student-t confidence intervals, IQMs,
probabilities of improvement with their bootstrap intervals); nothing here computes a statistic of its own except
picking rows (the best heuristic at a sweep point) and the ratio of two means where the tables hold no interval for it
(learned vs local search).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mec import aggregate
from mec.io import atomic_write
from mec.plotting import FIGURE_METRICS, counted

# The generated results section of docs/results.md lies between these two lines, the README's headline table between
# the next two.
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
HEADLINE_START = "<!-- headline:start -->"
HEADLINE_END = "<!-- headline:end -->"


def number(value: float, digits: int = 4) -> str:
    """A value with `digits` significant digits; an em dash for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


def with_ci(mean: float, low: float, high: float, digits: int = 4) -> str:
    """'12.34 [12.1, 12.58]'; the mean alone where the interval is undefined (a single sample)."""
    if any(pd.isna(x) for x in (low, high)):
        return number(mean, digits)
    return f"{number(mean, digits)} [{number(low, digits)}, {number(high, digits)}]"


def _value_with_ci(value: float, low: float, high: float, spec: str, unit: str = "") -> str:
    """'value<unit> [low, high]' in format `spec`; the value alone without an interval, an em dash for NaN."""
    if pd.isna(value):
        return "—"
    if pd.isna(low) or pd.isna(high):
        return f"{value:{spec}}{unit}"
    return f"{value:{spec}}{unit} [{low:{spec}}, {high:{spec}}]"


def percent_with_ci(mean: float, low: float, high: float) -> str:
    return _value_with_ci(mean, low, high, ".1f", "%")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; `|` inside a cell is escaped."""

    def line(cells):
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(row) for row in rows)])


def size_name(phase: int) -> str:
    return "N" if phase == 1 else "K"


def _level(frame: pd.DataFrame) -> str:
    return f"{float(frame['ci_level'].iloc[0]):.0%}" if "ci_level" in frame and len(frame) else "95%"


# --------------------------------------------------------------------------- variants of the study


def comparison_markdown(comparison: pd.DataFrame, title: str, metric: str = "reward_per_slot") -> str:
    """Per phase, one row per N or K and one column per study (the study itself, then each variant): the learned
    policy's mean `metric` over training seeds with its Student-t interval. `comparison` is
    mec.aggregate.variant_comparison's table."""
    rows = comparison[comparison["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no {metric!r} rows in the comparison table")
    studies = list(dict.fromkeys(rows["study"]))
    info = FIGURE_METRICS[metric]
    parts = [
        f"### {title}",
        "",
        f"{info.title.capitalize()} of the learned policy: mean over training seeds [{_level(rows)} t-interval]; "
        "— where a study does not cover the point.",
        "",
    ]
    described = rows.drop_duplicates("study")[["study", "description"]].itertuples(index=False)
    parts += [f"- `{study}`: {description}" for study, description in described]
    for phase, of_phase in rows.groupby("phase", sort=True):
        # The study itself always; a variant only in the phases it covers.
        present = [study for study in studies if study == aggregate.STUDY or (of_phase["study"] == study).any()]
        header = [size_name(phase)]
        for study in present:
            policies = sorted(of_phase.loc[of_phase["study"] == study, "policy"].unique())
            header.append(f"{study} ({', '.join(policies)})" if policies else study)
        body = []
        for n, point in of_phase.groupby("n", sort=True):
            cells = [str(n)]
            for study in present:
                own = point[point["study"] == study]
                cells.append(
                    "—" if own.empty else "; ".join(
                        with_ci(r.mean, r.mean_ci_low, r.mean_ci_high) for r in own.itertuples(index=False)
                    )
                )  # fmt: skip
            body.append(cells)
        parts += ["", f"Phase {phase}:", "", table(header, body)]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- QoS-energy trade-off


def pareto_markdown(pareto: pd.DataFrame) -> str:
    """The learned policy at every energy weight: mean QoS and energy per task [CI over seeds], per sweep point."""
    learned = pareto[pareto["kind"] == "learned"]
    # unstack, not pivot_table: an interval that is NaN throughout (a single seed) keeps its column.
    keys = ["phase", "n", "w_energy", "policy", "metric"]
    wide = learned.set_index(keys)[["mean", "mean_ci_low", "mean_ci_high"]].unstack("metric").sort_index()
    body = []
    for (phase, n, w, policy), row in wide.iterrows():
        cell = {m: with_ci(row[("mean", m)], row[("mean_ci_low", m)], row[("mean_ci_high", m)]) for m in
                ("mean_qos", "energy_per_task_j", "reward_per_slot")}  # fmt: skip
        body.append([str(phase), f"{size_name(phase)} = {n}", number(w), policy, cell["mean_qos"],
                     cell["energy_per_task_j"], cell["reward_per_slot"]])  # fmt: skip
    header = ["phase", "point", "w_energy [1/J]", "policy", "mean QoS", "energy per task [J]", "reward per slot"]
    return table(header, body) + "\n"


# --------------------------------------------------------------------------- hyperparameter sweep


def tuning_markdown(tuning: pd.DataFrame, grid_keys: Sequence[str], top: int | None = None) -> str:
    """The ranked grid (mec.aggregate.rank_tuning): grid values, the validation reward of the best checkpoint and of
    the last iteration, mean over seeds [CI]."""
    rows = tuning.sort_values("rank").head(top) if top else tuning.sort_values("rank")
    header = ["rank", *(key.split(".")[-1] for key in grid_keys), "validation reward (best checkpoint)",
              "validation reward (last iteration)", "best iteration", "seeds"]  # fmt: skip
    body = []
    for row in rows.to_dict("records"):
        values = [_grid_value(row[key]) for key in grid_keys]
        body.append([
            str(row["rank"]), *values,
            with_ci(row["validation_reward"], row["validation_reward_ci_low"], row["validation_reward_ci_high"]),
            with_ci(row["final_validation_reward"], row["final_validation_reward_ci_low"],
                    row["final_validation_reward_ci_high"]),
            f"{row['best_iteration']:.0f}", str(row["seeds"]),
        ])  # fmt: skip
    return table(header, body) + "\n"


def _grid_value(value) -> str:
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return "[" + ", ".join(str(v) for v in list(value)) + "]"
    return number(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- results section and headline


def _learned_rows(comparison: pd.DataFrame) -> pd.DataFrame:
    return comparison[comparison["kind"] == "learned"]


def _reward(row) -> str:
    return with_ci(row["reward_per_slot"], row["reward_per_slot_ci_low"], row["reward_per_slot_ci_high"])


def _first(rows: pd.DataFrame):
    return rows.iloc[0] if len(rows) else None


def _central_row(point: pd.DataFrame):
    """The learned policy's best-of-K row at a sweep point (kind learned-central: a centralised decision), or None."""
    return _first(point[point["kind"] == aggregate.LEARNED_CENTRAL])


def _named_reward(row) -> str:
    return "—" if row is None else f"{row['policy']}: {_reward(row)}"


def _named(row, value: str) -> str:
    """'<policy>: <value>', an em dash without a row."""
    return "—" if row is None else f"{row['policy']}: {value}"


# The column of the learned policy's best-of-K decisions (evaluation.best_of), which see every task of the slot.
CENTRAL_LABEL = "learned best-of-K (centralised)"


def _of_bound(row) -> str:
    key = aggregate.PERCENT_OF_BOUND
    return "—" if row is None else percent_with_ci(row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"])


def _best_heuristic(point: pd.DataFrame):
    heuristics = point[(point["kind"] == "heuristic") & (point["policy"] != aggregate.LOCAL_SEARCH)]
    if heuristics.empty:
        return None
    return heuristics.sort_values(["reward_per_slot", "policy"], ascending=[False, True]).iloc[0]


def _above(learned, best) -> str:
    """Whether the learned policy's interval lies wholly above the best heuristic's mean reward."""
    if learned is None or best is None or pd.isna(learned["reward_per_slot_ci_low"]):
        return "—"
    return "yes" if learned["reward_per_slot_ci_low"] > best["reward_per_slot"] else "no"


def _policy_row(point: pd.DataFrame, name: str):
    return _first(point[point["policy"] == name])


def probability_with_ci(value: float, low: float, high: float) -> str:
    """'0.84 [0.72, 0.96]'; the value alone without an interval, an em dash for NaN."""
    return _value_with_ci(value, low, high, ".2f")


def _improvement_columns(rows: pd.DataFrame, has_search: bool) -> list[tuple[str, str]]:
    """(header, column of mec.aggregate) of the probabilities of improvement the comparison table holds: over the
    best heuristic and, where local search ran, over it (a table from before they were computed has neither)."""
    columns = [("P(learned > best heuristic)", aggregate.POI_BEST_HEURISTIC)]
    if has_search:
        columns.append(("P(learned > local search)", aggregate.POI_LOCAL_SEARCH))
    return [(header, column) for header, column in columns if column in rows]


def _improvement(learned, column: str) -> str:
    if learned is None:
        return "—"
    return probability_with_ci(learned[column], learned[f"{column}_ci_low"], learned[f"{column}_ci_high"])


def phase1_rows(comparison: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Phase 1 per N: the learned policy, the best heuristic and the oracle (equal spectrum split) as a percentage
    of the upper bound's reward on the same episodes (mec.bound: at least every policy's reward on every slot, so
    at most 100%), with their CIs, beside the bound's reward (and local search where it ran); whether the learned
    policy's interval lies wholly above the best heuristic's mean reward; and, where the table holds them, the learned
    policy's probabilities of improvement over the best heuristic and over local search [bootstrap CI]."""
    rows = comparison[comparison["phase"] == 1]
    has_search = (rows["policy"] == aggregate.LOCAL_SEARCH).any()
    has_central = (rows["kind"] == aggregate.LEARNED_CENTRAL).any()
    improvement = _improvement_columns(rows, has_search)
    body = []
    for n, point in rows.groupby("n", sort=True):
        learned, best = _first(_learned_rows(point)), _best_heuristic(point)
        search, bound = _policy_row(point, aggregate.LOCAL_SEARCH), _policy_row(point, aggregate.BOUND)
        central = _central_row(point)
        cells = [
            str(n),
            _named_reward(learned),
            _of_bound(learned),
            *([_named(central, _of_bound(central))] if has_central else []),
            _named_reward(best),
            _of_bound(best),
            _of_bound(_policy_row(point, aggregate.ORACLE)),
            *([_of_bound(search)] if has_search else []),
            "—" if bound is None else _reward(bound),
            _above(learned, best),
            *(_improvement(learned, column) for _, column in improvement),
        ]
        body.append(cells)
    header = ["N", "learned: reward per slot", "learned: % of bound"] + (
        [f"{CENTRAL_LABEL}: % of bound"] if has_central else []) + ["best heuristic: reward per slot",
        "best heuristic: % of bound", "oracle (equal split): % of bound"] + (
        ["local search: % of bound"] if has_search else []) + [
        "upper bound: reward per slot", "learned CI above best heuristic"] + [
        header for header, _ in improvement]  # fmt: skip
    return header, body


def phase1_markdown(comparison: pd.DataFrame) -> str:
    """phase1_rows as a Markdown table."""
    return table(*phase1_rows(comparison)) + "\n"


def share_of_search_gain(point: pd.DataFrame, learned=None) -> float:
    """At one sweep point: the share of local search's gain over all-local that the learned policy (or the row
    `learned`, e.g. its best-of-K) reaches, (learned - all-local) / (local search - all-local); NaN where a row is
    missing or local search gains nothing."""
    learned = _first(_learned_rows(point)) if learned is None else learned
    search, local = _policy_row(point, aggregate.LOCAL_SEARCH), _policy_row(point, "all-local")
    if learned is None or search is None or local is None or not search["reward_per_slot"] > local["reward_per_slot"]:
        return math.nan
    return float((learned["reward_per_slot"] - local["reward_per_slot"])
                 / (search["reward_per_slot"] - local["reward_per_slot"]))  # fmt: skip


def phase2_rows(comparison: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Phase 2 per K: the learned policy, the best heuristic at that K and the local-search reference (where it
    ran): reward per slot with its CI; whether the learned policy's interval lies wholly above the best heuristic's
    mean; the share of local search's gain over all-local that the learned policy reaches,
    (learned - all-local) / (local search - all-local); and, where the table holds them, the learned policy's IQM
    over training seeds and its probabilities of improvement over the best heuristic and over local search
    [bootstrap CI]."""
    rows = comparison[comparison["phase"] == 2]
    has_search = (rows["policy"] == aggregate.LOCAL_SEARCH).any()
    has_central = has_search and (rows["kind"] == aggregate.LEARNED_CENTRAL).any()
    improvement = _improvement_columns(rows, has_search)
    iqm = "reward_per_slot_iqm" in rows
    body = []
    for n, point in rows.groupby("n", sort=True):
        learned, best = _first(_learned_rows(point)), _best_heuristic(point)
        cells = [str(n), _named_reward(learned), _named_reward(best), _above(learned, best)]
        if has_search:
            search = _policy_row(point, aggregate.LOCAL_SEARCH)
            cells.append("—" if search is None else _reward(search))
            gain = share_of_search_gain(point)
            cells.append("—" if math.isnan(gain) else f"{gain:.3f}")
        if has_central:
            central = _central_row(point)
            gain = math.nan if central is None else share_of_search_gain(point, central)
            cells.append(_named(central, "—" if math.isnan(gain) else f"{gain:.3f}"))
        if iqm:
            cells.append("—" if learned is None else number(learned["reward_per_slot_iqm"]))
        cells += [_improvement(learned, column) for _, column in improvement]
        body.append(cells)
    header = ["K", "learned: reward per slot", "best heuristic: reward per slot", "learned CI above best heuristic"] + (
        ["local search: reward per slot", "(learned − all-local) / (local search − all-local)"] if has_search else []
    ) + ([f"{CENTRAL_LABEL}: the same share"] if has_central else []) + (
        ["learned: IQM over seeds"] if iqm else []) + [header for header, _ in improvement]  # fmt: skip
    return header, body


def phase2_markdown(comparison: pd.DataFrame) -> str:
    """phase2_rows as a Markdown table."""
    return table(*phase2_rows(comparison)) + "\n"


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table with the cells escaped."""
    from html import escape  # noqa: PLC0415

    def line(cells, tag):
        return "<tr>" + "".join(f"<{tag}>{escape(str(cell))}</{tag}>" for cell in cells) + "</tr>"

    return "<table>\n" + "\n".join([line(header, "th"), *(line(row, "td") for row in rows)]) + "\n</table>"


def comparison_html(comparison: pd.DataFrame, title: str) -> str:
    """The README's per-phase tables of a comparison table as one HTML page (for the workflow's HTML report)."""
    from html import escape  # noqa: PLC0415

    parts = [f"<h2>{escape(title)}</h2>"]
    for phase, rows_of in ((1, phase1_rows), (2, phase2_rows)):
        if (comparison["phase"] == phase).any():
            parts += [f"<h3>Phase {phase}</h3>", html_table(*rows_of(comparison))]
    style = ("table{border-collapse:collapse;font:13px sans-serif}th,td{border:1px solid #bbb;padding:3px 6px}"
             "th{background:#eee}")  # fmt: skip
    head = f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>{style}</style></head><body>'
    return "\n".join([head, *parts, "</body></html>"]) + "\n"


DECISION_TIME_POINTS = ((1, 7), (2, 10))  # the README's decision-time table: phase 1 at N = 7, phase 2 at K = 10
DECISION_TIME_COLUMNS = ("decide_latency_ms", "decide_batch_ms_per_slot")  # mec.decision_time's
_DECISION_KINDS = ("learned", aggregate.LEARNED_CENTRAL, "search", "oracle")  # one row per policy, in this order


def _ms(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.3g}"


def decision_time_markdown(times: pd.DataFrame, points: Sequence[tuple[int, int]] = DECISION_TIME_POINTS) -> str:
    """The time each policy takes to decide one slot on one core at each (phase, N or K) of `points`: the latency of
    one slot decided alone and the time per slot when a batch is decided at once, in ms (mec.decision_time).
    `times`: rows with phase, n, policy, kind and DECISION_TIME_COLUMNS (a comparison table, or the results of
    benchmarks/bench_decision_time.py). One row per learned policy, best-of-K (centralised), local search and the
    oracle; the heuristics as their fastest and slowest (named in the cell); "—" where a policy was not timed."""
    wanted = set(points)
    rows = times[[(p, n) in wanted for p, n in zip(times["phase"], times["n"])]]
    rows = rows[rows["kind"] != "bound"]
    order = {kind: i for i, kind in enumerate(_DECISION_KINDS)}
    named = rows[rows["kind"].isin(_DECISION_KINDS)].drop_duplicates("policy")
    names = sorted(zip(named["kind"].map(order), named["policy"]))
    header = ["policy"]
    for phase, n in points:
        size = f"phase {phase}, {size_name(phase)} = {n}"
        header += [f"{size}: one slot alone [ms]", f"{size}: per slot in a batch [ms]"]
    body = []
    for _, name in names:
        cells = [f"{name} (centralised)" if aggregate.learned_kind(name) == aggregate.LEARNED_CENTRAL else name]
        for phase, n in points:
            own = rows[(rows["phase"] == phase) & (rows["n"] == n) & (rows["policy"] == name)]
            cells += [_ms(own[column].mean()) if len(own) else "—" for column in DECISION_TIME_COLUMNS]
        body.append(cells)
    heuristics = rows[rows["kind"] == "heuristic"]
    for label, pick in (("heuristics: fastest", "idxmin"), ("heuristics: slowest", "idxmax")):
        cells = [label]
        for phase, n in points:
            point = heuristics[(heuristics["phase"] == phase) & (heuristics["n"] == n)]
            for column in DECISION_TIME_COLUMNS:
                timed = point.dropna(subset=[column]) if column in point else point.iloc[:0]
                if timed.empty:
                    cells.append("—")
                    continue
                row = timed.loc[getattr(timed[column], pick)()]
                cells.append(f"{_ms(row[column])} ({row['policy']})")
        body.append(cells)
    return table(header, body) + "\n"


def runs_sentence(runs: Sequence[dict]) -> str:
    """One sentence naming the training runs behind the learned rows (their budget, sizes and seeds), from the
    provenance of their evaluations (workflow_scripts/evaluate_policy.py), so that a section built from a reduced
    sweep says so. Empty without runs."""
    if not runs:
        return ""
    t = runs[0]["config"]["training"]
    sizes = {phase: sorted({int(run["n"]) for run in runs if int(run["phase"]) == phase}) for phase in (1, 2)}
    points = "; ".join(f"phase {phase}: {size_name(phase)} = {', '.join(map(str, ns))}"
                       for phase, ns in sizes.items() if ns)  # fmt: skip
    seeds = ", ".join(map(str, sorted({int(run["training_seed"]) for run in runs})))
    sentence = (
        f"The learned rows come from {counted(len(runs), 'training run')} ({points}; seeds {seeds}) of "
        f"{t['iterations']} PPO iterations of {t['train_batch_slots']} slots ({t['backend']} backend, "
        f"{t['critic']} critic), each evaluated at its best checkpoint."
    )
    return sentence + origin_sentence([run.get("trained") or {} for run in runs])


def origin_sentence(origins: Sequence[dict]) -> str:
    """" Trained at commit C on CPU M." from the training runs' records (mec.runs.run_origin), naming every commit and
    CPU model among them; "" when a run has no record (trained before runs recorded them)."""
    if not origins or not all("commit" in origin and "machine" in origin for origin in origins):
        return ""
    commits = sorted({origin["commit"] for origin in origins})
    cpus = sorted({origin["machine"]["cpu"] for origin in origins})
    return (f" Trained at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)} on "
            f"{' and '.join(cpus)} (bit-identical reruns need the same CPU model).")  # fmt: skip


# Who wrote the generated section and from what: the workflow's rule from a results folder (the default), or
# `make readme` from the committed tables (mec.publish).
RULE_SOURCE = "Generated by `snakemake readme_results` from `results/summary/`"
RULE_COMMAND = "`snakemake readme_results`"


def has_decision_times(comparison: pd.DataFrame, points: Sequence[tuple[int, int]] = DECISION_TIME_POINTS) -> bool:
    """Whether the comparison table holds a decision time (mec.decision_time) at any of `points`."""
    columns = [column for column in DECISION_TIME_COLUMNS if column in comparison]
    if not columns:
        return False
    wanted = set(points)
    at = comparison[[(p, n) in wanted for p, n in zip(comparison["phase"], comparison["n"])]]
    return bool(at[columns].notna().any().any())


def _decision_time_section(comparison: pd.DataFrame) -> list[str]:
    """The decision-time table of the study's comparison (phase 1 at N = 7, phase 2 at K = 10), where it was timed."""
    if not has_decision_times(comparison):
        return []
    times = comparison.copy()
    for column in DECISION_TIME_COLUMNS:
        if column not in times:
            times[column] = math.nan
    sizes = " and ".join(f"{size_name(p)} = {n}" for p, n in DECISION_TIME_POINTS)
    lead = (f"The time each policy takes to decide one slot on one core (mec.decision_time) at {sizes}: one slot "
            "decided alone, and per slot when a batch of slots is decided at once, in ms; measured by the evaluation "
            "jobs on the machine of their run (machine-dependent, never compared by `mec reproduce`).")  # fmt: skip
    return ["", "### Decision time per slot", "", lead, "", decision_time_markdown(times)]


def _hours(seconds: float) -> str:
    return "—" if seconds is None or pd.isna(seconds) else f"{seconds / 3600:.2f}"


def _commit_cell(part: dict) -> str:
    commit = part.get("commit") or "not recorded"
    return f"{commit} (uncommitted changes)" if part.get("dirty") else commit


def parts_markdown(parts: Sequence[dict]) -> str:
    """The parts of the study behind the committed tables (mec.publish's records in docs/summary/parts.json): one row
    per part with the commit and CPU model it ran at and what its benchmarked jobs (training, evaluation, baselines;
    Snakemake's benchmark files) cost, summed into a total; then a sentence naming each part's commit where they
    differ."""
    header = ["part", "tables", "commit", "CPU", "jobs", "wall time, summed over jobs [h]", "CPU time [h]"]
    body = [[part["part"], ", ".join(part.get("covers", [])), _commit_cell(part), part.get("cpu") or "not recorded",
             str(part.get("jobs", 0)), _hours(part.get("wall_s")), _hours(part.get("cpu_s"))]
            for part in parts]  # fmt: skip
    total = ["total", "", "", "", str(sum(int(part.get("jobs", 0)) for part in parts)),
             _hours(sum(float(part.get("wall_s") or 0) for part in parts)),
             _hours(sum(float(part.get("cpu_s") or 0) for part in parts))]  # fmt: skip
    text = table(header, [*body, total]) + "\n"
    commits = {part.get("commit") or "not recorded" for part in parts}
    if len(commits) > 1:
        named = "; ".join(f"{part['part']} at {_commit_cell(part)}" for part in parts)
        text += (f"\nThe parts ran at different commits: {named}. Rows of different parts are comparable only as far "
                 "as nothing between those commits changed the numbers.\n")  # fmt: skip
    elif parts:
        text += f"\nEvery part ran at commit {_commit_cell(parts[0])}.\n"
    if any(part.get("dirty") for part in parts):
        text += "A part marked with uncommitted changes ran on a tree that differed from its commit.\n"
    return text


def readme_results(
    comparison: pd.DataFrame,
    figures: Sequence[tuple[str, str]] = (),
    *,
    ablations: pd.DataFrame | None = None,
    backends: pd.DataFrame | None = None,
    pareto: pd.DataFrame | None = None,
    tuning: pd.DataFrame | None = None,
    tuning_keys: Sequence[str] = (),
    study: str = "",
    scenarios: Sequence[tuple[str, str, pd.DataFrame, str]] = (),
    source: str = RULE_SOURCE,
    tables: str = "results/summary/",
    parts_table: str = "",
) -> str:
    """The results section of docs/results.md from the study's comparison table (mec.aggregate.comparison_table via
    the workflow's aggregate_metrics) and the optional tables across variants. `figures` are (caption, path relative
    to the page) pairs, shown after the tables; `study`, a sentence saying which runs the learned rows come from;
    `scenarios`, (name, overrides, comparison table, the sentence naming its runs) of each other scenario of the
    study (workflow.scenarios), each with tables of its own; `source`, the section's first words (who generated it
    from what); `tables`, the folder of the tables named in the text; `parts_table`, the table of the parts behind
    the tables (parts_markdown), shown before the figures. Where the study's table holds decision times at N = 7 or
    K = 10, their table follows the scenarios'."""
    learned = _learned_rows(comparison)
    seeds = int(learned["samples"].max()) if len(learned) else 0
    episodes = comparison.loc[comparison["kind"] != "learned", "samples"]
    level = _level(comparison)
    parts = [
        f"{source} (edit the workflow, not this section). "
        f"Learned policies: mean over {counted(seeds, 'training seed')} of each seed's mean over the evaluation "
        f"episodes; baselines: mean over {counted(int(episodes.max()) if len(episodes) else 0, 'evaluation episode')}; "
        "in brackets the "
        f"{level} confidence interval of the mean (Student's t: over training seeds for learned policies, over "
        "evaluation episodes for baselines). Reward per slot is w_qos x (sum of QoS) - w_energy x "
        "(sum of energy in J) over the slot's tasks. The best heuristic is the best composed heuristic at that point "
        "(named)." + (_IMPROVEMENT_NOTE if aggregate.POI_BEST_HEURISTIC in comparison else "")
        + (f" {study}" if study else ""),
    ]
    bound_note = ("The upper bound (mec.bound) is at least the reward of every policy on every slot, whatever its "
                  "offload set, spectrum split and server order, so no policy exceeds 100% of it; the oracle "
                  "optimises everything but the spectrum split, which it shares equally.")  # fmt: skip
    if (comparison["phase"] == 1).any():
        parts += ["", "### Phase 1: learned vs the upper bound", "", bound_note, "", phase1_markdown(comparison)]
    if (comparison["phase"] == 2).any():
        parts += ["", "### Phase 2: learned vs the best heuristic and local search", "", phase2_markdown(comparison)]
    for name, description, table_, runs in scenarios:
        for phase in sorted(table_["phase"].unique()):
            title = f"### Phase {phase}, scenario {name} (`{description}`)"
            body = phase1_markdown(table_) if phase == 1 else phase2_markdown(table_)
            parts += ["", title, "", *([runs, ""] if runs else []), body]
    parts += _decision_time_section(comparison)
    if ablations is not None:
        parts += ["", comparison_markdown(ablations, "Ablations")]
    if backends is not None:
        parts += ["", comparison_markdown(backends, "Training backends")]
    if pareto is not None:
        parts += ["", "### QoS-energy trade-off", "", "The learned policy trained at each energy weight "
                  "(reward.w_energy_per_j); mean over seeds [CI].", "", pareto_markdown(pareto)]  # fmt: skip
    if tuning is not None:
        parts += ["", "### Hyperparameter sweep (top 5 by validation reward)", "",
                  "Ranked by the validation reward (training.eval_seed's episodes) of each run's best checkpoint, "
                  f"mean over seeds; all grid points in `{tables}tuning.md`.", "",
                  tuning_markdown(tuning, tuning_keys, top=5)]  # fmt: skip
    if parts_table:
        parts += ["", "### The parts behind these tables", "", parts_table]
    if figures:
        parts += ["", "### Figures", ""]
        parts += [f"![{caption}]({path})\n" for caption, path in figures]
    text = "\n".join(part.rstrip("\n") if part.endswith("|\n") else part for part in parts)
    return text.rstrip() + "\n"


_IMPROVEMENT_NOTE = (
    " P(learned > ...) is the probability of improvement (rliable's: Agarwal et al., NeurIPS 2021) with the "
    "evaluation episodes as tasks: the chance that a training seed of the learned policy earns more reward on an "
    "episode than the baseline does on the same episode (ties count half), averaged over the episodes; in brackets "
    "its stratified-bootstrap interval. The learned policy's IQM (phase 2) is the interquartile mean of its training "
    "seeds' rewards per slot (the mean of the middle half)."
)


def _commits(origins: Sequence[dict], phase: int) -> str:
    """The commits among `origins` of the phase (an origin without a "phase" holds for every phase)."""
    own = [origin for origin in origins if int(origin.get("phase", phase)) == phase]
    commits = sorted({origin["commit"] for origin in own if origin.get("commit")})
    return ", ".join(commits) if commits else "not recorded"


def headline_rows(entries: Sequence[tuple[str, pd.DataFrame, Sequence[dict]]]) -> tuple[list[str], list[list[str]]]:
    """One row per (scenario, phase) at its largest N or K, the hardest point of its sweep: the learned policy's
    reward per slot beside the best heuristic's (named), local search's and, in phase 1, the upper bound's; the
    learned policy's share of the reference (phase 1: % of the bound with its interval; phase 2: the share of local
    search's gain over all-local); and the commits the learned rows were trained at. `entries` are (scenario name,
    comparison table, origins), origins being the training runs' records (mec.runs.run_origin) or the table's own
    provenance: dicts with a "commit" and, where they hold for one phase only, its "phase"."""
    body = []
    for name, comparison, origins in entries:
        for phase in sorted(comparison["phase"].unique()):
            of_phase = comparison[comparison["phase"] == phase]
            n = int(of_phase["n"].max())
            point = of_phase[of_phase["n"] == n]
            learned, best = _first(_learned_rows(point)), _best_heuristic(point)
            search, bound = _policy_row(point, aggregate.LOCAL_SEARCH), _policy_row(point, aggregate.BOUND)
            if phase == 1:
                share = "—" if learned is None else f"{_of_bound(learned)} of the bound"
            else:
                gain = share_of_search_gain(point)
                share = "—" if math.isnan(gain) else f"{gain:.1%} of local search's gain over all-local"
            body.append([
                name, f"{phase}, {size_name(phase)} = {n}",
                "—" if learned is None else f"{learned['policy']}: {number(learned['reward_per_slot'])}",
                "—" if best is None else f"{best['policy']}: {number(best['reward_per_slot'])}",
                "—" if search is None else number(search["reward_per_slot"]),
                "—" if bound is None else number(bound["reward_per_slot"]),
                share, _commits(origins, phase),
            ])  # fmt: skip
    header = ["scenario", "phase, point", "learned", "best heuristic", "local search", "upper bound",
              "learned, share of the reference", "trained at commit"]  # fmt: skip
    return header, body


def headline_markdown(
    entries: Sequence[tuple[str, pd.DataFrame, Sequence[dict]]], source: str, command: str = RULE_COMMAND
) -> str:
    """The README's headline: headline_rows as a Markdown table, after one sentence naming `source`, the tables it
    was built from, `command`, what rewrites it, and what its cells are."""
    lead = (
        f"Generated from {source} (mec.markdown.headline_markdown; {command} rewrites it). Reward "
        "per slot at the largest N or K of each phase, learned policy: mean over training seeds; the best heuristic "
        "is the best composed heuristic there (named); phase 2 has no bound. Every point, with confidence intervals: "
        "[docs/results.md](docs/results.md)."
    )
    return lead + "\n\n" + table(*headline_rows(entries)) + "\n"


def spliced(path: str | os.PathLike, section: str, start: str = README_START, end: str = README_END) -> str:
    """The text of the file at `path` with what lies between its `start` and `end` lines replaced by `section`. A
    file without exactly one start marker followed by one end marker is a ValueError naming the file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    starts, ends = text.count(start), text.count(end)
    if starts != 1 or ends != 1 or text.index(start) > text.index(end):
        raise ValueError(
            f"{path}: needs one line {start} followed by one line {end}; found {starts} start and {ends} end markers"
        )
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{section.strip()}\n{end}{tail}"


def splice_files(sections: Sequence[tuple[str | os.PathLike, str, str, str]]) -> list[Path]:
    """Splice each (path, section, start marker, end marker): every file is read and checked first, so a file
    without its markers leaves every file as it was; then each changed file is replaced atomically (its mode kept).
    Returns the files that changed (splicing the same sections again changes nothing)."""
    texts = [(Path(path), spliced(path, section, start, end)) for path, section, start, end in sections]
    changed = []
    for path, text in texts:
        if text == path.read_text(encoding="utf-8"):
            continue
        mode = path.stat().st_mode & 0o777
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
        os.chmod(path, mode)
        changed.append(path)
    return changed


def splice_readme(path: str | os.PathLike, section: str) -> bool:
    """Replace what lies between the file's `README_START` and `README_END` lines by `section`, atomically (see
    splice_files). Returns whether the file changed."""
    return bool(splice_files([(path, section, README_START, README_END)]))
