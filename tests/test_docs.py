"""The documentation as a newcomer meets it: the README is a short front door whose every relative link (and every
docs page's) resolves, whose table of contents names every page, whose generated tables sit between their markers;
the headline table and the results page render phase-2 scenarios too, and a splice checks both files before writing
either; `make test-fast` selects tests and covers every module while `make test` still runs them all.

The quick-start commands themselves run in tests/test_quickstart.py (slow: the tiny study trains).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import is_slow

from mec import aggregate, markdown
from mec.config import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
# [text](target) and ![alt](target); the target ends at the first space (a title may follow) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SOURCE = re.compile(r"<(?:img|a)\s[^>]*(?:src|href)=\"([^\"]+)\"")


def relative_links(path: Path) -> list[str]:
    """Every link and image target of a Markdown file that is a path in this repository (no URL, no bare anchor),
    outside code blocks and code spans."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = LINK.findall(text) + HTML_SOURCE.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_link_extraction_finds_links_and_images_and_skips_urls_and_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [a](a.md), ![fig](results/x.png \"title\") and [b](docs/b.md#part).\n"
        "[web](https://example.org) [anchor](#top) `[code](no.md)`\n```\n[block](no2.md)\n```\n"
        '<img src="img/y.png">\n'
    )
    assert relative_links(page) == ["a.md", "results/x.png", "docs/b.md#part", "img/y.png"]


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves_from_its_page(path):
    links = relative_links(path)
    missing = [t for t in links if not (path.parent / t.split("#")[0]).exists()]
    assert not missing, f"{path.relative_to(REPO)}: links to nothing: {missing}"


def test_the_pages_have_links_at_all():
    """The link test above checks something: the README links every page and docs/results.md its figures."""
    assert len(relative_links(README)) >= len(PAGES)
    figures = [t for t in relative_links(REPO / "docs" / "results.md") if t.endswith(".png")]
    assert figures and all(t.startswith("results/") for t in figures)


def test_the_readme_is_a_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    # every docs page is in its table of contents
    linked = {t.split("#")[0] for t in relative_links(README)}
    assert {f"docs/{page.name}" for page in PAGES} <= linked
    # the quick start, the two commands and the fast test loop
    for command in ("make study CONFIG=.test/config.yaml", "mec train", "mec evaluate",
                    "make report CONFIG=.test/config.yaml", "make study", "make test", "make test-fast"):  # fmt: skip
        assert command in text, command
    assert "../shared" not in text


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_no_page_points_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert all(not (path.parent / t.split("#")[0]).resolve().is_relative_to(REPO.parent / "shared")
               for t in relative_links(path))  # fmt: skip


def _markers(path: Path, start: str, end: str) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index(end)
    return text.split(start)[1].split(end)[0]


def test_the_generated_sections_sit_between_their_markers():
    headline = _markers(README, markdown.HEADLINE_START, markdown.HEADLINE_END)
    committed = pd.read_parquet(REPO / "docs" / "summary" / "comparison.parquet")
    for phase in sorted(committed["phase"].unique()):  # each committed phase at its largest point
        n = int(committed.loc[committed["phase"] == phase, "n"].max())
        assert f"| study | {phase}, {markdown.size_name(phase)} = {n} | mappo: " in headline
    section = _markers(REPO / "docs" / "results.md", markdown.README_START, markdown.README_END)
    assert "### Phase 1: learned vs the upper bound" in section
    assert markdown.README_START not in README.read_text(encoding="utf-8")  # the full section left the README


def test_the_headline_is_the_committed_tables_headline():
    """The README's headline table says what the committed summary tables under docs/summary/ say (the study's and
    each committed scenario's of workflow.scenarios), row for row."""
    summary = REPO / "docs" / "summary"
    entries = [("study", pd.read_parquet(summary / "comparison.parquet"), [])]
    for name in DEFAULT_CONFIG.workflow.scenarios:
        if (summary / name / "comparison.parquet").exists():
            entries.append((name, pd.read_parquet(summary / name / "comparison.parquet"), []))
    _, rows = markdown.headline_rows(entries)
    headline = _markers(README, markdown.HEADLINE_START, markdown.HEADLINE_END)
    assert len(rows) >= 2 and headline.count("\n| ") == len(rows) + 2  # header, rule, one row per entry and phase
    for row in rows:
        assert "| " + " | ".join(row[:-1]) + " |" in headline


# --------------------------------------------------------------------------- headline and scenarios, synthetic


def _point(phase: int, n: int, learned: float, best: float, local: float, search: float, bound: float | None):
    rows = [("mappo", "learned", learned), ("greedy-edf", "heuristic", best), ("all-local", "heuristic", local),
            (aggregate.LOCAL_SEARCH, "search", search)]  # fmt: skip
    if bound is not None:
        rows.append((aggregate.BOUND, "bound", bound))
    frame = pd.DataFrame(
        [{"phase": phase, "n": n, "policy": p, "kind": k, "reward_per_slot": r, "reward_per_slot_ci_low": r - 0.01,
          "reward_per_slot_ci_high": r + 0.01, "samples": 3, "ci_level": 0.95,
          aggregate.PERCENT_OF_BOUND: (100 * r / bound) if bound else float("nan"),
          f"{aggregate.PERCENT_OF_BOUND}_ci_low": (100 * r / bound - 0.5) if bound else float("nan"),
          f"{aggregate.PERCENT_OF_BOUND}_ci_high": (100 * r / bound + 0.5) if bound else float("nan")}
         for p, k, r in rows]
    )  # fmt: skip
    return frame


def test_headline_rows_take_each_phase_at_its_largest_point_with_its_reference():
    study = pd.concat([_point(1, 2, 1.5, 1.4, 1.0, 1.55, 1.6), _point(1, 7, 3.0, 2.5, 2.0, 3.5, 4.0),
                       _point(2, 10, 62.0, 61.0, 60.0, 64.0, None)])  # fmt: skip
    origins = [{"phase": 1, "commit": "abc123"}, {"phase": 2}]
    header, rows = markdown.headline_rows([("study", study, origins)])
    assert header[0] == "scenario" and header[-1] == "trained at commit"
    assert rows == [
        ["study", "1, N = 7", "mappo: 3", "greedy-edf: 2.5", "3.5", "4", "75.0% [74.5, 75.5] of the bound", "abc123"],
        ["study", "2, K = 10", "mappo: 62", "greedy-edf: 61", "64", "—",
         "50.0% of local search's gain over all-local", "not recorded"],
    ]  # fmt: skip
    text = markdown.headline_markdown([("study", study, origins)], "`results/summary/`")
    assert text.startswith("Generated from `results/summary/`") and "| study | 2, K = 10 |" in text


def test_readme_results_renders_a_phase2_scenario_with_its_gain_over_all_local():
    """A scenario of workflow.scenarios that runs phase 2 only (such as a capable edge server) gets phase 2's table:
    learned, best heuristic, local search and the share of its gain."""
    study = _point(1, 3, 2.0, 1.9, 1.5, 2.1, 2.2)
    edge = pd.concat([_point(2, 4, 63.0, 61.0, 60.0, 64.0, None), _point(2, 10, 62.0, 60.5, 60.0, 63.0, None)])
    text = markdown.readme_results(study, scenarios=[("capable_edge", "server.cpu_hz=1.2e10", edge, "")])
    assert "### Phase 2, scenario capable_edge (`server.cpu_hz=1.2e10`)" in text
    assert "### Phase 1, scenario capable_edge" not in text
    assert "| 4 | mappo: 63 [62.99, 63.01] | greedy-edf: 61 [60.99, 61.01] | yes | 64 [63.99, 64.01] | 0.750 |" in (
        text
    )
    assert "| 10 | mappo: 62 [61.99, 62.01] | greedy-edf: 60.5 [60.49, 60.51] | yes | 63 [62.99, 63.01] | 0.667 |" in (
        text
    )
    _, rows = markdown.headline_rows([("capable_edge", edge, [{"commit": "def456"}])])
    assert rows == [["capable_edge", "2, K = 10", "mappo: 62", "greedy-edf: 60.5", "63", "—",
                     "66.7% of local search's gain over all-local", "def456"]]  # fmt: skip


def test_splice_files_checks_every_file_before_writing_any(tmp_path):
    page, readme = tmp_path / "results.md", tmp_path / "README.md"
    page.write_text(f"# Results\n{markdown.README_START}\nold\n{markdown.README_END}\nafter\n")
    readme.write_text("# Title\nno headline markers\n")
    sections = [(page, "new section", markdown.README_START, markdown.README_END),
                (readme, "new headline", markdown.HEADLINE_START, markdown.HEADLINE_END)]  # fmt: skip
    with pytest.raises(ValueError, match="README.md: needs one line <!-- headline:start -->"):
        markdown.splice_files(sections)
    assert "old" in page.read_text()  # the page was not written either
    readme.write_text(f"# Title\n{markdown.HEADLINE_START}\n{markdown.HEADLINE_END}\n")
    assert markdown.splice_files(sections) == [page, readme]
    assert page.read_text() == f"# Results\n{markdown.README_START}\nnew section\n{markdown.README_END}\nafter\n"
    assert readme.read_text() == f"# Title\n{markdown.HEADLINE_START}\nnew headline\n{markdown.HEADLINE_END}\n"
    assert markdown.splice_files(sections) == []  # the same sections again: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "results.md"]


# --------------------------------------------------------------------------- make test-fast


def test_the_fast_selection_touches_every_module_and_the_slow_one_is_not_empty():
    """`make test-fast` (-m "not slow") and `make test`'s slow rest both select tests (pytest exits 5 on none), the
    fast one from every module's test file, a tiny training run included."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "tests"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    fast = {i.split("::")[0] for i in ids if not is_slow(i)}
    slow = {i.split("::")[0] for i in ids if is_slow(i)}
    for module in ("simulator", "baselines", "bound", "config", "plan", "envs", "modules", "docs", "plotting",
                   "variants", "physics", "scenario", "optimiser", "policies", "cli", "sb3"):  # fmt: skip
        assert f"tests/test_{module}.py" in fast, module
    assert "tests/test_training.py::test_train_phase1_smoke" in ids and not is_slow(
        "tests/test_training.py::test_train_phase1_smoke"
    )
    assert {"tests/test_workflow.py", "tests/test_integrity.py", "tests/test_quickstart.py"} <= slow
    assert "tests/test_workflow.py" not in fast


def test_the_tables_show_the_learned_best_of_k_beside_the_learned_policy_where_it_was_evaluated():
    """A learned-central row (evaluation.best_of) gets its own column: % of the bound in phase 1, the share of local
    search's gain over all-local in phase 2; a table without one keeps its columns."""
    phase1 = _point(1, 7, 3.0, 2.5, 2.0, 3.5, 4.0)
    central = phase1[phase1["policy"] == "mappo"].assign(policy="mappo-best-of-16", kind=aggregate.LEARNED_CENTRAL,
                                                          reward_per_slot=3.6)  # fmt: skip
    central[aggregate.PERCENT_OF_BOUND] = 90.0
    header, rows = markdown.phase1_rows(pd.concat([phase1, central]))
    column = header.index(f"{markdown.CENTRAL_LABEL}: % of bound")
    assert column == header.index("learned: % of bound") + 1
    assert rows[0][column].startswith("mappo-best-of-16: 90.0%")
    assert f"{markdown.CENTRAL_LABEL}: % of bound" not in markdown.phase1_rows(phase1)[0]
    phase2 = _point(2, 10, 62.0, 61.0, 60.0, 64.0, None)
    central = phase2[phase2["policy"] == "mappo"].assign(policy="mappo-best-of-16", kind=aggregate.LEARNED_CENTRAL,
                                                          reward_per_slot=63.0)  # fmt: skip
    header, rows = markdown.phase2_rows(pd.concat([phase2, central]))
    share = header.index("(learned − all-local) / (local search − all-local)")
    assert header[share + 1] == f"{markdown.CENTRAL_LABEL}: the same share"
    assert rows[0][share] == "0.500" and rows[0][share + 1] == "mappo-best-of-16: 0.750"  # (63 - 60) / (64 - 60)
    assert len(markdown.phase2_rows(phase2)[0]) == len(header) - 1
