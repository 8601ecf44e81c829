"""Study configuration: frozen dataclasses, parsed and validated from YAML.

Every run of the study is described by one ``StudyConfig``. Parsing is strict
(unknown keys, wrong types, NaN and infeasible share floors are rejected) so a
typo in config.yaml or on the command line fails loudly before any training
time is spent, with a one-line message naming the dotted key, the bad value and
what would have been accepted.
"""

from __future__ import annotations

import copy
import itertools
import dataclasses
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import yaml

__all__ = [
    "CHANNEL_MODELS",
    "DEFAULT_CONFIG",
    "REWARD_PRESETS",
    "ChannelConfig",
    "ConfigError",
    "EvaluationConfig",
    "FrozenMap",
    "Phase1Config",
    "Phase2Config",
    "Range",
    "RewardConfig",
    "ScenarioConfig",
    "ServerConfig",
    "StudyConfig",
    "TaskConfig",
    "TuningConfig",
    "UEConfig",
    "Variant",
    "WorkflowConfig",
    "apply_overrides",
    "check_episode_memory",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "memory_limit_bytes",
    "parse_value",
    "read_config_file",
    "study_variants",
    "study_without_variants",
    "variant_config",
    "variant_configs",
    "variant_of_folder",
    "w_energy_variant_name",
]


class ConfigError(ValueError):
    """A configuration problem; the message is always a single line so it reads well in logs and CLI output."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Range:
    """Bounds of a uniform distribution; low == high is allowed (a fixed value, handy for tests)."""

    low: float
    high: float


@dataclass(frozen=True)
class TaskConfig:
    data_mbit: Range
    cycles_gcycles: Range
    deadline_s: Range


@dataclass(frozen=True)
class UEConfig:
    distance_m: Range
    cpu_ghz: Range
    tx_power_w: float
    kappa: float


@dataclass(frozen=True)
class ServerConfig:
    cpu_ghz: float
    power_w: float
    bandwidth_mhz: float

    @property
    def cpu_hz(self) -> float:
        return self.cpu_ghz * 1e9

    @property
    def bandwidth_hz(self) -> float:
        return self.bandwidth_mhz * 1e6


@dataclass(frozen=True)
class ChannelConfig:
    model: str
    noise_dbm_per_hz: float

    @property
    def noise_w_per_hz(self) -> float:
        return 10.0 ** ((self.noise_dbm_per_hz - 30.0) / 10.0)


@dataclass(frozen=True)
class ScenarioConfig:
    task: TaskConfig
    ue: UEConfig
    server: ServerConfig
    channel: ChannelConfig
    slot_s: float
    carry_over_queue: bool


@dataclass(frozen=True)
class RewardConfig:
    w_qos: float
    w_energy_per_j: float


@dataclass(frozen=True)
class Phase1Config:
    n_ue: tuple[int, ...]
    theta_min: float


@dataclass(frozen=True)
class Phase2Config:
    n_users: int
    n_clusters: tuple[int, ...]
    theta_min: float
    phi_min: float
    kmeans_n_init: int
    coordinator: str  # "learned": a coordinator agent splits the server CPU; "equal": equal split (ablation)


@dataclass(frozen=True)
class EvaluationConfig:
    episodes: int
    slots: int
    seed: int


@dataclass(frozen=True)
class TrainingConfig:
    """MAPPO hyperparameters of one training job (one phase, N or K, seed)."""

    iterations: int  # PPO iterations per job
    episode_slots: int  # slots per training episode
    eval_episodes: int  # deterministic evaluation episodes after every iteration
    eval_seed: int  # seed of those validation episodes (kept apart from evaluation.seed)
    train_batch_slots: int  # env slots sampled per iteration
    minibatch_size: int  # slots per SGD minibatch
    num_epochs: int  # SGD passes over each batch
    lr: float
    gamma: float
    gae_lambda: float
    clip_param: float
    entropy_coeff: float
    vf_loss_coeff: float
    hidden: tuple[int, ...]  # hidden layer widths of every actor and critic MLP
    critic: str  # "central" (MAPPO) or "local" (IPPO ablation)
    critic_row_layers: int  # hidden layers the critic applies to every row before its mean over rows
    ue_credit: str  # "marginal": each UE's own contribution to the slot reward; "shared": the critic's advantage
    checkpoint_every: int  # periodic checkpoint every this many iterations
    num_cpus: int  # CPUs Ray may use in this job
    num_env_runners: int  # 0: sample in the driver process
    batch_episodes: int  # episodes each env runner plays together per sample() call; 0: the runner's whole batch
    use_gpu: bool  # use a GPU for learning if one is present
    backend: str  # "rllib" (MAPPO, one policy per role) or "sb3" (Stable-Baselines3 PPO on a single-agent view)
    ray_address: str  # "": start a private Ray instance; else the address of a running Ray cluster to join


class FrozenMap(Mapping):
    """A read-only, hashable mapping, so that config values which are mappings themselves (a variant's overrides,
    the tuning grid) keep StudyConfig frozen and hashable. Lists inside are stored as tuples, mappings as FrozenMaps;
    config_to_dict turns them back into plain dicts and lists."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = {key: _freeze(value) for key, value in dict(data or {}).items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, FrozenMap) else FrozenMap(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class WorkflowConfig:
    """The sweep the workflow expands, and the named variants of the study it can run beside it.

    A variant is the study with some config keys overridden (dotted key -> value); its outputs live under
    results/variants/<name>/ and are built only by the targets that ask for them: those named in `scenarios` by the
    default `all` too (another scenario of the study, e.g. tighter deadlines, with its own summaries and figures).
    """

    seeds: tuple[int, ...]
    phases: tuple[int, ...]
    variants: FrozenMap  # variant name -> FrozenMap(dotted config key -> value)
    ablations: tuple[str, ...]  # variants the `ablations` target runs and compares with the study
    backend_variants: tuple[str, ...]  # variants (another training.backend) the `compare_backends` target compares
    scenarios: tuple[str, ...]  # variants the default target builds in full beside the study, each reported apart
    w_energy: tuple[float, ...]  # reward.w_energy_per_j values of the QoS-energy trade-off (`pareto` target)
    w_energy_overrides: FrozenMap  # overrides every trade-off variant also applies (e.g. fewer sizes or seeds)
    results_dir: str  # folder of every output of the study ("results"); each config its own, so studies never mix


@dataclass(frozen=True)
class TuningConfig:
    """The hyperparameter sweep of the `tune` target: a grid of training values, each trained on one sweep point
    with its own seeds and iterations, ranked by the validation reward (training.eval_seed's episodes)."""

    phase: int
    n: int  # N (phase 1) or K (phase 2) of the sweep point tuned on
    seeds: tuple[int, ...]  # training seeds per grid point
    iterations: int  # PPO iterations per tuning run (training.iterations of the tuning variants)
    grid: FrozenMap  # "training.<key>" -> tuple of values; the grid is their product


@dataclass(frozen=True)
class StatisticsConfig:
    ci_level: float  # confidence level of the bootstrap intervals over seeds
    bootstrap_resamples: int
    seed: int  # seed of the bootstrap resampling


@dataclass(frozen=True)
class PlottingConfig:
    dpi: int
    style: str  # a matplotlib style name
    width_in: float
    height_in: float


@dataclass(frozen=True)
class StudyConfig:
    scenario: ScenarioConfig
    reward: RewardConfig
    phase1: Phase1Config
    phase2: Phase2Config
    evaluation: EvaluationConfig
    training: TrainingConfig
    workflow: WorkflowConfig
    statistics: StatisticsConfig
    plotting: PlottingConfig
    tuning: TuningConfig


CHANNEL_MODELS = ("pathloss_3gpp", "inverse_square")
CRITICS = ("central", "local")
UE_CREDITS = ("marginal", "shared")
COORDINATORS = ("learned", "equal")
BACKENDS = ("rllib", "sb3")
MAX_PHASE1_UE = 12  # the largest N of phase1.n_ue

# "reference" reproduces the spec sheet's weighting, under which energy is numerically invisible
# next to QoS; "study" makes energy a real trade-off (see config.yaml for the arithmetic).
REWARD_PRESETS = {
    "study": RewardConfig(w_qos=1.0, w_energy_per_j=0.1),
    "reference": RewardConfig(w_qos=1.0, w_energy_per_j=1e-6),
}

DEFAULT_CONFIG = StudyConfig(
    scenario=ScenarioConfig(
        task=TaskConfig(
            data_mbit=Range(16.0, 80.0),
            cycles_gcycles=Range(1.5, 3.5),
            deadline_s=Range(2.0, 4.0),
        ),
        ue=UEConfig(
            distance_m=Range(10.0, 50.0),
            cpu_ghz=Range(0.5, 1.5),
            tx_power_w=0.2,
            kappa=1e-27,
        ),
        server=ServerConfig(cpu_ghz=6.0, power_w=5.0, bandwidth_mhz=20.0),
        channel=ChannelConfig(model="pathloss_3gpp", noise_dbm_per_hz=-174.0),
        slot_s=4.0,
        carry_over_queue=False,
    ),
    reward=REWARD_PRESETS["study"],
    phase1=Phase1Config(n_ue=(2, 3, 4, 5, 6, 7), theta_min=0.01),
    phase2=Phase2Config(
        n_users=100,
        n_clusters=(4, 5, 6, 7, 8, 9, 10),
        theta_min=0.01,
        phi_min=0.02,
        kmeans_n_init=10,
        coordinator="learned",
    ),
    evaluation=EvaluationConfig(episodes=5, slots=200, seed=12345),
    training=TrainingConfig(
        iterations=120,
        episode_slots=200,
        eval_episodes=5,
        eval_seed=2024,
        train_batch_slots=1000,
        minibatch_size=250,
        num_epochs=8,
        lr=1e-3,
        gamma=0.0,
        gae_lambda=0.95,
        clip_param=0.2,
        entropy_coeff=0.005,
        vf_loss_coeff=0.5,
        hidden=(64, 64),
        critic="central",
        critic_row_layers=1,
        ue_credit="marginal",
        checkpoint_every=10,
        num_cpus=1,
        num_env_runners=0,
        batch_episodes=0,
        use_gpu=False,
        backend="rllib",
        ray_address="",
    ),
    workflow=WorkflowConfig(
        seeds=(0, 1, 2, 3, 4),
        phases=(1, 2),
        variants=FrozenMap(
            {
                "ippo": {"training.critic": "local"},
                "no_coordinator": {"phase2.coordinator": "equal", "workflow.phases": [2]},
                "flat": {"phase2.n_clusters": [1], "workflow.phases": [2]},
                "sb3": {"training.backend": "sb3"},
                "tight_deadlines": {"scenario.task.deadline_s": {"low": 1.0, "high": 2.0}, "workflow.phases": [1]},
            }
        ),
        ablations=("ippo", "no_coordinator", "flat"),
        backend_variants=("sb3",),
        scenarios=("tight_deadlines",),
        w_energy=(0.0, 0.05, 0.1, 0.2, 0.5),
        w_energy_overrides=FrozenMap(
            {"phase1.n_ue": [3, 7], "phase2.n_clusters": [4, 10], "workflow.seeds": [0, 1, 2]}
        ),
        results_dir="results",
    ),
    statistics=StatisticsConfig(ci_level=0.95, bootstrap_resamples=2000, seed=0),
    plotting=PlottingConfig(dpi=150, style="default", width_in=6.4, height_in=4.0),
    tuning=TuningConfig(
        phase=1,
        n=5,
        seeds=(100, 101),
        iterations=60,
        grid=FrozenMap(
            {
                "training.lr": [1e-4, 3e-4, 1e-3],
                "training.entropy_coeff": [0.0, 0.005, 0.02],
                "training.minibatch_size": [125, 250],
            }
        ),
    ),
)

# --------------------------------------------------------------------------- field parsers

Parser = Callable[[str, Any], Any]
_SLACK = 1e-12  # floors like 100 * 0.01 must count as feasible despite rounding


def _show(value: Any) -> str:
    # Booleans are shown the way YAML spells them, flagged, because "True" for a float
    # field is otherwise easy to misread as a valid value.
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(key: str) -> str:
    return f"config key '{key}'" if key else "config top level"


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{_where(key)}: got {_show(value)}; allowed: {allowed}")


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)


def _check_keys(key: str, raw: Mapping, allowed: Sequence[str]) -> None:
    for name in raw:
        if name not in allowed:
            raise ConfigError(f"{_where(_join(key, name))}: unknown; allowed keys: {', '.join(allowed)}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(allowed: str, ok: Callable[[float], bool]) -> Parser:
    def parse(key: str, value: Any) -> float:
        try:
            number = float(value) if _is_real(value) else math.nan
        except OverflowError:  # an integer too large for a float
            number = math.nan
        if not math.isfinite(number) or not ok(number):
            _fail(key, value, allowed)
        return number

    return parse


def _integer(low: int) -> Parser:
    allowed = f"an integer >= {low}"

    def parse(key: str, value: Any) -> int:
        if not _is_int(value) or value < low:
            _fail(key, value, allowed)
        return int(value)

    return parse


def _int_tuple(low: int, high: int | None = None, distinct: bool = True) -> Parser:
    bounds = f"in {low}..{high}" if high is not None else f">= {low}"
    allowed = f"a non-empty list of {'distinct ' if distinct else ''}integers {bounds}"

    def parse(key: str, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            _fail(key, value, allowed)
        for i, item in enumerate(value):
            if not _is_int(item) or item < low or (high is not None and item > high):
                _fail(f"{key}[{i}]", item, allowed)
        items = tuple(int(item) for item in value)
        repeated = sorted({item for item in items if items.count(item) > 1})
        if distinct and repeated:
            _fail(key, list(value), f"{allowed} (repeated: {', '.join(map(str, repeated))})")
        return items

    return parse


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(key, value, "true or false")
    return value


def _choice(options: Sequence[str]) -> Parser:
    allowed = "one of " + ", ".join(options)

    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            _fail(key, value, allowed)
        return value

    return parse


_finite = _real("a finite number", lambda x: True)
_positive = _real("a number > 0", lambda x: x > 0)
_non_negative = _real("a number >= 0", lambda x: x >= 0)
_fraction = _real("a number in [0, 1)", lambda x: 0 <= x < 1)


def _style(key: str, value: Any) -> str:
    import matplotlib.style  # noqa: PLC0415 - only needed when a style is configured

    available = sorted(matplotlib.style.available) + ["default"]
    if not isinstance(value, str) or value not in available:
        _fail(key, value, "a matplotlib style: " + ", ".join(available))
    return value


def _range(key: str, value: Any) -> Range:
    """Every range in the scenario is a physical magnitude, so both bounds must be > 0."""
    allowed = "{low: x, high: y} or [x, y] with 0 < x <= y"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = value
    elif isinstance(value, Mapping):
        _check_keys(key, value, ("low", "high"))
        if len(value) != 2:
            _fail(key, dict(value), allowed)
        low, high = value["low"], value["high"]
    else:
        _fail(key, value, allowed)
    result = Range(_positive(f"{key}.low", low), _positive(f"{key}.high", high))
    if result.low > result.high:
        raise ConfigError(f"{_where(key)}: got low={low!r} > high={high!r}; allowed: low <= high")
    return result


def _reward(key: str, value: Any) -> RewardConfig:
    """A preset or explicit weights, never both: a mix would leave it unclear which one wins."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        _fail(key, value, "{preset: NAME} or {w_qos: x, w_energy_per_j: y}")
    _check_keys(key, value, ("preset", "w_qos", "w_energy_per_j"))
    weights = {
        name: _non_negative(_join(key, name), value[name]) for name in ("w_qos", "w_energy_per_j") if name in value
    }
    if "preset" in value:
        if weights:
            _fail(key, dict(value), "either {preset: NAME} or explicit weights w_qos/w_energy_per_j, not both")
        name = value["preset"]
        if not isinstance(name, str) or name not in REWARD_PRESETS:
            _fail(_join(key, "preset"), name, "one of " + ", ".join(REWARD_PRESETS))
        return REWARD_PRESETS[name]
    reward = dataclasses.replace(REWARD_PRESETS["study"], **weights)
    if reward.w_qos == 0 and reward.w_energy_per_j == 0:
        _fail(key, dict(value), "weights >= 0, not both zero (the reward would be constant)")
    return reward


_RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5})$")


def _ray_address(key: str, value: Any) -> str:
    """Empty (a private Ray instance per job), "auto" (the cluster this node belongs to) or host:port."""
    if not isinstance(value, str) or (value and not _RAY_ADDRESS.match(value)):
        _fail(key, value, '"" (a private Ray instance), "auto", "host:port" or "ray://host:port"')
    return value


# --------------------------------------------------------------------------- workflow variants and tuning (parsers)

VARIANT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Names of the variants the workflow derives itself; a declared variant may not start with them.
W_ENERGY_PREFIX = "w_energy_"
TUNING_PREFIX = "tune_"
# The keys that declare variants. A variant is one study, not a family of studies: it may override anything else
# (workflow.seeds and workflow.phases included), never these.
_FAMILY_KEYS = (
    "workflow.variants",
    "workflow.ablations",
    "workflow.backend_variants",
    "workflow.scenarios",
    "workflow.w_energy",
    "workflow.w_energy_overrides",
    "tuning",
)


def _dotted_key(key: str, name: Any, forbidden: Sequence[str]) -> str:
    """One override key: dotted (a.b.c), no empty part, outside the `forbidden` keys and their sub-keys."""
    if not isinstance(name, str) or not name or any(not part.strip() for part in name.split(".")):
        _fail(_join(key, name), name, "a dotted config key such as training.critic")
    for bad in forbidden:
        if name == bad or name.startswith(bad + ".") or bad.startswith(name + "."):
            raise ConfigError(
                f"{_where(_join(key, name))}: cannot be overridden here; allowed: any key except "
                f"{', '.join(forbidden)}"
            )
    return name


def _overrides_parser(forbidden: Sequence[str]) -> Parser:
    """A mapping of dotted config keys to values; the values are checked when the variant's config is built."""

    def parse(key: str, value: Any) -> FrozenMap:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            _fail(key, value, "a mapping of dotted config keys to values, e.g. {training.critic: local}")
        for name in value:
            _dotted_key(key, name, forbidden)
        return FrozenMap(value)

    return parse


# A variant's outputs live in the study's results_dir (under variants/<name>/), so it cannot move them elsewhere.
_variant_overrides = _overrides_parser((*_FAMILY_KEYS, "workflow.results_dir"))
_w_energy_overrides = _overrides_parser((*_FAMILY_KEYS, "workflow.results_dir", "reward"))

_RESULTS_DIR = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$")


def _results_dir(key: str, value: Any) -> str:
    """A relative folder of the workflow's outputs: results, results-test, results/test (no '.', '..' or '/x')."""
    if not isinstance(value, str) or not _RESULTS_DIR.match(value):
        _fail(key, value, "a relative folder such as results or results-test (letters, digits, _.+-, parts "
              "separated by /, none starting with a dot)")  # fmt: skip
    return value


def _variants(key: str, value: Any) -> FrozenMap:
    """Variant name -> overrides. Names become folder names (results/variants/<name>/)."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        _fail(key, value, "a mapping of variant names to overrides, e.g. {ippo: {training.critic: local}}")
    allowed = f"a name matching {VARIANT_NAME.pattern} not starting with {W_ENERGY_PREFIX} or {TUNING_PREFIX}"
    for name, overrides in value.items():
        reserved = isinstance(name, str) and name.startswith((W_ENERGY_PREFIX, TUNING_PREFIX))
        if not isinstance(name, str) or not VARIANT_NAME.match(name) or reserved:
            _fail(f"{key} name", name, allowed)
        if not overrides:
            _fail(_join(key, name), overrides, "a non-empty mapping of dotted config keys to values")
        _variant_overrides(_join(key, name), overrides)
    return FrozenMap(value)


def _names(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        _fail(key, value, "a list of variant names")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _fail(f"{key}[{i}]", item, "a variant name")
    repeated = sorted({item for item in value if list(value).count(item) > 1})
    if repeated:
        _fail(key, list(value), f"distinct variant names (repeated: {', '.join(repeated)})")
    return tuple(value)


def _weights(key: str, value: Any) -> tuple[float, ...]:
    """Distinct energy weights >= 0; empty means no trade-off axis."""
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        _fail(key, value, "a list of distinct numbers >= 0")
    items = tuple(_non_negative(f"{key}[{i}]", item) for i, item in enumerate(value))
    if len(set(items)) != len(items):
        _fail(key, list(value), "a list of distinct numbers >= 0")
    return items


# Every training key but the iterations, which tuning.iterations sets for the whole sweep.
_TUNED_TRAINING_KEYS = tuple(field.name for field in dataclasses.fields(TrainingConfig) if field.name != "iterations")


def _phase(key: str, value: Any) -> int:
    if not _is_int(value) or value not in (1, 2):
        _fail(key, value, "1 or 2")
    return int(value)


def _grid(key: str, value: Any) -> FrozenMap:
    """training.<key> -> non-empty list of distinct values; empty: no tuning sweep."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        _fail(key, value, "a mapping of training keys to lists of values, e.g. {training.lr: [1.0e-4, 3.0e-4]}")
    allowed = "one of " + ", ".join(f"training.{name}" for name in _TUNED_TRAINING_KEYS)
    keys = {f"training.{name}" for name in _TUNED_TRAINING_KEYS}
    for name, values in value.items():
        if name not in keys:
            _fail(f"{key} key", name, allowed + " (tuning.iterations sets the iterations)")
        frozen = _freeze(values)
        if not isinstance(values, (list, tuple)) or not values or len(set(frozen)) != len(frozen):
            _fail(_join(key, name), values, "a non-empty list of distinct values")
    return FrozenMap(value)


# --------------------------------------------------------------------------- cross-field checks


def _check_workflow(cfg: WorkflowConfig, key: str) -> None:
    for field in ("ablations", "backend_variants", "scenarios"):
        for i, name in enumerate(getattr(cfg, field)):
            if name not in cfg.variants:
                declared = ", ".join(cfg.variants)
                _fail(f"{_join(key, field)}[{i}]", name, f"a name declared in workflow.variants: {declared}")


def _check_phase1(cfg: Phase1Config, key: str) -> None:
    # Every offloading UE is guaranteed theta_min of the band, so all of them at once must fit.
    top = max(cfg.n_ue)
    if top * cfg.theta_min > 1 + _SLACK:
        _fail(
            _join(key, "theta_min"),
            cfg.theta_min,
            f"max(n_ue) * theta_min <= 1, i.e. <= {1 / top:.6g} for max(n_ue) = {top}",
        )


def _check_phase2(cfg: Phase2Config, key: str) -> None:
    for k in cfg.n_clusters:
        if k > cfg.n_users:
            raise ConfigError(
                f"{_where(_join(key, 'n_clusters'))}: got K={k} > {_join(key, 'n_users')}={cfg.n_users}; "
                "allowed: cluster counts 1 <= K <= n_users"
            )
    if cfg.n_users * cfg.theta_min > 1 + _SLACK:
        _fail(
            _join(key, "theta_min"),
            cfg.theta_min,
            f"n_users * theta_min <= 1, i.e. <= {1 / cfg.n_users:.6g} for n_users = {cfg.n_users}",
        )
    top = max(cfg.n_clusters)
    if top * cfg.phi_min > 1 + _SLACK:
        _fail(
            _join(key, "phi_min"),
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
        _fail(
            _join(key, "train_batch_slots"),
            cfg.train_batch_slots,
            f"a multiple of {what} = {per_call} (the sampler plays whole episodes on every env runner)",
        )
    if cfg.critic_row_layers > len(cfg.hidden):
        _fail(_join(key, "critic_row_layers"), cfg.critic_row_layers,
              f"1..len({_join(key, 'hidden')}) = 1..{len(cfg.hidden)} (the critic's row layers are hidden layers)")
    if cfg.minibatch_size > cfg.train_batch_slots:
        _fail(
            _join(key, "minibatch_size"),
            cfg.minibatch_size,
            f"at most {_join(key, 'train_batch_slots')} = {cfg.train_batch_slots}",
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
        _fail(
            _join(key, "training.eval_seed"),
            t.eval_seed,
            f"a seed other than evaluation.seed = {ev.seed} (the validation episodes that pick the best "
            "checkpoint must not be the test episodes the results are reported on)",
        )
    sizes = {1: max(cfg.phase1.n_ue), 2: cfg.phase2.n_users}
    n_ue = max(sizes[phase] for phase in cfg.workflow.phases)
    check_episode_memory(("evaluation.episodes", "evaluation.slots"), (ev.episodes, ev.slots), n_ue)
    check_episode_memory(("training.eval_episodes", "training.episode_slots"), (t.eval_episodes, t.episode_slots), n_ue)
    check_episode_memory(("training.train_batch_slots",), (t.train_batch_slots,), n_ue)


# --------------------------------------------------------------------------- tables

# A dataclass as the "parser" means a nested section.
_FIELDS: dict[type, dict[str, Parser | type]] = {
    StudyConfig: {
        "scenario": ScenarioConfig,
        "reward": _reward,
        "phase1": Phase1Config,
        "phase2": Phase2Config,
        "evaluation": EvaluationConfig,
        "training": TrainingConfig,
        "workflow": WorkflowConfig,
        "statistics": StatisticsConfig,
        "plotting": PlottingConfig,
        "tuning": TuningConfig,
    },
    ScenarioConfig: {
        "task": TaskConfig,
        "ue": UEConfig,
        "server": ServerConfig,
        "channel": ChannelConfig,
        "slot_s": _positive,
        "carry_over_queue": _boolean,
    },
    TaskConfig: {"data_mbit": _range, "cycles_gcycles": _range, "deadline_s": _range},
    UEConfig: {"distance_m": _range, "cpu_ghz": _range, "tx_power_w": _positive, "kappa": _positive},
    ServerConfig: {"cpu_ghz": _positive, "power_w": _positive, "bandwidth_mhz": _positive},
    ChannelConfig: {"model": _choice(CHANNEL_MODELS), "noise_dbm_per_hz": _finite},
    Phase1Config: {"n_ue": _int_tuple(1, MAX_PHASE1_UE), "theta_min": _fraction},
    Phase2Config: {
        "n_users": _integer(1),
        "n_clusters": _int_tuple(1),
        "theta_min": _fraction,
        "phi_min": _fraction,
        "kmeans_n_init": _integer(1),
        "coordinator": _choice(COORDINATORS),
    },
    EvaluationConfig: {"episodes": _integer(1), "slots": _integer(1), "seed": _integer(0)},
    TrainingConfig: {
        "iterations": _integer(1),
        "episode_slots": _integer(1),
        "eval_episodes": _integer(1),
        "eval_seed": _integer(0),
        "train_batch_slots": _integer(1),
        "minibatch_size": _integer(1),
        "num_epochs": _integer(1),
        "lr": _positive,
        "gamma": _real("a number in [0, 1]", lambda x: 0 <= x <= 1),
        "gae_lambda": _real("a number in [0, 1]", lambda x: 0 <= x <= 1),
        "clip_param": _positive,
        "entropy_coeff": _non_negative,
        "vf_loss_coeff": _non_negative,
        "hidden": _int_tuple(1, None, distinct=False),
        "critic": _choice(CRITICS),
        "critic_row_layers": _integer(1),
        "ue_credit": _choice(UE_CREDITS),
        "checkpoint_every": _integer(1),
        "num_cpus": _integer(1),
        "num_env_runners": _integer(0),
        "batch_episodes": _integer(0),
        "use_gpu": _boolean,
        "backend": _choice(BACKENDS),
        "ray_address": _ray_address,
    },
    WorkflowConfig: {
        "seeds": _int_tuple(0),
        "phases": _int_tuple(1, 2),
        "variants": _variants,
        "ablations": _names,
        "backend_variants": _names,
        "scenarios": _names,
        "w_energy": _weights,
        "w_energy_overrides": _w_energy_overrides,
        "results_dir": _results_dir,
    },
    TuningConfig: {
        "phase": _phase,
        "n": _integer(1),
        "seeds": _int_tuple(0),
        "iterations": _integer(1),
        "grid": _grid,
    },
    StatisticsConfig: {
        "ci_level": _real("a number in (0, 1)", lambda x: 0 < x < 1),
        "bootstrap_resamples": _integer(100),
        "seed": _integer(0),
    },
    PlottingConfig: {"dpi": _integer(10), "style": _style, "width_in": _positive, "height_in": _positive},
}

_CHECKS: dict[type, Callable[[Any, str], None]] = {
    StudyConfig: _check_study,
    WorkflowConfig: _check_workflow,
    Phase1Config: _check_phase1,
    TrainingConfig: _check_training,
    Phase2Config: _check_phase2,
}


def _section(cls: type, default: Any, raw: Any, key: str, whole_study: bool = True) -> Any:
    spec = _FIELDS[cls]
    if raw is None:  # a YAML section whose keys are all commented out
        raw = {}
    if not isinstance(raw, Mapping):
        _fail(key, raw, "a mapping with keys " + ", ".join(spec))
    _check_keys(key, raw, tuple(spec))
    values = {}
    for name, parse in spec.items():
        sub = _join(key, name)
        if isinstance(parse, type):
            values[name] = _section(parse, getattr(default, name), raw.get(name), sub)
        elif name in raw:
            values[name] = parse(sub, raw[name])
        else:
            values[name] = getattr(default, name)
    result = cls(**values)
    if cls in _CHECKS and (whole_study or cls is not StudyConfig):
        _CHECKS[cls](result, key)
    return result


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-27 / 2e9 as floats.

    YAML 1.1 (PyYAML) only treats exponent notation as a float when it has a dot and a
    signed exponent, so ``kappa: 1e-27`` would otherwise arrive as a string. A key given twice in one mapping is an
    error (PyYAML would silently keep the last one).
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key; SafeLoader rejects it itself
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (given twice in one mapping)", key_node.start_mark
                    )
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def parse_value(text: str) -> Any:
    """One value written as in a config file (the YAML of load_config, which also reads 1e-27 as a number)."""
    try:
        return _parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"value {text!r} is not valid YAML ({_yaml_problem(exc)})") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


# --------------------------------------------------------------------------- public API


def config_from_dict(raw: Mapping[str, Any]) -> StudyConfig:
    """Missing keys take the study defaults, so a config file only needs what it changes."""
    return _section(StudyConfig, DEFAULT_CONFIG, raw, "")


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
            value = _parse_yaml(value_text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config override {text!r}: value is not valid YAML ({_yaml_problem(exc)})") from exc
        if parts == ["reward", "preset"]:  # a preset replaces the weights (the reward takes one or the other)
            result["reward"] = {"preset": value}
            continue
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, Mapping):
                child = node[part] = dict(child)
            else:
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"config override {text!r}: '{prefix}' is {_show(child)}, not a mapping, "
                    f"so it has no key '{parts[depth + 1]}'"
                )
            node = child
        node[parts[-1]] = value
    return result


def read_config_file(path: str | PathLike[str]) -> Mapping[str, Any]:
    """The raw mapping of a YAML config file (empty: {}); a missing, unreadable or binary file, invalid YAML, a
    duplicate key or a top level that is not a mapping fails in one line naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file '{path}': not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}': cannot be read ({type(exc).__name__}: {exc})") from exc
    try:
        raw = _parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}': invalid YAML ({_yaml_problem(exc)})") from exc
    if raw is None:  # an empty file means "all defaults"
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config file '{path}': got {_show(raw)} at the top level; allowed: a mapping of sections")
    return raw


def load_config(path: str | PathLike[str], overrides: Sequence[str] = ()) -> StudyConfig:
    """Read a YAML study file, apply optional overrides, and validate; every failure names the file."""
    raw = read_config_file(path)
    try:
        return config_from_dict(apply_overrides(raw, overrides))
    except ConfigError as exc:
        raise ConfigError(f"config file '{path}': {exc}") from exc


# --------------------------------------------------------------------------- workflow variants


@dataclass(frozen=True)
class Variant:
    """One named variant of the study: the study's config with `overrides` (dotted key -> value) applied.

    `origin` is the config key that declares it; `axes` the values that set it apart within its family (the energy
    weight on the trade-off axis, the grid point in tuning; empty for a variant declared by name).
    """

    name: str
    origin: str
    overrides: FrozenMap
    axes: FrozenMap

    @property
    def description(self) -> str:
        """'training.critic=local, workflow.phases=[2]'."""
        return ", ".join(f"{key}={_show_value(value)}" for key, value in self.overrides.items())


def _show_value(value: Any) -> str:
    value = _thaw(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_show_value(item) for item in value) + "]"
    if isinstance(value, Mapping):  # as in config.yaml: {low: 1.0, high: 2.0}
        return "{" + ", ".join(f"{key}: {_show_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def _name_part(value: Any) -> str:
    """A grid value as part of a folder name: 0.0003, 250, 64x64, true."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        text = "x".join(_name_part(item) for item in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", text)


def w_energy_variant_name(w_energy: float) -> str:
    return f"{W_ENERGY_PREFIX}{float(w_energy)!r}"


def _size_key(phase: int) -> str:
    return "phase1.n_ue" if phase == 1 else "phase2.n_clusters"


def variant_of_folder(variant_dir: str) -> str | None:
    """The variant whose outputs lie in the workflow's folder prefix `variant_dir` ("variants/<name>/"); None for the
    study's own ("")."""
    return variant_dir.removeprefix("variants/").removesuffix("/") or None


def study_variants(cfg: StudyConfig) -> dict[str, Variant]:
    """Every variant the workflow can build, by name: those of workflow.variants, one per energy weight of
    workflow.w_energy (w_energy_<w>) and one per point of the tuning grid (tune_<key><value>_...)."""
    found = {
        name: Variant(name, f"workflow.variants.{name}", FrozenMap(overrides), FrozenMap())
        for name, overrides in cfg.workflow.variants.items()
    }
    for w in cfg.workflow.w_energy:
        axes = {"reward.w_energy_per_j": w}
        overrides = {**cfg.workflow.w_energy_overrides, **axes}
        name = w_energy_variant_name(w)
        found[name] = Variant(name, "workflow.w_energy", FrozenMap(overrides), FrozenMap(axes))
    t = cfg.tuning
    setup = {
        "workflow.phases": [t.phase],
        "workflow.seeds": list(t.seeds),
        _size_key(t.phase): [t.n],
        "training.iterations": t.iterations,
    }
    keys = list(t.grid)
    for values in itertools.product(*(t.grid[key] for key in keys)) if keys else ():
        axes = dict(zip(keys, values))
        name = TUNING_PREFIX + "_".join(f"{key.split('.')[-1]}{_name_part(value)}" for key, value in axes.items())
        if name in found:
            raise ConfigError(f"config key 'tuning.grid': two grid points share the folder name {name!r}")
        found[name] = Variant(name, "tuning.grid", FrozenMap({**setup, **axes}), FrozenMap(axes))
    return found


def _without_families(raw: dict[str, Any]) -> dict[str, Any]:
    """A config dict whose variant-declaring keys are empty: a variant's config declares no variants of its own."""
    workflow = dict(raw.get("workflow") or {})
    workflow.update(variants={}, ablations=[], backend_variants=[], scenarios=[], w_energy=[],
                    w_energy_overrides={})
    tuning = dict(raw.get("tuning") or {})
    tuning["grid"] = {}
    return {**raw, "workflow": workflow, "tuning": tuning}


def study_without_variants(cfg: StudyConfig) -> StudyConfig:
    """The study itself, with no variants declared: what a variant's config is compared against (a variant equal to
    it is the study itself)."""
    return config_from_dict(_without_families(config_to_dict(cfg)))


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if parts == ["reward", "preset"]:  # a preset replaces the weights (mec.config takes one or the other)
        raw["reward"] = {"preset": value}
        return
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, Mapping):
            prefix = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {dotted!r}: '{prefix}' is {_show(child)}, not a mapping")
        node[part] = child = dict(child)
        node = child
    node[parts[-1]] = value


def variant_config(cfg: StudyConfig, variant: Variant) -> StudyConfig:
    """The variant's validated config: the study's, variant-declaring keys emptied, overrides applied. A bad value
    fails with one line naming the variant, where it is declared and the key."""
    raw = _without_families(config_to_dict(cfg))
    try:
        for dotted, value in variant.overrides.items():
            _set_dotted(raw, dotted, _thaw(value))
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"variant '{variant.name}' ({variant.origin}): {exc}") from exc


def variant_configs(cfg: StudyConfig) -> dict[str, StudyConfig]:
    """Every variant's validated config by name (study_variants); also checks that each of
    workflow.backend_variants trains with another backend than the study."""
    configs = {name: variant_config(cfg, variant) for name, variant in study_variants(cfg).items()}
    for i, name in enumerate(cfg.workflow.backend_variants):
        if configs[name].training.backend == cfg.training.backend:
            _fail(
                f"workflow.backend_variants[{i}]",
                name,
                f"a variant whose training.backend differs from the study's ({cfg.training.backend})",
            )
    return configs


if __name__ == "__main__":
    # `python -m mec.config FILE...`: read each file as a config file (missing, unreadable, binary, invalid YAML,
    # duplicate keys, a top level that is not a mapping): one line and exit status 2 at the first that fails. The
    # Makefile runs it before Snakemake, whose own reading of --configfile ends in a traceback.
    import sys

    for name in sys.argv[1:]:
        try:
            read_config_file(name)
        except ConfigError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
