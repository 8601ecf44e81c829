"""Study configuration: every config key, declared once, and the loader that checks a config file against them.

Where to look. The sections below, in the order of config.yaml (scenario, reward, phase1, phase2, evaluation,
training, workflow, tuning, statistics, plotting), are frozen dataclasses; each field is one key, declared by
``_key(default, parser, meaning)``: its default, the parser that checks a given value (mec.config_parsers) and its
one-line meaning. After them: the checks across keys (K <= phase2.n_users, share floors that fit, sizes that fit in
memory) and the loader (``load_config``, ``config_from_dict``, ``apply_overrides`` for ``--set key=value``).
Elsewhere: the value parsers, the YAML reading and the one writer of a dotted key in mec.config_parsers; the JSON
schema config/schema.yaml in mec.config_schema (``python -m mec.config --write-schema config/schema.yaml``, ``make
schema``); the study's variants (workflow.variants, the trade-off axis, the tuning grid) in mec.variants, beside
mec.plan. The names those modules export that the study's code imports from here are re-exported.

Parsing is strict (unknown keys, wrong types, NaN and infeasible share floors are rejected) so a typo in config.yaml
or on the command line fails loudly before any training time is spent, with a one-line message naming the dotted
key, the bad value and what would have been accepted.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import math
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import yaml

from mec import config_parsers as parse
from mec.config_parsers import (
    SLACK,
    ConfigError,
    FrozenMap,
    Range,
    check_keys,
    fail,
    join,
    parse_value,
    parse_yaml,
    set_dotted,
    show,
    where,
    yaml_problem,
)

__all__ = [
    "ACTIVATIONS",
    "ACTORS",
    "BACKENDS",
    "CHANNEL_MODELS",
    "COORDINATORS",
    "CRITICS",
    "DEFAULT_CONFIG",
    "MAX_PHASE1_UE",
    "REWARD_PRESETS",
    "SPECTRUM_BY",
    "UE_CREDITS",
    "ChannelConfig",
    "ConfigError",
    "EvaluationConfig",
    "FrozenMap",
    "Phase1Config",
    "Phase2Config",
    "PlottingConfig",
    "Range",
    "RewardConfig",
    "ScenarioConfig",
    "ServerConfig",
    "StatisticsConfig",
    "StudyConfig",
    "TaskConfig",
    "TrainingConfig",
    "TuningConfig",
    "UEConfig",
    "WorkflowConfig",
    "apply_overrides",
    "check_episode_memory",
    "check_study_memory",
    "config_from_dict",
    "config_from_sections",
    "config_to_dict",
    "load_config",
    "memory_limit_bytes",
    "parse_value",
    "read_config_file",
    "set_dotted",
]

CHANNEL_MODELS = ("pathloss_3gpp", "inverse_square")
CRITICS = ("central", "local")
ACTORS = ("rows", "set")
ACTIVATIONS = ("tanh", "relu")
UE_CREDITS = ("marginal", "shared")
COORDINATORS = ("learned", "equal")
BACKENDS = ("rllib", "sb3")
SPECTRUM_BY = ("ue", "scheduler")
MAX_PHASE1_UE = 12  # the largest N of phase1.n_ue


# --------------------------------------------------------------------------- declaring a key


def _key(default: Any, parser: parse.Parser, meaning: str) -> Any:
    """A config key, declared once: its default, the parser that checks a given value, its one-line meaning."""
    return dataclasses.field(default=default, metadata={"parser": parser, "meaning": meaning})


def _subsection(cls: type, meaning: str) -> Any:
    """A nested section of keys (a dataclass of _key fields); its default is the dataclass of defaults."""
    return dataclasses.field(default_factory=cls, metadata={"parser": cls, "meaning": meaning})


# --------------------------------------------------------------------------- the sections


@dataclass(frozen=True)
class TaskConfig:
    data_mbit: Range = _key(Range(16.0, 80.0), parse.value_range, "task input data to upload when offloading [Mbit]")
    cycles_gcycles: Range = _key(Range(1.5, 3.5), parse.value_range, "task CPU work [10^9 cycles]")
    deadline_s: Range = _key(Range(2.0, 4.0), parse.value_range, "QoS deadline from the start of the slot [s]")


@dataclass(frozen=True)
class UEConfig:
    distance_m: Range = _key(
        Range(10.0, 50.0), parse.value_range, "UE to base-station distance, which sets the channel gain [m]"
    )
    cpu_ghz: Range = _key(Range(0.5, 1.5), parse.value_range, "local CPU clock, fixed per UE for an episode [GHz]")
    tx_power_w: float = _key(0.2, parse.positive, "uplink transmit power [W]")
    kappa: float = _key(
        1e-27, parse.positive, "effective switched capacitance: local energy is kappa * cycles * f^2 [J]"
    )


@dataclass(frozen=True)
class ServerConfig:
    cpu_ghz: float = _key(6.0, parse.positive, "server CPU clock, split between offloaders or clusters [GHz]")
    power_w: float = _key(5.0, parse.positive, "server power while executing offloaded work [W]")
    bandwidth_mhz: float = _key(20.0, parse.positive, "uplink band, split between offloading UEs [MHz]")


@dataclass(frozen=True)
class ChannelConfig:
    model: str = _key("pathloss_3gpp", parse.choice(CHANNEL_MODELS), "channel gain model (mec.physics.channel_gain)")
    noise_dbm_per_hz: float = _key(-174.0, parse.finite, "noise density [dBm/Hz]")


@dataclass(frozen=True)
class ScenarioConfig:
    task: TaskConfig = _subsection(TaskConfig, "one task per UE per slot, drawn from these ranges")
    ue: UEConfig = _subsection(UEConfig, "the UEs, drawn per episode")
    server: ServerConfig = _subsection(ServerConfig, "the single edge server shared by all UEs")
    channel: ChannelConfig = _subsection(ChannelConfig, "the uplink channel")
    slot_s: float = _key(
        4.0,
        parse.positive,
        "slot length [s]; only matters with carry_over_queue, then at least task.deadline_s.high",
    )
    carry_over_queue: bool = _key(False, parse.boolean, "server work left at the end of a slot delays the next slot")
    spectrum_by: str = _key(
        "ue",
        parse.choice(SPECTRUM_BY),
        "who sets an offloaded task's spectrum weight: ue (it requests one) or scheduler (granted with its priority)",
    )


@dataclass(frozen=True)
class RewardConfig:
    w_qos: float = _key(1.0, parse.non_negative, "weight of QoS [per task]")
    w_energy_per_j: float = _key(0.1, parse.non_negative, "weight of energy [per J]")


# "reference" reproduces the spec sheet's weighting, under which energy is numerically invisible
# next to QoS; "study" makes energy a real trade-off (see config.yaml for the arithmetic).
REWARD_PRESETS = {
    "study": RewardConfig(),  # the defaults of its fields
    "reference": RewardConfig(w_qos=1.0, w_energy_per_j=1e-6),
}


@dataclass(frozen=True)
class Phase1Config:
    n_ue: tuple[int, ...] = _key(
        (2, 3, 4, 5, 6, 7), parse.int_tuple(1, MAX_PHASE1_UE), "numbers of UEs N, one experiment each"
    )
    theta_min: float = _key(0.01, parse.fraction, "spectrum floor per offloading UE [share of the band]")


@dataclass(frozen=True)
class Phase2Config:
    n_users: int = _key(100, parse.integer(1), "users per episode")
    n_clusters: tuple[int, ...] = _key(
        (4, 5, 6, 7, 8, 9, 10), parse.int_tuple(1), "numbers of clusters K, one experiment each (K <= n_users)"
    )
    theta_min: float = _key(0.01, parse.fraction, "spectrum floor per offloading user [share of the band]")
    phi_min: float = _key(0.02, parse.fraction, "server-CPU floor per cluster [share of the server CPU]")
    kmeans_n_init: int = _key(10, parse.integer(1), "k-means restarts; the best of them is kept")
    coordinator: str = _key(
        "learned", parse.choice(COORDINATORS), "learned: a coordinator agent splits the server CPU; equal: equal split"
    )


@dataclass(frozen=True)
class EvaluationConfig:
    episodes: int = _key(5, parse.integer(1), "evaluation episodes per trained policy")
    slots: int = _key(200, parse.integer(1), "slots per evaluation episode")
    seed: int = _key(12345, parse.integer(0), "seed of the evaluation episodes, the same for every policy")
    best_of: int = _key(
        16,
        parse.integer(0),
        "K >= 2: also the learned policy's best of K sampled joint actions per slot (centralised); 0 or 1: off",
    )


@dataclass(frozen=True)
class TrainingConfig:
    """MAPPO hyperparameters of one training job (one phase, N or K, seed)."""

    iterations: int = _key(120, parse.integer(1), "PPO iterations per job")
    episode_slots: int = _key(200, parse.integer(1), "slots per training episode")
    eval_episodes: int = _key(5, parse.integer(1), "deterministic evaluation episodes after every iteration")
    eval_seed: int = _key(2024, parse.integer(0), "seed of those validation episodes (apart from evaluation.seed)")
    train_batch_slots: int = _key(1000, parse.integer(1), "env slots sampled per iteration")
    minibatch_size: int = _key(250, parse.integer(1), "slots per SGD minibatch")
    num_epochs: int = _key(8, parse.integer(1), "SGD passes over each batch")
    lr: float = _key(1e-3, parse.positive, "learning rate")
    gamma: float = _key(0.0, parse.unit_interval, "discount factor")
    gae_lambda: float = _key(0.95, parse.unit_interval, "GAE lambda")
    clip_param: float = _key(0.2, parse.positive, "PPO clip parameter")
    entropy_coeff: float = _key(0.005, parse.non_negative, "entropy bonus coefficient")
    vf_loss_coeff: float = _key(0.5, parse.non_negative, "value-function loss coefficient")
    hidden: tuple[int, ...] = _key(
        (64, 64), parse.int_tuple(1, None, distinct=False), "hidden layer widths of every actor and critic MLP"
    )
    ue_hidden: tuple[int, ...] = _key(
        (),
        parse.int_tuple(1, None, distinct=False, empty="training.hidden"),
        "hidden layer widths of the UE role's actor (and critic, if it has one); []: training.hidden",
    )
    activation: str = _key("tanh", parse.choice(ACTIVATIONS), "activation after every hidden layer of every MLP")
    critic: str = _key(
        "central", parse.choice(CRITICS), "central: MAPPO critic on the global state; local: IPPO ablation"
    )
    actor: str = _key(
        "set",
        parse.choice(ACTORS),
        "scheduler and coordinator actors; rows: each row alone; set: each row with its table's (cluster's) mean",
    )
    critic_row_layers: int = _key(
        1, parse.integer(1), "hidden layers the critic applies to every row before its mean over rows"
    )
    ue_credit: str = _key(
        "marginal",
        parse.choice(UE_CREDITS),
        "marginal: each UE's own contribution to the slot reward; shared: the critic's advantage",
    )
    ue_rows_per_slot: int = _key(
        0,
        parse.integer(0),
        "UE rows of each slot the UE loss samples per iteration (phase 2's 100 UEs); 0: every row",
    )
    checkpoint_every: int = _key(10, parse.integer(1), "periodic checkpoint every this many iterations")
    num_cpus: int = _key(1, parse.integer(1), "CPUs Ray may use in this job")
    num_env_runners: int = _key(0, parse.integer(0), "env runners; 0: sample in the driver process")
    batch_episodes: int = _key(
        0, parse.integer(0), "episodes each env runner plays together per sample() call; 0: the runner's whole batch"
    )
    use_gpu: bool = _key(False, parse.boolean, "use a GPU for learning if one is present")
    backend: str = _key(
        "rllib",
        parse.choice(BACKENDS),
        "rllib: MAPPO, one policy per role; sb3: Stable-Baselines3 PPO on a single-agent view",
    )
    ray_address: str = _key(
        "", parse.ray_address, "empty: start a private Ray instance; else the address of a running Ray cluster to join"
    )



@dataclass(frozen=True)
class WorkflowConfig:
    """The sweep the workflow expands, and the named variants of the study it can run beside it.

    A variant is the study with some config keys overridden (dotted key -> value); its outputs live under
    results/variants/<name>/ and are built only by the targets that ask for them: those named in `scenarios` by the
    default `all` too (another scenario of the study, e.g. tighter deadlines, with its own summaries and figures).
    """

    seeds: tuple[int, ...] = _key((0, 1, 2, 3, 4), parse.int_tuple(0), "training seeds per (phase, N or K)")
    phases: tuple[int, ...] = _key((1, 2), parse.phases, "the phases of the study the workflow runs")
    variants: FrozenMap = _key(
        FrozenMap(
            {
                "ippo": {"training.critic": "local"},
                "no_coordinator": {"phase2.coordinator": "equal", "workflow.phases": [2]},
                "flat": {"phase2.n_clusters": [1], "workflow.phases": [2]},
                "sb3": {"training.backend": "sb3"},
                "tight_deadlines": {"scenario.task.deadline_s": {"low": 1.0, "high": 2.0}, "workflow.phases": [1]},
                "capable_edge": {"scenario.server.cpu_ghz": 24.0, "workflow.phases": [2]},
                "spectrum_grant": {"scenario.spectrum_by": "scheduler"},
            }
        ),
        parse.variants,
        "variant name -> {dotted config key: value} (checked by mec.config)",
    )
    ablations: tuple[str, ...] = _key(
        ("ippo", "no_coordinator", "flat"),
        parse.variant_names,
        "variants the `ablations` target runs and compares with the study",
    )
    backend_variants: tuple[str, ...] = _key(
        ("sb3",), parse.variant_names, "variants (another training.backend) the `compare_backends` target compares"
    )
    scenarios: tuple[str, ...] = _key(
        ("tight_deadlines", "capable_edge"),
        parse.variant_names,
        "variants the default target builds in full beside the study, each reported apart",
    )
    w_energy: tuple[float, ...] = _key(
        (0.0, 0.05, 0.1, 0.2, 0.5), parse.weights, "reward.w_energy_per_j values of the QoS-energy trade-off (`pareto`)"
    )
    w_energy_overrides: FrozenMap = _key(
        FrozenMap({"phase1.n_ue": [3, 7], "phase2.n_clusters": [4, 10], "workflow.seeds": [0, 1, 2]}),
        parse.w_energy_overrides,
        "overrides every trade-off variant also applies (e.g. fewer sizes or seeds)",
    )
    results_dir: str = _key(
        "results", parse.results_dir, "folder of every output of the study; each config its own, so studies never mix"
    )


@dataclass(frozen=True)
class TuningConfig:
    """The hyperparameter sweep of the `tune` target: a grid of training values, each trained on one sweep point
    with its own seeds and iterations, ranked by the validation reward (training.eval_seed's episodes)."""

    phase: int = _key(1, parse.phase, "the phase tuned on")
    n: int = _key(5, parse.integer(1), "N (phase 1) or K (phase 2) tuned on")
    seeds: tuple[int, ...] = _key((100, 101), parse.int_tuple(0), "training seeds per grid point")
    iterations: int = _key(60, parse.integer(1), "PPO iterations per tuning run (training.iterations of its variants)")
    grid: FrozenMap = _key(
        FrozenMap(
            {
                "training.lr": [1e-4, 3e-4, 1e-3],
                "training.entropy_coeff": [0.0, 0.005, 0.02],
                "training.minibatch_size": [125, 250],
            }
        ),
        parse.grid,
        "training.<key> -> values to try; the grid is their product",
    )


@dataclass(frozen=True)
class StatisticsConfig:
    """The intervals of the summaries and figures (mec.aggregate), over training seeds for learned policies and over
    evaluation episodes for the baselines: the mean's is Student's t interval, the IQM's a percentile bootstrap."""

    ci_level: float = _key(
        0.95,
        parse.real(0, 1, open_low=True, open_high=True),
        "confidence level of the intervals: Student-t for means, percentile bootstrap for IQMs",
    )
    bootstrap_resamples: int = _key(2000, parse.integer(100), "bootstrap resamples per IQM interval")
    seed: int = _key(0, parse.integer(0), "seed of the bootstrap resampling of the IQM intervals")


@dataclass(frozen=True)
class PlottingConfig:
    dpi: int = _key(150, parse.integer(10), "figure resolution [dots per inch]")
    style: str = _key("default", parse.style, "a matplotlib style name")
    width_in: float = _key(6.4, parse.positive, "figure width [inch]")
    height_in: float = _key(4.0, parse.positive, "figure height [inch]")


@dataclass(frozen=True)
class StudyConfig:
    """MEC hierarchical multi-agent RL study"""

    scenario: ScenarioConfig = _subsection(ScenarioConfig, "the system model: tasks, UEs, server, channel, slots")
    reward: RewardConfig = _key(
        REWARD_PRESETS["study"], parse.reward, "{preset: NAME} or explicit weights, not both (checked by mec.config)"
    )
    phase1: Phase1Config = _subsection(Phase1Config, "phase 1: one base station, every UE decides for itself")
    phase2: Phase2Config = _subsection(Phase2Config, "phase 2: many users grouped into clusters that act as agents")
    evaluation: EvaluationConfig = _subsection(EvaluationConfig, "the episodes every policy is evaluated on")
    training: TrainingConfig = _subsection(TrainingConfig, "MAPPO hyperparameters of one training job")
    workflow: WorkflowConfig = _subsection(WorkflowConfig, "the sweep Snakemake expands and the study's variants")
    statistics: StatisticsConfig = _subsection(StatisticsConfig, "statistics in the summaries and figures")
    plotting: PlottingConfig = _subsection(PlottingConfig, "figures; changing these reruns only the plotting jobs")
    tuning: TuningConfig = _subsection(TuningConfig, "the hyperparameter sweep of the `tune` target")


# --------------------------------------------------------------------------- derived from the fields


def _section_classes(cls: type) -> list[type]:
    """`cls` and every section nested in it, outermost first."""
    nested = [field.metadata["parser"] for field in dataclasses.fields(cls)]
    return [cls, *(sub for child in nested if isinstance(child, type) for sub in _section_classes(child))]


DEFAULT_CONFIG = StudyConfig()

# The parser of every key by section; a dataclass as the "parser" means a nested section.
_FIELDS: dict[type, dict[str, parse.Parser | type]] = {
    cls: {field.name: field.metadata["parser"] for field in dataclasses.fields(cls)}
    for cls in _section_classes(StudyConfig)
}

# Every training key but the iterations, which tuning.iterations sets for the whole sweep.
TUNED_TRAINING_KEYS = tuple(field.name for field in dataclasses.fields(TrainingConfig) if field.name != "iterations")


# --------------------------------------------------------------------------- cross-field checks


def _check_workflow(cfg: WorkflowConfig, key: str) -> None:
    for field in ("ablations", "backend_variants", "scenarios"):
        for i, name in enumerate(getattr(cfg, field)):
            if name not in cfg.variants:
                declared = ", ".join(cfg.variants)
                fail(f"{join(key, field)}[{i}]", name, f"a name declared in workflow.variants: {declared}")


def _check_scenario(cfg: ScenarioConfig, key: str) -> None:
    # Without carry-over every slot is its own stretch of time and slot_s is unused. With it, slot_s is the time
    # between slot starts, and the model shares the uplink and the server only among one slot's tasks: a slot
    # shorter than the latest deadline would let a slot's uploads and deadlines run into the next slot's, which the
    # model does not see (1e-12 s would pass silently). So every task is due before the next slot starts.
    high = cfg.task.deadline_s.high
    if cfg.carry_over_queue and cfg.slot_s < high:
        fail(
            join(key, "slot_s"),
            cfg.slot_s,
            f"with carry_over_queue, at least {join(key, 'task.deadline_s')}.high = {high:g} s (every task is due "
            "before the next slot starts: the model shares the uplink and the server among one slot's tasks only)",
        )


def _check_phase1(cfg: Phase1Config, key: str) -> None:
    # Every offloading UE is guaranteed theta_min of the band, so all of them at once must fit.
    top = max(cfg.n_ue)
    if top * cfg.theta_min > 1 + SLACK:
        fail(
            join(key, "theta_min"),
            cfg.theta_min,
            f"max(n_ue) * theta_min <= 1, i.e. <= {1 / top:.6g} for max(n_ue) = {top}",
        )


def _check_phase2(cfg: Phase2Config, key: str) -> None:
    for k in cfg.n_clusters:
        if k > cfg.n_users:
            raise ConfigError(
                f"{where(join(key, 'n_clusters'))}: got K={k} > {join(key, 'n_users')}={cfg.n_users}; "
                "allowed: cluster counts 1 <= K <= n_users"
            )
    if cfg.n_users * cfg.theta_min > 1 + SLACK:
        fail(
            join(key, "theta_min"),
            cfg.theta_min,
            f"n_users * theta_min <= 1, i.e. <= {1 / cfg.n_users:.6g} for n_users = {cfg.n_users}",
        )
    top = max(cfg.n_clusters)
    if top * cfg.phi_min > 1 + SLACK:
        fail(
            join(key, "phi_min"),
            cfg.phi_min,
            f"max(n_clusters) * phi_min <= 1, i.e. <= {1 / top:.6g} for max(n_clusters) = {top}",
        )


def _check_training(cfg: TrainingConfig, key: str) -> None:
    # The batched sampler plays whole episodes: each env runner's sample() call returns `batch_episodes` complete
    # episodes, and an iteration is exactly train_batch_slots slots.
    runners = max(1, cfg.num_env_runners)
    per_call = cfg.episode_slots * runners * max(1, cfg.batch_episodes)
    if cfg.train_batch_slots % per_call:
        what = "episode_slots * max(1, num_env_runners)" + (" * batch_episodes" if cfg.batch_episodes else "")
        fail(
            join(key, "train_batch_slots"),
            cfg.train_batch_slots,
            f"a multiple of {what} = {per_call} (the sampler plays whole episodes on every env runner)",
        )
    if cfg.critic_row_layers > len(cfg.hidden):
        fail(join(key, "critic_row_layers"), cfg.critic_row_layers,
              f"1..len({join(key, 'hidden')}) = 1..{len(cfg.hidden)} (the critic's row layers are hidden layers)")
    ue_layers = len(cfg.ue_hidden or cfg.hidden)
    if cfg.ue_credit == "shared" and cfg.critic_row_layers > ue_layers:
        fail(join(key, "critic_row_layers"), cfg.critic_row_layers,
              f"1..len({join(key, 'ue_hidden')}) = 1..{ue_layers} (with {join(key, 'ue_credit')} = shared the UEs "
              "have a critic, whose row layers are hidden layers of theirs)")  # fmt: skip
    if cfg.ue_rows_per_slot and cfg.critic == "local" and cfg.ue_credit == "shared":
        fail(join(key, "ue_rows_per_slot"), cfg.ue_rows_per_slot,
             f"0 with {join(key, 'critic')} = local and {join(key, 'ue_credit')} = shared (the UE critic would pool "
             "over the sampled rows, not the UE's table)")  # fmt: skip
    if cfg.minibatch_size > cfg.train_batch_slots:
        fail(
            join(key, "minibatch_size"),
            cfg.minibatch_size,
            f"at most {join(key, 'train_batch_slots')} = {cfg.train_batch_slots}",
        )


# The memory the episode arrays of one batch of episodes need, per UE and slot: the drawn tasks and users, the
# simulator's per-task results and the schedule trace (mec.evaluation.TRACE_COLUMNS), about 16 float64 columns. A
# size whose estimate exceeds MEMORY_FRACTION of this machine's physical memory is rejected before anything runs
# (such a job would end in the kernel's OOM killer, not in an error).
BYTES_PER_UE_SLOT = 16 * 8
MEMORY_FRACTION = 0.5
_FALLBACK_RAM_BYTES = 16 * 2**30  # where the OS does not tell its physical memory


def memory_limit_bytes() -> int:
    """MEMORY_FRACTION of this machine's physical memory (os.sysconf), the most a batch of episodes may take."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = _FALLBACK_RAM_BYTES
    return int(MEMORY_FRACTION * (ram if ram > 0 else _FALLBACK_RAM_BYTES))


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB"


def check_episode_memory(keys: Sequence[str], sizes: Sequence[int], n_ue: int) -> None:
    """Reject a batch of prod(sizes) slots at n_ue UEs whose episode arrays would not fit in memory. `keys` name
    the sizes in the one-line message: config keys, or command-line flags (starting with --)."""
    need = BYTES_PER_UE_SLOT * n_ue * math.prod(int(size) for size in sizes)
    limit = memory_limit_bytes()
    if need > limit:
        names = " x ".join(key if key.startswith("--") else f"'{key}'" for key in keys)
        if not any(key.startswith("--") for key in keys):
            names = ("config keys " if len(keys) > 1 else "config key ") + names
        got = " x ".join(str(size) for size in sizes)
        raise ConfigError(
            f"{names}: got {got} slots at {n_ue} UEs, about {_gb(need)} of episode arrays "
            f"({BYTES_PER_UE_SLOT} bytes per UE-slot); allowed: at most {_gb(limit)} "
            f"({MEMORY_FRACTION:g} of this machine's {_gb(limit / MEMORY_FRACTION)} of RAM)"
        )


def _check_study(cfg: StudyConfig, key: str) -> None:
    """Checks across sections (only on a whole study: config_from_sections builds a job's config from a few)."""
    t, ev = cfg.training, cfg.evaluation
    if t.eval_seed == ev.seed:
        fail(
            join(key, "training.eval_seed"),
            t.eval_seed,
            f"a seed other than evaluation.seed = {ev.seed} (the validation episodes that pick the best "
            "checkpoint must not be the test episodes the results are reported on)",
        )


def check_study_memory(cfg: StudyConfig) -> None:
    """The episode arrays of the evaluation, the validation episodes and a training batch fit in memory at the
    largest size of the study's workflow.phases (config_from_dict checks it; `mec evaluate` and `mec train` check
    their own sizes and flags instead)."""
    t, ev = cfg.training, cfg.evaluation
    sizes = {1: max(cfg.phase1.n_ue), 2: cfg.phase2.n_users}
    n_ue = max(sizes[phase] for phase in cfg.workflow.phases)
    check_episode_memory(("evaluation.episodes", "evaluation.slots"), (ev.episodes, ev.slots), n_ue)
    check_episode_memory(("training.eval_episodes", "training.episode_slots"), (t.eval_episodes, t.episode_slots), n_ue)
    check_episode_memory(("training.train_batch_slots",), (t.train_batch_slots,), n_ue)


# --------------------------------------------------------------------------- parsing a section

_CHECKS: dict[type, Callable[[Any, str], None]] = {
    StudyConfig: _check_study,
    WorkflowConfig: _check_workflow,
    ScenarioConfig: _check_scenario,
    Phase1Config: _check_phase1,
    TrainingConfig: _check_training,
    Phase2Config: _check_phase2,
}


def _section(cls: type, default: Any, raw: Any, key: str, whole_study: bool = True) -> Any:
    spec = _FIELDS[cls]
    if raw is None:  # a YAML section whose keys are all commented out
        raw = {}
    if not isinstance(raw, Mapping):
        fail(key, raw, "a mapping with keys " + ", ".join(spec))
    check_keys(key, raw, tuple(spec))
    values = {}
    for name, parser in spec.items():
        sub = join(key, name)
        if isinstance(parser, type):
            values[name] = _section(parser, getattr(default, name), raw.get(name), sub)
        elif name in raw:
            values[name] = parser(sub, raw[name])
        else:
            values[name] = getattr(default, name)
    result = cls(**values)
    if cls in _CHECKS and (whole_study or cls is not StudyConfig):
        _CHECKS[cls](result, key)
    return result


# --------------------------------------------------------------------------- public API


def config_from_dict(raw: Mapping[str, Any], memory: bool = True) -> StudyConfig:
    """Missing keys take the study defaults, so a config file only needs what it changes. `memory`: also check that
    the study's episode arrays fit in memory (check_study_memory)."""
    cfg = _section(StudyConfig, DEFAULT_CONFIG, raw, "")
    if memory:
        check_study_memory(cfg)
    return cfg


def config_from_sections(phase: int, phase_section: Mapping[str, Any], **sections: Any) -> StudyConfig:
    """The config of one workflow job from the sections it receives as params: the job's own phase section (under
    `phase<phase>`) and any others by name; everything else takes the defaults."""
    # Not the checks across sections (_check_study): the sections left out take defaults, which the study's own
    # values need not match; the workflow checks the whole study before any job runs.
    return _section(StudyConfig, DEFAULT_CONFIG, {**sections, f"phase{phase}": phase_section}, "", whole_study=False)


def config_to_dict(cfg: StudyConfig) -> dict[str, Any]:
    """Plain YAML-friendly data; the reward is written as weights so the result is self-describing."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):  # variant overrides, the tuning grid
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (tuple, list)):
            return [plain(item) for item in value]
        return value

    return plain(cfg)


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Command-line ``dotted.key=value`` edits on the raw mapping; key names are checked later.

    Values go through the same YAML loader as the file, so ``true``, ``[2, 3]`` and
    ``{preset: reference}`` arrive typed. The input is deep-copied, never modified.
    """
    result = copy.deepcopy(dict(raw))
    for override in overrides:
        text = str(override)
        dotted, sep, value_text = text.partition("=")
        dotted = dotted.strip()
        parts = dotted.split(".")
        if not sep or not dotted or any(not part.strip() for part in parts):
            raise ConfigError(f"config override {text!r}: expected dotted.key=value")
        parts = [part.strip() for part in parts]
        try:
            value = parse_yaml(value_text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config override {text!r}: value is not valid YAML ({yaml_problem(exc)})") from exc
        try:
            set_dotted(result, parts, value)
        except ConfigError as exc:
            raise ConfigError(f"config override {text!r}: {exc}") from exc
    return result


# The largest config file read: config.yaml is about 15 kB; a file far larger is not a study config (and /dev/zero
# or a FIFO, which are not regular files, would be read forever).
MAX_CONFIG_BYTES = 1_000_000


def read_config_file(path: str | PathLike[str]) -> Mapping[str, Any]:
    """The raw mapping of a YAML config file (empty: {}); a missing, unreadable, binary, oversized (MAX_CONFIG_BYTES)
    or special file (a device, a FIFO), invalid YAML, a duplicate key or a top level that is not a mapping fails in
    one line naming the file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # open() says why, below
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO"}
        kind = next((name for test, name in kinds.items() if test(mode)), "a special file")
        raise ConfigError(f"config file '{path}': {kind}, not a regular file; allowed: a YAML file")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file '{path}': larger than {MAX_CONFIG_BYTES} bytes; allowed: a YAML study "
                              "config (config.yaml is about 15 kB)")  # fmt: skip
    except FileNotFoundError as exc:
        raise ConfigError(f"config file '{path}': not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}': cannot be read ({type(exc).__name__}: {exc})") from exc
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}': invalid YAML ({yaml_problem(exc)})") from exc
    if raw is None:  # an empty file means "all defaults"
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config file '{path}': got {show(raw)} at the top level; allowed: a mapping of sections")
    return raw


def load_config(path: str | PathLike[str], overrides: Sequence[str] = (), memory: bool = True) -> StudyConfig:
    """Read a YAML study file, apply optional overrides, and validate (`memory`: config_from_dict's); every failure
    names the file."""
    raw = read_config_file(path)
    try:
        return config_from_dict(apply_overrides(raw, overrides), memory=memory)
    except ConfigError as exc:
        raise ConfigError(f"config file '{path}': {exc}") from exc

# --------------------------------------------------------------------------- names of the modules split from this one

# Imported on first use (PEP 562), so that mec.variants and mec.config_schema, which build on the sections above,
# can import this module first; `from mec.config import study_variants` keeps working (not in __all__: defined there).
_MOVED = {
    "Variant": "mec.variants",
    "study_variants": "mec.variants",
    "study_without_variants": "mec.variants",
    "variant_config": "mec.variants",
    "variant_configs": "mec.variants",
    "variant_of_folder": "mec.variants",
    "w_energy_variant_name": "mec.variants",
    "json_schema": "mec.config_schema",
    "schema_text": "mec.config_schema",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _main(argv: Sequence[str] | None = None) -> int:
    """`python -m mec.config FILE...`: read each file as a config file (missing, unreadable, binary, invalid YAML,
    duplicate keys, a top level that is not a mapping): one line and exit status 2 at the first that fails. The
    Makefile runs it before Snakemake, whose own reading of --configfile ends in a traceback. `--write-schema PATH`
    writes the JSON schema generated from the fields (config/schema.yaml, `make schema`)."""
    import argparse  # noqa: PLC0415 - only the command line needs it
    import sys  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m mec.config", description="Check config files; write the schema.")
    parser.add_argument("files", nargs="*", metavar="FILE", help="config files to read (YAML, a mapping of sections)")
    parser.add_argument("--write-schema", metavar="PATH", help="write the JSON schema of a config file to PATH")
    args = parser.parse_args(argv)
    for name in args.files:
        try:
            read_config_file(name)
        except ConfigError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 2
    if args.write_schema:
        from mec.config_schema import schema_text  # noqa: PLC0415

        with open(args.write_schema, "w", encoding="utf-8") as handle:
            handle.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
