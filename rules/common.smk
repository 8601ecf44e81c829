# Config checks, the study's output paths and the functions that build target lists and rule params.
import contextlib
import copy
import math
import sys

import jsonschema
from snakemake.exceptions import WorkflowError

from mec import plotting
from mec.config import ConfigError, config_from_dict, config_to_dict

# A reward section given on the command line (--configfile, --config) replaces config.yaml's instead of being merged
# into it, as `python -m mec --set reward=...` does: a preset merged with config.yaml's explicit weights would be
# rejected (mec.config takes one or the other, never both).
if "reward" in workflow.config_settings.overwrite_config:
    config["reward"] = copy.deepcopy(
        workflow.config_settings.overwrite_config["reward"]
    )


def _schema_problem(exc):
    """The jsonschema error behind a failed snakemake.utils.validate (kept as the WorkflowError's context)."""
    while exc is not None and not isinstance(exc, jsonschema.ValidationError):
        exc = exc.__cause__ or exc.__context__
    return exc


def _schema_message(problem):
    """mec.config's wording for the common cases (unknown key, number read as text), else jsonschema's message."""
    path = [str(part) for part in problem.absolute_path]
    if problem.validator == "additionalProperties":
        allowed = list(problem.schema.get("properties", {}))
        unknown = [name for name in problem.instance if name not in allowed]
        key = ".".join(path + [str(unknown[0])])
        return f"config key '{key}': unknown; allowed keys: {', '.join(allowed)}"
    message = f"config key '{'.'.join(path) or 'top level'}': {problem.message}"
    if problem.validator == "type" and isinstance(problem.instance, str):
        try:
            float(problem.instance)
        except ValueError:
            pass
        else:  # YAML 1.1 reads 1e-27 (no dot) as text
            message += f" (write it with a dot and a signed exponent, e.g. {float(problem.instance):.1e})"
    return f"{message} (config/schema.yaml)"


def _stop(message):
    # One line and exit status 1. A WorkflowError would add a traceback through this file under the message.
    print(f"Error: invalid config: {message}", file=sys.stderr)
    raise SystemExit(1)


@contextlib.contextmanager
def one_line_config_errors():
    """Stop with one line naming the config key when the schema or mec.config rejects the config."""
    try:
        yield
    except ConfigError as exc:
        _stop(str(exc))
    except WorkflowError as exc:
        problem = _schema_problem(exc)
        if problem is None:
            raise
        _stop(_schema_message(problem))


# --------------------------------------------------------------------------- paths (defined once)

BASELINE_EPISODES = "results/phase{phase}/n{n}/baselines/episodes.parquet"
BASELINE_SUMMARY = "results/phase{phase}/n{n}/baselines/summary.parquet"
# One training job's folder. run/ is mec.training's run directory (its own metrics, checkpoints, resume state); it
# is not an output, so Snakemake never deletes it and a rerun of a killed job resumes from its latest checkpoint.
# The job's outputs are the complete learning history (a copy written once training is complete) and the final
# checkpoint's marker.
RUN = "results/phase{phase}/n{n}/seed{seed}"
TRAIN_METRICS = f"{RUN}/metrics.parquet"
FINAL_CHECKPOINT = f"{RUN}/run/checkpoints/final/mec_checkpoint.json"
POLICY_EPISODES = f"{RUN}/eval/episodes.parquet"
POLICY_SCHEDULE = f"{RUN}/eval/schedule.parquet"
SUMMARY_BASELINES = "results/summary/baselines.parquet"
SUMMARY_LEARNED = "results/summary/learned.parquet"
SUMMARY_CURVES = "results/summary/learning_curves.parquet"
SUMMARY_COMPARISON = "results/summary/comparison.parquet"
SWEEP_FIGURE = "results/figures/phase{phase}/sweep_{metric}.png"
CURVES_FIGURE = "results/figures/phase{phase}/n{n}/learning_curves.png"
RUN_FIGURES = "results/figures/phase{phase}/n{n}/seed{seed}"
# {name}: a key of mec.plotting.LEARNING_FIGURES, filled in per phase (run_figure_paths), never a wildcard.
LEARNING_FIGURE = f"{RUN_FIGURES}/{{name}}_over_learning.png"
SCHEDULE_FIGURE = f"{RUN_FIGURES}/{plotting.SCHEDULE_FIGURE}.png"
LOGS = "results/logs"


wildcard_constraints:
    phase="1|2",
    n="[1-9][0-9]*",
    seed="[0-9]+",
    metric="|".join(plotting.FIGURE_METRICS),


# --------------------------------------------------------------------------- resources of a training job

# Measured on the study's machine (RLlib 2.60, torch CPU, one core, no env runners, the default training section):
# Ray and RLlib start in about 13 s; one iteration (1000 sampled slots, 8 epochs, 5 evaluation episodes of 200
# slots) takes about 4.5 s in phase 1 (N = 7; 3.5 s at N = 3) and 14 s in phase 2 (K = 10, 100 UEs). The runtime
# estimate scales these with the batch size (and phase 2 with the number of UEs) and doubles them: the machine a job
# lands on may be slower or shared. Runtimes are in minutes.
TRAIN_START_S = 30
TRAIN_ITERATION_S = {1: 4.5, 2: 14.0}  # per 1000 sampled slots; phase 2 at 100 UEs
TRAIN_RUNTIME_SAFETY = 2.0
# Memory of all a job's processes together (driver, Ray's GCS and raylet, workers; summed RSS, flat over the
# iterations): about 1300 MB, plus about 9 kB per UE-slot of the training batch (phase 2 with 1000 slots x 100 UEs
# peaks at 2200 MB; phase 1 N = 7 at 1300 MB), plus about 700 MB per extra env runner process.
TRAIN_BASE_MB = 1300
TRAIN_MB_PER_UE_SLOT = 0.009
TRAIN_MB_PER_ENV_RUNNER = 700
TRAIN_MEMORY_SAFETY = 1.25


def job_n_ue(wildcards):
    """UEs of the job's scenario: N in phase 1, phase2.n_users in phase 2."""
    return int(wildcards.n) if int(wildcards.phase) == 1 else STUDY.phase2.n_users


def train_runtime_min(wildcards, attempt):
    """Wall-clock limit of a training job; a retry (e.g. after a cluster time-out) gets more, and resumes."""
    t = STUDY.training
    scale = t.train_batch_slots / 1000
    if int(wildcards.phase) == 2:
        scale *= STUDY.phase2.n_users / 100
    seconds = (
        TRAIN_START_S + t.iterations * TRAIN_ITERATION_S[int(wildcards.phase)] * scale
    )
    return math.ceil(TRAIN_RUNTIME_SAFETY * seconds / 60) * attempt


def train_mem_mb(wildcards, attempt):
    t = STUDY.training
    mb = (
        TRAIN_BASE_MB
        + TRAIN_MB_PER_ENV_RUNNER * t.num_env_runners
        + TRAIN_MB_PER_UE_SLOT * t.train_batch_slots * job_n_ue(wildcards)
    )
    return math.ceil(TRAIN_MEMORY_SAFETY * mb) * attempt


# --------------------------------------------------------------------------- sweep


def sweep_sizes(phase):
    """N (UEs) of phase 1 or K (clusters) of phase 2."""
    return STUDY.phase1.n_ue if phase == 1 else STUDY.phase2.n_clusters


def sweep_points(phases=None):
    """(phase, n) of every configured sweep point (of `phases`, default workflow.phases)."""
    return [(p, n) for p in phases or STUDY.workflow.phases for n in sweep_sizes(p)]


def runs(phases=None):
    """(phase, n, seed) of every training job."""
    return [(p, n, s) for p, n in sweep_points(phases) for s in STUDY.workflow.seeds]


def study_sections():
    """The validated config with every default filled in: params built from it do not change when a user writes
    out a default value or swaps a reward preset for the same weights."""
    return config_to_dict(STUDY)


def section(name):
    """One section of the validated config, as plain data for a rule's params."""
    return study_sections()[name]


def phase_section(wildcards):
    """The job's own phase section, its sweep list cut down to the job's N or K: adding a sweep value must not
    change the params (and so rerun) the jobs of the other values."""
    phase, n = int(wildcards.phase), int(wildcards.n)
    own = dict(section(f"phase{phase}"))
    own["n_ue" if phase == 1 else "n_clusters"] = [n]
    return own


def per_point(path, phases=None):
    return [path.format(phase=p, n=n) for p, n in sweep_points(phases)]


def per_run(path, phases=None):
    return [path.format(phase=p, n=n, seed=s) for p, n, s in runs(phases)]


def all_baseline_episodes(wildcards):
    """The per-slot tables of every configured sweep point."""
    return per_point(BASELINE_EPISODES)


def all_policy_episodes(wildcards):
    """The learned policy's per-slot tables of every training job."""
    return per_run(POLICY_EPISODES)


def all_train_metrics(wildcards):
    return per_run(TRAIN_METRICS)


def point_train_metrics(wildcards):
    """The learning histories of every seed of one sweep point."""
    return [
        TRAIN_METRICS.format(phase=wildcards.phase, n=wildcards.n, seed=s)
        for s in STUDY.workflow.seeds
    ]


# --------------------------------------------------------------------------- targets


def run_figure_paths(phase):
    """Figure name -> path pattern (wildcards phase, n, seed) of a training run's reference set."""
    names = plotting.learning_figure_names(phase)
    paths = {name: LEARNING_FIGURE.replace("{name}", name) for name in names}
    return {**paths, plotting.SCHEDULE_FIGURE: SCHEDULE_FIGURE}


def run_figure_outputs(phase):
    """Outputs of plot_run_phase<phase>, each in the report with the caption of its kind (report/plot_run/)."""
    return {
        name: report(
            path,
            caption=f"../report/plot_run/{name}.rst",
            category="Phase {phase}",
            subcategory="Training runs",
            labels={"N or K": "{n}", "seed": "{seed}", "figure": name},
        )
        for name, path in run_figure_paths(phase).items()
    }


def run_figures(phase, n, seed):
    return [
        path.format(phase=phase, n=n, seed=seed)
        for path in run_figure_paths(phase).values()
    ]


def baseline_output():
    """Every heuristic (and the oracle) at every sweep point, and their summary."""
    return (
        per_point(BASELINE_EPISODES) + per_point(BASELINE_SUMMARY) + [SUMMARY_BASELINES]
    )


def phase_output(phase):
    """Training, evaluation and the figures of one phase that need no other phase: each run's figures and each
    sweep point's learning curves (the sweep figures compare with the baselines of every phase's summary).
    """
    files = []
    for path in (TRAIN_METRICS, FINAL_CHECKPOINT, POLICY_EPISODES, POLICY_SCHEDULE):
        files += per_run(path, [phase])
    for p, n, seed in runs([phase]):
        files += run_figures(p, n, seed)
    return files + per_point(CURVES_FIGURE, [phase])


def figure_output():
    files = expand(
        SWEEP_FIGURE, phase=STUDY.workflow.phases, metric=list(plotting.FIGURE_METRICS)
    )
    files += per_point(CURVES_FIGURE)
    for p, n, seed in runs():
        files += run_figures(p, n, seed)
    return files


def final_output():
    """Everything `snakemake` (rule all) builds."""
    files = baseline_output() + [SUMMARY_LEARNED, SUMMARY_CURVES, SUMMARY_COMPARISON]
    for phase in STUDY.workflow.phases:
        files += phase_output(phase)
    return list(dict.fromkeys(files + figure_output()))
