"""Rule aggregate_pareto: the QoS-energy trade-off. For every energy weight of workflow.w_energy, the learned policy
trained at that weight (statistics over seeds) and every baseline scored with that weight (statistics over
evaluation episodes): mean QoS, energy per task and reward per slot with their CIs (mec.aggregate.pareto_table)."""

import logging

import mec_rule  # first of the project: puts mec on the path

from mec import aggregate, io

log = logging.getLogger("aggregate_pareto")


def main(smk) -> None:
    studies = smk.params.studies
    learned = [io.read_parquet(path, remove_if_corrupt=True) for path in smk.input.learned]
    baselines = [io.read_parquet(path, remove_if_corrupt=True) for path in smk.input.baselines]
    table = aggregate.pareto_table(studies, learned, baselines)
    provenance = {"studies": studies, "inputs": list(smk.input.learned) + list(smk.input.baselines)}
    io.write_parquet(table, smk.output.table, provenance)
    for study in studies:
        log.info("w_energy %g: %s (results/%s)", study["w_energy"], study["study"], study["variant_dir"] or "")
    log.info("wrote %d rows to %s", len(table), smk.output.table)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
