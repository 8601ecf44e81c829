"""Rule plot_sweep: one metric of one phase against N or K, the learned policy beside every baseline and the
oracle, written as a PNG atomically."""

import logging

import mec_rule  # first of the project: puts mec on the path

from mec import io, plotting
from mec.config import variant_of_folder

log = logging.getLogger("plot_sweep")


def main(smk) -> None:
    look = smk.params.plotting
    fig = plotting.sweep_figure(
        io.read_parquet(smk.input.baselines, remove_if_corrupt=True),
        int(smk.wildcards.phase),
        smk.wildcards.metric,
        learned=io.read_parquet(smk.input.learned, remove_if_corrupt=True),
        style=look["style"],
        width_in=look["width_in"],
        height_in=look["height_in"],
        scenario=variant_of_folder(smk.wildcards.variant_dir),
    )
    plotting.save_figure(fig, smk.output.figure, dpi=look["dpi"])
    log.info("wrote %s", smk.output.figure)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
