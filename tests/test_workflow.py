"""The Snakemake workflow end to end: lint and format, the tiny study (.test/config.yaml), the report, exactly which
jobs a config change reruns (dry runs), one-line rejection of bad configs, and killed jobs.

Every run happens in a temporary copy of the workflow files (the mec package is the installed one), so the tests
never touch the repository's results/ or .snakemake/, and the copied scripts keep their modification times: a
changed script would itself trigger reruns (Snakemake's `code` rerun trigger) and blur what a config change does.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mec import baselines, metrics
from mec.config import DEFAULT_CONFIG, config_from_dict
from mec.evaluation import evaluation_episodes, run_policy
from mec.plotting import FIGURE_METRICS
from mec.scenario import PhaseSetup

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "workflow_scripts", "config", "report", "profiles", ".test", "config.yaml")
TEST_CONFIG = REPO / ".test" / "config.yaml"
SNAKEMAKE_TIMEOUT_S = 300

EVAL_OUTPUTS = ("episodes.parquet", "summary.parquet")
SUMMARY = "results/summary/baselines.parquet"


def eval_outputs(phase: int, n: int) -> set[str]:
    return {f"results/phase{phase}/n{n}/baselines/{name}" for name in EVAL_OUTPUTS}


def figures(phases=(1, 2)) -> set[str]:
    return {f"results/figures/phase{p}/baselines_{m}.png" for p in phases for m in FIGURE_METRICS}


# --------------------------------------------------------------------------- helpers


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT_S,
        **popen,
    )


def deep_merge(base: dict, update: dict) -> dict:
    """Snakemake's merge of a --configfile over config.yaml: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def set_dotted(raw: dict, dotted: str, value) -> dict:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


def tiny_config(**changes) -> dict:
    """.test/config.yaml with dotted-key changes (keyword names use '__' for '.')."""
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    for key, value in changes.items():
        set_dotted(raw, key.replace("__", "."), value)
    return raw


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def pending_outputs(workdir: Path, configfile: Path) -> set[str]:
    """Output files a run with `configfile` would (re)create: the 'update pending' rows of `snakemake --summary`."""
    result = snakemake(workdir, "--cores", "1", "--configfile", str(configfile), "--summary")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    header = next(row for row in rows if row[0] == "output_file")
    table = [dict(zip(header, row)) for row in rows if len(row) == len(header) and row != header]
    assert table, result.stdout
    return {row["output_file"] for row in table if row["plan"] == "update pending"}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A complete run of the tiny study in a temporary copy of the workflow."""
    workdir = copy_workflow(tmp_path_factory.mktemp("study"))
    result = snakemake(workdir, "--cores", "2", "--configfile", ".test/config.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


@pytest.fixture(scope="module")
def merged_test_config() -> dict:
    return deep_merge(yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load(TEST_CONFIG.read_text()))


# --------------------------------------------------------------------------- hygiene


def test_lint_and_snakefmt_are_clean(tmp_path):
    workdir = copy_workflow(tmp_path)
    lint = snakemake(workdir, "--lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules/"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def _schema_keys(schema: dict) -> dict:
    return {name: _schema_keys(sub) if "properties" in sub else None for name, sub in schema["properties"].items()}


def _config_keys(section) -> dict:
    return {
        field.name: (
            _config_keys(getattr(section, field.name))
            if dataclasses.is_dataclass(getattr(section, field.name)) and field.name != "reward"
            else None
        )
        for field in dataclasses.fields(section)
    }


def test_schema_covers_exactly_the_keys_of_mec_config():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    keys = _schema_keys(schema)
    reward = keys.pop("reward")
    expected = _config_keys(DEFAULT_CONFIG)
    expected.pop("reward")
    # Ranges are leaves ({low, high} or [low, high]) in the schema and dataclasses in mec.config.
    for task_or_ue in ("task", "ue"):
        for name, sub in expected["scenario"][task_or_ue].items():
            if sub is not None:
                expected["scenario"][task_or_ue][name] = None
    assert keys == expected
    assert set(reward) == {"preset", "w_qos", "w_energy_per_j"}


def test_default_study_plans_one_job_per_sweep_point(tmp_path):
    """The full config.yaml: every N and K gets its baseline job; nothing runs (dry run)."""
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "-n", "--cores", "1", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    counts = dict(
        (parts[0], int(parts[1]))
        for parts in (line.split() for line in result.stdout.splitlines())
        if len(parts) == 2 and parts[1].isdigit()
    )
    points = len(DEFAULT_CONFIG.phase1.n_ue) + len(DEFAULT_CONFIG.phase2.n_clusters)
    assert counts["evaluate_baselines"] == points
    assert counts["aggregate_metrics"] == 1
    assert counts["plot_baselines"] == 2 * len(FIGURE_METRICS)


# --------------------------------------------------------------------------- the tiny study


def test_tiny_study_writes_every_output(study):
    for phase, n in ((1, 2), (1, 3), (2, 2), (2, 3)):
        for path in eval_outputs(phase, n):
            assert (study / path).stat().st_size > 0
    assert (study / SUMMARY).exists()
    raw = yaml.safe_load(TEST_CONFIG.read_text())["plotting"]
    width, height = DEFAULT_CONFIG.plotting.width_in, DEFAULT_CONFIG.plotting.height_in
    for path in figures():
        assert (study / path).stat().st_size > 10_000, path
        assert png_size(study / path) == (round(width * raw["dpi"]), round(height * raw["dpi"]))
    assert not list(study.glob("results/**/*.tmp")), "temporary files left behind"


def test_episode_tables_hold_every_policy_and_slot(study, merged_test_config):
    cfg = config_from_dict(merged_test_config)
    ev = cfg.evaluation
    for phase, n in ((1, 3), (2, 2)):
        frame = pd.read_parquet(study / f"results/phase{phase}/n{n}/baselines/episodes.parquet")
        assert list(frame.columns) == [*metrics.SLOT_COLUMNS, "policy"]
        assert sorted(frame["policy"].unique()) == sorted(baselines.policy_names(phase))
        assert len(frame) == len(baselines.policy_names(phase)) * ev.episodes * ev.slots
        summary = pd.read_parquet(study / f"results/phase{phase}/n{n}/baselines/summary.parquet")
        assert sorted(summary["policy"]) == sorted(baselines.policy_names(phase))


@pytest.mark.parametrize(("phase", "n", "policy"), [(1, 2, "all-local"), (2, 3, "greedy-edf-urgency")])
def test_summary_matches_a_direct_evaluation(study, merged_test_config, phase, n, policy):
    """The workflow's numbers are what mec.evaluation gives for the same config, episodes and policy."""
    cfg = config_from_dict(merged_test_config)
    setup = PhaseSetup.from_config(cfg, phase, n)
    ev = cfg.evaluation
    frame = run_policy(
        cfg,
        setup,
        baselines.make_policy(policy, phase),
        evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed),
    )
    expected = metrics.summarise(frame)

    job = pd.read_parquet(study / f"results/phase{phase}/n{n}/baselines/summary.parquet").set_index("policy")
    assert job.loc[policy, "reward_per_slot"] == pytest.approx(expected["reward_per_slot"], rel=1e-12)
    assert job.loc[policy, "energy_per_task_j"] == pytest.approx(expected["energy_per_task_j"], rel=1e-12)

    table = pd.read_parquet(study / SUMMARY)
    rows = table[(table["phase"] == phase) & (table["n"] == n) & (table["policy"] == policy)].set_index("metric")
    assert set(rows.index) == set(metrics.SUMMARY_KEYS)
    # Every episode has the same number of slots and tasks, so the mean over episodes is the pooled value.
    for name in ("reward_per_slot", "mean_qos", "deadline_met_fraction", "energy_per_task_j"):
        assert rows.loc[name, "mean"] == pytest.approx(expected[name], rel=1e-9)
    assert (rows["samples"] == ev.episodes).all()
    assert (rows["mean_ci_low"] <= rows["mean"] + 1e-12).all()
    assert (rows["mean"] <= rows["mean_ci_high"] + 1e-12).all()


def test_oracle_beats_every_heuristic_per_slot(study):
    """Every phase-1 heuristic splits the spectrum equally, where the oracle is optimal slot by slot."""
    table = pd.read_parquet(study / SUMMARY)
    reward = table[(table["phase"] == 1) & (table["metric"] == "reward_per_slot")]
    for n, rows in reward.groupby("n"):
        by_policy = rows.set_index("policy")["mean"]
        assert by_policy["oracle"] >= by_policy.drop("oracle").max() - 1e-9, n


def test_report_bundles_the_figures(study, tmp_path):
    report = tmp_path / "report.html"
    result = snakemake(study, "--configfile", ".test/config.yaml", "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "Phase 2 baselines: reward per slot against the number of clusters K." in html
    assert "Hierarchical multi-agent reinforcement learning" in html


# --------------------------------------------------------------------------- what a change reruns


def _rerun_cases():
    all_evals = set().union(*(eval_outputs(p, n) for p in (1, 2) for n in (2, 3)))
    phase2_evals = eval_outputs(2, 2) | eval_outputs(2, 3)
    downstream = {SUMMARY} | figures()
    return [
        pytest.param({}, set(), id="nothing-changed"),
        pytest.param({"plotting__dpi": 90}, figures(), id="plot-style-reruns-only-plots"),
        pytest.param({"plotting__style": "ggplot"}, figures(), id="plot-theme-reruns-only-plots"),
        pytest.param({"statistics__ci_level": 0.9}, downstream, id="statistics-rerun-aggregate-and-plots"),
        pytest.param({"phase2__n_clusters": [2, 3, 4]}, eval_outputs(2, 4) | downstream, id="new-K-adds-only-its-jobs"),
        pytest.param({"phase1__n_ue": [2]}, downstream, id="dropped-N-reruns-only-aggregate-and-plots"),
        pytest.param({"scenario__server__cpu_ghz": 5.0}, all_evals | downstream, id="scenario-reruns-both-phases"),
        pytest.param({"phase2__theta_min": 0.02}, phase2_evals | downstream, id="phase2-reruns-only-phase2"),
        pytest.param({"training__iterations": 3}, set(), id="training-leaves-baselines-alone"),
        pytest.param({"workflow__seeds": [0, 1]}, set(), id="seeds-leave-baselines-alone"),
        pytest.param({"workflow__phases": [1]}, {SUMMARY} | figures((1,)), id="dropped-phase-reruns-only-downstream"),
    ]


@pytest.mark.parametrize(("changes", "expected"), _rerun_cases())
def test_a_config_change_reruns_exactly_the_affected_jobs(study, tmp_path, changes, expected):
    configfile = write_config(tmp_path / "changed.yaml", tiny_config(**changes))
    assert pending_outputs(study, configfile) == expected


def test_writing_out_a_default_value_reruns_nothing(study, tmp_path):
    """Params come from the validated config with defaults filled in, not from the raw YAML."""
    raw = tiny_config(scenario__server__cpu_ghz=DEFAULT_CONFIG.scenario.server.cpu_ghz)
    raw["reward"] = {"preset": "study"}  # the same weights as config.yaml's, by name
    assert pending_outputs(study, write_config(tmp_path / "same.yaml", raw)) == set()


def test_slurm_profile_plans_the_same_jobs(study, tmp_path):
    configfile = write_config(tmp_path / "changed.yaml", tiny_config(plotting__dpi=90))
    result = snakemake(study, "-n", "--workflow-profile", "profiles/slurm", "--configfile", str(configfile))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plot_baselines" in result.stdout and "evaluate_baselines" not in result.stdout


# --------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        pytest.param({"phase2__n_clusters": [200]}, "phase2.n_clusters", id="K-above-n_users"),
        pytest.param({"phase2__n_cluster": [2]}, "phase2.n_cluster", id="unknown-key"),
        pytest.param({"evaluation__episodes": 0}, "evaluation.episodes", id="schema-minimum"),
        pytest.param({"phase1__theta_min": 0.5}, "phase1.theta_min", id="infeasible-floor"),
    ],
)
def test_a_bad_config_stops_with_one_line_before_any_job(tmp_path, changes, key):
    workdir = copy_workflow(tmp_path / "wf")
    configfile = write_config(tmp_path / "bad.yaml", tiny_config(**changes))
    result = snakemake(workdir, "--cores", "2", "--configfile", str(configfile))
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "rror" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith("Error: invalid config: ") and f"'{key}'" in errors[0]
    assert not (workdir / "results").exists()


# --------------------------------------------------------------------------- killed jobs


def test_a_job_killed_mid_way_leaves_no_output_snakemake_would_trust(tmp_path):
    """SIGKILL Snakemake and its job after the job wrote one of its two outputs: that file is on disk, yet a later
    run plans the job again (Snakemake marked it incomplete when it started), and no partial file is left under an
    output's name (atomic writes)."""
    workdir = copy_workflow(tmp_path)
    script = workdir / "workflow_scripts" / "evaluate_baselines.py"
    last_write = "    io.write_parquet(pd.DataFrame(summaries), smk.output.summary, provenance)"
    assert last_write in script.read_text()
    # This copy only: hold the job between its two writes so the kill lands mid-way, every time.
    script.write_text(script.read_text().replace(last_write, "    time.sleep(600)\n" + last_write))
    target = "results/phase2/n3/baselines/summary.parquet"
    first = workdir / "results/phase2/n3/baselines/episodes.parquet"
    process = subprocess.Popen(
        # The target goes first: --configfile takes every following name as a config file.
        [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", ".test/config.yaml"],
        cwd=workdir,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not first.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.exists() and process.poll() is None, "the job did not reach its first write"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert not (workdir / target).exists()
    pd.read_parquet(first)  # complete, thanks to the atomic write, yet not trusted:
    assert snakemake(workdir, "--unlock").returncode == 0  # the lock a crash leaves behind
    episodes = str(first.relative_to(workdir))
    strict = snakemake(workdir, episodes, "-n", "--workflow-profile", "none", "--configfile", ".test/config.yaml")
    assert strict.returncode != 0
    output = strict.stdout + strict.stderr
    assert "Incomplete files:" in output and episodes in output.split("Incomplete files:")[1]
    # With the default profile (rerun-incomplete) the job simply runs again.
    assert eval_outputs(2, 3) <= pending_outputs(workdir, workdir / ".test/config.yaml")
