"""What every workflow script shares; each imports it before anything of the project.

Snakemake puts this folder on a script's sys.path. Importing this module puts the repository's mec package first on
the path too (whichever environment runs the script: the .venv, or the rule's conda env without the package
installed) and makes matplotlib headless (a cluster node has no display); it imports neither numpy nor
matplotlib, so a script can still set its thread count first. `run` is every script's entry point: the job's
log file (mec.io.log_to_file: every record and any uncaught error), then the script's `main(snakemake)`.
"""

import os
import sys
from pathlib import Path

REPOSITORY = str(Path(__file__).resolve().parent.parent)
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)
os.environ["MPLBACKEND"] = "Agg"


def run(main, smk) -> None:
    """The job of a rule: its log at smk.log[0], then `main(smk)`. SIGINT (Ctrl-C of the workflow) or SIGTERM ends
    it in one line, on stderr and in its log, exit 130 or 143 (mec.interrupt); its outputs are whole or absent."""
    import logging  # noqa: PLC0415

    from mec import interrupt, io  # noqa: PLC0415 - after the path is set

    io.log_to_file(smk.log[0])
    with interrupt.stop_on_signals(lambda: "the job did not finish; rerun the workflow to run it again",
                                   echo=logging.getLogger("mec").error):  # fmt: skip
        main(smk)
