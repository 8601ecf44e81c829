"""Rule plot_comparison: reward per slot against N or K of the study's learned policy and of each variant of a
comparison (ablations, backends) with their t-intervals, beside the study's oracle, local search and best
heuristic (mec.plotting.comparison_figure), written as a PNG atomically."""

import logging

import mec_rule  # first of the project: puts mec on the path

from mec import io, plotting

log = logging.getLogger("plot_comparison")

TITLES = {"ablations": "ablations vs the study", "backends": "training backends"}


def main(smk) -> None:
    look = smk.params.plotting
    fig = plotting.comparison_figure(
        io.read_parquet(smk.input.table, remove_if_corrupt=True),
        int(smk.wildcards.phase),
        title=TITLES[smk.wildcards.comparison],
        baselines=io.read_parquet(smk.input.baselines, remove_if_corrupt=True),
        style=look["style"],
        width_in=look["width_in"],
        height_in=look["height_in"],
    )
    plotting.save_figure(fig, smk.output.figure, dpi=look["dpi"])
    log.info("wrote %s", smk.output.figure)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
