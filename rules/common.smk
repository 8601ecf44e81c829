# Config checks, the study's output paths and the functions that build target lists and rule params.
import contextlib
import copy
import functools
import math
import os
import sys

import jsonschema
from snakemake.exceptions import WorkflowError

from mec import plotting
from mec.config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    parse_value,
    read_config_file,
    study_variants,
    study_without_variants,
    variant_configs,
)

# Sections whose value is a mapping of free keys, given on the command line (--configfile, --config), replace
# config.yaml's instead of being merged into it key by key. A reward preset merged with config.yaml's explicit weights
# would be rejected (mec.config takes one or the other, never both, as `python -m mec --set reward=...` does), and a
# variant, the trade-off overrides or the tuning grid merged with config.yaml's would keep keys the user left out.
REPLACED_ON_OVERRIDE = (
    ("reward",),
    ("workflow", "variants"),
    ("workflow", "w_energy_overrides"),
    ("tuning", "grid"),
)


def _replace_from_overrides(config, overrides):
    for keys in REPLACED_ON_OVERRIDE:
        given = overrides
        for key in keys:
            given = given.get(key) if isinstance(given, dict) else None
        if given is not None:
            node = config
            for key in keys[:-1]:
                node = node[key]
            node[keys[-1]] = copy.deepcopy(given)


_replace_from_overrides(config, workflow.config_settings.overwrite_config)


def _typed(value):
    """A value of Snakemake's --config as mec.config reads a config file: Snakemake reads every value nested in a
    mapping (training={iterations: 3}) as text, so numbers and booleans are read again with mec.config's YAML
    loader. Text that reads as text, nothing or a mapping or list stays as it is."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, str):
        try:
            parsed = parse_value(value)
        except ConfigError:
            return value
        if isinstance(parsed, (bool, int, float)):
            return parsed
    return value


def _retype_command_line(node, given):
    """Replace the values given by --config in the merged config by their typed form."""
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(node.get(key), dict):
            _retype_command_line(node[key], value)
        elif key in node:
            node[key] = _typed(value)


_retype_command_line(config, dict(workflow.config_settings.config))


def check_config_files():
    """Read every config file again with mec.config's YAML loader: Snakemake's keeps the last of a duplicate key
    silently, mec.config stops with one line naming the key and the file."""
    for path in dict.fromkeys(str(path) for path in workflow.configfiles):
        read_config_file(path)


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
        else:
            if "e" in problem.instance.lower():  # YAML 1.1 reads 1e-27 (no dot) as text
                message += f" (write it with a dot and a signed exponent, e.g. {float(problem.instance):.1e})"
            else:  # a number in quotes is text
                message += f" (a number in quotes is text: write it without quotes, e.g. {problem.instance.strip()})"
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

# Every output lies under workflow.results_dir ("results" by default), so each config (config.yaml's study, the tiny
# .test/config.yaml) keeps its own outputs and never marks another's stale. Taken from the raw config here, before
# the Snakefile validates it: a bad value stops there in one line, before any path is used.
RESULTS = str(
    (config.get("workflow") or {}).get("results_dir", "results")
    if isinstance(config.get("workflow") or {}, dict)
    else "results"
)
# {variant_dir} is "" for the study itself and "variants/<name>/" for a variant of it (workflow.variants, the
# trade-off axis workflow.w_energy, the tuning grid): the same rules build both, and the study's paths stay as they
# are. {variant_dir} is constrained to variants/<name>/, so no pattern of one results folder matches another's.
BASELINE_EPISODES = (
    f"{RESULTS}/{{variant_dir}}phase{{phase}}/n{{n}}/baselines/episodes.parquet"
)
BASELINE_SUMMARY = (
    f"{RESULTS}/{{variant_dir}}phase{{phase}}/n{{n}}/baselines/summary.parquet"
)
# One training job's folder. run/ is mec.runs' run directory (its own metrics, checkpoints, resume state); it
# is not an output, so Snakemake never deletes it and a rerun of a killed job resumes from its latest checkpoint.
# The job's outputs are the complete learning history (a copy written once training is complete) and the final
# checkpoint's marker.
RUN = f"{RESULTS}/{{variant_dir}}phase{{phase}}/n{{n}}/seed{{seed}}"
TRAIN_METRICS = f"{RUN}/metrics.parquet"
FINAL_CHECKPOINT = f"{RUN}/run/checkpoints/final/mec_checkpoint.json"
POLICY_EPISODES = f"{RUN}/eval/episodes.parquet"
POLICY_SCHEDULE = f"{RUN}/eval/schedule.parquet"
SUMMARY_BASELINES = f"{RESULTS}/{{variant_dir}}summary/baselines.parquet"
SUMMARY_LEARNED = f"{RESULTS}/{{variant_dir}}summary/learned.parquet"
SUMMARY_CURVES = f"{RESULTS}/{{variant_dir}}summary/learning_curves.parquet"
SUMMARY_COMPARISON = f"{RESULTS}/{{variant_dir}}summary/comparison.parquet"
# The README's tables of that comparison as an HTML page, for the HTML report.
SUMMARY_COMPARISON_HTML = f"{RESULTS}/{{variant_dir}}summary/comparison.html"
SWEEP_FIGURE = f"{RESULTS}/{{variant_dir}}figures/phase{{phase}}/sweep_{{metric}}.png"
# What a reader compares (% of the oracle, gain per UE over all-local), from the comparison table.
RELATIVE_FIGURE = f"{RESULTS}/{{variant_dir}}figures/phase{{phase}}/sweep_relative.png"
CURVES_FIGURE = (
    f"{RESULTS}/{{variant_dir}}figures/phase{{phase}}/n{{n}}/learning_curves.png"
)
RUN_FIGURES = f"{RESULTS}/{{variant_dir}}figures/phase{{phase}}/n{{n}}/seed{{seed}}"
# {name}: a key of mec.plotting.LEARNING_FIGURES, filled in per phase (run_figure_paths), never a wildcard.
LEARNING_FIGURE = f"{RUN_FIGURES}/{{name}}_over_learning.png"
SCHEDULE_FIGURE = f"{RUN_FIGURES}/{plotting.SCHEDULE_FIGURE}.png"
# Results across variants. {comparison}: "ablations" (workflow.ablations) or "backends" (workflow.backend_variants).
COMPARISON_TABLE = f"{RESULTS}/summary/{{comparison}}.parquet"
COMPARISON_MARKDOWN = f"{RESULTS}/summary/{{comparison}}.md"
COMPARISON_FIGURE = f"{RESULTS}/figures/phase{{phase}}/{{comparison}}.png"
PARETO_TABLE = f"{RESULTS}/summary/pareto.parquet"
PARETO_FIGURE = f"{RESULTS}/figures/phase{{phase}}/pareto.png"
TUNING_TABLE = f"{RESULTS}/summary/tuning.parquet"
TUNING_MARKDOWN = f"{RESULTS}/summary/tuning.md"
# The README's results section: written here, spliced into README.md between its markers, with copies of the
# figures it shows under docs/results/ (the results folder is not in git; the README must show its figures anywhere).
README = "README.md"
README_RESULTS = f"{RESULTS}/README_results.md"
README_FIGURES = "docs/results"
LOGS = f"{RESULTS}/logs"
# Snakemake's own measurement of each heavy job (wall s, CPU s, peak RSS of its process tree): the study's cost.
BENCHMARKS = f"{RESULTS}/benchmarks"
VARIANTS_DIR = "variants/{}/"
# A comparison's name -> the key of the workflow section that names its variants.
COMPARISONS = {"ablations": "ablations", "backends": "backend_variants"}


wildcard_constraints:
    variant_dir="(variants/[A-Za-z0-9_.+-]+/)?",
    phase="1|2",
    n="[1-9][0-9]*",
    seed="[0-9]+",
    metric="|".join(plotting.FIGURE_METRICS),
    comparison="|".join(COMPARISONS),


# --------------------------------------------------------------------------- resources of a training job

# Measured on the study's machine with benchmarks/bench_job.py (docs/benchmarks/bench_job.json: RLlib 2.60,
# torch CPU, one core, no env runners, the default training section, the batched sampler; marginal UE credit): Ray
# and RLlib start and stop in about 12 s; one iteration (1000 sampled slots, 8 epochs, 5 validation episodes of 200
# slots, checkpoints) takes about 0.54 s in phase 1 (N = 7) and 2.74 s in phase 2 (K = 10, 100 UEs): about 77 s
# and 6 minutes per default job. The runtime estimate scales these with the batch size (and phase 2 with the number
# of UEs) and doubles them: the machine a job lands on may be slower or shared (two phase-2 jobs side by side on the
# study's 2 cores took 4.3-4.5 s per iteration, 541 s per job at K = 6 and 7, within the doubled estimate). Runtimes
# are in minutes.
TRAIN_START_S = 15
TRAIN_ITERATION_S = {1: 0.54, 2: 2.74}  # per 1000 sampled slots; phase 2 at 100 UEs
TRAIN_RUNTIME_SAFETY = 2.0
# Memory of all a job's processes together (driver, Ray's GCS and raylet, workers; summed RSS, flat over the
# iterations): about 1300 MB, plus up to 9 kB per UE-slot of the training batch (measured with the batched sampler:
# phase 2 with 1000 slots x 100 UEs peaks at 1640 MB, phase 1 N = 7 at 1290 MB; the per-UE-slot figure is kept
# from the per-step sampler, which peaked at 2200 MB), plus about 700 MB per extra env runner process.
TRAIN_BASE_MB = 1300
TRAIN_MB_PER_UE_SLOT = 0.009
TRAIN_MB_PER_ENV_RUNNER = 700
TRAIN_MEMORY_SAFETY = 1.25


def job_n_ue(wildcards):
    """UEs of the job's scenario: N in phase 1, phase2.n_users in phase 2."""
    return (
        int(wildcards.n)
        if int(wildcards.phase) == 1
        else study_of(wildcards).phase2.n_users
    )


def train_runtime_min(wildcards, attempt):
    """Wall-clock limit of a training job; a retry (e.g. after a cluster time-out) gets more, and resumes."""
    t = study_of(wildcards).training
    scale = t.train_batch_slots / 1000
    if int(wildcards.phase) == 2:
        scale *= study_of(wildcards).phase2.n_users / 100
    seconds = (
        TRAIN_START_S + t.iterations * TRAIN_ITERATION_S[int(wildcards.phase)] * scale
    )
    return math.ceil(TRAIN_RUNTIME_SAFETY * seconds / 60) * attempt


def train_mem_mb(wildcards, attempt):
    t = study_of(wildcards).training
    mb = (
        TRAIN_BASE_MB
        + TRAIN_MB_PER_ENV_RUNNER * t.num_env_runners
        + TRAIN_MB_PER_UE_SLOT * t.train_batch_slots * job_n_ue(wildcards)
    )
    return math.ceil(TRAIN_MEMORY_SAFETY * mb) * attempt


def train_threads(wildcards):
    """training.num_cpus of the job's study or variant."""
    return study_of(wildcards).training.num_cpus


# --------------------------------------------------------------------------- the study and its variants

# VARIANTS (name -> validated StudyConfig) is set by the Snakefile next to STUDY, with the same one-line errors.


@functools.cache
def variant_specs():
    """name -> mec.config.Variant (where it is declared, its overrides, its axis values)."""
    return study_variants(STUDY)


@functools.cache
def study_itself():
    """The study without its variant declarations: a variant with this config is the study itself."""
    return study_without_variants(STUDY)


def variant_dir(name):
    """Folder prefix of a variant's outputs (None: the study): "" where its config is the study's own, so that a
    trade-off weight equal to the study's is the study's results, not a copy of them."""
    if name is None or VARIANTS[name] == study_itself():
        return ""
    return VARIANTS_DIR.format(name)


def variant_of(wildcards):
    """The variant a job belongs to (None: the study), from its {variant_dir}; a job without one is the study's."""
    prefix = getattr(wildcards, "variant_dir", "")
    if not prefix:
        return None
    name = prefix.removeprefix("variants/").removesuffix("/")
    if name not in VARIANTS:
        raise WorkflowError(
            f"{RESULTS}/{prefix}: no variant named {name!r}; declared: {', '.join(VARIANTS) or 'none'}"
        )
    return name


def study_of(wildcards):
    """The validated config of the job's study or variant."""
    name = variant_of(wildcards)
    return STUDY if name is None else VARIANTS[name]


def config_of(name):
    return STUDY if name is None else VARIANTS[name]


# --------------------------------------------------------------------------- sweep


def sweep_sizes(phase, cfg=None):
    """N (UEs) of phase 1 or K (clusters) of phase 2."""
    cfg = cfg or STUDY
    return cfg.phase1.n_ue if phase == 1 else cfg.phase2.n_clusters


def sweep_points(phases=None, cfg=None):
    """(phase, n) of every configured sweep point (of `phases`, default workflow.phases)."""
    cfg = cfg or STUDY
    return [(p, n) for p in phases or cfg.workflow.phases for n in sweep_sizes(p, cfg)]


def runs(phases=None, cfg=None):
    """(phase, n, seed) of every training job."""
    cfg = cfg or STUDY
    return [(p, n, s) for p, n in sweep_points(phases, cfg) for s in cfg.workflow.seeds]


# --------------------------------------------------------------------------- rule params

# Phase-section keys that only the learned agents read: the heuristics choose their own CPU split, so a
# no-coordinator variant shares the study's baselines.
BASELINE_BLIND_KEYS = ("coordinator",)


@functools.cache
def study_sections(cfg):
    """The validated config with every default filled in: params built from it do not change when a user writes
    out a default value or swaps a reward preset for the same weights."""
    return config_to_dict(cfg)


def own_phase_section(cfg, phase, n):
    """The phase section cut down to one N or K: adding a sweep value must not change the params (and so rerun)
    the jobs of the other values."""
    own = dict(study_sections(cfg)[f"phase{phase}"])
    own["n_ue" if phase == 1 else "n_clusters"] = [n]
    return own


def param_value(cfg, name, phase, n):
    """The value of the param `name` of a job of `cfg` at (phase, n): a config section, or the phase section."""
    if name == "phase_section":
        return own_phase_section(cfg, phase, n)
    if name == "baseline_phase_section":
        own = own_phase_section(cfg, phase, n)
        return {k: v for k, v in own.items() if k not in BASELINE_BLIND_KEYS}
    return study_sections(cfg)[name]


def section(name):
    """A param of a rule, one section of the job's (study's or variant's) validated config as plain data."""

    def of_job(wildcards):
        return study_sections(study_of(wildcards))[name]

    return of_job


def phase_section(wildcards):
    """The job's own phase section, its sweep list cut down to the job's N or K."""
    return param_value(
        study_of(wildcards), "phase_section", int(wildcards.phase), int(wildcards.n)
    )


def baseline_phase_section(wildcards):
    """phase_section without the keys the heuristics never read (BASELINE_BLIND_KEYS)."""
    return param_value(
        study_of(wildcards),
        "baseline_phase_section",
        int(wildcards.phase),
        int(wildcards.n),
    )


# The params of each job that a variant may share with the study (as the rules in rules/*.smk declare them). A
# variant's job whose params equal those of the study's own job at the same point (and seed) is that job: the
# variant reads its outputs instead of running it again.
JOB_PARAMS = {
    "evaluate_baselines": (
        "scenario",
        "reward",
        "baseline_phase_section",
        "evaluation",
    ),
    "train_agents": ("scenario", "reward", "phase_section", "training"),
    "evaluate_policy": ("scenario", "reward", "phase_section", "evaluation"),
}


def is_study_job(name, rules, phase, n, seed=None):
    """Whether variant `name`'s jobs of `rules` at (phase, n[, seed]) are the study's own jobs."""
    if (phase, n) not in sweep_points() or (
        seed is not None and seed not in STUDY.workflow.seeds
    ):
        return False
    return all(
        param_value(VARIANTS[name], param, phase, n)
        == param_value(STUDY, param, phase, n)
        for rule in rules
        for param in JOB_PARAMS[rule]
    )


def baseline_dir(name, phase, n):
    """Where variant `name`'s baselines at (phase, n) are: the study's where they are the same jobs."""
    if name is None or is_study_job(name, ["evaluate_baselines"], phase, n):
        return ""
    return variant_dir(name)


def run_dir(name, phase, n, seed):
    """Where variant `name`'s training run (and its evaluation) at (phase, n, seed) is."""
    rules = ["train_agents", "evaluate_policy"]
    if name is None or is_study_job(name, rules, phase, n, seed):
        return ""
    return variant_dir(name)


def baseline_files(path, name=None):
    """`path` at every sweep point of the study or of variant `name`, in the folder of the job that makes it."""
    return [
        path.format(variant_dir=baseline_dir(name, p, n), phase=p, n=n)
        for p, n in sweep_points(cfg=config_of(name))
    ]


def run_files(path, name=None):
    """`path` of every training job of the study or of variant `name`, in the folder of the job that makes it."""
    return [
        path.format(variant_dir=run_dir(name, p, n, s), phase=p, n=n, seed=s)
        for p, n, s in runs(cfg=config_of(name))
    ]


def all_baseline_episodes(wildcards):
    """The per-slot tables of every configured sweep point."""
    return baseline_files(BASELINE_EPISODES, variant_of(wildcards))


def all_policy_episodes(wildcards):
    """The learned policy's per-slot tables of every training job."""
    return run_files(POLICY_EPISODES, variant_of(wildcards))


def all_train_metrics(wildcards):
    return run_files(TRAIN_METRICS, variant_of(wildcards))


def point_baseline_episodes(wildcards):
    """The baselines' per-slot table of one sweep point, in the folder of the job that makes it."""
    phase, n = int(wildcards.phase), int(wildcards.n)
    folder = baseline_dir(variant_of(wildcards), phase, n)
    return BASELINE_EPISODES.format(variant_dir=folder, phase=phase, n=n)


def point_train_metrics(wildcards):
    """The learning histories of every seed of one sweep point."""
    name, phase, n = variant_of(wildcards), int(wildcards.phase), int(wildcards.n)
    return [
        TRAIN_METRICS.format(
            variant_dir=run_dir(name, phase, n, s), phase=phase, n=n, seed=s
        )
        for s in config_of(name).workflow.seeds
    ]


# --------------------------------------------------------------------------- targets of the study


def per_point(path, phases=None):
    return [path.format(variant_dir="", phase=p, n=n) for p, n in sweep_points(phases)]


def per_run(path, phases=None):
    return [
        path.format(variant_dir="", phase=p, n=n, seed=s) for p, n, s in runs(phases)
    ]


def study_file(path, **wildcards):
    return path.format(variant_dir="", **wildcards)


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
        path.format(variant_dir="", phase=phase, n=n, seed=seed)
        for path in run_figure_paths(phase).values()
    ]


def baseline_output():
    """Every heuristic (and the oracle) at every sweep point, and their summary."""
    return (
        per_point(BASELINE_EPISODES)
        + per_point(BASELINE_SUMMARY)
        + [study_file(SUMMARY_BASELINES)]
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
        SWEEP_FIGURE,
        variant_dir="",
        phase=STUDY.workflow.phases,
        metric=list(plotting.FIGURE_METRICS),
    )
    files += expand(RELATIVE_FIGURE, variant_dir="", phase=STUDY.workflow.phases)
    files += per_point(CURVES_FIGURE)
    for p, n, seed in runs():
        files += run_figures(p, n, seed)
    return files


def study_output(name=None):
    """Everything the default target builds for the study (`name` None) or for variant `name` of workflow.scenarios:
    its baselines, training runs and their evaluations and figures, summaries and sweep figures, each in the folder
    of the job that makes it (the study's where the job is the study's own)."""
    cfg = config_of(name)
    folder = variant_dir(name)
    files = baseline_files(BASELINE_EPISODES, name) + baseline_files(
        BASELINE_SUMMARY, name
    )
    for path in (TRAIN_METRICS, FINAL_CHECKPOINT, POLICY_EPISODES, POLICY_SCHEDULE):
        files += run_files(path, name)
    for p, n, seed in runs(cfg=cfg):
        where = run_dir(name, p, n, seed)
        files += [
            path.format(variant_dir=where, phase=p, n=n, seed=seed)
            for path in run_figure_paths(p).values()
        ]
    summaries = [
        SUMMARY_BASELINES,
        SUMMARY_LEARNED,
        SUMMARY_CURVES,
        SUMMARY_COMPARISON,
        SUMMARY_COMPARISON_HTML,
    ]
    files += [path.format(variant_dir=folder) for path in summaries]
    files += [
        CURVES_FIGURE.format(variant_dir=folder, phase=p, n=n)
        for p, n in sweep_points(cfg=cfg)
    ]
    files += expand(
        SWEEP_FIGURE,
        variant_dir=folder,
        phase=cfg.workflow.phases,
        metric=list(plotting.FIGURE_METRICS),
    )
    return files + expand(
        RELATIVE_FIGURE, variant_dir=folder, phase=cfg.workflow.phases
    )


def final_output():
    """Everything `snakemake` (rule all) builds, the study and each scenario of workflow.scenarios beside it."""
    files = []
    for name in (None, *STUDY.workflow.scenarios):
        files += study_output(name)
    return list(dict.fromkeys(files))


# --------------------------------------------------------------------------- targets across variants


def _need(names, key, target):
    """Stop with one line when a target's variant family is empty in the config."""
    if not names:
        print(
            f"Error: target {target}: config key '{key}' is empty; allowed: a non-empty {key} (config.yaml)",
            file=sys.stderr,
        )
        raise SystemExit(1)
    return names


def variant_summaries(name, baselines=False):
    """The summaries of variant `name` (its learned policy over seeds; with `baselines`, its baselines too)."""
    folder = variant_dir(name)
    paths = [SUMMARY_LEARNED] + ([SUMMARY_BASELINES] if baselines else [])
    return [path.format(variant_dir=folder) for path in paths]


def comparison_variants(comparison):
    """The variants a comparison (ablations, backends) sets beside the study, by the workflow key naming them."""
    key = COMPARISONS[comparison]
    return _need(
        list(getattr(STUDY.workflow, key)), f"workflow.{key}", f"compare {comparison}"
    )


def comparison_phases(names):
    """The phases a comparison or a family of variants covers."""
    return sorted({p for name in names for p in config_of(name).workflow.phases})


def comparison_inputs(wildcards):
    """The study's learned summary and baselines, then each variant's learned summary (in params' order)."""
    names = comparison_variants(wildcards.comparison)
    return {
        "learned": [study_file(SUMMARY_LEARNED)]
        + [variant_summaries(name)[0] for name in names],
        "baselines": study_file(SUMMARY_BASELINES),
    }


def comparison_studies(wildcards):
    """Label, folder and overrides of every study in the comparison, in the order of comparison_inputs."""
    names = comparison_variants(wildcards.comparison)
    specs = variant_specs()
    return [{"study": "study", "variant_dir": "", "description": "config.yaml"}] + [
        {
            "study": name,
            "variant_dir": variant_dir(name),
            "description": specs[name].description,
        }
        for name in names
    ]


def comparison_output(comparison):
    def files(wildcards):
        names = comparison_variants(comparison)
        paths = [
            COMPARISON_TABLE.format(comparison=comparison),
            COMPARISON_MARKDOWN.format(comparison=comparison),
        ]
        return paths + [
            COMPARISON_FIGURE.format(phase=p, comparison=comparison)
            for p in comparison_phases(names)
        ]

    return files


def w_energy_variants():
    """The trade-off axis's variants (w_energy_<w>), in the order of workflow.w_energy."""
    names = [
        name
        for name, spec in variant_specs().items()
        if spec.origin == "workflow.w_energy"
    ]
    return _need(names, "workflow.w_energy", "pareto")


def pareto_inputs(wildcards):
    return {
        "learned": [variant_summaries(name)[0] for name in w_energy_variants()],
        "baselines": [
            variant_summaries(name, baselines=True)[1] for name in w_energy_variants()
        ],
    }


def pareto_studies(wildcards):
    """Label, energy weight and folder of every point of the trade-off axis, in the order of pareto_inputs."""
    return [
        {
            "study": name,
            "w_energy": VARIANTS[name].reward.w_energy_per_j,
            "variant_dir": variant_dir(name),
        }
        for name in w_energy_variants()
    ]


def pareto_output(wildcards):
    phases = comparison_phases(w_energy_variants())
    return [PARETO_TABLE] + [PARETO_FIGURE.format(phase=p) for p in phases]


def tuning_variants():
    names = [
        name for name, spec in variant_specs().items() if spec.origin == "tuning.grid"
    ]
    return _need(names, "tuning.grid", "tune")


def tuning_runs(wildcards):
    """Every tuning run: its variant, grid values and seed, in the order of tuning_inputs."""
    specs = variant_specs()
    return [
        {
            "variant": name,
            "seed": s,
            "grid": dict(specs[name].axes),
            "variant_dir": run_dir(name, p, n, s),
        }
        for name in tuning_variants()
        for p, n, s in runs(cfg=VARIANTS[name])
    ]


def tuning_inputs(wildcards):
    return [
        TRAIN_METRICS.format(
            variant_dir=run["variant_dir"],
            phase=STUDY.tuning.phase,
            n=STUDY.tuning.n,
            seed=run["seed"],
        )
        for run in tuning_runs(wildcards)
    ]


def tuning_output(wildcards):
    tuning_variants()
    return [TUNING_TABLE, TUNING_MARKDOWN]


# The README's results show what has been built beside the study: each of these tables when it exists and its
# family is configured (a stale one is brought up to date first, as any input), with its figures.
README_OPTIONAL = {
    "ablations": (
        "workflow.ablations",
        COMPARISON_TABLE.format(comparison="ablations"),
    ),
    "backends": (
        "workflow.backend_variants",
        COMPARISON_TABLE.format(comparison="backends"),
    ),
    "pareto": ("workflow.w_energy", PARETO_TABLE),
    "tuning": ("tuning.grid", TUNING_TABLE),
}


def readme_scenarios(wildcards):
    """Name and overrides of each scenario of workflow.scenarios, in the order of readme_inputs' scenarios."""
    specs = variant_specs()
    return [
        {"name": name, "description": specs[name].description}
        for name in STUDY.workflow.scenarios
    ]


def _configured(dotted):
    section, key = dotted.split(".")
    return bool(getattr(getattr(STUDY, section), key))


def readme_inputs(wildcards):
    """The study's comparison and reward sweep figures, and every optional table (and its figures) on disk."""
    files = {
        "comparison": study_file(SUMMARY_COMPARISON),
        "figures": [
            study_file(path, phase=p, metric="reward_per_slot")
            for p in STUDY.workflow.phases
            for path in (RELATIVE_FIGURE, SWEEP_FIGURE)
        ],
    }
    # Each scenario of workflow.scenarios: its comparison table (in params' order) and its sweep figures.
    files["scenarios"] = [
        SUMMARY_COMPARISON.format(variant_dir=variant_dir(name))
        for name in STUDY.workflow.scenarios
    ]
    files["figures"] += [
        path.format(variant_dir=variant_dir(name), phase=p, metric="reward_per_slot")
        for name in STUDY.workflow.scenarios
        for p in config_of(name).workflow.phases
        for path in (RELATIVE_FIGURE, SWEEP_FIGURE)
    ]
    for name, (key, path) in README_OPTIONAL.items():
        if _configured(key) and os.path.exists(path):
            files[name] = path
    if "pareto" in files:
        phases = comparison_phases(w_energy_variants())
        files["figures"] += [PARETO_FIGURE.format(phase=p) for p in phases]
    for comparison in ("ablations", "backends"):
        if comparison in files:
            phases = comparison_phases(comparison_variants(comparison))
            files["figures"] += [
                COMPARISON_FIGURE.format(phase=p, comparison=comparison) for p in phases
            ]
    return files
