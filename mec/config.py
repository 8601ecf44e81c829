"""Study configuration: frozen dataclasses, parsed and validated from YAML.

Every run of the study is described by one ``StudyConfig``. Parsing is strict
(unknown keys, wrong types, NaN and infeasible share floors are rejected) so a
typo in config.yaml or on the command line fails loudly before any training
time is spent, with a one-line message naming the dotted key, the bad value and
what would have been accepted.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
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
    "Phase1Config",
    "Phase2Config",
    "Range",
    "RewardConfig",
    "ScenarioConfig",
    "ServerConfig",
    "StudyConfig",
    "TaskConfig",
    "UEConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
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
    checkpoint_every: int  # periodic checkpoint every this many iterations
    num_cpus: int  # CPUs Ray may use in this job
    num_env_runners: int  # 0: sample in the driver process
    use_gpu: bool  # use a GPU for learning if one is present
    backend: str  # "rllib" (MAPPO, one policy per role) or "sb3" (Stable-Baselines3 PPO on a single-agent view)
    ray_address: str  # "": start a private Ray instance; else the address of a running Ray cluster to join


@dataclass(frozen=True)
class WorkflowConfig:
    """The sweep the workflow expands: training seeds and phases."""

    seeds: tuple[int, ...]
    phases: tuple[int, ...]


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


CHANNEL_MODELS = ("pathloss_3gpp", "inverse_square")
CRITICS = ("central", "local")
COORDINATORS = ("learned", "equal")
BACKENDS = ("rllib", "sb3")

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
        lr=3e-4,
        gamma=0.0,
        gae_lambda=0.95,
        clip_param=0.2,
        entropy_coeff=0.005,
        vf_loss_coeff=0.5,
        hidden=(64, 64),
        critic="central",
        checkpoint_every=10,
        num_cpus=1,
        num_env_runners=0,
        use_gpu=False,
        backend="rllib",
        ray_address="",
    ),
    workflow=WorkflowConfig(seeds=(0, 1, 2, 3, 4), phases=(1, 2)),
    statistics=StatisticsConfig(ci_level=0.95, bootstrap_resamples=2000, seed=0),
    plotting=PlottingConfig(dpi=150, style="default", width_in=6.4, height_in=4.0),
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


# --------------------------------------------------------------------------- cross-field checks


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
    Phase1Config: {"n_ue": _int_tuple(1, 12), "theta_min": _fraction},
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
        "checkpoint_every": _integer(1),
        "num_cpus": _integer(1),
        "num_env_runners": _integer(0),
        "use_gpu": _boolean,
        "backend": _choice(BACKENDS),
        "ray_address": _ray_address,
    },
    WorkflowConfig: {"seeds": _int_tuple(0), "phases": _int_tuple(1, 2)},
    StatisticsConfig: {
        "ci_level": _real("a number in (0, 1)", lambda x: 0 < x < 1),
        "bootstrap_resamples": _integer(100),
        "seed": _integer(0),
    },
    PlottingConfig: {"dpi": _integer(10), "style": _style, "width_in": _positive, "height_in": _positive},
}

_CHECKS: dict[type, Callable[[Any, str], None]] = {
    Phase1Config: _check_phase1,
    Phase2Config: _check_phase2,
}


def _section(cls: type, default: Any, raw: Any, key: str) -> Any:
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
    if cls in _CHECKS:
        _CHECKS[cls](result, key)
    return result


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-27 / 2e9 as floats.

    YAML 1.1 (PyYAML) only treats exponent notation as a float when it has a dot and a
    signed exponent, so ``kappa: 1e-27`` would otherwise arrive as a string.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


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
    return config_from_dict({**sections, f"phase{phase}": phase_section})


def config_to_dict(cfg: StudyConfig) -> dict[str, Any]:
    """Plain YAML-friendly data; the reward is written as weights so the result is self-describing."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
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


def load_config(path: str | PathLike[str], overrides: Sequence[str] = ()) -> StudyConfig:
    """Read a YAML study file, apply optional overrides, and validate; every failure names the file."""
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
    try:
        return config_from_dict(apply_overrides(raw, overrides))
    except ConfigError as exc:
        raise ConfigError(f"config file '{path}': {exc}") from exc
