"""Rule readme_results: the README's results section from the summary tables (mec.markdown.readme_results).

Writes results/README_results.md, copies the figures it shows into docs/results/ (results/ is not in git, the README
must show them anywhere; each copy atomic, other files there left alone), then splices the section into README.md
between its markers, atomically (mec.markdown.splice_readme; splicing the same section twice changes nothing).
Neither README.md nor docs/results/ is a rule output: Snakemake deletes outputs before a job runs and after it fails.
"""

import logging
import shutil
from pathlib import Path

import mec_rule  # first of the project: puts mec on the path

from mec import io, markdown

log = logging.getLogger("readme_results")


def scenario_of(path: Path) -> str | None:
    """The variant a figure belongs to (results/variants/<name>/figures/...), None for the study's own."""
    parts = path.parts
    return parts[parts.index("variants") + 1] if "variants" in parts[:-1] else None


def caption(path: Path) -> str:
    """'Phase 1: reward per slot' for results/figures/phase1/sweep_reward_per_slot.png ('Phase 1, scenario
    tight_deadlines: ...' for a scenario's figure)."""
    phase = path.parent.name.replace("phase", "Phase ")
    scenario = scenario_of(path)
    if scenario is not None:
        phase = f"{phase}, scenario {scenario}"
    relative = ("learned vs baselines, % of the upper bound's reward" if phase.startswith("Phase 1")
                else "learned vs baselines, gain per UE over all-local (local search: the ceiling)")
    names = {"sweep_relative": relative,
             "sweep_reward_per_slot": "learned vs baselines, reward per slot", "pareto": "QoS-energy trade-off",
             "ablations": "ablations, reward per slot", "backends": "training backends, reward per slot"}  # fmt: skip
    return f"{phase}: {names.get(path.stem, path.stem)}"


def learned_runs(comparison_path: str) -> list[dict]:
    """The provenance of every learned-policy evaluation the comparison table was built from."""
    runs = [io.read_provenance(path) for path in io.read_provenance(comparison_path).get("inputs", [])]
    return [run for run in runs if "training_seed" in run]


def main(smk) -> None:
    inputs = smk.input
    optional = {key: io.read_parquet(inputs[key], remove_if_corrupt=True)
                for key in ("ablations", "backends", "pareto", "tuning")
                if key in inputs.keys()}  # fmt: skip
    folder = Path(smk.params.figures)
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for source in map(Path, inputs.figures):
        scenario = scenario_of(source)
        target = folder / f"{'' if scenario is None else scenario + '_'}{source.parent.name}_{source.name}"
        io.atomic_write(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
        figures.append((caption(source), target.as_posix()))
    tuning_keys = []
    if "tuning" in optional:
        tuning_keys = list(io.read_provenance(inputs["tuning"])["runs"][0]["grid"])
    study = markdown.runs_sentence(learned_runs(inputs.comparison))
    scenarios = [(spec["name"], spec["description"], io.read_parquet(path, remove_if_corrupt=True),
                  markdown.runs_sentence(learned_runs(path)))
                 for spec, path in zip(smk.params.scenarios, inputs.scenarios, strict=True)]  # fmt: skip
    text = markdown.readme_results(
        io.read_parquet(inputs.comparison, remove_if_corrupt=True), figures, tuning_keys=tuning_keys, study=study,
        scenarios=scenarios, **optional,
    )
    io.atomic_write(smk.output.markdown, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    changed = markdown.splice_readme(smk.params.readme, text)
    log.info("wrote %s (%s); %s %s", smk.output.markdown, ", ".join(["study", *optional]),
             "updated" if changed else "unchanged:", smk.params.readme)  # fmt: skip


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
