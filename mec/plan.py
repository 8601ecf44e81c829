"""The plan of the study's workflow, without Snakemake: which jobs a config asks for, the params each job receives,
which of a variant's jobs are the study's own (and so where their outputs lie), what a training job asks of the
machine, and how the command line's config overrides are merged and typed.

rules/common.smk calls these with the validated StudyConfig of the study and of its variants (mec.config); it keeps
only the paths, the wildcards and Snakemake's own objects. Everything here is plain data in, plain data out.
"""

from __future__ import annotations

import copy
import functools
import math
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mec.config import ConfigError, StudyConfig, config_to_dict, parse_value, set_dotted
from mec.variants import Variant, study_variants, study_without_variants

# --------------------------------------------------------------------------- config overrides of the command line

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


def replace_from_overrides(config: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Set each section of REPLACED_ON_OVERRIDE that `overrides` gives to its given value, in place in `config`
    (the config merged from every file and --config)."""
    for keys in REPLACED_ON_OVERRIDE:
        given: Any = overrides
        for key in keys:
            given = given.get(key) if isinstance(given, dict) else None
        if given is not None:
            set_dotted(config, keys, copy.deepcopy(given))


def typed(value: Any) -> Any:
    """A value of Snakemake's --config as mec.config reads a config file: Snakemake reads every value nested in a
    mapping (training={iterations: 3}) as text, so numbers and booleans are read again with mec.config's YAML
    loader. Text that reads as text, nothing or a mapping or list stays as it is."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, str):
        try:
            parsed = parse_value(value)
        except ConfigError:
            return value
        if isinstance(parsed, (bool, int, float)):
            return parsed
    return value


def retype_command_line(node: dict[str, Any], given: Mapping[str, Any]) -> None:
    """Replace the values given by --config (`given`) in the merged config `node` by their typed form, in place."""
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(node.get(key), dict):
            retype_command_line(node[key], value)
        elif key in node:
            node[key] = typed(value)


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


def job_n_ue(cfg: StudyConfig, phase: int, n: int) -> int:
    """UEs of a job's scenario at sweep point (phase, n): N in phase 1, phase2.n_users in phase 2."""
    return n if phase == 1 else cfg.phase2.n_users


def train_runtime_min(cfg: StudyConfig, phase: int, attempt: int = 1) -> int:
    """Wall-clock limit in minutes of a training job of `cfg` in `phase`; a retry (e.g. after a cluster time-out)
    gets `attempt` times more, and resumes."""
    t = cfg.training
    scale = t.train_batch_slots / 1000
    if phase == 2:
        scale *= cfg.phase2.n_users / 100
    seconds = TRAIN_START_S + t.iterations * TRAIN_ITERATION_S[phase] * scale
    return math.ceil(TRAIN_RUNTIME_SAFETY * seconds / 60) * attempt


def train_mem_mb(cfg: StudyConfig, phase: int, n: int, attempt: int = 1) -> int:
    """Memory request in MB of a training job of `cfg` at sweep point (phase, n), `attempt` times more on a retry."""
    t = cfg.training
    mb = (
        TRAIN_BASE_MB
        + TRAIN_MB_PER_ENV_RUNNER * t.num_env_runners
        + TRAIN_MB_PER_UE_SLOT * t.train_batch_slots * job_n_ue(cfg, phase, n)
    )
    return math.ceil(TRAIN_MEMORY_SAFETY * mb) * attempt


# A training job that joins a Ray cluster (training.ray_address "host:port" or "ray://host:port") needs it to answer;
# the workflow asks before any job starts (rules/common.smk, onstart), so that an unreachable cluster costs no job
# and no job's outputs. "auto" (the cluster this node belongs to) is left to Ray: only Ray knows where it looks.
RAY_CONNECT_TIMEOUT_S = 10


def ray_address_problem(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> str | None:
    """None where `address` is "" (a private Ray instance per job), "auto", or answers a TCP connection within
    `timeout_s`; else one line saying why it does not."""
    if not address or address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        return (
            f"config key 'training.ray_address': {address} does not answer ({reason} within {timeout_s:g} s); "
            'allowed: the address of a running Ray cluster (ray start --head prints it), or "" for a private Ray '
            "instance per job"
        )
    return None


# --------------------------------------------------------------------------- the sweep


def sweep_sizes(cfg: StudyConfig, phase: int) -> tuple[int, ...]:
    """N (UEs) of phase 1 or K (clusters) of phase 2."""
    return cfg.phase1.n_ue if phase == 1 else cfg.phase2.n_clusters


def sweep_points(cfg: StudyConfig, phases: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """(phase, n) of every configured sweep point (of `phases`, default workflow.phases)."""
    return [(p, n) for p in phases or cfg.workflow.phases for n in sweep_sizes(cfg, p)]


def runs(cfg: StudyConfig, phases: Iterable[int] | None = None) -> list[tuple[int, int, int]]:
    """(phase, n, seed) of every training job."""
    return [(p, n, s) for p, n in sweep_points(cfg, phases) for s in cfg.workflow.seeds]


# --------------------------------------------------------------------------- the params of a job

# Phase-section keys that only the learned agents read: the heuristics choose their own CPU split, so a
# no-coordinator variant shares the study's baselines.
BASELINE_BLIND_KEYS = ("coordinator",)
# Evaluation keys that only the learned policy's evaluation reads (best-of-K decisions): the baselines' jobs never
# get them, and the learned policy's jobs only where they are on, so that their params (and outputs) stay those of
# a study without them.
LEARNED_EVALUATION_KEYS = {"best_of": (0, 1)}  # key -> its values that mean "off"
# What a param of a job rule holds, besides a config section (named as in the config): the job's own phase section,
# that section without BASELINE_BLIND_KEYS, or the job's run folder (a path, not config: the same for every job in
# one folder, so it never tells two jobs apart).
PHASE_SECTION = "phase_section"
BASELINE_PHASE_SECTION = "baseline_phase_section"
RUN_FOLDER = "run_folder"
# The evaluation section without LEARNED_EVALUATION_KEYS (baselines), or without those that are off (learned).
BASELINE_EVALUATION = "baseline_evaluation"
POLICY_EVALUATION = "policy_evaluation"

# The params of each job rule, name -> what it holds; the rules in rules/*.smk take their params from here, so a job
# receives exactly what decides whether a variant shares it. Only the sections that change the numbers: baselines
# read neither training nor the coordinator, training reads no final evaluation; none reads statistics, plotting or
# the workflow's lists (nor the other phase's section). A variant's job whose params equal those of the study's own
# job at the same point (and seed) is that job: the variant reads its outputs instead of running it again.
JOB_PARAMS: dict[str, dict[str, str]] = {
    "evaluate_baselines": {
        "scenario": "scenario",
        "reward": "reward",
        "phase_section": BASELINE_PHASE_SECTION,
        "evaluation": BASELINE_EVALUATION,
    },
    "train_agents": {
        "scenario": "scenario",
        "reward": "reward",
        "phase_section": PHASE_SECTION,
        "training": "training",
        "run_dir": RUN_FOLDER,
    },
    "evaluate_policy": {
        "scenario": "scenario",
        "reward": "reward",
        "phase_section": PHASE_SECTION,
        "evaluation": POLICY_EVALUATION,
    },
}
BASELINE_RULES = ("evaluate_baselines",)
RUN_RULES = ("train_agents", "evaluate_policy")


@functools.cache
def study_sections(cfg: StudyConfig) -> dict[str, Any]:
    """The validated config with every default filled in: params built from it do not change when a user writes
    out a default value or swaps a reward preset for the same weights."""
    return config_to_dict(cfg)


def own_phase_section(cfg: StudyConfig, phase: int, n: int) -> dict[str, Any]:
    """The phase section cut down to one N or K: adding a sweep value must not change the params (and so rerun)
    the jobs of the other values."""
    own = dict(study_sections(cfg)[f"phase{phase}"])
    own["n_ue" if phase == 1 else "n_clusters"] = [n]
    return own


def param_value(cfg: StudyConfig, kind: str, phase: int, n: int) -> Any:
    """The value of a param holding `kind` (a config section, PHASE_SECTION, BASELINE_PHASE_SECTION,
    BASELINE_EVALUATION or POLICY_EVALUATION) of a job of `cfg` at (phase, n)."""
    if kind == PHASE_SECTION:
        return own_phase_section(cfg, phase, n)
    if kind == BASELINE_PHASE_SECTION:
        own = own_phase_section(cfg, phase, n)
        return {k: v for k, v in own.items() if k not in BASELINE_BLIND_KEYS}
    if kind in (BASELINE_EVALUATION, POLICY_EVALUATION):
        section = study_sections(cfg)["evaluation"]
        return {k: v for k, v in section.items() if k not in LEARNED_EVALUATION_KEYS
                or (kind == POLICY_EVALUATION and v not in LEARNED_EVALUATION_KEYS[k])}  # fmt: skip
    if kind == RUN_FOLDER:
        raise ValueError("the run folder is a path of the job, not a value of its config")
    return study_sections(cfg)[kind]


def job_param_values(cfg: StudyConfig, rule: str, phase: int, n: int) -> dict[str, Any]:
    """The config params (all but the run folder) of job rule `rule` of `cfg` at (phase, n), by param name."""
    return {
        name: param_value(cfg, kind, phase, n) for name, kind in JOB_PARAMS[rule].items() if kind != RUN_FOLDER
    }


# --------------------------------------------------------------------------- the study, its variants and their jobs

VARIANTS_DIR = "variants/{}/"


class StudyPlan:
    """The study (`study`, its validated config) and its variants (`variants`: name -> validated StudyConfig, as
    mec.variants.variant_configs gives them): where each variant's jobs lie, and which of them are the study's own.

    A variant's folder prefix is "" for the study and "variants/<name>/" for a variant whose config differs from the
    study's; a variant's baselines or training run at one point (and seed) is in the study's folder where its job is
    the study's own job (the same params at a point and seed of the study).
    """

    def __init__(self, study: StudyConfig, variants: Mapping[str, StudyConfig]) -> None:
        self.study = study
        self.variants = dict(variants)

    @functools.cached_property
    def specs(self) -> dict[str, Variant]:
        """name -> mec.variants.Variant (where it is declared, its overrides, its axis values)."""
        return study_variants(self.study)

    @functools.cached_property
    def itself(self) -> StudyConfig:
        """The study without its variant declarations: a variant with this config is the study itself."""
        return study_without_variants(self.study)

    def config_of(self, name: str | None) -> StudyConfig:
        """The validated config of variant `name` (None: the study)."""
        return self.study if name is None else self.variants[name]

    def variant_dir(self, name: str | None) -> str:
        """Folder prefix of a variant's outputs (None: the study): "" where its config is the study's own, so that a
        trade-off weight equal to the study's is the study's results, not a copy of them."""
        if name is None or self.variants[name] == self.itself:
            return ""
        return VARIANTS_DIR.format(name)

    def is_study_job(self, name: str, rules: Sequence[str], phase: int, n: int, seed: int | None = None) -> bool:
        """Whether variant `name`'s jobs of `rules` at (phase, n[, seed]) are the study's own jobs."""
        if (phase, n) not in sweep_points(self.study) or (seed is not None and seed not in self.study.workflow.seeds):
            return False
        variant = self.variants[name]
        return all(
            job_param_values(variant, rule, phase, n) == job_param_values(self.study, rule, phase, n) for rule in rules
        )

    def baseline_dir(self, name: str | None, phase: int, n: int) -> str:
        """Where variant `name`'s baselines at (phase, n) are: the study's where they are the same jobs."""
        if name is None or self.is_study_job(name, BASELINE_RULES, phase, n):
            return ""
        return self.variant_dir(name)

    def run_dir(self, name: str | None, phase: int, n: int, seed: int) -> str:
        """Where variant `name`'s training run (and its evaluation) at (phase, n, seed) is."""
        if name is None or self.is_study_job(name, RUN_RULES, phase, n, seed):
            return ""
        return self.variant_dir(name)

    def family(self, origin: str) -> list[str]:
        """The variants declared by config key `origin` (workflow.w_energy, tuning.grid), in declaration order."""
        return [name for name, spec in self.specs.items() if spec.origin == origin]
