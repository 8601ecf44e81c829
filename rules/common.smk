# Config checks, the study's output paths and the functions that build target lists and rule params.
import contextlib
import copy
import sys

import jsonschema
from snakemake.exceptions import WorkflowError

from mec.config import ConfigError, config_from_dict, config_to_dict
from mec.plotting import FIGURE_METRICS

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
SUMMARY_BASELINES = "results/summary/baselines.parquet"
BASELINE_FIGURE = "results/figures/phase{phase}/baselines_{metric}.png"
LOGS = "results/logs"


wildcard_constraints:
    phase="1|2",
    n="[1-9][0-9]*",
    metric="|".join(FIGURE_METRICS),


# --------------------------------------------------------------------------- sweep


def sweep_points():
    """(phase, n) of every configured sweep point: n is N (UEs) in phase 1 and K (clusters) in phase 2."""
    points = []
    for phase in STUDY.workflow.phases:
        sizes = STUDY.phase1.n_ue if phase == 1 else STUDY.phase2.n_clusters
        points += [(phase, n) for n in sizes]
    return points


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


def all_baseline_episodes(wildcards):
    """Input of aggregate_metrics: the per-slot tables of every configured sweep point."""
    return [BASELINE_EPISODES.format(phase=phase, n=n) for phase, n in sweep_points()]


# --------------------------------------------------------------------------- targets


def baseline_output():
    files = [
        path.format(phase=phase, n=n)
        for phase, n in sweep_points()
        for path in (BASELINE_EPISODES, BASELINE_SUMMARY)
    ]
    return files + [SUMMARY_BASELINES]


def figure_output():
    return expand(
        BASELINE_FIGURE, phase=STUDY.workflow.phases, metric=list(FIGURE_METRICS)
    )


def final_output():
    """Everything `snakemake` (rule all) builds. The training outputs (phase1, phase2 targets) join this list."""
    return baseline_output() + figure_output()
