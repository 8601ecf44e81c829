"""Rule readme_results: the results section of docs/results.md and the README's headline table from the summary
tables (mec.markdown.readme_results, mec.markdown.headline_markdown).

Writes results/README_results.md and results/README_headline.md, copies the figures the section shows into
docs/results/ (results/ is not in git, the page must show them anywhere; each copy atomic, under the name `mec
publish` gives it, other files there left alone), then splices the section into docs/results.md and the headline
into README.md between their markers (mec.markdown.splice_files: both files are checked before either is written,
each is replaced atomically, and splicing the same text twice changes nothing). Neither page nor docs/results/ is a
rule output: Snakemake deletes outputs before a job runs and after it fails. `make readme` (mec.publish.readme) builds
the same section from the committed tables under docs/summary/ instead.
"""

import logging
import os
import shutil
from pathlib import Path

import mec_rule  # first of the project: puts mec on the path

from mec import io, markdown, publish

log = logging.getLogger("readme_results")


def scenario_of(path: Path) -> str | None:
    """The variant a figure belongs to (results/variants/<name>/figures/...), None for the study's own."""
    parts = path.parts
    return parts[parts.index("variants") + 1] if "variants" in parts[:-1] else None


def phase_of(path: Path) -> int:
    """1 for results/figures/phase1/sweep_reward_per_slot.png."""
    return int(path.parent.name.removeprefix("phase"))


def caption(path: Path) -> str:
    """'Phase 1: reward per slot' for results/figures/phase1/sweep_reward_per_slot.png ('Phase 1, scenario
    tight_deadlines: ...' for a scenario's figure): mec.publish.figure_caption, as `make readme` captions it."""
    return publish.figure_caption(phase_of(path), path.stem, scenario_of(path))


def learned_runs(comparison_path: str) -> list[dict]:
    """The training runs behind the comparison table's learned rows, from the provenance of the evaluations it was
    built from (mec.publish.learned_runs, which `make publish` keeps in the committed tables)."""
    return publish.learned_runs(io.read_provenance(comparison_path), Path(comparison_path))


def origins(runs: list[dict], comparison_path: str) -> list[dict]:
    """The training runs' records of where they were trained (commit and CPU model), or the comparison table's own
    provenance where the runs recorded none."""
    trained = [{"phase": run["phase"], **(run.get("trained") or {})} for run in runs]
    if trained and all(origin.get("commit") for origin in trained):
        return trained
    return [io.read_provenance(comparison_path)]


def main(smk) -> None:
    inputs = smk.input
    optional = {key: io.read_parquet(inputs[key], remove_if_corrupt=True)
                for key in ("ablations", "backends", "pareto", "tuning")
                if key in inputs.keys()}  # fmt: skip
    folder = Path(smk.params.figures)
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for source in map(Path, inputs.figures):
        target = folder / publish.figure_name(phase_of(source), source.stem, scenario_of(source))
        io.atomic_write(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
        page = os.path.relpath(target, Path(smk.params.page).parent)
        figures.append((caption(source), Path(page).as_posix()))
    tuning_keys = []
    if "tuning" in optional:
        tuning_keys = list(io.read_provenance(inputs["tuning"])["runs"][0]["grid"])
    runs = learned_runs(inputs.comparison)
    comparison = io.read_parquet(inputs.comparison, remove_if_corrupt=True)
    headline = [(markdown.aggregate.STUDY, comparison, origins(runs, inputs.comparison))]
    scenarios = []
    for spec, path in zip(smk.params.scenarios, inputs.scenarios, strict=True):
        table, scenario_runs = io.read_parquet(path, remove_if_corrupt=True), learned_runs(path)
        scenarios.append((spec["name"], spec["description"], table, markdown.runs_sentence(scenario_runs)))
        headline.append((spec["name"], table, origins(scenario_runs, path)))
    text = markdown.readme_results(
        comparison, figures, tuning_keys=tuning_keys, study=markdown.runs_sentence(runs), scenarios=scenarios,
        **optional,
    )
    short = markdown.headline_markdown(headline, "`results/summary/`")
    io.atomic_write(smk.output.markdown, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    io.atomic_write(smk.output.headline, lambda tmp: Path(tmp).write_text(short, encoding="utf-8"))
    changed = markdown.splice_files([
        (smk.params.page, text, markdown.README_START, markdown.README_END),
        (smk.params.readme, short, markdown.HEADLINE_START, markdown.HEADLINE_END),
    ])  # fmt: skip
    log.info("wrote %s and %s (%s); updated: %s", smk.output.markdown, smk.output.headline,
             ", ".join(["study", *optional]), ", ".join(map(str, changed)) or "nothing")  # fmt: skip


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
