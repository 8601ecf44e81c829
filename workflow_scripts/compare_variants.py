"""Rule compare_variants: the learned policy of the study beside that of each variant of a comparison (ablations:
workflow.ablations; backends: workflow.backend_variants), per phase and N or K, with Student-t intervals over seeds.

Writes mec.aggregate.variant_comparison's long table (the learned summaries' rows with columns study and
description) and its Markdown view (mec.markdown.comparison_markdown: reward per slot, one column per study).
"""

import logging
from pathlib import Path

import mec_rule  # first of the project: puts mec on the path

from mec import aggregate, io, markdown

log = logging.getLogger("compare_variants")

TITLES = {"ablations": "Ablations", "backends": "Training backends"}


def main(smk) -> None:
    studies = smk.params.studies
    learned = [io.read_parquet(path, remove_if_corrupt=True) for path in smk.input.learned]
    table = aggregate.variant_comparison(studies, learned)
    provenance = {"studies": studies, "inputs": list(smk.input.learned)}
    io.write_parquet(table, smk.output.table, provenance)
    text = markdown.comparison_markdown(table, TITLES[smk.wildcards.comparison])
    io.atomic_write(smk.output.markdown, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    for study in studies:
        rows = table[(table["study"] == study["study"]) & (table["metric"] == "reward_per_slot")]
        log.info("%s (%s): %d sweep points", study["study"], study["description"], len(rows))


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
