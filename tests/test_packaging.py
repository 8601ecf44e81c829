"""The package's declared dependencies, the study's lock file and the rules' conda environment agree (issue 16,
item 7): pyproject.toml gives ranges (plus extras for the workflow, SB3 and PettingZoo), requirements.lock the exact
environment of the study, rules/envs/mec.yaml the same versions for --software-deployment-method conda."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import mec

REPO = Path(__file__).resolve().parents[1]


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["workflow"] + extras["sb3"] + extras["pettingzoo"]]


def conda_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "rules" / "envs" / "mec.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pins = {}
    for line in pip:
        if not line.startswith("--"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_every_declared_range_admits_the_locked_version():
    pins = lock()
    for requirement in [*declared(), *(Requirement(r) for r in ["pytest>=9.2", "snakefmt>=2.1"])]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{requirement} excludes the locked {pins[name]}"
        assert requirement.specifier, f"{requirement}: give a range"


def test_the_conda_environment_pins_every_declared_dependency_at_the_locked_version():
    pins, conda = lock(), conda_pins()
    assert set(conda) == {canonicalize_name(r.name) for r in declared()}
    for name, version in conda.items():
        assert pins[name] == version, f"rules/envs/mec.yaml pins {name}=={version}, requirements.lock {pins[name]}"


def test_the_command_has_its_own_name_and_a_version():
    out = subprocess.run([sys.executable, "-m", "mec", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"mec {mec.__version__}"
    usage = subprocess.run([sys.executable, "-m", "mec", "--help"], capture_output=True, text=True, timeout=120)
    assert re.match(r"usage: mec ", usage.stdout)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version == mec.__version__
