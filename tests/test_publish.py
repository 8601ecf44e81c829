"""The study in parts (mec.publish): a finished part's summary tables merged into the committed ones by phase, the
parts record, the training runs' origins kept in the committed tables' provenance, the results section and the
README's headline rebuilt from the committed tables alone, and bad input as one line with nothing written.

Every part here is synthetic: small tables written as the workflow writes them (mec.io.write_parquet, with the
provenance its rules record), its figures, evaluation files and Snakemake benchmark files, in a temporary folder that
stands for the repository (the working directory, as for `make publish`). The tiny study published part by part is
tests/test_workflow.py's test_readme_from_published_parts_of_the_tiny_study.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mec import aggregate, cli, io, markdown, publish

TRAINING = {"iterations": 3, "train_batch_slots": 40, "backend": "rllib", "critic": "central"}
SIZES = {1: (3, 7), 2: (4, 10)}
SCENARIO = {1: "tight_deadlines", 2: "capable_edge"}


def point(phase: int, n: int, learned: float, timed: bool = False) -> pd.DataFrame:
    """One sweep point of a comparison table: the learned policy, two heuristics, local search and (phase 1) the
    bound, with their intervals; with `timed`, decision times as mec.decision_time writes them."""
    bound = learned + 1.0 if phase == 1 else None
    rows = [("mappo", "learned", learned), ("greedy-edf", "heuristic", learned - 0.5),
            ("all-local", "heuristic", learned - 0.8), (aggregate.LOCAL_SEARCH, "search", learned + 0.4)]  # fmt: skip
    if bound is not None:
        rows.append((aggregate.BOUND, "bound", bound))
    frame = pd.DataFrame(
        [{"phase": phase, "n": n, "n_ue": n if phase == 1 else 100, "n_clusters": 1 if phase == 1 else n,
          "policy": p, "kind": k, "samples": 2, "ci_level": 0.95, "reward_per_slot": r,
          "reward_per_slot_ci_low": r - 0.01, "reward_per_slot_ci_high": r + 0.01,
          aggregate.PERCENT_OF_BOUND: 100 * r / bound if bound else float("nan"),
          f"{aggregate.PERCENT_OF_BOUND}_ci_low": 100 * r / bound - 0.5 if bound else float("nan"),
          f"{aggregate.PERCENT_OF_BOUND}_ci_high": 100 * r / bound + 0.5 if bound else float("nan")}
         for p, k, r in rows]
    )  # fmt: skip
    if timed:
        frame["decide_latency_ms"] = [0.5, 0.01, 0.002, 40.0, float("nan")][: len(frame)]
        frame["decide_batch_ms_per_slot"] = [0.05, 0.001, 0.0005, 40.0, float("nan")][: len(frame)]
    return frame


def comparison(phase: int, learned: float, timed: bool = False) -> pd.DataFrame:
    return pd.concat([point(phase, n, learned + n, timed) for n in SIZES[phase]], ignore_index=True)


def small(phase: int, value: float) -> pd.DataFrame:
    """A stand-in for the other summary tables: one row per sweep point."""
    return pd.DataFrame({"phase": phase, "n": list(SIZES[phase]), "value": value})


def make_part(root: Path, name: str, phase: int, *, commit: str, cpu: str, learned: float, monkeypatch,
              timed: bool = False, jobs: int = 3) -> Path:
    """A finished part of the study in root/res-<name>: the study's and its scenario's summary tables and sweep
    figures for `phase`, the evaluations behind the learned rows (trained at `commit` on `cpu`), `jobs` benchmark
    files of the phase and one of the other phase (not the part's). Returns its config, <name>.yaml."""
    results = root / f"res-{name}"
    config = root / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"workflow": {"phases": [phase], "scenarios": [SCENARIO[phase]],
                                                   "results_dir": results.name}}))  # fmt: skip
    with monkeypatch.context() as patch:  # the tables' own provenance: the part's machine and commit
        patch.setattr(io, "source_commit", lambda: commit)
        patch.setattr(io, "machine", lambda: {"cpu": cpu, "cpus": 2, "system": "test"})
        for folder, shift in (("", 0.0), (f"variants/{SCENARIO[phase]}/", -0.25)):
            inputs = []
            for n in SIZES[phase]:
                for seed in (0, 1):
                    path = results / folder / f"phase{phase}/n{n}/seed{seed}/eval/episodes.parquet"
                    run = {"phase": phase, "n": n, "n_ue": n, "n_clusters": 1, "training_seed": seed, "policy": "mappo",
                           "checkpoint_iteration": 3, "config": {"training": TRAINING, "reward": {}},
                           "trained": {"commit": commit, "machine": {"cpu": cpu, "cpus": 2}},
                           "decision_time": {"mappo": {"decide_latency_ms": 0.5}}}  # fmt: skip
                    io.write_parquet(pd.DataFrame({"slot": [0]}), path, run)
                    inputs.append(path.relative_to(root).as_posix())
            summary = results / folder / "summary"
            provenance = {"statistics": {"ci_level": 0.95}, "inputs": inputs}
            io.write_parquet(comparison(phase, learned + shift, timed and not folder), summary / "comparison.parquet",
                             provenance)  # fmt: skip
            for table in ("baselines", "learned", "learned_seeds", "learning_curves"):
                io.write_parquet(small(phase, learned + shift), summary / f"{table}.parquet", provenance)
            for stem in publish.SWEEP_FIGURES:
                figure = results / folder / f"figures/phase{phase}/{stem}.png"
                figure.parent.mkdir(parents=True, exist_ok=True)
                figure.write_bytes(f"{name} {folder} {stem}".encode())
    for i in range(jobs):
        write_benchmark(results / f"benchmarks/train_agents/phase{phase}_n{i}_seed0.tsv", 100.0 + i, 90.0)
    write_benchmark(results / f"benchmarks/train_agents/phase{3 - phase}_n1_seed0.tsv", 1e6, 1e6)  # not this part's
    return config.relative_to(root)  # as `make publish CONFIG=...` names it, from the repository


def write_benchmark(path: Path, seconds: float, cpu_seconds: float) -> None:
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{header}\n{seconds}\t0:01:40\t500\t900\t400\t420\t1\t2\t95.0\t{cpu_seconds}\n")


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A stand-in for the repository: config.yaml (the defaults), README.md and docs/results.md with their markers."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("{}\n")
    (tmp_path / "README.md").write_text(f"# Title\n{markdown.HEADLINE_START}\nold\n{markdown.HEADLINE_END}\nend\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/results.md").write_text(f"# Results\n{markdown.README_START}\nold\n{markdown.README_END}\n")
    return tmp_path


def run(*args: str) -> int:
    return cli.main(list(args))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under docs/ and the README, by content."""
    files = [root / "README.md", *sorted((root / "docs").rglob("*"))]
    return {str(path.relative_to(root)): path.read_bytes() for path in files if path.is_file()}


def one_error_line(capsys, *names: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(name in lines[0] for name in names), (names, err)
    return lines[0]


# --------------------------------------------------------------------------- merging by phase


def test_a_phase1_part_replaces_only_the_committed_phase1_rows(repo, monkeypatch, capsys):
    summary = repo / "docs/summary"
    committed = pd.concat([comparison(1, 0.0), comparison(2, 50.0)], ignore_index=True)
    with monkeypatch.context() as patch:
        patch.setattr(io, "source_commit", lambda: "0ld0ld0ld0ld")
        io.write_parquet(committed, summary / "comparison.parquet", {"inputs": ["results/gone.parquet"]})
        for table in ("baselines", "learned", "learned_seeds", "learning_curves"):
            io.write_parquet(pd.concat([small(1, 0.0), small(2, 50.0)]), summary / f"{table}.parquet", {})
    config = make_part(repo, "phase1", 1, commit="aaaa1111", cpu="CPU A", learned=2.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(config)) == 0
    assert "published part phase1" in capsys.readouterr().out
    merged = pd.read_parquet(summary / "comparison.parquet")
    phase2 = merged[merged["phase"] == 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(phase2, committed[committed["phase"] == 2].reset_index(drop=True))
    pd.testing.assert_frame_equal(merged[merged["phase"] == 1].reset_index(drop=True), comparison(1, 2.0))
    for table in publish.STUDY_TABLES:
        frame = pd.read_parquet(summary / f"{table}.parquet")
        assert sorted(frame["phase"].unique()) == [1, 2], table
        pd.testing.assert_frame_equal(pd.read_csv(summary / f"{table}.csv"), frame, check_dtype=False)
    # the scenario in its own folder, its figures and the study's under the names docs/results.md links
    scenario = pd.read_parquet(summary / "tight_deadlines/comparison.parquet")
    pd.testing.assert_frame_equal(scenario, comparison(1, 1.75))
    assert (summary / "comparison.html").read_text().count("<h3>Phase") == 2
    assert (repo / "docs/results/phase1_sweep_relative.png").read_bytes() == b"phase1  sweep_relative"
    assert (repo / "docs/results/tight_deadlines_phase1_sweep_reward_per_slot.png").is_file()
    assert not (repo / "docs/results/phase2_sweep_relative.png").exists()
    # the phase-2 rows, published before parts were recorded, keep where they came from
    records = io.read_provenance(summary / "comparison.parquet")["published"]
    assert records["2"] == {"part": None, "commit": "0ld0ld0ld0ld", "machine": io.machine(), "learned_runs": []}
    assert records["1"]["part"] == "phase1"


def test_a_part_of_scenarios_only_leaves_the_studys_tables_as_they_are(repo, monkeypatch, capsys):
    """config/parts/capable_edge.yaml run with TARGETS=scenarios: its scenario's tables are published, the study's
    committed phase-2 rows (another part's) stay, and its results need no study summary."""
    two = make_part(repo, "phase2", 2, commit="bbbb2222", cpu="CPU B", learned=60.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(two)) == 0
    study = {table: (repo / f"docs/summary/{table}.parquet").read_bytes() for table in publish.STUDY_TABLES}
    edge = make_part(repo, "edge", 2, commit="cccc3333", cpu="CPU B", learned=80.0, monkeypatch=monkeypatch, jobs=2)
    shutil.rmtree(repo / "res-edge" / "summary")  # the scenarios target builds no study summary
    assert run("publish", "--config", str(edge)) != 0  # without the flag the study's tables are wanted
    one_error_line(capsys, "res-edge/summary/baselines.parquet", "not found")
    assert run("publish", "--config", str(edge), "--scenarios-only") == 0
    assert {table: (repo / f"docs/summary/{table}.parquet").read_bytes() for table in publish.STUDY_TABLES} == study
    pd.testing.assert_frame_equal(pd.read_parquet(repo / "docs/summary/capable_edge/comparison.parquet"),
                                  comparison(2, 79.75))  # fmt: skip
    parts = json.loads((repo / "docs/summary/parts.json").read_text())["parts"]
    assert [p["part"] for p in parts] == ["phase2", "edge"]
    assert parts[0]["covers"] == ["study phase 2"]  # the scenario's rows now come from the newer part
    assert parts[1]["covers"] == ["capable_edge phase 2"] and parts[1]["scenarios_only"] is True
    # a part without scenarios cannot be published as scenarios alone
    bare = repo / "bare.yaml"
    bare.write_text(yaml.safe_dump({"workflow": {"phases": [2], "scenarios": [], "results_dir": "res-edge"}}))
    assert run("publish", "--config", "bare.yaml", "--scenarios-only") != 0
    one_error_line(capsys, "bare.yaml", "workflow.scenarios")


def test_merge_by_phase_keeps_the_other_phases_in_their_order():
    committed = pd.concat([small(2, 9.0), small(1, 1.0)], ignore_index=True)
    merged = publish.merge_by_phase(committed, small(1, 5.0), [1])
    assert list(merged["phase"]) == [1, 1, 2, 2] and list(merged["value"]) == [5.0, 5.0, 9.0, 9.0]
    assert publish.merge_by_phase(None, small(2, 3.0), [2]).equals(small(2, 3.0))
    assert publish.merge_by_phase(committed, pd.concat([small(1, 5.0), small(2, 7.0)]), [1]).equals(merged)
    tuning = pd.DataFrame({"rank": [1]})
    assert publish.merge_by_phase(pd.DataFrame({"rank": [1, 2]}), tuning, [1]).equals(tuning)


# --------------------------------------------------------------------------- the parts record and provenance


def test_the_parts_record_names_each_part_its_commit_cpu_and_cost(repo, monkeypatch):
    one = make_part(repo, "phase1", 1, commit="aaaa1111", cpu="CPU A", learned=2.0, monkeypatch=monkeypatch)
    two = make_part(repo, "phase2", 2, commit="bbbb2222+dirty", cpu="CPU B", learned=60.0, monkeypatch=monkeypatch,
                    jobs=2)  # fmt: skip
    assert run("publish", "--config", str(one)) == 0
    assert run("publish", "--config", str(two)) == 0
    assert run("publish", "--config", str(one)) == 0  # again: its record replaced, not added
    parts = json.loads((repo / "docs/summary/parts.json").read_text())["parts"]
    assert [p["part"] for p in parts] == ["phase2", "phase1"]
    second, first = parts
    assert first["phases"] == [1] and first["scenarios"] == ["tight_deadlines"]
    assert first["covers"] == ["study phase 1", "tight_deadlines phase 1"]
    assert (first["commit"], first["dirty"], first["cpu"]) == ("aaaa1111", False, "CPU A")
    assert (second["commit"], second["dirty"], second["cpu"]) == ("bbbb2222", True, "CPU B")
    # only the part's own phase's benchmark files: 100 + 101 + 102 s, 3 x 90 CPU-s
    assert (first["jobs"], first["wall_s"], first["cpu_s"]) == (3, 303.0, 270.0)
    assert (second["jobs"], second["wall_s"], second["cpu_s"]) == (2, 201.0, 180.0)
    assert first["published_on"] == io.machine() and first["date"] and first["config"] == "phase1.yaml"
    # a part publishing phase 1 again under another name supersedes the first's record
    again = repo / "rerun.yaml"
    shutil.copy(one, again)
    assert run("publish", "--config", str(again)) == 0
    parts = json.loads((repo / "docs/summary/parts.json").read_text())["parts"]
    assert [p["part"] for p in parts] == ["phase2", "rerun"]


def test_the_training_runs_origins_survive_without_the_results_folder(repo, monkeypatch):
    one = make_part(repo, "phase1", 1, commit="aaaa1111", cpu="CPU A", learned=2.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(one)) == 0
    two = make_part(repo, "phase2", 2, commit="bbbb2222", cpu="CPU B", learned=60.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(two)) == 0
    for folder in ("res-phase1", "res-phase2"):
        shutil.rmtree(repo / folder)  # a fresh clone: no results
    provenance = io.read_provenance(repo / "docs/summary/comparison.parquet")
    runs = publish.table_runs(provenance)
    assert len(runs) == 8 and {r["trained"]["commit"] for r in runs} == {"aaaa1111", "bbbb2222"}
    assert runs[0]["config"] == {"training": TRAINING}  # the training section only, no decision times
    assert "inputs" not in provenance  # the part's results paths do not travel
    origins = publish.table_origins(provenance)
    assert {(o["phase"], o["commit"], o["machine"]["cpu"]) for o in origins} == {(1, "aaaa1111", "CPU A"),
                                                                                  (2, "bbbb2222", "CPU B")}
    assert publish.table_origins({"commit": "c0ffee"}) == [{"commit": "c0ffee"}]  # published before records


# --------------------------------------------------------------------------- the README from the committed tables


def test_the_readme_built_from_published_parts_shows_both_phases_the_parts_and_decision_times(repo, monkeypatch):
    one = make_part(repo, "phase1", 1, commit="aaaa1111", cpu="CPU A", learned=2.0, monkeypatch=monkeypatch,
                    timed=True)  # fmt: skip
    two = make_part(repo, "phase2", 2, commit="bbbb2222", cpu="CPU B", learned=60.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(one)) == 0 and run("publish", "--config", str(two)) == 0
    for folder in ("res-phase1", "res-phase2"):
        shutil.rmtree(repo / folder)
    assert run("readme") == 0
    page = (repo / "docs/results.md").read_text()
    section = page.split(markdown.README_START)[1].split(markdown.README_END)[0]
    assert section.strip().startswith("Generated by `make readme` from the committed tables under `docs/summary/`")
    assert "### Phase 1: learned vs the upper bound" in section
    assert "### Phase 2: learned vs the best heuristic and local search" in section
    assert "### Phase 1, scenario tight_deadlines (`scenario.task.deadline_s=" in section
    assert "### Phase 2, scenario capable_edge (`scenario.server.cpu_ghz=24.0" in section
    assert "| 7 | mappo: 9 [8.99, 9.01] |" in section and "| 10 | mappo: 70 [69.99, 70.01] |" in section
    assert "The learned rows come from 8 training runs (phase 1: N = 3, 7; phase 2: K = 4, 10; seeds 0, 1)" in section
    assert "Trained at commits aaaa1111, bbbb2222 on CPU A and CPU B" in section
    # the parts behind it, summed, and their commits named where they differ
    assert "| phase1 | study phase 1, tight_deadlines phase 1 | aaaa1111 | CPU A | 3 | 0.08 | 0.07 |" in section
    assert "| phase2 | study phase 2, capable_edge phase 2 | bbbb2222 | CPU B | 3 | 0.08 | 0.07 |" in section
    assert "| total |  |  |  | 6 | 0.17 | 0.15 |" in section
    assert "The parts ran at different commits: phase1 at aaaa1111; phase2 at bbbb2222." in section
    # the decision times of the study's table at N = 7 (phase 2 untimed here)
    assert "### Decision time per slot" in section
    assert "| mappo | 0.5 | 0.05 | — | — |" in section
    assert "![Phase 2: learned vs baselines, reward per slot](results/phase2_sweep_reward_per_slot.png)" in section
    readme = (repo / "README.md").read_text()
    headline = readme.split(markdown.HEADLINE_START)[1].split(markdown.HEADLINE_END)[0]
    assert "`make readme` rewrites it" in headline
    assert "| study | 1, N = 7 | mappo: 9 | greedy-edf: 8.5 | 9.4 | 10 |" in headline and "| aaaa1111 |" in headline
    assert "| study | 2, K = 10 | mappo: 70 | greedy-edf: 69.5 | 70.4 | — |" in headline and "| bbbb2222 |" in headline
    assert "| tight_deadlines | 1, N = 7 |" in headline and "| capable_edge | 2, K = 10 |" in headline
    assert readme.endswith(f"{markdown.HEADLINE_END}\nend\n")
    before = snapshot(repo)
    assert run("readme") == 0  # the same tables again: nothing changes
    assert snapshot(repo) == before


def test_a_part_of_another_budget_publishes_only_its_tables_across_variants(repo, monkeypatch, capsys):
    """config/reduced.yaml's part: its own (reduced) study is not config.yaml's, so only the ablations it built go
    to docs/summary/ablations/; a part of another budget with nothing across variants publishes nothing."""
    results = repo / "res-reduced"
    config = repo / "reduced.yaml"
    config.write_text(yaml.safe_dump({"workflow": {"seeds": [0, 1], "results_dir": results.name}}))
    ablations = pd.concat([comparison(1, 2.0), comparison(2, 60.0)], ignore_index=True)
    ablations = ablations[ablations["kind"] == "learned"].assign(study="study", description="config.yaml",
                                                                 metric="reward_per_slot", mean=1.0, mean_ci_low=0.9,
                                                                 mean_ci_high=1.1)  # fmt: skip
    io.write_parquet(comparison(1, 2.0), results / "summary/comparison.parquet", {})
    assert run("publish", "--config", str(config)) == 2
    one_error_line(capsys, "nothing to publish", "workflow.seeds", f"{results.name}/summary/")
    assert not (repo / "docs/summary").exists()
    io.write_parquet(ablations, results / "summary/ablations.parquet", {"studies": []})
    for phase in (1, 2):
        figure = results / f"figures/phase{phase}/ablations.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        figure.write_bytes(b"png")
    write_benchmark(results / "benchmarks/train_agents/variants/ippo/phase2_n10_seed0.tsv", 50.0, 40.0)
    assert run("publish", "--config", str(config), "--part", "variants") == 0
    assert sorted(p.relative_to(repo / "docs").as_posix() for p in (repo / "docs").rglob("*") if p.is_file()) == [
        "results.md", "results/phase1_ablations.png", "results/phase2_ablations.png", "summary/ablations/ablations.md",
        "summary/ablations/ablations.parquet", "summary/parts.json"]  # fmt: skip
    assert "### Ablations" in (repo / "docs/summary/ablations/ablations.md").read_text()
    (record,) = json.loads((repo / "docs/summary/parts.json").read_text())["parts"]
    assert record["covers"] == ["ablations phase 1", "ablations phase 2"] and record["jobs"] == 1


# --------------------------------------------------------------------------- bad input


def test_a_missing_results_folder_is_one_line_and_writes_nothing(repo, monkeypatch, capsys):
    config = repo / "phase1.yaml"
    config.write_text(yaml.safe_dump({"workflow": {"phases": [1], "results_dir": "res-none"}}))
    before = snapshot(repo)
    assert run("publish", "--config", str(config)) == 2
    one_error_line(capsys, "res-none", "not found", "make study CONFIG=")
    assert snapshot(repo) == before
    assert run("publish", "--config", "absent.yaml") == 2
    one_error_line(capsys, "absent.yaml", "not found")
    assert run("publish", "--config", str(config), "--part", "../x") == 2
    one_error_line(capsys, "'../x'", "allowed")


@pytest.mark.parametrize("damage", ["missing", "corrupt", "figure", "evaluation", "benchmark", "phase"])
def test_a_missing_or_corrupt_input_of_the_part_is_one_line_naming_it_and_writes_nothing(repo, monkeypatch, capsys,
                                                                                         damage):  # fmt: skip
    # a committed phase-2 part first: its files must stay as they are
    two = make_part(repo, "phase2", 2, commit="bbbb2222", cpu="CPU B", learned=60.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(two)) == 0
    one = make_part(repo, "phase1", 1, commit="aaaa1111", cpu="CPU A", learned=2.0, monkeypatch=monkeypatch)
    results = repo / "res-phase1"
    target = {
        "missing": results / "variants/tight_deadlines/summary/learned.parquet",
        "corrupt": results / "summary/learning_curves.parquet",
        "figure": results / "variants/tight_deadlines/figures/phase1/sweep_relative.png",
        "evaluation": results / "phase1/n7/seed1/eval/episodes.parquet",
        "benchmark": results / "benchmarks/train_agents/phase1_n0_seed0.tsv",
        "phase": results / "summary/baselines.parquet",
    }[damage]
    if damage == "phase":  # a table without the rows of the part's phase
        io.write_parquet(small(2, 1.0), target, {})
    elif damage == "corrupt":
        target.write_bytes(b"PAR1 not really")
    elif damage == "benchmark":
        target.write_text("no header here\n")
    else:
        target.unlink()
    capsys.readouterr()
    before = snapshot(repo)
    assert run("publish", "--config", str(one)) == 2
    one_error_line(capsys, target.relative_to(repo).as_posix())
    assert snapshot(repo) == before
    assert not list((repo / "docs").rglob("*.tmp"))


@pytest.mark.parametrize("damage", ["table", "parts"])
def test_a_corrupt_committed_file_is_one_line_naming_it(repo, monkeypatch, capsys, damage):
    one = make_part(repo, "phase1", 1, commit="aaaa1111", cpu="CPU A", learned=2.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(one)) == 0
    target = repo / ("docs/summary/tight_deadlines/comparison.parquet" if damage == "table"
                     else "docs/summary/parts.json")  # fmt: skip
    target.write_bytes(b"{ garbage")
    capsys.readouterr()
    before = snapshot(repo)
    assert run("publish", "--config", str(one)) == 2
    line = one_error_line(capsys, target.relative_to(repo).as_posix())
    assert "git checkout" in line or "restore it from git" in line
    assert run("readme") == 2
    one_error_line(capsys, target.relative_to(repo).as_posix())
    assert snapshot(repo) == before


def test_the_readme_without_committed_tables_or_markers_is_one_line_and_writes_nothing(repo, monkeypatch, capsys):
    before = snapshot(repo)
    assert run("readme") == 2
    one_error_line(capsys, "docs/summary/comparison.parquet", "not found", "make publish")
    one = make_part(repo, "phase1", 1, commit="aaaa1111", cpu="CPU A", learned=2.0, monkeypatch=monkeypatch)
    assert run("publish", "--config", str(one)) == 0
    (repo / "README.md").write_text("# Title, no markers\n")
    before = snapshot(repo)
    assert run("readme") == 2
    one_error_line(capsys, "README.md", "<!-- headline:start -->")
    assert snapshot(repo) == before  # docs/results.md was not written either
