"""Why SLURM killed a workflow job, in one line: read from Snakemake's log and the failed jobs' SLURM logs.

Snakemake's own error block gives the rule and SLURM's job state (FAILED, TIMEOUT, OUT_OF_MEMORY); the reason a
job was killed (e.g. "Exceeded job memory limit" where memory is enforced without cgroups) is in the job's SLURM log.
The Snakefile's onerror handler prints `failure_lines` so a user sees the rule and the resource to raise.
"""

from __future__ import annotations

import re
from pathlib import Path

# What SLURM writes into a job's own log when it kills the job for a resource, by the rule resource it exceeded.
SLURM_KILL_REASONS = {
    "mem_mb": ("exceeded job memory limit", "out_of_memory", "oom-kill", "oom_kill"),
    "runtime": ("due to time limit", "'timeout'"),
}


def failure_lines(snakemake_log: str | Path | list[str | Path]) -> list[str]:
    """One line per job that SLURM killed for exceeding a resource request, naming the rule, the job's outputs and
    the resource, read from Snakemake's log (its "Error in rule" blocks) and each failed job's SLURM log.

    `snakemake_log` is what Snakemake passes to the onerror handler: a list of log file paths (Snakemake 9; one
    per log handler that writes a file), or a single path. Logs that cannot be read are skipped.
    """
    paths = [snakemake_log] if isinstance(snakemake_log, (str, Path)) else list(snakemake_log or [])
    texts = []
    for path in paths:
        try:
            texts.append(Path(path).read_text(errors="replace"))
        except OSError:
            continue
    text = "\n".join(texts)
    lines = []
    starts = [m.start() for m in re.finditer(r"Error in rule \w+:", text)]
    for block in (text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])):
        head = re.match(r"Error in rule (\w+):", block)
        slurm_log = re.search(r"(\S+/slurm_logs/\S+?\.log)", block)
        if not head or not slurm_log:
            continue
        try:
            details = Path(slurm_log.group(1)).read_text(errors="replace").lower()
        except OSError:
            details = ""
        status = re.search(r"SLURM status is: ('\w+')", block)
        details += " " + (status.group(1).lower() if status else "")
        output = re.search(r"\n\s+output: ([^,\n]+)", block)
        job = re.search(r"SLURM-job '(\d+)'", block)
        for resource, marks in SLURM_KILL_REASONS.items():
            if any(mark in details for mark in marks):
                what = (
                    "memory request (mem_mb)"
                    if resource == "mem_mb"
                    else "time request (runtime, minutes)"
                )
                lines.append(
                    f"rule {head.group(1)} ({output.group(1) if output else 'no output'}; SLURM job "
                    f"{job.group(1) if job else '?'}) was killed for exceeding its {what}: raise it with "
                    f"--set-resources {head.group(1)}:{resource}=<value> or in the profile's set-resources"
                )
                break
    return lines
