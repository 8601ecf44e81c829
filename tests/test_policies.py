"""Tests for mec.policies (the names and their grammar) and for the direction of the package's imports: no cycle
between the policy modules, no private name imported across modules, the names without numba."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from mec.policies import (
    LOCAL_SEARCH,
    ORACLE,
    ORACLE_MAX_UE,
    PolicySpec,
    evaluated_policy_names,
    offload_rule,
    parse_policy,
    policy_names,
    seed_policy_names,
)

MEC = Path(__file__).resolve().parents[1] / "mec"


def test_offload_rule_of_a_policy_name():
    assert offload_rule("greedy-least-slack-urgency") == "greedy"
    assert offload_rule("all-offload-edf") == "all-offload"
    assert offload_rule("random-fifo-equal") == "random"
    for name in ("random", "all-offload", "all-local", ORACLE, LOCAL_SEARCH, "mappo"):
        assert offload_rule(name) is None


@pytest.mark.parametrize(
    ("name", "phase", "spec"),
    [
        ("oracle", 1, PolicySpec("oracle", "oracle")),
        ("local-search", 2, PolicySpec("local-search", "local-search")),
        ("random", 1, PolicySpec("random", "heuristic", "random", "random", "equal")),
        ("random", 2, PolicySpec("random", "heuristic", "random", "random", "random")),
        ("all-local", 2, PolicySpec("all-local", "heuristic", "all-local", "fifo", "equal")),
        ("all-offload-least-slack", 1, PolicySpec("all-offload-least-slack", "heuristic", "all-offload",
                                                  "least-slack", "equal")),
        ("greedy-least-slack-urgency", 2, PolicySpec("greedy-least-slack-urgency", "heuristic", "greedy",
                                                     "least-slack", "urgency")),
    ],
)  # fmt: skip
def test_parse_policy(name, phase, spec):
    assert parse_policy(name, phase) == spec


def test_every_name_parses_and_unknown_names_list_the_allowed():
    for phase in (1, 2):
        for name in policy_names(phase):
            assert parse_policy(name, phase).name == name
    with pytest.raises(ValueError, match=r"policy 'oracle' for phase 2: allowed all-local, all-offload, random, "):
        parse_policy("oracle", 2)


def test_evaluated_and_seed_names():
    assert ORACLE in evaluated_policy_names(1, ORACLE_MAX_UE)
    assert ORACLE not in evaluated_policy_names(1, ORACLE_MAX_UE + 1)
    assert evaluated_policy_names(2, 100) == policy_names(2)
    for phase in (1, 2):
        seeds = seed_policy_names(phase)
        assert ORACLE not in seeds and LOCAL_SEARCH not in seeds
        assert all("random" not in name.split("-") for name in seeds)
        assert set(seeds) < set(policy_names(phase))


def test_the_names_and_the_figures_import_without_numba():
    code = "import sys, mec.policies, mec.plotting; assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=MEC.parent)


def _mec_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `from mec... import` / `import mec...` in a file, top level or in a function."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mec":
            out.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == "mec"]
    return out


def _module_name(path: Path) -> str:
    parts = path.relative_to(MEC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_private_name_is_imported_across_modules():
    offenders = [
        f"{_module_name(path)}: from {module} import {name}"
        for path in MEC.rglob("*.py")
        for module, names in _mec_imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_the_policy_modules_import_in_one_direction():
    """policies <- baselines <- optimiser <- evaluation: nothing imports a module above it, not even lazily."""
    order = ["mec.policies", "mec.baselines", "mec.optimiser", "mec.evaluation"]
    for level, module in enumerate(order):
        path = MEC / f"{module.split('.')[1]}.py"
        imported = {name for name, _ in _mec_imports(path)}
        imported |= {f"mec.{alias}" for name, aliases in _mec_imports(path) if name == "mec" for alias in aliases}
        assert not imported & set(order[level:]), (module, sorted(imported & set(order[level:])))
    assert not _mec_imports(MEC / "policies.py")
