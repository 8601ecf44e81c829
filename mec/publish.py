"""The study in parts: a finished part's summary tables merged into the committed ones (`mec publish`, `make
publish`), and the results section of docs/results.md and the README's headline built from the committed tables alone
(`mec readme`, `make readme`), so that a fresh clone without results/ rebuilds them.

A part is a run of the workflow with its own config (config/parts/phase1.yaml: workflow.phases [1] and the scenario
tight_deadlines, into its own results_dir). Publishing it:

- the study's tables (STUDY_TABLES) go to docs/summary/<table>.parquet and .csv, each scenario's to
  docs/summary/<scenario>/, and comparison.html beside each comparison table; rows of the phases the part ran
  replace the committed rows of those phases, other phases' rows stay (merge_by_phase). Only a part of the study
  itself publishes them: its config equal to the base config (config.yaml) but for the keys that pick a part
  (PART_KEYS);
- the tables across variants the part built (ACROSS: ablations, backends, pareto, tuning; e.g. config/reduced.yaml
  with `TARGETS="ablations compare_backends pareto tune"`) go where they are committed, merged by phase the same way;
- the figures docs/results.md shows go to docs/results/ (figure_name);
- the part is recorded in docs/summary/parts.json: its name, phases, scenarios, what it covers, the commit and CPU
  model it ran at (from its tables' provenance and its training runs' records), the publishing machine and date,
  and its benchmarked jobs' count, wall seconds and CPU seconds (Snakemake's benchmark files of its phases).

Each published table's provenance keeps, per phase, the part it came from, the commit and machine its tables were
aggregated on and its learned rows' training runs (phase, size, seed, training section, and where they were trained:
mec.runs.run_origin), which the evaluation files it was built from hold and which a fresh clone has not. Every input
is read and checked before anything is written; each file is then written atomically (mec.io).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mec import aggregate, io, markdown
from mec.config import ConfigError, StudyConfig, config_from_dict, config_to_dict, read_config_file

SUMMARY_DIR = Path("docs/summary")
FIGURES_DIR = Path("docs/results")
BASE_CONFIG = Path("config.yaml")
PARTS_FILE = "parts.json"
# The study's tables (and each scenario's), as aggregate_baselines and aggregate_metrics write them.
STUDY_TABLES = ("baselines", "learned", "learned_seeds", "learning_curves", "comparison")
COMPARISON_HTML = "comparison.html"
# The tables across variants: results_dir/summary/<name>.parquet -> docs/summary/<committed>.parquet, with the Markdown
# view the workflow writes beside some of them.
ACROSS = {"ablations": "ablations/ablations", "backends": "backends/backends", "pareto": "pareto/pareto",
          "tuning": "tuning"}  # fmt: skip
ACROSS_TITLES = {"ablations": "Ablations", "backends": "Training backends"}  # mec.markdown.comparison_markdown's
# The figures of docs/results.md: each phase's sweep figures of the study and its scenarios, and the figures of the
# tables across variants (tuning has none).
SWEEP_FIGURES = ("sweep_relative", "sweep_reward_per_slot")
ACROSS_FIGURES = ("pareto", "ablations", "backends")
# The keys that pick a part of the study; a part whose config differs from the base config elsewhere is not a part of
# that study (its own study's tables are not published: config/reduced.yaml's at its reduced sweep).
PART_KEYS = ("workflow.phases", "workflow.scenarios", "workflow.results_dir", "workflow.variants",
             "workflow.ablations", "workflow.backend_variants", "workflow.w_energy", "workflow.w_energy_overrides",
             "tuning")  # fmt: skip
# What a learned row's training run keeps in the published provenance (from its evaluation's provenance).
RUN_KEYS = ("phase", "n", "n_ue", "n_clusters", "training_seed", "policy", "checkpoint_iteration", "trained")
_PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_BENCHMARK_PHASE = re.compile(r"phase(\d+)_")


class PublishError(ValueError):
    """A missing or unusable input of `mec publish` or `mec readme`: one line naming the file or value."""


# --------------------------------------------------------------------------- figures (shared with readme_results)


def figure_name(phase: int, stem: str, scenario: str | None = None) -> str:
    """The committed copy's name of a figure: phase1_sweep_relative.png, tight_deadlines_phase1_sweep_relative.png."""
    return f"{'' if scenario is None else scenario + '_'}phase{phase}_{stem}.png"


def figure_caption(phase: int, stem: str, scenario: str | None = None) -> str:
    """'Phase 1: reward per slot'-like captions ('Phase 1, scenario tight_deadlines: ...' for a scenario's figure)."""
    where = f"Phase {phase}" if scenario is None else f"Phase {phase}, scenario {scenario}"
    relative = ("learned vs baselines, % of the upper bound's reward" if phase == 1
                else "learned vs baselines, gain per UE over all-local (local search: the ceiling)")
    names = {"sweep_relative": relative,
             "sweep_reward_per_slot": "learned vs baselines, reward per slot", "pareto": "QoS-energy trade-off",
             "ablations": "ablations, reward per slot", "backends": "training backends, reward per slot"}  # fmt: skip
    return f"{where}: {names.get(stem, stem)}"


# --------------------------------------------------------------------------- the part's config


def _merged(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's merge of a --configfile over the Snakefile's config.yaml: mappings key by key, else replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _load(path: str | os.PathLike, over: Mapping[str, Any] | None = None) -> StudyConfig:
    from mec.plan import replace_from_overrides  # noqa: PLC0415 - mec.plan imports mec.variants

    raw = read_config_file(path)
    if over is not None:
        raw, given = _merged(over, raw), raw
        replace_from_overrides(raw, dict(given))
    try:
        return config_from_dict(raw, memory=False)
    except ConfigError as exc:
        raise ConfigError(f"config file '{path}': {exc}") from None


def part_configs(config: str | os.PathLike, base: str | os.PathLike = BASE_CONFIG) -> tuple[StudyConfig, StudyConfig]:
    """The part's config as the workflow read it (`config` merged over `base`, as `make study CONFIG=...` does)
    and the base config itself."""
    base_raw = read_config_file(base)
    return _load(config, base_raw), _load(base)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping) and tree:
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


def study_differences(part: StudyConfig, base: StudyConfig) -> list[str]:
    """The config keys (dotted) where the part's study is not the base config's: every key but PART_KEYS, and the
    definitions of the part's scenarios."""
    ours, theirs = _flat(config_to_dict(part)), _flat(config_to_dict(base))
    keys = sorted(key for key in ours.keys() | theirs.keys()
                  if not any(key == k or key.startswith(k + ".") for k in PART_KEYS))  # fmt: skip
    differing = [key for key in keys if ours.get(key) != theirs.get(key)]
    variants = config_to_dict(part)["workflow"]["variants"], config_to_dict(base)["workflow"]["variants"]
    differing += [f"workflow.variants.{name}" for name in part.workflow.scenarios
                  if variants[0].get(name) != variants[1].get(name)]  # fmt: skip
    return differing


# --------------------------------------------------------------------------- reading, merging


def read_table(path: Path, what: str, committed: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A summary table and its provenance; a missing or corrupt file is one line naming it (`committed`: one under
    docs/summary/, to be restored from git rather than rebuilt)."""
    if not path.is_file():
        raise PublishError(f"{path}: not found; allowed: {what}")
    try:
        return io.read_parquet(path), dict(io.read_provenance(path))
    except io.CorruptFileError as exc:
        if not committed:
            raise
        reason = str(exc).split("; ")[0]
        raise PublishError(f"{reason}; allowed: a committed summary table (restore it with `git checkout -- "
                           f"{path}`)") from None  # fmt: skip


def merge_by_phase(committed: pd.DataFrame | None, part: pd.DataFrame, phases: Sequence[int]) -> pd.DataFrame:
    """The committed rows of the phases not in `phases`, then the part's rows of `phases`, ordered by phase (stable:
    each phase's rows in their own order). A table without a phase column (tuning) is the part's."""
    if "phase" not in part:
        return part.reset_index(drop=True)
    part = part[part["phase"].isin(list(phases))]
    if committed is None or "phase" not in committed:
        return part.reset_index(drop=True)
    kept = committed[~committed["phase"].isin(list(phases))]
    merged = pd.concat([kept, part], ignore_index=True) if len(kept) else part.reset_index(drop=True)
    return merged.sort_values("phase", kind="stable", ignore_index=True)


def _slim_run(run: Mapping[str, Any], path: str) -> dict[str, Any]:
    training = (run.get("config") or {}).get("training")
    if not isinstance(training, Mapping):
        raise PublishError(f"{path}: no training section in its provenance's config; allowed: an evaluation the "
                           "workflow's evaluate_policy wrote (rerun it)")  # fmt: skip
    return {**{key: run[key] for key in RUN_KEYS if key in run}, "config": {"training": dict(training)}}


def learned_runs(provenance: Mapping[str, Any], path: Path) -> list[dict[str, Any]]:
    """The training runs behind a comparison table's learned rows, from its inputs' provenance (the evaluations of
    workflow_scripts/evaluate_policy.py); an input that is gone is one line naming it."""
    runs = []
    for source in provenance.get("inputs", []):
        if not os.path.isfile(source):
            raise PublishError(f"{source}: not found (an input of {path}); allowed: the part's own results, complete "
                               "(rerun its `make study`)")  # fmt: skip
        run = io.read_provenance(source)
        if "training_seed" in run:
            runs.append(_slim_run(run, source))
    return runs


def _origin(provenance: Mapping[str, Any]) -> dict[str, Any]:
    return {"commit": provenance.get("commit"), "machine": provenance.get("machine")}


def merged_provenance(
    committed: Mapping[str, Any] | None,
    committed_phases: Sequence[int],
    part: Mapping[str, Any],
    published: Mapping[str, dict],
) -> dict[str, Any]:
    """The provenance of a merged table: the part's own (statistics, samples, ...; not its inputs, which lie in the
    part's results folder), and under "published", per phase, where its rows come from: the committed table's
    records of the phases it keeps (a table published before records were kept: its own commit and machine, part
    None), then the part's (`published`: phase -> record)."""
    kept: dict[str, dict] = {}
    if committed is not None:
        records = committed.get("published")
        for phase in committed_phases:
            key = str(phase)
            if key in published:
                continue
            if isinstance(records, Mapping) and key in records:
                kept[key] = records[key]
            elif not isinstance(records, Mapping):
                kept[key] = {"part": None, **_origin(committed), "learned_runs": []}
    own = {key: value for key, value in part.items() if key not in ("inputs", "versions", "machine", "commit",
                                                                      "published")}  # fmt: skip
    return {**own, "published": dict(sorted({**kept, **published}.items()))}


def benchmark_totals(results: Path, phases: Sequence[int]) -> dict[str, Any]:
    """Jobs, wall seconds and CPU seconds of the benchmarked jobs (rules/train.smk, evaluate.smk, baselines.smk:
    Snakemake's benchmark files, results_dir/benchmarks/<rule>/...phase<P>_....tsv) of the given phases."""
    jobs, wall, cpu = 0, 0.0, 0.0
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        match = _BENCHMARK_PHASE.search(path.name)
        if match is None or int(match.group(1)) not in phases:
            continue
        try:
            rows = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
            seconds = pd.to_numeric(rows["s"])
            cpu_seconds = pd.to_numeric(rows["cpu_time"]) if "cpu_time" in rows else pd.Series(dtype=float)
        except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
            raise PublishError(f"{path}: not a Snakemake benchmark file ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:120]}); allowed: a TSV with columns s and cpu_time"
                               ) from None  # fmt: skip
        if rows.empty:
            raise PublishError(f"{path}: no rows; allowed: a Snakemake benchmark file of a finished job")
        jobs += 1
        wall += float(seconds.sum())
        cpu += float(cpu_seconds.sum())
    return {"jobs": jobs, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


# --------------------------------------------------------------------------- publishing a part


class _Plan:
    """What a publication writes, gathered (and every input checked) before anything is written."""

    def __init__(self) -> None:
        self.tables: list[tuple[Path, pd.DataFrame, dict[str, Any], bool]] = []  # path, frame, provenance, csv
        self.texts: list[tuple[Path, str]] = []
        self.copies: list[tuple[Path, Path]] = []  # source, target

    def write(self) -> list[Path]:
        written = []
        for path, frame, provenance, csv in self.tables:
            io.write_parquet(frame, path, provenance)
            written.append(path)
            if csv:
                target = path.with_suffix(".csv")
                io.atomic_write(target, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
                written.append(target)
        for path, text in self.texts:
            io.atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
            written.append(path)
        for source, target in self.copies:
            io.atomic_write(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
            written.append(target)
        return written


def _committed(path: Path) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """A committed table and its provenance (None, None where there is none yet); a corrupt one is one line."""
    if not path.exists():
        return None, None
    return read_table(path, "a committed summary table", committed=True)


def _phases_of(frame: pd.DataFrame) -> list[int]:
    return sorted(int(p) for p in frame["phase"].unique()) if "phase" in frame else []


def read_parts(path: Path) -> list[dict[str, Any]]:
    """The records of docs/summary/parts.json ([] where there is none); anything else is one line naming it."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PublishError(f"{path}: not readable JSON ({type(exc).__name__}); allowed: the parts record "
                           "`mec publish` writes (restore it from git)") from None  # fmt: skip
    parts = data.get("parts") if isinstance(data, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) and "part" in p for p in parts):
        raise PublishError(f"{path}: not a parts record; allowed: {{\"parts\": [{{\"part\": ...}}, ...]}} as "
                           "`mec publish` writes it (restore it from git)")  # fmt: skip
    return parts


def _commit_and_dirty(commits: set[str]) -> tuple[str, bool]:
    clean = sorted({commit.removesuffix("+dirty") for commit in commits if commit})
    return (", ".join(clean) or "not recorded"), any(commit.endswith("+dirty") for commit in commits if commit)


def publish(
    config: str | os.PathLike,
    part: str | None = None,
    summary: str | os.PathLike = SUMMARY_DIR,
    figures: str | os.PathLike = FIGURES_DIR,
    base: str | os.PathLike = BASE_CONFIG,
    scenarios_only: bool = False,
) -> dict[str, Any]:
    """Merge the finished part of `config`'s results_dir into `summary` and `figures` and record it in
    `summary`/parts.json (see the module's docstring). Returns the part's record. `scenarios_only`: the part ran
    the scenarios of its workflow.scenarios alone (the workflow's `scenarios` target, e.g.
    config/parts/capable_edge.yaml), not the study's own sweep, whose committed tables it leaves as they are."""
    from mec.plan import StudyPlan  # noqa: PLC0415
    from mec.variants import study_variants, variant_configs  # noqa: PLC0415

    summary, figures = Path(summary), Path(figures)
    name = Path(config).stem if part is None else part
    if not _PART_NAME.match(name):
        raise PublishError(f"part name {name!r}: allowed: letters, digits and _.+- (starting with a letter or "
                           "digit)")  # fmt: skip
    cfg, base_cfg = part_configs(config, base)
    results = Path(cfg.workflow.results_dir)
    if not results.is_dir():
        raise PublishError(f"results folder {results} (workflow.results_dir of {config}): not found; allowed: the "
                           f"results folder of a finished part (run `make study CONFIG={config}` first)")  # fmt: skip
    plan, covers, ran, commits, cpus = _Plan(), [], set(cfg.workflow.phases), set(), set()

    def origin_of(provenance: Mapping[str, Any]) -> None:
        commits.add(str(provenance.get("commit") or ""))
        cpus.add(str((provenance.get("machine") or {}).get("cpu") or ""))

    differences = study_differences(cfg, base_cfg)
    groups = []
    if not differences:
        variants = variant_configs(cfg)
        folders = StudyPlan(cfg, variants)
        specs = study_variants(cfg)
        if scenarios_only and not cfg.workflow.scenarios:
            raise PublishError(f"config file '{config}': workflow.scenarios is empty; allowed: with --scenarios-only "
                               "a part that ran one scenario or more")  # fmt: skip
        groups = ([] if scenarios_only else [(None, "", cfg.workflow.phases, "")]) + [
            (s, folders.variant_dir(s), variants[s].workflow.phases, specs[s].description)
            for s in cfg.workflow.scenarios
        ]
    for scenario, folder, phases, description in groups:
        source, target = results / folder / "summary", summary if scenario is None else summary / scenario
        label = "study" if scenario is None else scenario
        tables = {table: read_table(source / f"{table}.parquet", f"a summary table of the finished part ({label})")
                  for table in STUDY_TABLES}  # fmt: skip
        for table, (frame, _) in tables.items():
            missing = sorted(set(phases) - set(_phases_of(frame)))
            if missing:
                raise PublishError(f"{source / table}.parquet: no rows of phase {missing[0]}, which the part ran; "
                                   f"allowed: the table of the finished part (rerun its `make study CONFIG={config}`)")
        comparison_provenance = tables["comparison"][1]
        runs = learned_runs(comparison_provenance, source / "comparison.parquet")
        for origin in [comparison_provenance, *(run.get("trained") or {} for run in runs)]:
            origin_of(origin)
        published = {
            str(phase): {"part": name, **_origin(comparison_provenance), "description": description,
                         "learned_runs": [run for run in runs if int(run["phase"]) == phase]}
            for phase in phases
        }  # fmt: skip
        covers += [f"{label} phase {phase}" for phase in phases]
        ran |= set(phases)
        level = f"{float((comparison_provenance.get('statistics') or {}).get('ci_level', 0.95)):.0%}"
        for table, (frame, provenance) in tables.items():
            old, old_provenance = _committed(target / f"{table}.parquet")
            merged = merge_by_phase(old, frame, phases)
            kept = [] if old is None else [p for p in _phases_of(old) if p not in phases]
            plan.tables.append((target / f"{table}.parquet", merged,
                                merged_provenance(old_provenance, kept, provenance, published), True))  # fmt: skip
            if table == "comparison":
                title = "The study" if scenario is None else f"Scenario {scenario}"
                html = markdown.comparison_html(merged, f"{title}: learned vs baselines (mean [{level} CI])")
                plan.texts.append((target / COMPARISON_HTML, html))
        for phase in phases:
            for stem in SWEEP_FIGURES:
                plan.copies.append((results / folder / "figures" / f"phase{phase}" / f"{stem}.png",
                                    figures / figure_name(phase, stem, scenario)))  # fmt: skip
    for across, committed_name in ACROSS.items():
        source = results / "summary" / f"{across}.parquet"
        if not source.exists():
            continue
        frame, provenance = read_table(source, f"the {across} table of the finished part")
        origin_of(provenance)
        phases = sorted(set(cfg.workflow.phases) | set(_phases_of(frame)))
        ran |= set(_phases_of(frame))
        keys = [str(p) for p in phases] if "phase" in frame else ["all"]
        published = {key: {"part": name, **_origin(provenance), "learned_runs": []} for key in keys}
        covers += [f"{across} phase {key}" if key != "all" else across for key in keys]
        target = summary / f"{committed_name}.parquet"
        old, old_provenance = _committed(target)
        merged = merge_by_phase(old, frame, phases)
        kept = [] if old is None or "phase" not in frame else [p for p in _phases_of(old) if p not in phases]
        plan.tables.append((target, merged, merged_provenance(old_provenance, kept, provenance, published), False))
        if across in ACROSS_TITLES:
            plan.texts.append((target.with_suffix(".md"), markdown.comparison_markdown(merged, ACROSS_TITLES[across])))
        elif (results / "summary" / f"{across}.md").is_file():
            plan.copies.append((results / "summary" / f"{across}.md", target.with_suffix(".md")))
        if across in ACROSS_FIGURES:
            for phase in _phases_of(frame):
                plan.copies.append((results / "figures" / f"phase{phase}" / f"{across}.png",
                                    figures / figure_name(phase, across)))  # fmt: skip
    if not plan.tables:
        raise PublishError(
            f"config file '{config}': nothing to publish: its study differs from {base}'s in "
            f"{', '.join(differences[:4])}{' ...' if len(differences) > 4 else ''} (only a part of that study "
            f"publishes the study's tables) and {results}/summary/ holds no {', '.join(ACROSS)} table"
        )
    for source, _ in plan.copies:
        if not source.is_file():
            raise PublishError(f"{source}: not found; allowed: a figure or table the finished part wrote (run its "
                               f"`make study CONFIG={config}` to the end)")  # fmt: skip
    phases = sorted(ran)
    commit, dirty = _commit_and_dirty(commits)
    record = {
        "part": name,
        "config": str(config),
        "results_dir": str(results),
        "phases": phases,
        "scenarios": [scenario for scenario, *_ in groups if scenario is not None],
        "covers": covers,
        "commit": commit,
        "dirty": dirty,
        "cpu": " and ".join(sorted(cpu for cpu in cpus if cpu)) or "not recorded",
        "published_at": io.source_commit(),
        "published_on": io.machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **benchmark_totals(results, phases),
        **({"scenarios_only": True} if scenarios_only else {}),
    }
    parts_path = summary / PARTS_FILE
    parts = []
    for old in read_parts(parts_path):  # what this part publishes leaves the older records; empty ones go
        if old["part"] == name:
            continue
        left = [unit for unit in old.get("covers", []) if unit not in covers]
        if left:
            parts.append({**old, "covers": left})
    plan.write()
    io.write_json({"parts": [*parts, record]}, parts_path)
    return record


# --------------------------------------------------------------------------- the README from the committed tables


def table_runs(provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The training runs behind a published table's learned rows, every phase's."""
    records = provenance.get("published")
    if not isinstance(records, Mapping):
        return []
    return [run for _, record in sorted(records.items()) for run in record.get("learned_runs") or []]


def table_origins(provenance: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Where a published table's learned rows were trained, per phase: the training runs' records (commit, machine)
    where every run of the phase has one, else the commit its tables were aggregated at; a table published before
    these records were kept: its own provenance (its commit, for every phase), as readme_results does."""
    records = provenance.get("published")
    if not isinstance(records, Mapping):
        return [dict(provenance)]
    origins = []
    for phase, record in sorted(records.items()):
        if not phase.isdigit():
            continue
        trained = [run.get("trained") or {} for run in record.get("learned_runs") or []]
        if trained and all(origin.get("commit") for origin in trained):
            origins += [{"phase": int(phase), **origin} for origin in trained]
        else:
            origins.append({"phase": int(phase), "commit": record.get("commit")})
    return origins


def _unrecorded(label: str, provenance: Mapping[str, Any], frame: pd.DataFrame) -> list[str]:
    """'study phase 1 (commit X)' for each phase of a table whose rows no recorded part published."""
    records = provenance.get("published")
    found = []
    for phase in _phases_of(frame) or ["all"]:  # a table without phases (tuning): one record, "all"
        record = records.get(str(phase)) if isinstance(records, Mapping) else None
        if record is None or record.get("part") is None:
            commit = (record or provenance).get("commit") or "not recorded"
            found.append(f"{label}{'' if phase == 'all' else f' phase {phase}'} (aggregated at commit {commit})")
    return found


def readme(
    summary: str | os.PathLike = SUMMARY_DIR,
    figures: str | os.PathLike = FIGURES_DIR,
    readme_path: str | os.PathLike = "README.md",
    page: str | os.PathLike = "docs/results.md",
    base: str | os.PathLike = BASE_CONFIG,
) -> tuple[list[Path], list[Path]]:
    """Rebuild the results section of `page` and the headline of `readme_path` from the committed tables under
    `summary` alone: the study's, each scenario's (the base config's workflow.scenarios, then any other a recorded
    part published) that is there, the tables across variants that are there, the parts behind them
    (parts.json) and the figures of `figures` they show (a figure not there is left out). Returns the files that
    changed and the figures left out."""
    from mec.variants import study_variants  # noqa: PLC0415

    summary, figures = Path(summary), Path(figures)
    base_cfg = _load(base)
    parts = read_parts(summary / PARTS_FILE)
    comparison, provenance = read_table(summary / "comparison.parquet",
                                        "the study's comparison table, published by `make publish CONFIG=...`",
                                        committed=True)  # fmt: skip
    unrecorded = _unrecorded("study", provenance, comparison)
    shown = [(None, p, stem) for p in _phases_of(comparison) for stem in SWEEP_FIGURES]
    runs = table_runs(provenance)
    headline = [(aggregate.STUDY, comparison, table_origins(provenance))]
    specs = study_variants(base_cfg)
    names = list(base_cfg.workflow.scenarios)
    names += sorted({s for p in parts for s in p.get("scenarios", []) if s not in names})
    scenarios = []
    for name in names:
        path = summary / name / "comparison.parquet"
        if not path.exists():
            continue
        table, own = read_table(path, f"scenario {name}'s comparison table", committed=True)
        records = [r for r in (own.get("published") or {}).values() if isinstance(r, Mapping)]
        description = next((r["description"] for r in records if r.get("description")), None)
        if description is None:
            description = specs[name].description if name in specs else ""
        scenario_runs = table_runs(own)
        scenarios.append((name, description, table, markdown.runs_sentence(scenario_runs)))
        headline.append((name, table, table_origins(own)))
        unrecorded += _unrecorded(name, own, table)
        shown += [(name, p, stem) for p in _phases_of(table) for stem in SWEEP_FIGURES]
    optional = {}
    for across, committed_name in ACROSS.items():
        path = summary / f"{committed_name}.parquet"
        if path.exists():
            optional[across], own = read_table(path, f"the committed {across} table", committed=True)
            unrecorded += _unrecorded(across, own, optional[across])
    tuning_keys = []
    if "tuning" in optional:
        tuning_keys = list(io.read_provenance(summary / f"{ACROSS['tuning']}.parquet")["runs"][0]["grid"])
    for across in ACROSS_FIGURES:  # in readme_inputs' order: pareto, then the comparisons
        if across in optional:
            shown += [(None, p, across) for p in _phases_of(optional[across])]
    shown_figures, missing = [], []
    for scenario, phase, stem in shown:
        path = figures / figure_name(phase, stem, scenario)
        if path.is_file():
            relative = Path(os.path.relpath(path, Path(page).parent)).as_posix()
            shown_figures.append((figure_caption(phase, stem, scenario), relative))
        else:
            missing.append(path)
    parts_text = markdown.parts_markdown(parts) if parts else ""
    if unrecorded:
        parts_text += ("\n" if parts_text else "") + (
            "Published before parts were recorded (no part, jobs or cost on record): " + "; ".join(unrecorded) + "."
        )
    source = f"`{summary.as_posix()}/`"
    text = markdown.readme_results(
        comparison, shown_figures, tuning_keys=tuning_keys, study=markdown.runs_sentence(runs), scenarios=scenarios,
        source=f"Generated by `make readme` from the committed tables under {source}", tables=f"{summary.as_posix()}/",
        parts_table=parts_text, **optional,
    )  # fmt: skip
    short = markdown.headline_markdown(headline, f"the committed tables under {source}", "`make readme`")
    try:
        changed = markdown.splice_files([
            (page, text, markdown.README_START, markdown.README_END),
            (readme_path, short, markdown.HEADLINE_START, markdown.HEADLINE_END),
        ])  # fmt: skip
    except FileNotFoundError as exc:
        raise PublishError(f"{exc.filename}: not found; allowed: a page with the generated section's markers") from None
    except ValueError as exc:  # a page without its markers (mec.markdown.spliced names it)
        raise PublishError(str(exc)) from None
    return changed, missing
