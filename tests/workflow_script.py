"""Running a rule's script in the test process, as Snakemake runs it: the `snakemake` object in its globals and
workflow_scripts/ on sys.path (where Snakemake puts a script's own folder), minus the __main__ block that sends this
process's output into the job's log."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow_scripts"


def run_workflow_script(name: str, smk) -> None:
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    script = runpy.run_path(str(SCRIPTS / f"{name}.py"), init_globals={"snakemake": smk}, run_name="workflow_script")
    script["main"](smk)
