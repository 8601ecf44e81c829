"""The Snakemake workflow end to end: lint and format, the tiny study (.test/config.yaml) with training, the
report, exactly which jobs a config change reruns (dry runs), one-line rejection of bad configs, and killed jobs
(a killed evaluation is not trusted; a killed training job resumes from its latest checkpoint).

Every run happens in a temporary copy of the workflow files (the mec package is the installed one), so the tests
never touch the repository's results/ or .snakemake/, and the copied scripts keep their modification times: a
changed script would itself trigger reruns (Snakemake's `code` rerun trigger) and blur what a config change does.
One run of the whole tiny study (the module-scoped `study` fixture, about two minutes on 2 cores) serves every test
that reads its outputs or plans a rerun from them.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from mec import aggregate, io, markdown, metrics
from mec.config import (
    DEFAULT_CONFIG,
    config_from_dict,
    config_to_dict,
    json_schema,
    read_config_file,
    schema_text,
    set_dotted,
)
from mec.evaluation import BOUND_COLUMN, evaluation_episodes, make_policy, run_policy
from mec.plotting import FIGURE_METRICS, SCHEDULE_FIGURE, learning_figure_names
from mec.policies import policy_names
from mec.scenario import PhaseSetup

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "workflow_scripts", "config", "report", "profiles", ".test", "config.yaml")
TEST_CONFIG = REPO / ".test" / "config.yaml"
# A guard against a hung run, not a speed target: the tiny study (both phases and both scenarios) takes a few
# minutes on 2 idle cores, several times that beside other work.
SNAKEMAKE_TIMEOUT_S = 900
# The tiny study's outputs folder (its workflow.results_dir), apart from the default study's results/.
RESULTS = yaml.safe_load(TEST_CONFIG.read_text())["workflow"]["results_dir"]

# The tiny study's sweep: N in {2, 3}, K in {2, 3}, seed 0 (.test/config.yaml).
POINTS = ((1, 2), (1, 3), (2, 2), (2, 3))
PHASE1_N = (2, 3)
PHASE2_K = (2, 3)
SEEDS = (0,)
SUMMARY = f"{RESULTS}/summary/baselines.parquet"
LEARNED_SUMMARIES = {f"{RESULTS}/summary/{name}.parquet"
                     for name in ("learned", "learned_seeds", "learning_curves", "comparison")}  # fmt: skip
LEARNED_SUMMARIES.add(f"{RESULTS}/summary/comparison.html")  # the README's tables, for the HTML report
LEARNED_SUMMARIES.add(f"{RESULTS}/summary/marl_eval.json")  # the per-episode results in marl-eval's layout
SUMMARIES = {SUMMARY} | LEARNED_SUMMARIES


def eval_outputs(phase: int, n: int) -> set[str]:
    """Outputs of evaluate_baselines at one sweep point."""
    return {f"{RESULTS}/phase{phase}/n{n}/baselines/{name}" for name in ("episodes.parquet", "summary.parquet")}


def run_folder(phase: int, n: int, seed: int) -> str:
    return f"{RESULTS}/phase{phase}/n{n}/seed{seed}"


def train_outputs(phase: int, n: int, seed: int) -> set[str]:
    """The training job's one output; nothing in its run folder (run/) is an output."""
    return {f"{run_folder(phase, n, seed)}/metrics.parquet"}


def policy_outputs(phase: int, n: int, seed: int) -> set[str]:
    """Outputs of evaluate_policy for one training job."""
    return {f"{run_folder(phase, n, seed)}/eval/{name}" for name in ("episodes.parquet", "schedule.parquet")}


def learning_figures(phase: int, n: int, seed: int) -> set[str]:
    folder = f"{RESULTS}/figures/phase{phase}/n{n}/seed{seed}"
    return {f"{folder}/{name}_over_learning.png" for name in learning_figure_names(phase)}


def schedule_figure(phase: int, n: int, seed: int) -> str:
    return f"{RESULTS}/figures/phase{phase}/n{n}/seed{seed}/{SCHEDULE_FIGURE}.png"


def curve_figure(phase: int, n: int) -> str:
    return f"{RESULTS}/figures/phase{phase}/n{n}/learning_curves.png"


def relative_figures(phases=(1, 2)) -> set[str]:
    """The sweep figure of what a reader compares (% of the oracle, gain over all-local), one per phase."""
    return {f"{RESULTS}/figures/phase{p}/sweep_relative.png" for p in phases}


def sweep_figures(phases=(1, 2)) -> set[str]:
    metrics = {f"{RESULTS}/figures/phase{p}/sweep_{m}.png" for p in phases for m in FIGURE_METRICS}
    return metrics | relative_figures(phases)


def run_outputs(phase: int, n: int, seed: int) -> set[str]:
    """Everything one training job brings: training, evaluation and the run's figures."""
    return (
        train_outputs(phase, n, seed)
        | policy_outputs(phase, n, seed)
        | learning_figures(phase, n, seed)
        | {schedule_figure(phase, n, seed)}
    )


def figures(points=POINTS, seeds=SEEDS) -> set[str]:
    files = sweep_figures() | {curve_figure(p, n) for p, n in points}
    for p, n in points:
        for seed in seeds:
            files |= learning_figures(p, n, seed) | {schedule_figure(p, n, seed)}
    return files


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


def test_the_schema_is_generated_from_the_fields_of_mec_config(tmp_path):
    """config/schema.yaml is what `python -m mec.config --write-schema` writes from the fields of mec/config.py (where
    a key is declared once), it reads back as the schema mec.config derives, and it accepts the study's configs."""
    out = tmp_path / "schema.yaml"
    subprocess.run([sys.executable, "-m", "mec.config", "--write-schema", str(out)], check=True, timeout=120)
    committed = (REPO / "config" / "schema.yaml").read_text()
    assert committed == out.read_text() == schema_text(), "config/schema.yaml is stale: run `make schema`"
    schema = yaml.safe_load(committed)
    assert schema == json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for raw in (read_config_file(REPO / "config.yaml"), read_config_file(TEST_CONFIG), config_to_dict(DEFAULT_CONFIG)):
        validator.validate(raw)


def _job_counts(result: subprocess.CompletedProcess) -> dict[str, int]:
    return dict(
        (parts[0], int(parts[1]))
        for parts in (line.split() for line in result.stdout.splitlines())
        if len(parts) == 2 and parts[1].isdigit()
    )


def test_default_study_plans_one_job_per_sweep_point_and_seed(tmp_path):
    """The full config.yaml: every N and K gets its baseline job, every (N or K, seed) its training and evaluation
    and figures; nothing runs (dry run)."""
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "-n", "--cores", "1", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result)
    seeds = len(DEFAULT_CONFIG.workflow.seeds)
    # The study's phase 1 and 2, its tight-deadline scenario's phase 1 and its capable-edge scenario's phase 2
    # (workflow.scenarios) beside it.
    assert DEFAULT_CONFIG.workflow.scenarios == (SCENARIO, "capable_edge")
    n1, n2 = len(DEFAULT_CONFIG.phase1.n_ue), len(DEFAULT_CONFIG.phase2.n_clusters)
    points = 2 * n1 + 2 * n2
    assert counts["evaluate_baselines"] == points
    assert counts["train_agents"] == counts["evaluate_policy"] == points * seeds  # 130 at 5 seeds
    assert counts["plot_run_phase1"] == 2 * n1 * seeds  # one job per run: its 5 figures
    assert counts["plot_run_phase2"] == 2 * n2 * seeds
    assert counts["plot_learning_curves"] == points
    assert counts["aggregate_baselines"] == counts["aggregate_metrics"] == 3
    assert counts["plot_sweep"] == 4 * len(FIGURE_METRICS) and counts["plot_relative_sweep"] == 4


def test_the_reduced_config_trains_each_variant_target_at_its_points_only(tmp_path):
    """config/reduced.yaml (README): ablations: the study and IPPO at N = 3, 7 and K = 10, no-coordinator at K = 10,
    flat at K = 1, 3 seeds each: 24 training jobs, not the full study's 65 beside the ablations' 105.
    compare_backends: the study and SB3 at the same points, 18. pareto: phase 1 only, N = 3, 7, 3 seeds at each of
    the 5 weights, the study's weight being the study's own runs: 30, of which the study's 6 are shared with the
    other targets (one results folder)."""
    workdir = copy_workflow(tmp_path)

    def counts(*targets):
        result = snakemake(workdir, *targets, "-n", "--cores", "1", "--quiet", "rules",
                           "--configfile", "config.yaml", "config/reduced.yaml")  # fmt: skip
        assert result.returncode == 0, result.stderr
        return _job_counts(result)

    ablations = counts("ablations")
    # study 2 + 1 points, ippo 2 + 1, no_coordinator 1, flat 1; 3 seeds each
    assert ablations["train_agents"] == ablations["evaluate_policy"] == (3 + 3 + 1 + 1) * 3
    assert ablations["evaluate_baselines"] == 4  # N = 3, 7, K = 10, and flat's K = 1; the others share them
    assert ablations["compare_variants"] == 1
    backends = counts("compare_backends")
    assert backends["train_agents"] == (3 + 3) * 3 and backends["evaluate_baselines"] == 3
    pareto = counts("pareto")
    assert pareto["train_agents"] == 5 * 2 * 3 and pareto["aggregate_pareto"] == 1
    together = counts("ablations", "compare_backends", "pareto")
    assert together["train_agents"] == 24 + 3 * 3 + 4 * 2 * 3  # sb3's 9 and the 4 new weights' 24 beside ablations


def test_the_capable_edge_ablations_config_trains_phase2_at_k10_only(tmp_path):
    """config/capable_edge.yaml: the ablations in the capable-edge scenario at the reduced budget: the scenario itself,
    IPPO and no coordinator at K = 10, flat at K = 1, 3 seeds each: 12 training jobs, no phase 1, no other scenario."""
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "ablations", "-n", "--cores", "1", "--quiet", "rules",
                       "--configfile", "config.yaml", "config/capable_edge.yaml")  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result)
    assert counts["train_agents"] == counts["evaluate_policy"] == 4 * 3
    assert counts["evaluate_baselines"] == 2  # K = 10 (shared by the study, IPPO and no coordinator) and flat's K = 1
    assert counts["compare_variants"] == 1 and "plot_run_phase1" not in counts
    from mec.config import load_config, variant_configs

    cfg = load_config(REPO / "config" / "capable_edge.yaml")  # the scenario's own server, nothing else of it changed
    assert cfg.scenario == variant_configs(DEFAULT_CONFIG)["capable_edge"].scenario


def test_the_reproduce_config_reruns_the_committed_rows_points_alone(tmp_path):
    """config/reproduce.yaml (`make reproduce`): phase 1 N = 3, seeds 0-2, no scenario beside it; every (point,
    seed) it trains has a committed row in docs/summary/learned_seeds.parquet to be checked against."""
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, "-n", "--cores", "1", "--quiet", "rules",
                       "--configfile", "config.yaml", "config/reproduce.yaml")  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result)
    assert counts["train_agents"] == counts["evaluate_policy"] == 3 and counts["evaluate_baselines"] == 1
    committed = pd.read_parquet(REPO / "docs" / "summary" / "learned_seeds.parquet")
    rows = committed[(committed["phase"] == 1) & (committed["n"] == 3)]
    assert {0, 1, 2} <= set(rows["seed"])


def _declared(workdir: Path, target: str) -> dict[str, int]:
    """threads, mem_mb and runtime of the job that makes `target`, from a dry run's job display."""
    result = snakemake(workdir, target, "-n", "--cores", "4")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    threads = re.search(r"threads: (\d+)", text)  # Snakemake shows threads only above one
    declared = {"threads": int(threads.group(1)) if threads else 1}
    for name in ("mem_mb", "runtime"):
        declared[name] = int(re.search(rf"\b{name}=(\d+)", text).group(1))
    return declared


def test_training_jobs_declare_what_they_were_measured_to_need(tmp_path):
    """Peaks measured with the default training section on one core (rules/common.smk): summed RSS of all a job's
    processes 1.3 GB in phase 1 (N = 7) and 1.6 GB in phase 2 (K = 10, 100 UEs); 12 s of start-up and 0.54 s and
    2.74 s per iteration (benchmarks/bench_job.py). The declarations cover them, and phase 2 asks for more."""
    workdir = copy_workflow(tmp_path)
    t = DEFAULT_CONFIG.training
    phase1 = _declared(workdir, "results/phase1/n7/seed0/metrics.parquet")
    phase2 = _declared(workdir, "results/phase2/n10/seed0/metrics.parquet")
    assert phase1["threads"] == phase2["threads"] == t.num_cpus
    assert phase1["mem_mb"] >= 1300 and phase2["mem_mb"] >= 2200 and phase2["mem_mb"] > phase1["mem_mb"]
    assert phase1["runtime"] >= (12 + t.iterations * 0.54) / 60 and phase2["runtime"] >= (12 + t.iterations * 2.74) / 60
    assert phase2["runtime"] > phase1["runtime"]


# --------------------------------------------------------------------------- the tiny study


def all_outputs() -> set[str]:
    files = set(SUMMARIES) | figures()
    for phase, n in POINTS:
        files |= eval_outputs(phase, n)
        for seed in SEEDS:
            files |= run_outputs(phase, n, seed)
    return files


def test_tiny_study_writes_every_output(study):
    for path in all_outputs():
        assert (study / path).stat().st_size > 0, path
    raw = yaml.safe_load(TEST_CONFIG.read_text())["plotting"]
    width, height = DEFAULT_CONFIG.plotting.width_in, DEFAULT_CONFIG.plotting.height_in
    for path in sweep_figures():
        assert (study / path).stat().st_size > 10_000, path
        tall = 1.6 if path in relative_figures() else 1.0  # two panels: the relative one and the raw reward
        assert png_size(study / path) == (round(width * raw["dpi"]), round(tall * height * raw["dpi"]))
    for path in figures() - sweep_figures():
        fig_width, fig_height = png_size(study / path)  # a valid PNG, at least the configured size
        assert fig_width >= round(width * raw["dpi"]) and fig_height >= round(height * raw["dpi"]), path
    assert not list(study.glob(f"{RESULTS}/**/*.tmp")), "temporary files left behind"


def test_training_writes_one_metrics_row_per_iteration(study, merged_test_config):
    cfg = config_from_dict(merged_test_config)
    for phase, n in POINTS:
        for seed in SEEDS:
            run = study / run_folder(phase, n, seed)
            history = pd.read_parquet(run / "metrics.parquet")
            assert list(history["iteration"]) == list(range(1, cfg.training.iterations + 1))
            group, size = ("ue", n) if phase == 1 else ("cluster", n)
            assert all(len(values) == size for values in history[f"eval/{group}_qos_per_slot"])
            # The output is the complete history of the run directory's own metrics.
            pd.testing.assert_frame_equal(history, pd.read_parquet(run / "run" / "metrics.parquet"))
            marker = io.read_provenance(run / "metrics.parquet")
            assert (marker["phase"], marker["n"], marker["seed"]) == (phase, n, seed)
            final = yaml.safe_load((run / "run/checkpoints/final/mec_checkpoint.json").read_text())
            assert final["iteration"] == cfg.training.iterations
            assert (run / "run/checkpoints/best/mec_checkpoint.json").is_file()


def test_episode_tables_hold_every_policy_and_slot(study, merged_test_config):
    cfg = config_from_dict(merged_test_config)
    ev = cfg.evaluation
    for phase, n in ((1, 3), (2, 2)):
        frame = pd.read_parquet(study / f"{RESULTS}/phase{phase}/n{n}/baselines/episodes.parquet")
        assert list(frame.columns) == [*metrics.SLOT_COLUMNS, "policy", BOUND_COLUMN]
        assert frame[BOUND_COLUMN].notna().all() if phase == 1 else frame[BOUND_COLUMN].isna().all()
        assert sorted(frame["policy"].unique()) == sorted(policy_names(phase))
        assert len(frame) == len(policy_names(phase)) * ev.episodes * ev.slots
        summary = pd.read_parquet(study / f"{RESULTS}/phase{phase}/n{n}/baselines/summary.parquet")
        assert sorted(summary["policy"]) == sorted(policy_names(phase))


@pytest.mark.parametrize(("phase", "n"), [(1, 3), (2, 2)])
def test_the_learned_policy_is_evaluated_like_the_baselines(study, merged_test_config, phase, n):
    """Same schema, same seeded episodes, and the numbers of a direct evaluation of the best checkpoint."""
    from mec.envs.features import FeatureScales
    from mec.backends.rllib.policy import LearnedPolicy
    from mec.backends.rllib.training import load_modules

    cfg = config_from_dict(merged_test_config)
    ev = cfg.evaluation
    setup = PhaseSetup.from_config(cfg, phase, n)
    run = study / run_folder(phase, n, 0)
    frame = pd.read_parquet(run / "eval/episodes.parquet")
    assert list(frame.columns) == [*metrics.SLOT_COLUMNS, "policy"]
    # the policy's own decisions, then its best-of-K (evaluation.best_of, config.yaml's 16) on the same slots
    assert ev.best_of > 1 and list(frame["policy"].unique()) == ["mappo", f"mappo-best-of-{ev.best_of}"]
    assert len(frame) == 2 * ev.episodes * ev.slots
    own = frame[frame["policy"] == "mappo"].reset_index(drop=True)

    episodes = evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed)
    modules, meta = load_modules(run / "run/checkpoints/best")
    expected, schedule = run_policy(cfg, setup, LearnedPolicy(modules, FeatureScales(cfg.scenario)), episodes, True)
    pd.testing.assert_frame_equal(own.drop(columns="policy"), expected)
    table = pd.read_parquet(run / "eval/schedule.parquet")
    table = table[table["policy"] == "mappo"].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.drop(columns="policy"), schedule)
    # The baselines' episodes: the same tasks (deadlines) slot by slot.
    deadlines = table.sort_values(["episode", "slot", "ue"])["deadline_s"].to_numpy()
    np.testing.assert_allclose(deadlines, episodes.deadline_s.reshape(-1), rtol=0, atol=0)
    assert io.read_provenance(run / "eval/episodes.parquet")["checkpoint_iteration"] == meta["iteration"]


@pytest.mark.parametrize(("phase", "n", "policy"), [(1, 2, "all-local"), (2, 3, "greedy-edf-urgency")])
def test_summary_matches_a_direct_evaluation(study, merged_test_config, phase, n, policy):
    """The workflow's numbers are what mec.evaluation gives for the same config, episodes and policy."""
    cfg = config_from_dict(merged_test_config)
    setup = PhaseSetup.from_config(cfg, phase, n)
    ev = cfg.evaluation
    frame = run_policy(
        cfg,
        setup,
        make_policy(policy, phase),
        evaluation_episodes(cfg, setup, ev.episodes, ev.slots, ev.seed),
    )
    expected = metrics.summarise(frame)

    job = pd.read_parquet(study / f"{RESULTS}/phase{phase}/n{n}/baselines/summary.parquet").set_index("policy")
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


def test_summary_tables_hold_the_learned_policy(study, merged_test_config):
    cfg = config_from_dict(merged_test_config)
    learned = pd.read_parquet(study / f"{RESULTS}/summary/learned.parquet")
    assert list(learned.columns) == list(pd.read_parquet(study / SUMMARY).columns)
    best_of = f"mappo-best-of-{cfg.evaluation.best_of}"
    assert set(zip(learned["phase"], learned["n"])) == set(POINTS) and set(learned["policy"]) == {"mappo", best_of}
    assert set(learned["metric"]) == set(metrics.SUMMARY_KEYS) and (learned["samples"] == len(SEEDS)).all()
    for phase, n in POINTS:
        frame = pd.read_parquet(study / run_folder(phase, n, 0) / "eval/episodes.parquet")
        own = metrics.summarise(frame[frame["policy"] == "mappo"])
        row = learned[(learned["phase"] == phase) & (learned["n"] == n) & (learned["metric"] == "mean_qos")
                      & (learned["policy"] == "mappo")]  # fmt: skip
        assert row["mean"].item() == pytest.approx(own["mean_qos"], rel=1e-12)  # one seed: its own value

    # The samples behind learned.parquet: one row per training run and policy (its own decisions, its best-of-K),
    # each run's own evaluation numbers.
    seeds = pd.read_parquet(study / f"{RESULTS}/summary/learned_seeds.parquet")
    assert sorted(zip(seeds["phase"], seeds["n"], seeds["seed"], seeds["policy"])) == sorted(
        (p, n, s, policy) for p, n in POINTS for s in SEEDS for policy in ("mappo", best_of))  # fmt: skip
    for (phase, n, policy), rows in seeds.groupby(["phase", "n", "policy"]):
        mean = learned[(learned["phase"] == phase) & (learned["n"] == n) & (learned["metric"] == "reward_per_slot")
                       & (learned["policy"] == policy)]  # fmt: skip
        assert rows["reward_per_slot"].mean() == pytest.approx(mean["mean"].item(), rel=1e-12)
        assert (rows["percent_of_bound"].notna() == (phase == 1)).all()

    curves = pd.read_parquet(study / f"{RESULTS}/summary/learning_curves.parquet")
    assert len(curves) == len(POINTS) * cfg.training.iterations * len(aggregate.CURVE_METRICS)
    history = pd.read_parquet(study / run_folder(1, 2, 0) / "metrics.parquet")
    rows = curves[(curves["phase"] == 1) & (curves["n"] == 2) & (curves["metric"] == "reward_per_slot")]
    np.testing.assert_allclose(rows.sort_values("iteration")["mean"], history["eval/reward_per_slot"], rtol=1e-12)

    comparison = pd.read_parquet(study / f"{RESULTS}/summary/comparison.parquet")
    for phase, n in POINTS:
        point = comparison[(comparison["phase"] == phase) & (comparison["n"] == n)].set_index("policy")
        assert set(point.index) == {"mappo", best_of, *policy_names(phase), *([aggregate.BOUND] * (phase == 1))}
        assert point.loc["mappo", "kind"] == "learned" and point.loc["mappo", "samples"] == len(SEEDS)
        assert point.loc[best_of, "kind"] == aggregate.LEARNED_CENTRAL
        assert point.loc[best_of, "reward_per_slot"] >= point.loc["mappo", "reward_per_slot"]
        policies = point[point["kind"] != "bound"]
        assert policies.loc[policies["rank"] == 1, "reward_per_slot"].eq(policies["reward_per_slot"].max()).all()
        if phase == 1:
            bound = point.loc[aggregate.BOUND]
            assert bound["kind"] == "bound" and bound["rank"] == 0
            assert bound[aggregate.PERCENT_OF_BOUND] == pytest.approx(100.0)
            ratio = 100 * point.loc["mappo", "reward_per_slot"] / bound["reward_per_slot"]
            assert point.loc["mappo", aggregate.PERCENT_OF_BOUND] == pytest.approx(ratio, rel=1e-12)
            assert (policies[aggregate.PERCENT_OF_BOUND] <= 100.0 + 1e-9).all()
        else:
            assert point[aggregate.PERCENT_OF_BOUND].isna().all()


def test_no_policy_exceeds_the_upper_bound_on_any_evaluated_slot(study):
    """The per-slot upper bound (mec.bound) beside every baseline's row, and the learned policy's own evaluation on
    the same episodes: no slot's reward exceeds its bound."""
    for n in PHASE1_N:
        slots = pd.read_parquet(study / f"{RESULTS}/phase1/n{n}/baselines/episodes.parquet")
        assert slots[BOUND_COLUMN].notna().all()
        assert (slots["reward"] <= slots[BOUND_COLUMN] + 1e-9).all(), n
        bound = slots.drop_duplicates(["episode", "slot"]).set_index(["episode", "slot"])[BOUND_COLUMN]
        for seed in SEEDS:
            learned = pd.read_parquet(study / run_folder(1, n, seed) / "eval" / "episodes.parquet")
            against = bound.reindex(pd.MultiIndex.from_frame(learned[["episode", "slot"]])).to_numpy()
            assert np.isfinite(against).all() and (learned["reward"].to_numpy() <= against + 1e-9).all(), (n, seed)


def test_oracle_beats_every_heuristic_per_slot(study):
    """Every phase-1 heuristic splits the spectrum equally, where the oracle is optimal slot by slot (local search
    also moves spectrum weights, so it may pass the oracle; the upper bound holds it, as every policy)."""
    table = pd.read_parquet(study / SUMMARY)
    reward = table[(table["phase"] == 1) & (table["metric"] == "reward_per_slot")]
    for n, rows in reward.groupby("n"):
        by_policy = rows.set_index("policy")["mean"]
        assert by_policy["oracle"] >= by_policy.drop(["oracle", "local-search"]).max() - 1e-9, n


def test_report_bundles_every_figure_with_its_caption(study, tmp_path):
    report = tmp_path / "report.html"
    result = snakemake(study, "--configfile", ".test/config.yaml", "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "Hierarchical multi-agent reinforcement learning" in html
    assert "Phase 2, learned policy vs baselines: reward per slot against the number of clusters K." in html
    assert "Phase 1, N = 3 UEs: learning curves of every training seed." in html
    assert "Phase 2, K = 2, seed 0: QoS of each cluster over learning." in html
    assert "Phase 1, N = 2, seed 0: energy of each UE over learning." in html
    assert "the edge server&#x27;s schedule in one slot" in html or "the edge server's schedule in one slot" in html
    for path in figures():
        assert Path(path).name in html, path
    # The summary tables beside the figures: the README's tables of the study and of its scenario.
    assert "The summary tables behind the README" in html and "comparison.html" in html


# --------------------------------------------------------------------------- what a change reruns


def _rerun_cases():
    all_evals = set().union(*(eval_outputs(p, n) for p, n in POINTS))
    phase2_evals = eval_outputs(2, 2) | eval_outputs(2, 3)
    all_runs = set().union(*(run_outputs(p, n, s) for p, n in POINTS for s in SEEDS))
    phase2_runs = set().union(*(run_outputs(2, n, s) for n in (2, 3) for s in SEEDS))
    curves = {curve_figure(p, n) for p, n in POINTS}
    learned_downstream = LEARNED_SUMMARIES | sweep_figures()
    downstream = SUMMARIES | sweep_figures()
    new_seed = set().union(*(run_outputs(p, n, 1) for p, n in POINTS))
    # A run's figures are drawn by one job, its learning figures beside its schedule's.
    run_figures = {path for path in figures() if "/seed" in path}
    return [
        pytest.param({}, set(), id="nothing-changed"),
        pytest.param({"plotting__dpi": 90}, figures(), id="plot-style-reruns-only-plots"),
        pytest.param({"plotting__style": "ggplot"}, figures(), id="plot-theme-reruns-only-plots"),
        pytest.param({"statistics__ci_level": 0.9}, downstream | curves, id="statistics-rerun-aggregates-and-plots"),
        pytest.param(
            {"training__lr": 3.0e-4},
            all_runs | curves | learned_downstream,
            id="training-hyperparameter-reruns-training-not-baselines",
        ),
        pytest.param(
            {"training__iterations": 3},
            all_runs | curves | learned_downstream,
            id="more-iterations-rerun-training-not-baselines",
        ),
        pytest.param(
            {"evaluation__episodes": 3},
            # The learning curves draw the baselines' references, so they are redrawn too.
            all_evals | {p for p in all_runs if "/eval/" in p} | run_figures | curves | downstream,
            id="evaluation-episodes-rerun-evaluations-not-training",
        ),
        pytest.param(
            # Training selects its best checkpoint on training.eval_seed's episodes, so the test episodes' seed
            # changes evaluations only.
            {"evaluation__seed": 7},
            all_evals | {p for p in all_runs if "/eval/" in p} | run_figures | curves | downstream,
            id="evaluation-seed-reruns-evaluations-not-training",
        ),
        pytest.param(
            {"workflow__seeds": [0, 1]}, new_seed | curves | learned_downstream, id="new-seed-adds-only-its-jobs"
        ),
        pytest.param(
            {"phase2__n_clusters": [2, 3, 4]},
            eval_outputs(2, 4) | run_outputs(2, 4, 0) | {curve_figure(2, 4)} | downstream,
            id="new-K-adds-only-its-jobs",
        ),
        pytest.param({"phase1__n_ue": [2]}, downstream, id="dropped-N-reruns-only-aggregates-and-sweep-plots"),
        pytest.param(
            {"scenario__server__cpu_ghz": 5.0}, all_evals | all_runs | curves | downstream, id="scenario-reruns-all"
        ),
        pytest.param(
            {"phase2__theta_min": 0.02},
            phase2_evals | phase2_runs | {curve_figure(2, 2), curve_figure(2, 3)} | downstream,
            id="phase2-reruns-only-phase2",
        ),
        pytest.param(
            {"workflow__phases": [1]}, downstream - sweep_figures((2,)), id="dropped-phase-reruns-only-downstream"
        ),
        # Variants of the study (workflow.variants, the trade-off axis, the tuning grid) are other targets' jobs.
        pytest.param(
            {
                "workflow__variants": {"ippo": {"training.critic": "local", "training.lr": 1.0e-3}},
                "workflow__ablations": ["ippo"],
                "workflow__backend_variants": [],
                "workflow__scenarios": [],
            },
            set(),
            id="variants-leave-the-study-alone",
        ),
        pytest.param({"workflow__w_energy": [0.0, 0.3]}, set(), id="trade-off-axis-leaves-the-study-alone"),
        pytest.param(
            {"tuning__iterations": 5, "tuning__grid": {"training.lr": [1.0e-4]}},
            set(),
            id="tuning-grid-leaves-the-study-alone",
        ),
    ]


def study_only(paths: set[str]) -> set[str]:
    """The study's own outputs among `paths`, without those of its scenarios (workflow.scenarios)."""
    return {path for path in paths if "/variants/" not in path}


@pytest.mark.parametrize(("changes", "expected"), _rerun_cases())
def test_a_config_change_reruns_exactly_the_affected_jobs(study, tmp_path, changes, expected):
    """The study's own outputs; those of its scenarios in test_a_scenario_change_reruns_only_its_own_jobs."""
    configfile = write_config(tmp_path / "changed.yaml", tiny_config(**changes))
    assert study_only(pending_outputs(study, configfile)) == expected


SCENARIO = "tight_deadlines"  # config.yaml's workflow.scenarios, which .test/config.yaml keeps
SCENARIO_DIR = f"{RESULTS}/variants/{SCENARIO}"


def scenario_outputs() -> set[str]:
    """What the default target builds for the tight-deadline scenario of the tiny study: phase 1 at N = 2, 3."""
    files = {f"{SCENARIO_DIR}/summary/{name}.parquet"
             for name in ("baselines", "learned", "learned_seeds", "learning_curves", "comparison")}  # fmt: skip
    files |= {f"{SCENARIO_DIR}/summary/comparison.html", f"{SCENARIO_DIR}/summary/marl_eval.json"}
    files |= {f"{SCENARIO_DIR}/figures/phase1/sweep_{m}.png" for m in [*FIGURE_METRICS, "relative"]}
    for n in PHASE1_N:
        files |= {path.replace(f"{RESULTS}/", f"{SCENARIO_DIR}/", 1)
                  for path in eval_outputs(1, n) | {curve_figure(1, n)}
                  | set().union(*(run_outputs(1, n, seed) for seed in SEEDS))}  # fmt: skip
    return files


def test_the_default_target_builds_each_scenario_beside_the_study(study):
    """workflow.scenarios: the tight-deadline phase 1 is trained, evaluated, summarised and drawn by the default
    target in its own folder, on its own deadlines, and never in phase 2 (its workflow.phases)."""
    for path in scenario_outputs():
        assert (study / path).stat().st_size > 0, path
    assert not list((study / SCENARIO_DIR).glob("phase2"))
    for n in PHASE1_N:
        schedule = pd.read_parquet(study / f"{SCENARIO_DIR}/phase1/n{n}/seed0/eval/schedule.parquet")
        assert schedule["deadline_s"].between(1.0, 2.0).all() and schedule["deadline_s"].max() > 1.0
        own = pd.read_parquet(study / f"{RESULTS}/phase1/n{n}/seed0/eval/schedule.parquet")
        assert own["deadline_s"].between(2.0, 4.0).all()
    comparison = pd.read_parquet(study / f"{SCENARIO_DIR}/summary/comparison.parquet")
    assert set(comparison["phase"]) == {1} and set(comparison["n"]) == set(PHASE1_N)
    assert (comparison.loc[comparison["kind"] != "bound", aggregate.PERCENT_OF_BOUND] <= 100.0 + 1e-9).all()


def test_the_capable_edge_scenario_is_phase2_only_on_its_own_server(study):
    """workflow.scenarios' capable_edge: phase 2 at every K of the tiny study, trained, evaluated, summarised and
    drawn in its own folder, never phase 1; its server (4x the study's CPU) lets local search earn more than at the
    study's own server on the same episodes, while all-local (which never touches the server) earns the same."""
    folder = study / f"{RESULTS}/variants/capable_edge"
    assert not list(folder.glob("phase1")) and (folder / "figures/phase2/sweep_relative.png").stat().st_size > 0
    comparison = pd.read_parquet(folder / "summary/comparison.parquet")
    assert set(comparison["phase"]) == {2} and set(comparison["n"]) == set(PHASE2_K)
    assert set(comparison.loc[comparison["kind"] == "learned", "n"]) == set(PHASE2_K)
    own = pd.read_parquet(study / f"{RESULTS}/summary/comparison.parquet")
    for k in PHASE2_K:
        def reward(table, policy):
            row = table[(table["phase"] == 2) & (table["n"] == k) & (table["policy"] == policy)]
            return float(row["reward_per_slot"].iloc[0])

        assert reward(comparison, "all-local") == reward(own, "all-local")
        assert reward(comparison, "local-search") > reward(own, "local-search")


def test_a_scenario_change_reruns_only_its_own_jobs(study, tmp_path):
    """Another deadline range for the scenario reruns every job of the scenario and none of the study's; a training
    change reruns the training of both."""
    changed = yaml.safe_load((REPO / "config.yaml").read_text())["workflow"]["variants"]  # a --configfile replaces it
    changed[SCENARIO] = {"scenario.task.deadline_s": {"low": 1.0, "high": 2.5}, "workflow.phases": [1]}
    configfile = write_config(tmp_path / "scenario.yaml", tiny_config(workflow__variants=changed))
    assert pending_outputs(study, configfile) == scenario_outputs()
    configfile = write_config(tmp_path / "training.yaml", tiny_config(training__lr=3.0e-4))
    pending = pending_outputs(study, configfile) - study_only(pending_outputs(study, configfile))
    runs = {path for path in scenario_outputs() if "/seed" in path and "/eval/" not in path}
    assert runs <= pending and not any("/baselines/" in path for path in pending)


def test_writing_out_a_default_value_reruns_nothing(study, tmp_path):
    """Params come from the validated config with defaults filled in, not from the raw YAML."""
    raw = tiny_config(scenario__server__cpu_ghz=DEFAULT_CONFIG.scenario.server.cpu_ghz)
    raw["reward"] = {"preset": "study"}  # the same weights as config.yaml's, by name
    assert pending_outputs(study, write_config(tmp_path / "same.yaml", raw)) == set()


def test_slurm_profile_plans_the_same_jobs(study, tmp_path):
    configfile = write_config(tmp_path / "changed.yaml", tiny_config(plotting__dpi=90))
    result = snakemake(study, "-n", "--workflow-profile", "profiles/slurm", "--configfile", str(configfile))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plot_sweep" in result.stdout and "plot_run_phase2" in result.stdout
    assert "evaluate_baselines" not in result.stdout and "train_agents" not in result.stdout


@pytest.mark.parametrize(
    ("target", "rules"),
    [
        pytest.param("baselines", {"evaluate_baselines", "aggregate_baselines"}, id="baselines-without-training"),
        pytest.param(
            "phase1",
            # The learning curves draw the sweep point's baselines as references.
            {"train_agents", "evaluate_policy", "plot_run_phase1", "plot_learning_curves", "evaluate_baselines"},
            id="phase1-without-phase2",
        ),
    ],
)
def test_partial_targets_plan_only_their_jobs(tmp_path, target, rules):
    workdir = copy_workflow(tmp_path)
    result = snakemake(workdir, target, "-n", "--cores", "1", "--quiet", "rules", "--configfile", ".test/config.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = _job_counts(result)
    assert set(counts) - {"total", target} == rules
    if target == "phase1":
        assert counts["train_agents"] == 2  # N = 2 and 3, seed 0; no phase-2 job


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
    assert not (workdir / "results").exists() and not (workdir / RESULTS).exists()


# --------------------------------------------------------------------------- killed jobs


def test_a_job_killed_mid_way_leaves_no_output_snakemake_would_trust(tmp_path):
    """SIGKILL Snakemake and its job after the job wrote one of its two outputs: that file is on disk, yet a later
    run plans the job again (Snakemake marked it incomplete when it started), and no partial file is left under an
    output's name (atomic writes)."""
    workdir = copy_workflow(tmp_path)
    script = workdir / "workflow_scripts" / "evaluate_baselines.py"
    last_write = "    io.write_parquet(summary, smk.output.summary, provenance)"
    assert last_write in script.read_text()
    # This copy only: hold the job between its two writes so the kill lands mid-way, every time.
    script.write_text(script.read_text().replace(last_write, "    __import__('time').sleep(600)\n" + last_write))
    target = f"{RESULTS}/phase2/n3/baselines/summary.parquet"
    first = workdir / f"{RESULTS}/phase2/n3/baselines/episodes.parquet"
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


def test_a_killed_training_job_resumes_from_its_latest_checkpoint(tmp_path):
    """SIGKILL Snakemake and its training job right after the first iteration's checkpoint: no output exists, the
    run directory keeps the checkpoint, and the rerun resumes from it and ends with one metrics row per
    iteration."""
    workdir = copy_workflow(tmp_path)
    script = workdir / "workflow_scripts" / "train_agents.py"
    call = "    backends.train(cfg, phase, n, seed, run_dir, num_cpus=smk.threads, log=log.info, restart_stale=True)"
    assert call in script.read_text()
    # This copy only: hold the job once it has logged its first iteration (logged after that iteration's
    # checkpoint is in place), so the kill lands mid-way, every time.
    hold = (
        "    def log_and_hold(line):\n"
        "        log.info(line)\n"
        "        if ' iter 1/' in line:\n"
        "            time.sleep(600)\n"
        "\n"
        "    import time\n"
        "    backends.train(cfg, phase, n, seed, run_dir, num_cpus=smk.threads, log=log_and_hold, restart_stale=True)"
    )
    script.write_text(script.read_text().replace(call, hold))
    run = workdir / run_folder(1, 2, 0)
    target = f"{run_folder(1, 2, 0)}/metrics.parquet"
    job_log = workdir / f"{RESULTS}/logs/train_agents/phase1_n2_seed0.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", ".test/config.yaml"],
        cwd=workdir,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while process.poll() is None and time.monotonic() < deadline:
            if job_log.exists() and " iter 1/" in job_log.read_text(errors="replace"):
                break
            time.sleep(0.2)
        assert process.poll() is None, "snakemake ended before the first iteration"
        assert " iter 1/" in job_log.read_text(errors="replace"), "the job did not reach its first iteration"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert not (workdir / target).exists()
    assert not (run / "run/checkpoints/final/mec_checkpoint.json").exists()
    assert yaml.safe_load((run / "run/checkpoints/latest/mec_checkpoint.json").read_text())["iteration"] == 1

    shutil.copy2(REPO / "workflow_scripts" / "train_agents.py", script)
    assert snakemake(workdir, "--unlock").returncode == 0  # the lock a crash leaves behind
    result = snakemake(workdir, target, "--cores", "1", "--configfile", ".test/config.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming after iteration 1" in job_log.read_text()
    iterations = yaml.safe_load(TEST_CONFIG.read_text())["training"]["iterations"]
    assert list(pd.read_parquet(workdir / target)["iteration"]) == list(range(1, iterations + 1))


def test_a_failing_training_job_costs_only_itself(tmp_path):
    """Phase 1's two training runs and their evaluations complete; then (1) an unreachable training.ray_address
    stops the workflow in one line before any job starts, every output untouched; (2) with more iterations, the
    N = 3 job fails at runtime (another writer holds its run folder's lock, as a second `snakemake --nolock` would):
    its log ends in one line, N = 2's outputs are all in place, N = 3's run folder keeps its final checkpoint and
    history, and a dry run plans only the failing job and its descendant."""
    workdir = copy_workflow(tmp_path / "wf")
    targets = sorted(train_outputs(1, n, 0).pop() for n in PHASE1_N)
    targets += sorted(p for n in PHASE1_N for p in policy_outputs(1, n, 0))
    first = snakemake(workdir, *targets, "--cores", "2", "--configfile", ".test/config.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    stamps = {path: (workdir / path).stat().st_mtime_ns for path in targets}

    unreachable = write_config(tmp_path / "ray.yaml", tiny_config(training__ray_address="127.0.0.1:1"))
    result = snakemake(workdir, *targets, "--cores", "2", "--configfile", str(unreachable))
    assert result.returncode == 1
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "rror" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "'training.ray_address'" in errors[0] and "127.0.0.1:1 does not answer" in errors[0]
    assert {path: (workdir / path).stat().st_mtime_ns for path in targets} == stamps

    longer = write_config(tmp_path / "longer.yaml", tiny_config(training__iterations=3))
    run3 = workdir / run_folder(1, 3, 0) / "run"
    with open(run3 / ".mec.lock", "a+") as held:  # another writer of N = 3's run folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(f"{os.getpid()}\n")
        held.flush()
        result = snakemake(workdir, *targets, "--cores", "2", "--configfile", str(longer))
    assert result.returncode != 0
    log = (workdir / f"{RESULTS}/logs/train_agents/phase1_n3_seed0.log").read_text()
    assert "Traceback" not in log, log
    last = log.strip().splitlines()[-1]
    assert "the job failed:" in last and "another training job" in last and str(os.getpid()) in last, log
    for path in [*train_outputs(1, 2, 0), *policy_outputs(1, 2, 0)]:  # the other run: retrained, re-evaluated
        assert (workdir / path).stat().st_mtime_ns > stamps[path], path
    assert list(pd.read_parquet(workdir / run_folder(1, 2, 0) / "metrics.parquet")["iteration"]) == [1, 2, 3]
    final = yaml.safe_load((run3 / "checkpoints/final/mec_checkpoint.json").read_text())
    assert final["iteration"] == 2  # the failed job's run folder as it was: a rerun resumes, retrains nothing
    assert list(pd.read_parquet(run3 / "metrics.parquet")["iteration"]) == [1, 2]
    pending = snakemake(workdir, *targets, "-n", "--cores", "2", "--quiet", "rules", "--configfile", str(longer))
    assert pending.returncode == 0, pending.stderr[-3000:]
    counts = _job_counts(pending)
    assert (counts.get("train_agents"), counts.get("evaluate_policy"), counts["total"]) == (1, 1, 2), counts


# --------------------------------------------------------------------------- the README's results section


def test_readme_results_splices_the_studys_tables_into_the_results_page_and_the_readme(study):
    """readme_results on the finished tiny study: the section between docs/results.md's markers and the headline
    between the README's are the generated ones, their numbers are the comparison table's, the section's figures are
    copied beside the page and linked relative to it, the rest of both files is untouched, and a second run changes
    nothing."""
    readme, page = study / "README.md", study / "docs" / "results.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "README.md", readme)
    shutil.copy2(REPO / "docs" / "results.md", page)
    originals = {readme: (readme.read_text(), markdown.HEADLINE_START, markdown.HEADLINE_END),
                 page: (page.read_text(), markdown.README_START, markdown.README_END)}  # fmt: skip
    # a figure that another run committed beside the section's (the variants' paragraphs show theirs)
    other = study / "docs" / "results" / "ablations_phase2.png"
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(b"another run's figure")
    result = snakemake(study, "readme_results", "--cores", "1", "--configfile", ".test/config.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    sections = {}
    for path, (original, start, end) in originals.items():
        text = path.read_text()
        head, rest = original.split(start)
        _, tail = rest.split(end)
        assert text.startswith(head + start) and text.endswith(end + tail)
        sections[path] = text.split(start)[1].split(end)[0]
    assert sections[page].strip() == (study / f"{RESULTS}/README_results.md").read_text().strip()
    assert sections[readme].strip() == (study / f"{RESULTS}/README_headline.md").read_text().strip()
    comparison = pd.read_parquet(study / f"{RESULTS}/summary/comparison.parquet")
    for phase, n in POINTS:
        row = comparison[(comparison["phase"] == phase) & (comparison["n"] == n) & (comparison["policy"] == "mappo")]
        row = row.iloc[0]
        reward = markdown.with_ci(row["reward_per_slot"], row["reward_per_slot_ci_low"], row["reward_per_slot_ci_high"])
        assert f"| {n} | mappo: {reward} |" in sections[page]
        if n == max(m for p, m in POINTS if p == phase):  # the headline shows each phase's largest N or K
            point = f"{phase}, {markdown.size_name(phase)} = {n}"
            assert f"| study | {point} | mappo: {markdown.number(row['reward_per_slot'])} |" in sections[readme]
    for phase in (1, 2):
        assert f"](results/phase{phase}_sweep_reward_per_slot.png)" in sections[page]  # relative to docs/
        source = study / f"{RESULTS}/figures/phase{phase}/sweep_reward_per_slot.png"
        assert (study / f"docs/results/phase{phase}_sweep_reward_per_slot.png").read_bytes() == source.read_bytes()
    assert other.read_bytes() == b"another run's figure"
    texts = {path: path.read_text() for path in originals}
    again = snakemake(study, "readme_results", "--cores", "1", "--configfile", ".test/config.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert {path: path.read_text() for path in originals} == texts


def test_readme_from_published_parts_of_the_tiny_study(study, tmp_path):
    """The finished tiny study published as two parts (phase 1 with tight_deadlines, phase 2 with capable_edge; mec
    publish, as `make publish` runs it) gives the committed tables the whole run's rows, and `mec readme` run where no
    results folder is builds a section with both phases, both scenarios and the parts behind them."""
    summary, figures = tmp_path / "docs" / "summary", tmp_path / "docs" / "results"
    base = study / ".test" / "config.yaml"
    for name, phase, scenario in (("part1", 1, "tight_deadlines"), ("part2", 2, "capable_edge")):
        config = tmp_path / f"{name}.yaml"
        write_config(config, {"workflow": {"phases": [phase], "scenarios": [scenario]}})
        result = subprocess.run([sys.executable, "-m", "mec", "publish", "--config", str(config), "--base", str(base),
                                 "--summary", str(summary), "--figures", str(figures)],
                                cwd=study, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
    published = pd.read_parquet(summary / "comparison.parquet")
    pd.testing.assert_frame_equal(published, pd.read_parquet(study / f"{RESULTS}/summary/comparison.parquet"))
    parts = yaml.safe_load((summary / "parts.json").read_text())["parts"]
    for part, phase in zip(parts, (1, 2), strict=True):
        jobs = [p for p in (study / f"{RESULTS}/benchmarks").rglob("*.tsv") if f"phase{phase}_" in p.name]
        assert part["jobs"] == len(jobs) > 0 and part["cpu_s"] > 0, part
    readme, page = tmp_path / "README.md", tmp_path / "docs" / "results.md"
    readme.write_text(f"# Title\n{markdown.HEADLINE_START}\n{markdown.HEADLINE_END}\n")
    page.write_text(f"# Results\n{markdown.README_START}\n{markdown.README_END}\n")
    result = subprocess.run([sys.executable, "-m", "mec", "readme", "--base", str(base)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    section = page.read_text()
    for title in ("### Phase 1: learned vs the upper bound", "### Phase 2: learned vs the best heuristic",
                  "### Phase 1, scenario tight_deadlines", "### Phase 2, scenario capable_edge",
                  "### The parts behind these tables", "| part1 | study phase 1, tight_deadlines phase 1 |",
                  "| part2 | study phase 2, capable_edge phase 2 |", "| total |",
                  "](results/phase2_sweep_relative.png)"):  # fmt: skip
        assert title in section, title
    trained = io.read_provenance(study / f"{RESULTS}/phase1/n3/seed0/eval/episodes.parquet")["trained"]["commit"]
    assert "| study | 1, N = 3 | mappo: " in readme.read_text() and f"| {trained} |" in readme.read_text()
