"""Rule plot_relative_sweep: what a reader compares along a phase's sweep (percentage of the oracle, gain per UE over
all-local) from the comparison table, with the raw reward as a secondary panel, written as a PNG atomically."""

import logging

import mec_rule  # first of the project: puts mec on the path

from mec import io, plotting
from mec.config import variant_of_folder

log = logging.getLogger("plot_relative_sweep")


def main(smk) -> None:
    look = smk.params.plotting
    comparison = io.read_parquet(smk.input.comparison, remove_if_corrupt=True)
    fig = plotting.relative_sweep_figure(comparison, int(smk.wildcards.phase), style=look["style"],
                                         width_in=look["width_in"], height_in=look["height_in"],
                                         scenario=variant_of_folder(smk.wildcards.variant_dir))  # fmt: skip
    plotting.save_figure(fig, smk.output.figure, dpi=look["dpi"])
    log.info("wrote %s", smk.output.figure)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
