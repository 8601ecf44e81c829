"""The variants of the study: the named studies the workflow runs beside it, a planning concept (mec.plan).

A variant is the study's config with some dotted keys overridden. They are declared in the config (mec/config.py):
by name in workflow.variants, one per energy weight of workflow.w_energy (w_energy_<w>, the trade-off axis) and one
per point of tuning.grid (tune_<key><value>_...). ``study_variants`` lists them, ``variant_config`` builds and checks
one's config (the study's, with the variant-declaring keys emptied and the overrides applied), and mec.plan decides
where each variant's jobs lie and which of them are the study's own.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mec.config import StudyConfig, config_from_dict, config_to_dict
from mec.config_parsers import (
    TUNING_PREFIX,
    W_ENERGY_PREFIX,
    ConfigError,
    FrozenMap,
    fail,
    set_dotted,
    thaw,
)

__all__ = [
    "Variant",
    "study_variants",
    "study_without_variants",
    "variant_config",
    "variant_configs",
    "variant_of_folder",
    "w_energy_variant_name",
]


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
    value = thaw(value)
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


def variant_config(cfg: StudyConfig, variant: Variant) -> StudyConfig:
    """The variant's validated config: the study's, variant-declaring keys emptied, overrides applied. A bad value
    fails with one line naming the variant, where it is declared and the key."""
    raw = _without_families(config_to_dict(cfg))
    try:
        for dotted, value in variant.overrides.items():
            try:
                set_dotted(raw, dotted, thaw(value))
            except ConfigError as exc:
                raise ConfigError(f"override {dotted!r}: {exc}") from exc
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"variant '{variant.name}' ({variant.origin}): {exc}") from exc


def variant_configs(cfg: StudyConfig) -> dict[str, StudyConfig]:
    """Every variant's validated config by name (study_variants); also checks that each of
    workflow.backend_variants trains with another backend than the study."""
    configs = {name: variant_config(cfg, variant) for name, variant in study_variants(cfg).items()}
    for i, name in enumerate(cfg.workflow.backend_variants):
        if configs[name].training.backend == cfg.training.backend:
            fail(
                f"workflow.backend_variants[{i}]",
                name,
                f"a variant whose training.backend differs from the study's ({cfg.training.backend})",
            )
    return configs
