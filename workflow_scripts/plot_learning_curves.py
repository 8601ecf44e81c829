"""Rule plot_learning_curves: the learning curves of every seed of one sweep point with the mean over seeds and its
CI band (the statistics of learning_curves.parquet, mec.aggregate), beside the point's references (the upper bound,
the oracle, local search, the best heuristic; mec.plotting.curve_references), written as a PNG atomically."""

import logging

import mec_rule  # first of the project: puts mec on the path

import pandas as pd

from mec import aggregate, io, plotting
from mec.evaluation import stored_slot_bounds
from mec.runs import check_metrics_file

log = logging.getLogger("plot_learning_curves")


def main(smk) -> None:
    look, stats = smk.params.plotting, smk.params.statistics
    phase = int(smk.wildcards.phase)
    runs = pd.concat(
        [check_metrics_file(path, remove_if_bad=True).assign(seed=io.read_provenance(path)["seed"])
         for path in smk.input.metrics],
        ignore_index=True,
    )
    curves = aggregate.summarise_samples(
        aggregate.learning_curve_samples(runs),
        by=["iteration"],
        metric_names=aggregate.CURVE_METRICS,
        ci_level=stats["ci_level"],
        resamples=stats["bootstrap_resamples"],
        seed=stats["seed"],
    )
    config = io.read_provenance(smk.input.metrics[0])["config"]
    slots = io.read_parquet(smk.input.baselines, remove_if_corrupt=True)
    references = plotting.curve_references(slots, stored_slot_bounds(slots))
    fig = plotting.learning_curves_figure(
        runs,
        curves,
        phase,
        int(smk.wildcards.n),
        n_ue=config["phase2"]["n_users"] if phase == 2 else None,
        style=look["style"],
        width_in=look["width_in"],
        height_in=look["height_in"],
        references=references,
    )
    plotting.save_figure(fig, smk.output.figure, dpi=look["dpi"])
    log.info("wrote %s", smk.output.figure)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
