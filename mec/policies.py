"""The baseline policies' names: their grammar, the list of each phase, and parsing a name into its rules.

The one home of the names, without numba or the simulator (plotting and the Snakefile read them): mec.baselines
builds the heuristics and the oracle from a parsed name, mec.optimiser the local search on top of those, and
mec.evaluation.make_policy any of them by name. Imports run in that direction only.

Names are kebab-case: phase 1 `<offload>-<order>` (e.g. `greedy-edf`), phase 2 `<offload>-<order>-<split>`
(e.g. `greedy-least-slack-urgency`), plus `all-local`, `all-offload` (= all-offload-fifo[-equal]), `random`
(random offload, order and, in phase 2, split), `oracle` (phase 1 only, up to ORACLE_MAX_UE UEs) and `local-search`
(mec.optimiser: a per-slot local search seeded from the deterministic heuristics). The rules themselves are
described in mec.baselines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

OFFLOAD_RULES = ("all-offload", "greedy", "random")
SERVER_ORDERS = ("fifo", "edf", "sjf", "least-slack", "random")
CPU_SPLITS = ("equal", "proportional", "urgency")
# The exhaustive oracle (and the phase-1 upper bound, mec.bound) run up to this many UEs.
ORACLE_MAX_UE = 8
ORACLE = "oracle"
LOCAL_SEARCH = "local-search"


@dataclass(frozen=True)
class PolicySpec:
    """A parsed policy name. kind: "heuristic" (its three rules set), "oracle" or "local-search" (rules None)."""

    name: str
    kind: str
    offload_rule: str | None = None
    server_order: str | None = None
    cpu_split: str | None = None


def policy_names(phase: int) -> list[str]:
    """Every valid policy name of a phase."""
    names = ["all-local", "all-offload", "random"]
    if phase == 1:
        names.append(ORACLE)
        names += [f"{o}-{s}" for o, s in itertools.product(OFFLOAD_RULES, SERVER_ORDERS)]
    else:
        names += [f"{o}-{s}-{c}" for o, s, c in itertools.product(OFFLOAD_RULES, SERVER_ORDERS, CPU_SPLITS)]
    return names + [LOCAL_SEARCH]  # last: where it ties with the oracle, summaries' first best is the oracle


def evaluated_policy_names(phase: int, n_ue: int) -> list[str]:
    """The policies a sweep point is evaluated with: every name of the phase, the oracle only where it is exact."""
    return [name for name in policy_names(phase) if name != ORACLE or n_ue <= ORACLE_MAX_UE]


def seed_policy_names(phase: int) -> list[str]:
    """The heuristics that seed the local search: every one of the phase without randomness."""
    return [name for name in policy_names(phase)
            if name not in (ORACLE, LOCAL_SEARCH) and "random" not in name.split("-")]  # fmt: skip


def parse_policy(name: str, phase: int) -> PolicySpec:
    """The rules of a policy name of `phase`; a ValueError naming the allowed names for any other."""
    valid = policy_names(phase)
    if name not in valid:
        raise ValueError(f"policy {name!r} for phase {phase}: allowed {', '.join(valid)}")
    if name in (ORACLE, LOCAL_SEARCH):
        return PolicySpec(name, name)
    if name in ("all-local", "all-offload"):
        return PolicySpec(name, "heuristic", name, "fifo", "equal")
    if name == "random":
        return PolicySpec(name, "heuristic", "random", "random", "random" if phase == 2 else "equal")
    body, split = name.rsplit("-", 1) if phase == 2 else (name, "equal")
    rule = offload_rule(body)
    return PolicySpec(name, "heuristic", rule, body[len(rule) + 1 :], split)


def offload_rule(policy: str) -> str | None:
    """The offload rule of a composed heuristic name (`greedy-edf` -> `greedy`); None for any other name."""
    return next((rule for rule in OFFLOAD_RULES if policy.startswith(f"{rule}-")), None)
