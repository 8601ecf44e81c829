# Config checks, the study's output paths, the target lists, and the adapters from Snakemake's wildcards to the
# study's plan (mec.plan: which jobs, their params and folders, what a training job asks of the machine).
import contextlib
import functools
import os
import sys

import jsonschema
from snakemake.exceptions import WorkflowError

from mec import io, plan, plotting
from mec.config import ConfigError, config_from_dict, read_config_file
from mec.variants import variant_configs

# The command line's config (--configfile, --config) as mec.config reads a file: the free-key sections it gives
# replace config.yaml's (mec.plan.REPLACED_ON_OVERRIDE), and --config's numbers and booleans, which Snakemake reads
# as text inside a mapping, are typed again.
plan.replace_from_overrides(config, workflow.config_settings.overwrite_config)
plan.retype_command_line(config, dict(workflow.config_settings.config))


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


def check_ray_addresses(dag):
    """Before any job starts (onstart): the Ray cluster of every training job about to
    run (training.ray_address of its study or variant) answers; else one line and exit
    status 1, with no job started and no output removed."""
    try:
        jobs = [job for job in dag.needrun_jobs() if job.rule.name == "train_agents"]
        names = {variant_of(job.wildcards) for job in jobs}
    except AttributeError:  # another Snakemake's DAG: ask every config
        names = {None, *VARIANTS}
    for address in sorted({config_of(name).training.ray_address for name in names}):
        problem = plan.ray_address_problem(address)
        if problem:
            _stop(problem)


def check_results_dir():
    """Before any job starts (onstart): workflow.results_dir takes new files (mec.io's
    probe: a symlink loop, a full disk, a path under a file); else one line, exit 1."""
    problem = io.writable_problem(RESULTS)
    if problem:
        _stop(f"config key 'workflow.results_dir': {RESULTS}: {problem}")


# Where it can be known before any job starts, a run that cannot work stops in one line
# and removes nothing: an output folder that cannot be written, an unreachable Ray cluster.
onstart:
    check_results_dir()
    check_ray_addresses(workflow.dag)


# --------------------------------------------------------------------------- paths (defined once)

# Every output lies under workflow.results_dir ("results" by default), so each config (config.yaml's study, the tiny
# .test/config.yaml) keeps its own outputs and never marks another's stale. Taken from the raw config here, before
# the Snakefile validates it: a bad value stops there in one line, before any path is used.
RESULTS = str(
    (config.get("workflow") or {}).get("results_dir", "results")
    if isinstance(config.get("workflow") or {}, dict)
    else "results"
)


def check_results_path():
    """At once, even in a dry run (Snakemake's own scan of the folder would end in a
    traceback): workflow.results_dir is a folder or nothing yet, never a symlink loop or
    a path under a file. Whether it takes files is the onstart probe's question."""
    try:
        if not os.path.isdir(RESULTS) and os.path.lexists(RESULTS):
            os.stat(RESULTS)  # a file, or a link that cannot be followed
            raise NotADirectoryError(20, "a file, not a folder")
    except FileNotFoundError:
        return
    except OSError as exc:
        _stop(f"config key 'workflow.results_dir': {RESULTS}: {exc.strerror}")


check_results_path()
# {variant_dir} is "" for the study itself and "variants/<name>/" for a variant of it (workflow.variants, the
# trade-off axis workflow.w_energy, the tuning grid): the same rules build both, and the study's paths stay as they
# are. {variant_dir} is constrained to variants/<name>/, so no pattern of one results folder matches another's.
BASELINE_EPISODES = (
    f"{RESULTS}/{{variant_dir}}phase{{phase}}/n{{n}}/baselines/episodes.parquet"
)
BASELINE_SUMMARY = (
    f"{RESULTS}/{{variant_dir}}phase{{phase}}/n{{n}}/baselines/summary.parquet"
)
# One training job's folder. run/ is mec.runs' run directory (its own metrics, checkpoints, resume state): no file
# in it is an output, so Snakemake never deletes any of it (not before a rerun, not after a failure) and a rerun of
# a killed or failed job resumes from its latest checkpoint, or, where the run is complete, trains nothing. The job's
# one output is the complete learning history, copied from the run directory last, once training is complete and
# its final checkpoint is in place; a failed job costs only that copy (evaluate_policy reads the best checkpoint
# beside it, RUN_STATE/checkpoints/best).
RUN = f"{RESULTS}/{{variant_dir}}phase{{phase}}/n{{n}}/seed{{seed}}"
RUN_STATE = f"{RUN}/run"
TRAIN_METRICS = f"{RUN}/metrics.parquet"
POLICY_EPISODES = f"{RUN}/eval/episodes.parquet"
POLICY_SCHEDULE = f"{RUN}/eval/schedule.parquet"
SUMMARY_BASELINES = f"{RESULTS}/{{variant_dir}}summary/baselines.parquet"
SUMMARY_LEARNED = f"{RESULTS}/{{variant_dir}}summary/learned.parquet"
# One row per training run (phase, N or K, seed): what learned.parquet aggregates, so that a rerun of a few seeds
# can be checked against the committed numbers exactly.
SUMMARY_SEEDS = f"{RESULTS}/{{variant_dir}}summary/learned_seeds.parquet"
SUMMARY_CURVES = f"{RESULTS}/{{variant_dir}}summary/learning_curves.parquet"
SUMMARY_COMPARISON = f"{RESULTS}/{{variant_dir}}summary/comparison.parquet"
# The tables of docs/results.md for that comparison as an HTML page, for the HTML report.
SUMMARY_COMPARISON_HTML = f"{RESULTS}/{{variant_dir}}summary/comparison.html"
# The per-seed, per-episode results in marl-eval's JSON layout (mec.marl_eval), for marl-eval's and BenchMARL's tools.
SUMMARY_MARL_EVAL = f"{RESULTS}/{{variant_dir}}summary/marl_eval.json"
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
# The generated results section of docs/results.md (and the README's headline table, rules/variants.smk): written
# here, spliced into the page between its markers, with copies of the figures it shows under docs/results/ (the
# results folder is not in git; the page must show its figures anywhere).
README = "README.md"
README_RESULTS = f"{RESULTS}/README_results.md"
README_FIGURES = "docs/results"
LOGS = f"{RESULTS}/logs"
# Snakemake's own measurement of each heavy job (wall s, CPU s, peak RSS of its process tree): the study's cost.
BENCHMARKS = f"{RESULTS}/benchmarks"
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

# The model (measured, with its scaling) is mec.plan's train_runtime_min and train_mem_mb; runtimes are in minutes.


def train_runtime_min(wildcards, attempt):
    """Wall-clock limit of a training job; a retry (e.g. after a cluster time-out) gets more, and resumes."""
    return plan.train_runtime_min(study_of(wildcards), int(wildcards.phase), attempt)


def train_mem_mb(wildcards, attempt):
    return plan.train_mem_mb(
        study_of(wildcards), int(wildcards.phase), int(wildcards.n), attempt
    )


def train_threads(wildcards):
    """training.num_cpus of the job's study or variant."""
    return study_of(wildcards).training.num_cpus


# --------------------------------------------------------------------------- the study and its variants

# VARIANTS (name -> validated StudyConfig) is set by the Snakefile next to STUDY, with the same one-line errors.


@functools.cache
def study_plan():
    """mec.plan's plan of the study and its variants: their folders, and which of a variant's jobs are the study's."""
    return plan.StudyPlan(STUDY, VARIANTS)


def variant_dir(name):
    """Folder prefix of a variant's outputs (None: the study): "" where its config is the study's own."""
    return study_plan().variant_dir(name)


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
    return config_of(variant_of(wildcards))


def config_of(name):
    return study_plan().config_of(name)


# --------------------------------------------------------------------------- sweep


def sweep_points(phases=None, cfg=None):
    """(phase, n) of every configured sweep point of the study or `cfg` (of `phases`, default workflow.phases)."""
    return plan.sweep_points(cfg or STUDY, phases)


def runs(phases=None, cfg=None):
    """(phase, n, seed) of every training job of the study or `cfg`."""
    return plan.runs(cfg or STUDY, phases)


# --------------------------------------------------------------------------- rule params


def section(name):
    """A param of a rule, one section of the job's (study's or variant's) validated config as plain data."""

    def of_job(wildcards):
        return plan.study_sections(study_of(wildcards))[name]

    return of_job


def job_params(rule):
    """The params of job rule `rule` (name -> input function of the job's wildcards), as mec.plan.JOB_PARAMS
    lists them: what decides whether a variant's job is the study's own."""
    return {name: _job_param(kind) for name, kind in plan.JOB_PARAMS[rule].items()}


def _job_param(kind):
    if kind == plan.RUN_FOLDER:
        return RUN_STATE

    def of_job(wildcards):
        phase, n = int(wildcards.phase), int(wildcards.n)
        return plan.param_value(study_of(wildcards), kind, phase, n)

    return of_job


def baseline_dir(name, phase, n):
    """Where variant `name`'s baselines at (phase, n) are: the study's where they are the same jobs."""
    return study_plan().baseline_dir(name, phase, n)


def run_dir(name, phase, n, seed):
    """Where variant `name`'s training run (and its evaluation) at (phase, n, seed) is."""
    return study_plan().run_dir(name, phase, n, seed)


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
    for path in (TRAIN_METRICS, POLICY_EPISODES, POLICY_SCHEDULE):
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
    for path in (TRAIN_METRICS, POLICY_EPISODES, POLICY_SCHEDULE):
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
        SUMMARY_SEEDS,
        SUMMARY_CURVES,
        SUMMARY_COMPARISON,
        SUMMARY_COMPARISON_HTML,
        SUMMARY_MARL_EVAL,
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


def scenario_output():
    """Everything the scenarios of workflow.scenarios build (rule scenarios), without the study's own sweep."""
    files = []
    for name in STUDY.workflow.scenarios:
        files += study_output(name)
    return list(dict.fromkeys(files))


def final_output():
    """Everything `snakemake` (rule all) builds, the study and each scenario of workflow.scenarios beside it."""
    return list(dict.fromkeys([*study_output(None), *scenario_output()]))


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
    specs = study_plan().specs
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
    names = study_plan().family("workflow.w_energy")
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
    names = study_plan().family("tuning.grid")
    return _need(names, "tuning.grid", "tune")


def tuning_runs(wildcards):
    """Every tuning run: its variant, grid values and seed, in the order of tuning_inputs."""
    specs = study_plan().specs
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


# docs/results.md's generated section shows what has been built beside the study: each of these tables when it
# exists and its family is configured (a stale one is brought up to date first, as any input), with its figures.
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
    specs = study_plan().specs
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
