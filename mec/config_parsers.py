"""The value parsers of mec.config: each checks one config value and returns it typed, or fails with one line.

A parser is called as ``parser(key, value)`` (key: the value's dotted name, for the message) and carries the
JSON-schema fragment of the values it accepts (``schema``) for mec.config_schema. The sections in mec/config.py name
one parser per key (``_key(default, parse.positive, meaning)``); this module also holds what the raw config shares
with the parsers: the one-line ConfigError, the read-only FrozenMap, the YAML loader (which reads 1e-27 as a number
and refuses duplicate keys) and ``set_dotted``, the one writer of a dotted key (``training.critic``) into a raw
config mapping.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

class ConfigError(ValueError):
    """A configuration problem; the message is always a single line so it reads well in logs and CLI output."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))



# --------------------------------------------------------------------------- parsers

# A parser checks one value (key: its dotted name, for the message) and returns it typed. Each carries the
# JSON-schema fragment of the values it accepts (`schema`, a mapping or a function returning one; parsers and fields
# inside it stand for their own fragments) and, if `schema_name` is set, the name under which config/schema.yaml
# shares that fragment ($defs).
Parser = Callable[[str, Any], Any]
SLACK = 1e-12  # floors like 100 * 0.01 must count as feasible despite rounding


def _schema(fragment: Mapping[str, Any] | Callable[[], Mapping[str, Any]], name: str | None = None):
    """Decorator: attach a parser's JSON-schema fragment (and the $defs name that shares it)."""

    def attach(parse: Parser) -> Parser:
        parse.schema, parse.schema_name = fragment, name
        return parse

    return attach


def show(value: Any) -> str:
    # Booleans are shown the way YAML spells them, flagged, because "True" for a float
    # field is otherwise easy to misread as a valid value.
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def where(key: str) -> str:
    return f"config key '{key}'" if key else "config top level"


def fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{where(key)}: got {show(value)}; allowed: {allowed}")


def join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)


def check_keys(key: str, raw: Mapping, allowed: Sequence[str]) -> None:
    for name in raw:
        if name not in allowed:
            raise ConfigError(f"{where(join(key, name))}: unknown; allowed keys: {', '.join(allowed)}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def real(
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
            fail(key, value, allowed)
        return number

    return parse


def integer(low: int) -> Parser:
    allowed = f"an integer >= {low}"

    @_schema({"type": "integer", "minimum": low})
    def parse(key: str, value: Any) -> int:
        if not _is_int(value) or value < low:
            fail(key, value, allowed)
        return int(value)

    return parse


def int_tuple(low: int, high: int | None = None, distinct: bool = True, empty: str = "") -> Parser:
    """A list of integers in bounds; `empty`, where given, says what an empty list means (else one is rejected)."""
    bounds = f"in {low}..{high}" if high is not None else f">= {low}"
    allowed = f"a {'' if empty else 'non-empty '}list of {'distinct ' if distinct else ''}integers {bounds}"
    allowed += f" ([]: {empty})" if empty else ""
    item = {"type": "integer", "minimum": low, **({"maximum": high} if high is not None else {})}

    @_schema({"type": "array", "minItems": 0 if empty else 1, **({"uniqueItems": True} if distinct else {}),
              "items": item})  # fmt: skip
    def parse(key: str, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or (not value and not empty):
            fail(key, value, allowed)
        for i, item in enumerate(value):
            if not _is_int(item) or item < low or (high is not None and item > high):
                fail(f"{key}[{i}]", item, allowed)
        items = tuple(int(item) for item in value)
        repeated = sorted({item for item in items if items.count(item) > 1})
        if distinct and repeated:
            fail(key, list(value), f"{allowed} (repeated: {', '.join(map(str, repeated))})")
        return items

    return parse


@_schema({"type": "boolean"})
def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        fail(key, value, "true or false")
    return value


def choice(options: Sequence[str]) -> Parser:
    allowed = "one of " + ", ".join(options)

    @_schema({"enum": list(options)})
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            fail(key, value, allowed)
        return value

    return parse


finite = real()
positive = real(0, open_low=True, name="positive")
non_negative = real(0, name="non_negative")
fraction = real(0, 1, open_high=True, name="fraction")  # a share of a resource
unit_interval = real(0, 1, name="unit_interval")


@_schema({"type": "string"})  # the styles are those of the installed matplotlib: mec.config checks them
def style(key: str, value: Any) -> str:
    import matplotlib.style  # noqa: PLC0415 - only needed when a style is configured

    available = sorted(matplotlib.style.available) + ["default"]
    if not isinstance(value, str) or value not in available:
        fail(key, value, "a matplotlib style: " + ", ".join(available))
    return value


@dataclass(frozen=True)
class Range:
    """Bounds of a uniform distribution; low == high is allowed (a fixed value, handy for tests)."""

    low: float
    high: float



_RANGE_BOUNDS = {"low": positive, "high": positive}


@_schema(
    {
        "description": "bounds of a uniform distribution, {low, high} or [low, high], 0 < low <= high",
        "oneOf": [
            {"type": "object", "additionalProperties": False, "required": list(_RANGE_BOUNDS),
             "properties": _RANGE_BOUNDS},
            {"type": "array", "minItems": 2, "maxItems": 2, "items": positive},
        ],
    },
    "range",
)  # fmt: skip
def value_range(key: str, value: Any) -> Range:
    """Every range in the scenario is a physical magnitude, so both bounds must be > 0."""
    allowed = "{low: x, high: y} or [x, y] with 0 < x <= y"
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = value
    elif isinstance(value, Mapping):
        check_keys(key, value, tuple(_RANGE_BOUNDS))
        if len(value) != 2:
            fail(key, dict(value), allowed)
        low, high = value["low"], value["high"]
    else:
        fail(key, value, allowed)
    result = Range(positive(f"{key}.low", low), positive(f"{key}.high", high))
    if result.low > result.high:
        raise ConfigError(f"{where(key)}: got low={low!r} > high={high!r}; allowed: low <= high")
    return result


def _reward_schema() -> dict[str, Any]:
    from mec.config import REWARD_PRESETS, RewardConfig  # noqa: PLC0415 - the reward section, declared there

    weights = {field.name: field for field in dataclasses.fields(RewardConfig)}
    return {"type": ["object", "null"], "additionalProperties": False,
            "properties": {"preset": {"enum": list(REWARD_PRESETS)}, **weights}}  # fmt: skip


@_schema(_reward_schema)
def reward(key: str, value: Any) -> Any:
    """A preset or explicit weights, never both: a mix would leave it unclear which one wins (a RewardConfig)."""
    from mec.config import REWARD_PRESETS, RewardConfig  # noqa: PLC0415 - the reward section, declared there

    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        fail(key, value, "{preset: NAME} or {w_qos: x, w_energy_per_j: y}")
    fields = {field.name: field.metadata["parser"] for field in dataclasses.fields(RewardConfig)}
    check_keys(key, value, ("preset", *fields))
    weights = {name: parse(join(key, name), value[name]) for name, parse in fields.items() if name in value}
    if "preset" in value:
        if weights:
            fail(key, dict(value), "either {preset: NAME} or explicit weights w_qos/w_energy_per_j, not both")
        name = value["preset"]
        if not isinstance(name, str) or name not in REWARD_PRESETS:
            fail(join(key, "preset"), name, "one of " + ", ".join(REWARD_PRESETS))
        return REWARD_PRESETS[name]
    reward = dataclasses.replace(REWARD_PRESETS["study"], **weights)
    if reward.w_qos == 0 and reward.w_energy_per_j == 0:
        fail(key, dict(value), "weights >= 0, not both zero (the reward would be constant)")
    return reward


_RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5})$")


@_schema({"type": "string"})  # the address format is mec.config's check
def ray_address(key: str, value: Any) -> str:
    """Empty (a private Ray instance per job), "auto" (the cluster this node belongs to) or host:port."""
    if not isinstance(value, str) or (value and not _RAY_ADDRESS.match(value)):
        fail(key, value, '"" (a private Ray instance), "auto", "host:port" or "ray://host:port"')
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
        fail(join(key, name), name, "a dotted config key such as training.critic")
    for bad in forbidden:
        if name == bad or name.startswith(bad + ".") or bad.startswith(name + "."):
            raise ConfigError(
                f"{where(join(key, name))}: cannot be overridden here; allowed: any key except "
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
            fail(key, value, "a mapping of dotted config keys to values, e.g. {training.critic: local}")
        for name in value:
            _dotted_key(key, name, forbidden)
        return FrozenMap(value)

    return parse


# A variant's outputs live in the study's results_dir (under variants/<name>/), so it cannot move them elsewhere.
variant_overrides = _overrides_parser((*_FAMILY_KEYS, "workflow.results_dir"))
w_energy_overrides = _overrides_parser((*_FAMILY_KEYS, "workflow.results_dir", "reward"))

_RESULTS_DIR = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$")


@_schema({"type": "string", "pattern": _RESULTS_DIR.pattern})
def results_dir(key: str, value: Any) -> str:
    """A relative folder of the workflow's outputs: results, results-test, results/test (no '.', '..' or '/x')."""
    if not isinstance(value, str) or not _RESULTS_DIR.match(value):
        fail(key, value, "a relative folder such as results or results-test (letters, digits, _.+-, parts "
              "separated by /, none starting with a dot)")  # fmt: skip
    return value


@_schema({"type": ["object", "null"], "propertyNames": {"pattern": VARIANT_NAME.pattern},
          "additionalProperties": {"$ref": variant_overrides, "minProperties": 1}})  # fmt: skip
def variants(key: str, value: Any) -> FrozenMap:
    """Variant name -> overrides. Names become folder names (results/variants/<name>/)."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        fail(key, value, "a mapping of variant names to overrides, e.g. {ippo: {training.critic: local}}")
    allowed = f"a name matching {VARIANT_NAME.pattern} not starting with {W_ENERGY_PREFIX} or {TUNING_PREFIX}"
    for name, overrides in value.items():
        reserved = isinstance(name, str) and name.startswith((W_ENERGY_PREFIX, TUNING_PREFIX))
        if not isinstance(name, str) or not VARIANT_NAME.match(name) or reserved:
            fail(f"{key} name", name, allowed)
        if not overrides:
            fail(join(key, name), overrides, "a non-empty mapping of dotted config keys to values")
        variant_overrides(join(key, name), overrides)
    return FrozenMap(value)


@_schema({"type": ["array", "null"], "uniqueItems": True, "items": {"type": "string"}}, "variant_names")
def variant_names(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        fail(key, value, "a list of variant names")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            fail(f"{key}[{i}]", item, "a variant name")
    repeated = sorted({item for item in value if list(value).count(item) > 1})
    if repeated:
        fail(key, list(value), f"distinct variant names (repeated: {', '.join(repeated)})")
    return tuple(value)


@_schema({"type": ["array", "null"], "uniqueItems": True, "items": non_negative})
def weights(key: str, value: Any) -> tuple[float, ...]:
    """Distinct energy weights >= 0; empty means no trade-off axis."""
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        fail(key, value, "a list of distinct numbers >= 0")
    items = tuple(non_negative(f"{key}[{i}]", item) for i, item in enumerate(value))
    if len(set(items)) != len(items):
        fail(key, list(value), "a list of distinct numbers >= 0")
    return items


@_schema({"enum": [1, 2]})
def phase(key: str, value: Any) -> int:
    if not _is_int(value) or value not in (1, 2):
        fail(key, value, "1 or 2")
    return int(value)


# The phases of the workflow: a list parsed like any other, each item in the schema as a phase.
phases = _schema({"type": "array", "minItems": 1, "uniqueItems": True, "items": phase})(int_tuple(1, 2))


@_schema({"type": ["object", "null"], "propertyNames": {"pattern": r"^training\.[a-z_]+$"},
          "additionalProperties": {"type": "array", "minItems": 1}})  # fmt: skip
def grid(key: str, value: Any) -> FrozenMap:
    """training.<key> -> non-empty list of distinct values; empty: no tuning sweep."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        fail(key, value, "a mapping of training keys to lists of values, e.g. {training.lr: [1.0e-4, 3.0e-4]}")
    from mec.config import TUNED_TRAINING_KEYS  # noqa: PLC0415 - derived from the training section

    allowed = "one of " + ", ".join(f"training.{name}" for name in TUNED_TRAINING_KEYS)
    keys = {f"training.{name}" for name in TUNED_TRAINING_KEYS}
    for name, values in value.items():
        if name not in keys:
            fail(f"{key} key", name, allowed + " (tuning.iterations sets the iterations)")
        frozen = freeze(values)
        if not isinstance(values, (list, tuple)) or not values or len(set(frozen)) != len(frozen):
            fail(join(key, name), values, "a non-empty list of distinct values")
    return FrozenMap(value)


class FrozenMap(Mapping):
    """A read-only, hashable mapping, so that config values which are mappings themselves (a variant's overrides,
    the tuning grid) keep StudyConfig frozen and hashable. Lists inside are stored as tuples, mappings as FrozenMaps;
    config_to_dict turns them back into plain dicts and lists."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = {key: freeze(value) for key, value in dict(data or {}).items()}

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


def freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value if isinstance(value, FrozenMap) else FrozenMap(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(item) for item in value]
    return value

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


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def parse_value(text: str) -> Any:
    """One value written as in a config file (the YAML of load_config, which also reads 1e-27 as a number)."""
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"value {text!r} is not valid YAML ({yaml_problem(exc)})") from exc


def yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"



# --------------------------------------------------------------------------- writing a dotted key


def set_dotted(raw: dict[str, Any], dotted: str | Sequence[str], value: Any) -> None:
    """Set `dotted` (``a.b.c``, or its parts) to `value` in the raw config mapping `raw`, in place: missing or empty
    (null) sections are created, the mappings on the way are copied (never shared with the caller's), and
    ``reward.preset`` replaces the whole reward section (a preset and explicit weights are one or the other). A part
    of the way that holds a value, not a mapping, fails in one line naming it."""
    parts = [part.strip() for part in dotted.split(".")] if isinstance(dotted, str) else list(dotted)
    if not parts or any(not part for part in parts):
        raise ConfigError(f"{'.'.join(parts)!r}: expected a dotted config key such as training.critic")
    if parts == ["reward", "preset"]:
        raw["reward"] = {"preset": value}
        return
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, Mapping):
            prefix = ".".join(parts[: depth + 1])
            raise ConfigError(f"'{prefix}' is {show(child)}, not a mapping, so it has no key '{parts[depth + 1]}'")
        node[part] = child = dict(child)
        node = child
    node[parts[-1]] = value
