"""Study configuration: frozen dataclasses, parsed and validated from YAML.

Every run of the study is described by one ``StudyConfig``. Parsing is strict
(unknown keys, wrong types, NaN and infeasible share floors are rejected) so a
typo in config.yaml or on the command line fails loudly before any training
time is spent, with a one-line message naming the dotted key, the bad value and
what would have been accepted.

Every config key is declared once, as a field of the dataclasses below (``_key``): its default, its parser (which
checks a value and knows the JSON-schema fragment of the values it accepts) and its one-line meaning. The defaults
(``DEFAULT_CONFIG``), the parser table and the JSON schema config/schema.yaml are derived from these fields; the
schema file is written by ``python -m mec.config --write-schema config/schema.yaml`` (``make schema``).
"""

from __future__ import annotations

import copy
import itertools
import dataclasses
import json
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
    "json_schema",
    "load_config",
    "memory_limit_bytes",
    "parse_value",
    "read_config_file",
    "schema_text",
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


CHANNEL_MODELS = ("pathloss_3gpp", "inverse_square")
CRITICS = ("central", "local")
ACTIVATIONS = ("tanh", "relu")
UE_CREDITS = ("marginal", "shared")
COORDINATORS = ("learned", "equal")
BACKENDS = ("rllib", "sb3")
MAX_PHASE1_UE = 12  # the largest N of phase1.n_ue

# --------------------------------------------------------------------------- field parsers

# A parser checks one value (key: its dotted name, for the message) and returns it typed. Each carries the
# JSON-schema fragment of the values it accepts (`schema`, a mapping or a function returning one; parsers and fields
# inside it stand for their own fragments) and, if `schema_name` is set, the name under which config/schema.yaml
# shares that fragment ($defs).
Parser = Callable[[str, Any], Any]
_SLACK = 1e-12  # floors like 100 * 0.01 must count as feasible despite rounding


def _schema(fragment: Mapping[str, Any] | Callable[[], Mapping[str, Any]], name: str | None = None):
    """Decorator: attach a parser's JSON-schema fragment (and the $defs name that shares it)."""

    def attach(parse: Parser) -> Parser:
        parse.schema, parse.schema_name = fragment, name
        return parse

    return attach


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


def _real(
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    name: str | None = None,
) -> Parser:
    """A finite number within optional bounds, each closed or open; the message's wording and the schema fragment
    follow from them."""
    if low is not None and high is not None:
        allowed = f"a number in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    elif low is not None:
        allowed = f"a number {'>' if open_low else '>='} {low}"
    elif high is not None:
        allowed = f"a number {'<' if open_high else '<='} {high}"
    else:
        allowed = "a finite number"
    fragment: dict[str, Any] = {"type": "number"}
    if low is not None:
        fragment["exclusiveMinimum" if open_low else "minimum"] = low
    if high is not None:
        fragment["exclusiveMaximum" if open_high else "maximum"] = high

    def ok(x: float) -> bool:
        above = low is None or (x > low if open_low else x >= low)
        return above and (high is None or (x < high if open_high else x <= high))

    @_schema(fragment, name)
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

    @_schema({"type": "integer", "minimum": low})
    def parse(key: str, value: Any) -> int:
        if not _is_int(value) or value < low:
            _fail(key, value, allowed)
        return int(value)

    return parse


def _int_tuple(low: int, high: int | None = None, distinct: bool = True) -> Parser:
    bounds = f"in {low}..{high}" if high is not None else f">= {low}"
    allowed = f"a non-empty list of {'distinct ' if distinct else ''}integers {bounds}"
    item = {"type": "integer", "minimum": low, **({"maximum": high} if high is not None else {})}

    @_schema({"type": "array", "minItems": 1, **({"uniqueItems": True} if distinct else {}), "items": item})
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


@_schema({"type": "boolean"})
def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(key, value, "true or false")
    return value


def _choice(options: Sequence[str]) -> Parser:
    allowed = "one of " + ", ".join(options)

    @_schema({"enum": list(options)})
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            _fail(key, value, allowed)
        return value

    return parse


_finite = _real()
_positive = _real(0, open_low=True, name="positive")
_non_negative = _real(0, name="non_negative")
_fraction = _real(0, 1, open_high=True, name="fraction")  # a share of a resource
_unit_interval = _real(0, 1, name="unit_interval")


@_schema({"type": "string"})  # the styles are those of the installed matplotlib: mec.config checks them
def _style(key: str, value: Any) -> str:
    import matplotlib.style  # noqa: PLC0415 - only needed when a style is configured

    available = sorted(matplotlib.style.available) + ["default"]
    if not isinstance(value, str) or value not in available:
        _fail(key, value, "a matplotlib style: " + ", ".join(available))
    return value


_RANGE_BOUNDS = {"low": _positive, "high": _positive}


@_schema(
    {
        "description": "bounds of a uniform distribution, {low, high} or [low, high], 0 < low <= high",
        "oneOf": [
            {"type": "object", "additionalProperties": False, "required": list(_RANGE_BOUNDS),
             "properties": _RANGE_BOUNDS},
            {"type": "array", "minItems": 2, "maxItems": 2, "items": _positive},
        ],
    },
    "range",
)  # fmt: skip
def _range(key: str, value: Any) -> Range:
    """Every range in the scenario is a physical magnitude, so both bounds must be > 0."""
    allowed = "{low: x, high: y} or [x, y] with 0 < x <= y"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = value
    elif isinstance(value, Mapping):
        _check_keys(key, value, tuple(_RANGE_BOUNDS))
        if len(value) != 2:
            _fail(key, dict(value), allowed)
        low, high = value["low"], value["high"]
    else:
        _fail(key, value, allowed)
    result = Range(_positive(f"{key}.low", low), _positive(f"{key}.high", high))
    if result.low > result.high:
        raise ConfigError(f"{_where(key)}: got low={low!r} > high={high!r}; allowed: low <= high")
    return result


def _reward_schema() -> dict[str, Any]:
    weights = {field.name: field for field in dataclasses.fields(RewardConfig)}
    return {"type": ["object", "null"], "additionalProperties": False,
            "properties": {"preset": {"enum": list(REWARD_PRESETS)}, **weights}}  # fmt: skip


@_schema(_reward_schema)
def _reward(key: str, value: Any) -> RewardConfig:
    """A preset or explicit weights, never both: a mix would leave it unclear which one wins."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        _fail(key, value, "{preset: NAME} or {w_qos: x, w_energy_per_j: y}")
    fields = {field.name: field.metadata["parser"] for field in dataclasses.fields(RewardConfig)}
    _check_keys(key, value, ("preset", *fields))
    weights = {name: parse(_join(key, name), value[name]) for name, parse in fields.items() if name in value}
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


@_schema({"type": "string"})  # the address format is mec.config's check
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


_OVERRIDES_SCHEMA = {
    "description": "{dotted config key: value}, e.g. {training.critic: local}",
    "type": ["object", "null"],
    "propertyNames": {"pattern": r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"},
}


def _overrides_parser(forbidden: Sequence[str]) -> Parser:
    """A mapping of dotted config keys to values; the values are checked when the variant's config is built."""

    @_schema(_OVERRIDES_SCHEMA, "overrides")
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


@_schema({"type": "string", "pattern": _RESULTS_DIR.pattern})
def _results_dir(key: str, value: Any) -> str:
    """A relative folder of the workflow's outputs: results, results-test, results/test (no '.', '..' or '/x')."""
    if not isinstance(value, str) or not _RESULTS_DIR.match(value):
        _fail(key, value, "a relative folder such as results or results-test (letters, digits, _.+-, parts "
              "separated by /, none starting with a dot)")  # fmt: skip
    return value


@_schema({"type": ["object", "null"], "propertyNames": {"pattern": VARIANT_NAME.pattern},
          "additionalProperties": {"$ref": _variant_overrides, "minProperties": 1}})  # fmt: skip
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


@_schema({"type": ["array", "null"], "uniqueItems": True, "items": {"type": "string"}}, "variant_names")
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


@_schema({"type": ["array", "null"], "uniqueItems": True, "items": _non_negative})
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


@_schema({"enum": [1, 2]})
def _phase(key: str, value: Any) -> int:
    if not _is_int(value) or value not in (1, 2):
        _fail(key, value, "1 or 2")
    return int(value)


# The phases of the workflow: a list parsed like any other, each item in the schema as a phase.
_phases = _schema({"type": "array", "minItems": 1, "uniqueItems": True, "items": _phase})(_int_tuple(1, 2))


@_schema({"type": ["object", "null"], "propertyNames": {"pattern": r"^training\.[a-z_]+$"},
          "additionalProperties": {"type": "array", "minItems": 1}})  # fmt: skip
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


# --------------------------------------------------------------------------- declaring a key


def _key(default: Any, parser: Parser, meaning: str) -> Any:
    """A config key, declared once: its default, the parser that checks a given value, its one-line meaning."""
    return dataclasses.field(default=default, metadata={"parser": parser, "meaning": meaning})


def _subsection(cls: type, meaning: str) -> Any:
    """A nested section of keys (a dataclass of _key fields); its default is the dataclass of defaults."""
    return dataclasses.field(default_factory=cls, metadata={"parser": cls, "meaning": meaning})


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Range:
    """Bounds of a uniform distribution; low == high is allowed (a fixed value, handy for tests)."""

    low: float
    high: float


@dataclass(frozen=True)
class TaskConfig:
    data_mbit: Range = _key(Range(16.0, 80.0), _range, "task input data to upload when offloading [Mbit]")
    cycles_gcycles: Range = _key(Range(1.5, 3.5), _range, "task CPU work [10^9 cycles]")
    deadline_s: Range = _key(Range(2.0, 4.0), _range, "QoS deadline from the start of the slot [s]")


@dataclass(frozen=True)
class UEConfig:
    distance_m: Range = _key(Range(10.0, 50.0), _range, "UE to base-station distance, which sets the channel gain [m]")
    cpu_ghz: Range = _key(Range(0.5, 1.5), _range, "local CPU clock, fixed per UE for an episode [GHz]")
    tx_power_w: float = _key(0.2, _positive, "uplink transmit power [W]")
    kappa: float = _key(1e-27, _positive, "effective switched capacitance: local energy is kappa * cycles * f^2 [J]")


@dataclass(frozen=True)
class ServerConfig:
    cpu_ghz: float = _key(6.0, _positive, "server CPU clock, split between offloaders or clusters [GHz]")
    power_w: float = _key(5.0, _positive, "server power while executing offloaded work [W]")
    bandwidth_mhz: float = _key(20.0, _positive, "uplink band, split between offloading UEs [MHz]")


@dataclass(frozen=True)
class ChannelConfig:
    model: str = _key("pathloss_3gpp", _choice(CHANNEL_MODELS), "channel gain model (mec.physics.channel_gain)")
    noise_dbm_per_hz: float = _key(-174.0, _finite, "noise density [dBm/Hz]")


@dataclass(frozen=True)
class ScenarioConfig:
    task: TaskConfig = _subsection(TaskConfig, "one task per UE per slot, drawn from these ranges")
    ue: UEConfig = _subsection(UEConfig, "the UEs, drawn per episode")
    server: ServerConfig = _subsection(ServerConfig, "the single edge server shared by all UEs")
    channel: ChannelConfig = _subsection(ChannelConfig, "the uplink channel")
    slot_s: float = _key(4.0, _positive, "slot length [s]; only matters with carry_over_queue")
    carry_over_queue: bool = _key(False, _boolean, "server work left at the end of a slot delays the next slot")


@dataclass(frozen=True)
class RewardConfig:
    w_qos: float = _key(1.0, _non_negative, "weight of QoS [per task]")
    w_energy_per_j: float = _key(0.1, _non_negative, "weight of energy [per J]")


# "reference" reproduces the spec sheet's weighting, under which energy is numerically invisible
# next to QoS; "study" makes energy a real trade-off (see config.yaml for the arithmetic).
REWARD_PRESETS = {
    "study": RewardConfig(),  # the defaults of its fields
    "reference": RewardConfig(w_qos=1.0, w_energy_per_j=1e-6),
}


@dataclass(frozen=True)
class Phase1Config:
    n_ue: tuple[int, ...] = _key(
        (2, 3, 4, 5, 6, 7), _int_tuple(1, MAX_PHASE1_UE), "numbers of UEs N, one experiment each"
    )
    theta_min: float = _key(0.01, _fraction, "spectrum floor per offloading UE [share of the band]")


@dataclass(frozen=True)
class Phase2Config:
    n_users: int = _key(100, _integer(1), "users per episode")
    n_clusters: tuple[int, ...] = _key(
        (4, 5, 6, 7, 8, 9, 10), _int_tuple(1), "numbers of clusters K, one experiment each (K <= n_users)"
    )
    theta_min: float = _key(0.01, _fraction, "spectrum floor per offloading user [share of the band]")
    phi_min: float = _key(0.02, _fraction, "server-CPU floor per cluster [share of the server CPU]")
    kmeans_n_init: int = _key(10, _integer(1), "k-means restarts; the best of them is kept")
    coordinator: str = _key(
        "learned", _choice(COORDINATORS), "learned: a coordinator agent splits the server CPU; equal: equal split"
    )


@dataclass(frozen=True)
class EvaluationConfig:
    episodes: int = _key(5, _integer(1), "evaluation episodes per trained policy")
    slots: int = _key(200, _integer(1), "slots per evaluation episode")
    seed: int = _key(12345, _integer(0), "seed of the evaluation episodes, the same for every policy")


@dataclass(frozen=True)
class TrainingConfig:
    """MAPPO hyperparameters of one training job (one phase, N or K, seed)."""

    iterations: int = _key(120, _integer(1), "PPO iterations per job")
    episode_slots: int = _key(200, _integer(1), "slots per training episode")
    eval_episodes: int = _key(5, _integer(1), "deterministic evaluation episodes after every iteration")
    eval_seed: int = _key(2024, _integer(0), "seed of those validation episodes (apart from evaluation.seed)")
    train_batch_slots: int = _key(1000, _integer(1), "env slots sampled per iteration")
    minibatch_size: int = _key(250, _integer(1), "slots per SGD minibatch")
    num_epochs: int = _key(8, _integer(1), "SGD passes over each batch")
    lr: float = _key(1e-3, _positive, "learning rate")
    gamma: float = _key(0.0, _unit_interval, "discount factor")
    gae_lambda: float = _key(0.95, _unit_interval, "GAE lambda")
    clip_param: float = _key(0.2, _positive, "PPO clip parameter")
    entropy_coeff: float = _key(0.005, _non_negative, "entropy bonus coefficient")
    vf_loss_coeff: float = _key(0.5, _non_negative, "value-function loss coefficient")
    hidden: tuple[int, ...] = _key(
        (64, 64), _int_tuple(1, None, distinct=False), "hidden layer widths of every actor and critic MLP"
    )
    activation: str = _key("tanh", _choice(ACTIVATIONS), "activation after every hidden layer of every MLP")
    critic: str = _key("central", _choice(CRITICS), "central: MAPPO critic on the global state; local: IPPO ablation")
    critic_row_layers: int = _key(
        1, _integer(1), "hidden layers the critic applies to every row before its mean over rows"
    )
    ue_credit: str = _key(
        "marginal",
        _choice(UE_CREDITS),
        "marginal: each UE's own contribution to the slot reward; shared: the critic's advantage",
    )
    checkpoint_every: int = _key(10, _integer(1), "periodic checkpoint every this many iterations")
    num_cpus: int = _key(1, _integer(1), "CPUs Ray may use in this job")
    num_env_runners: int = _key(0, _integer(0), "env runners; 0: sample in the driver process")
    batch_episodes: int = _key(
        0, _integer(0), "episodes each env runner plays together per sample() call; 0: the runner's whole batch"
    )
    use_gpu: bool = _key(False, _boolean, "use a GPU for learning if one is present")
    backend: str = _key(
        "rllib",
        _choice(BACKENDS),
        "rllib: MAPPO, one policy per role; sb3: Stable-Baselines3 PPO on a single-agent view",
    )
    ray_address: str = _key(
        "", _ray_address, "empty: start a private Ray instance; else the address of a running Ray cluster to join"
    )


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

    seeds: tuple[int, ...] = _key((0, 1, 2, 3, 4), _int_tuple(0), "training seeds per (phase, N or K)")
    phases: tuple[int, ...] = _key((1, 2), _phases, "the phases of the study the workflow runs")
    variants: FrozenMap = _key(
        FrozenMap(
            {
                "ippo": {"training.critic": "local"},
                "no_coordinator": {"phase2.coordinator": "equal", "workflow.phases": [2]},
                "flat": {"phase2.n_clusters": [1], "workflow.phases": [2]},
                "sb3": {"training.backend": "sb3"},
                "tight_deadlines": {"scenario.task.deadline_s": {"low": 1.0, "high": 2.0}, "workflow.phases": [1]},
            }
        ),
        _variants,
        "variant name -> {dotted config key: value} (checked by mec.config)",
    )
    ablations: tuple[str, ...] = _key(
        ("ippo", "no_coordinator", "flat"), _names, "variants the `ablations` target runs and compares with the study"
    )
    backend_variants: tuple[str, ...] = _key(
        ("sb3",), _names, "variants (another training.backend) the `compare_backends` target compares"
    )
    scenarios: tuple[str, ...] = _key(
        ("tight_deadlines",), _names, "variants the default target builds in full beside the study, each reported apart"
    )
    w_energy: tuple[float, ...] = _key(
        (0.0, 0.05, 0.1, 0.2, 0.5), _weights, "reward.w_energy_per_j values of the QoS-energy trade-off (`pareto`)"
    )
    w_energy_overrides: FrozenMap = _key(
        FrozenMap({"phase1.n_ue": [3, 7], "phase2.n_clusters": [4, 10], "workflow.seeds": [0, 1, 2]}),
        _w_energy_overrides,
        "overrides every trade-off variant also applies (e.g. fewer sizes or seeds)",
    )
    results_dir: str = _key(
        "results", _results_dir, "folder of every output of the study; each config its own, so studies never mix"
    )


@dataclass(frozen=True)
class TuningConfig:
    """The hyperparameter sweep of the `tune` target: a grid of training values, each trained on one sweep point
    with its own seeds and iterations, ranked by the validation reward (training.eval_seed's episodes)."""

    phase: int = _key(1, _phase, "the phase tuned on")
    n: int = _key(5, _integer(1), "N (phase 1) or K (phase 2) tuned on")
    seeds: tuple[int, ...] = _key((100, 101), _int_tuple(0), "training seeds per grid point")
    iterations: int = _key(60, _integer(1), "PPO iterations per tuning run (training.iterations of its variants)")
    grid: FrozenMap = _key(
        FrozenMap(
            {
                "training.lr": [1e-4, 3e-4, 1e-3],
                "training.entropy_coeff": [0.0, 0.005, 0.02],
                "training.minibatch_size": [125, 250],
            }
        ),
        _grid,
        "training.<key> -> values to try; the grid is their product",
    )


@dataclass(frozen=True)
class StatisticsConfig:
    ci_level: float = _key(
        0.95, _real(0, 1, open_low=True, open_high=True), "confidence level of the bootstrap intervals over seeds"
    )
    bootstrap_resamples: int = _key(2000, _integer(100), "bootstrap resamples per interval")
    seed: int = _key(0, _integer(0), "seed of the bootstrap resampling")


@dataclass(frozen=True)
class PlottingConfig:
    dpi: int = _key(150, _integer(10), "figure resolution [dots per inch]")
    style: str = _key("default", _style, "a matplotlib style name")
    width_in: float = _key(6.4, _positive, "figure width [inch]")
    height_in: float = _key(4.0, _positive, "figure height [inch]")


@dataclass(frozen=True)
class StudyConfig:
    """MEC hierarchical multi-agent RL study"""

    scenario: ScenarioConfig = _subsection(ScenarioConfig, "the system model: tasks, UEs, server, channel, slots")
    reward: RewardConfig = _key(
        REWARD_PRESETS["study"], _reward, "{preset: NAME} or explicit weights, not both (checked by mec.config)"
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
_FIELDS: dict[type, dict[str, Parser | type]] = {
    cls: {field.name: field.metadata["parser"] for field in dataclasses.fields(cls)}
    for cls in _section_classes(StudyConfig)
}

# Every training key but the iterations, which tuning.iterations sets for the whole sweep.
_TUNED_TRAINING_KEYS = tuple(field.name for field in dataclasses.fields(TrainingConfig) if field.name != "iterations")


# --------------------------------------------------------------------------- JSON schema (config/schema.yaml)

_SCHEMA_COMMAND = "python -m mec.config --write-schema config/schema.yaml"
_SCHEMA_HEADER = f"""\
# GENERATED by `{_SCHEMA_COMMAND}` (`make schema`) from the fields of
# mec/config.py, where every config key is declared once: edit those, not this file (a test checks it is current).
#
# JSON schema (draft 2020-12, written in YAML) of the study config: the Snakefile checks config.yaml (and any
# --configfile) against it with snakemake.utils.validate before anything runs. It covers every key mec.config knows
# (unknown keys are rejected); the cross-field checks (K <= phase2.n_users, share floors that fit, reward preset or
# weights) are mec.config's, which the Snakefile runs right after. Every key is optional: mec.config fills defaults,
# so this schema sets none.
"""


def _render(node: Any, defs: dict[str, Any]) -> Any:
    """The JSON-schema form of a schema fragment, a field or a parser; shared fragments are collected in `defs`."""
    if isinstance(node, dataclasses.Field):
        return {**_render(node.metadata["parser"], defs), "description": node.metadata["meaning"]}
    if isinstance(node, type) and dataclasses.is_dataclass(node):
        properties = {field.name: _render(field, defs) for field in dataclasses.fields(node)}
        # null: a YAML section whose keys are all commented out
        return {"type": ["object", "null"], "additionalProperties": False, "properties": properties}
    if callable(node) and hasattr(node, "schema"):
        rendered = _render(node.schema() if callable(node.schema) else node.schema, defs)
        if node.schema_name is None:
            return rendered
        if defs.setdefault(node.schema_name, rendered) != rendered:
            raise ValueError(f"two different schema fragments are named {node.schema_name!r}")
        return {"$ref": f"#/$defs/{node.schema_name}"}
    if isinstance(node, Mapping):
        if callable(node.get("$ref")):  # a parser's fragment with more keywords: {$ref: parser, minProperties: 1}
            return {**_render(node["$ref"], defs), **{k: _render(v, defs) for k, v in node.items() if k != "$ref"}}
        return {name: _render(value, defs) for name, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_render(item, defs) for item in node]
    return node


def json_schema() -> dict[str, Any]:
    """The JSON schema of a config file, derived from the fields: types, bounds, choices and known keys (no
    defaults, no cross-field checks: mec.config fills the one and runs the other)."""
    defs: dict[str, Any] = {}
    properties = _render(StudyConfig, defs)["properties"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": StudyConfig.__doc__,
        "type": "object",
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
        "properties": properties,
    }


_PLAIN = re.compile(r"^\$?[A-Za-z_][A-Za-z0-9_]*$")
_WIDTH = 120


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, str):
        plain = _PLAIN.match(value) and yaml.safe_load(value) == value  # not null, true, ...
        return value if plain else json.dumps(value)  # a JSON string is a YAML double-quoted one
    return json.dumps(value)  # numbers, true, false, null


def _yaml_flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_yaml_scalar(k)}: {_yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_flow(item) for item in value) + "]"
    return _yaml_scalar(value)


def _depth(value: Any) -> int:
    if isinstance(value, Mapping):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _yaml_lines(mapping: Mapping[str, Any], indent: int = 0) -> list[str]:
    """Block YAML of a mapping; a value nested at most two levels deep is written on its key's line where it fits."""
    lines = []
    for name, value in mapping.items():
        head = " " * indent + _yaml_scalar(name) + ":"
        block = isinstance(value, Mapping) and name in ("properties", "$defs")
        flow = f"{head} {_yaml_flow(value)}"
        if not isinstance(value, (Mapping, list)) or (not block and _depth(value) <= 2 and len(flow) <= _WIDTH):
            lines.append(flow)
        elif isinstance(value, Mapping):  # a description first, where it reads best
            first = {"description": value["description"]} if "description" in value else {}
            lines += [head, *_yaml_lines({**first, **value}, indent + 2)]
        else:
            lines.append(head)
            for item in value:
                if isinstance(item, Mapping):
                    first, *rest = _yaml_lines(item, indent + 4)
                    lines += [" " * (indent + 2) + "- " + first.lstrip(), *rest]
                else:
                    lines.append(" " * (indent + 2) + "- " + _yaml_flow(item))
    return lines


def schema_text() -> str:
    """config/schema.yaml as it should be: the header comment, then json_schema() in YAML."""
    lines: list[str] = []
    sections = False
    for line in _yaml_lines(json_schema()):
        # A blank line before $defs, before the sections and between them.
        if line in ("$defs:", "properties:"):
            lines.append("")
            sections = line == "properties:"
        elif sections and re.match(r"^  \S", line) and lines[-1] != "properties:":
            lines.append("")
        lines.append(line)
    return _SCHEMA_HEADER + "\n".join(lines) + "\n"


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


# --------------------------------------------------------------------------- parsing a section

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
        with open(args.write_schema, "w", encoding="utf-8") as handle:
            handle.write(schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
