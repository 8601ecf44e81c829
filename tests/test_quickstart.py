"""The README's quick start, command for command as it is written there, in a fresh copy of the working tree: the
tiny study, one `mec train`, one `mec evaluate` of its best checkpoint, and `make report` for the tiny study's
config, whose report lands in that config's own workflow.results_dir (results-test/), not in results/.

Slow (the tiny study trains both phases; a few minutes on 2 cores), so `make test` runs it and `make test-fast`
does not. The copy shares the project's .venv (a link), which must be current: the test refuses to let `make` reinstall
it from the copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
COMMAND_TIMEOUT_S = 900


def quick_start_commands(text: str) -> list[str]:
    """The command lines of the first bash block under '## Quick start', comments removed."""
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, "no bash block in the README's quick start"
    lines = [line.split(" #")[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_quick_start_is_the_tiny_study_a_training_an_evaluation_and_the_report():
    commands = quick_start_commands(README.read_text(encoding="utf-8"))
    assert [c.split()[:2] for c in commands] == [
        ["make", "study"], [".venv/bin/mec", "train"], [".venv/bin/mec", "evaluate"], ["make", "report"]
    ]  # fmt: skip
    assert all("CONFIG=.test/config.yaml" in c for c in commands if c.startswith("make"))


def clean_tree(dest: Path) -> Path:
    """The files git tracks or would track (no results, no runs, no caches), modification times kept, and a link to
    the project's .venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def test_every_quick_start_command_runs_as_written_from_a_clean_tree(tmp_path):
    tree = clean_tree(tmp_path / "clone")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `make venv` up to date: the commands must not reinstall the shared venv from the copy.
    assert subprocess.run(["make", "-q", "venv"], cwd=tree, env=env).returncode == 0, "run `make venv` first"
    results = yaml.safe_load((tree / ".test" / "config.yaml").read_text())["workflow"]["results_dir"]
    assert results != "results" and not (tree / results).exists()
    outputs = []
    for command in quick_start_commands(README.read_text(encoding="utf-8")):
        proc = subprocess.run(["bash", "-c", command], cwd=tree, env=env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)  # fmt: skip
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    # the tiny study's summaries, in its own results folder
    assert (tree / results / "summary" / "comparison.parquet").is_file()
    # the training run and the evaluation of its best checkpoint
    assert (tree / "runs" / "quickstart" / "checkpoints" / "best").is_dir()
    evaluated = json.loads(outputs[2].strip().splitlines()[-1])
    assert evaluated["policy"].startswith("mappo") and evaluated["phase"] == 1 and evaluated["n_ue"] == 3
    assert 0 < evaluated["reward_per_slot"] < 3  # at most 1 per UE and slot, with w_qos = 1
    # the report, in the config's own results folder and nowhere else
    report = tree / results / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    assert not (tree / "results").exists()
