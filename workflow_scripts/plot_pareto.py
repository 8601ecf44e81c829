"""Rule plot_pareto: mean QoS against energy per task of the learned policy at every energy weight beside the
baselines, one panel per N or K of the phase (mec.plotting.pareto_figure), written as a PNG atomically."""

import logging

import mec_rule  # first of the project: puts mec on the path

from mec import io, plotting

log = logging.getLogger("plot_pareto")


def main(smk) -> None:
    look = smk.params.plotting
    fig = plotting.pareto_figure(
        io.read_parquet(smk.input.table, remove_if_corrupt=True),
        int(smk.wildcards.phase),
        style=look["style"],
        width_in=look["width_in"],
        height_in=look["height_in"],
    )
    plotting.save_figure(fig, smk.output.figure, dpi=look["dpi"])
    log.info("wrote %s", smk.output.figure)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
