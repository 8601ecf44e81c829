"""The `mec evaluate` / `mec compare` command as a user runs it (subprocess), plus its error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mec import io, metrics
from mec.policies import policy_names
from mec.io import read_provenance

ROOT = Path(__file__).resolve().parents[1]


def run_mec(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mec", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_evaluate_json_has_every_headline_metric():
    out = run_mec("evaluate", "--phase", "1", "--n-ue", "3", "--policy", "all-local", "--episodes", "2",
                  "--slots", "10", "--seed", "7", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    for key in metrics.SUMMARY_KEYS:
        assert key in summary
    # All-local: nothing offloaded, all energy is local, so the parts add up to the total.
    assert summary["offload_fraction"] == 0.0
    assert summary["transmit_energy_j"] == 0.0 and summary["server_energy_j"] == 0.0
    assert summary["local_energy_j"] == pytest.approx(summary["energy_per_task_j"])
    assert summary["tasks"] == 2 * 10 * 3


def test_evaluate_out_is_deterministic_and_records_provenance(tmp_path):
    args = ["evaluate", "--phase", "2", "--n-clusters", "3", "--policy", "greedy-edf-urgency", "--episodes", "2",
            "--slots", "5", "--seed", "3", "--set", "phase2.n_users=12"]  # fmt: skip
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert run_mec(*args, "--out", str(first)).returncode == 0
    assert run_mec(*args, "--out", str(second)).returncode == 0
    a, b = pd.read_parquet(first), pd.read_parquet(second)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 2 * 5  # one row per (episode, slot)
    assert len(a["group_qos"].iloc[0]) == 3  # per-cluster sums in phase 2
    prov = read_provenance(first)
    assert prov["config"]["phase2"]["n_users"] == 12 and prov["seed"] == 3
    assert "numpy" in prov["versions"]
    # Where it was computed: the machine and the checkout's commit (this test runs in a git checkout).
    assert prov["machine"]["cpus"] == os.cpu_count() and prov["machine"]["cpu"] != "unknown"
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1]).stdout.strip()  # fmt: skip
    assert prov["commit"].removesuffix("+dirty") == head


def test_unknown_policy_lists_the_valid_ones():
    out = run_mec("evaluate", "--phase", "1", "--n-ue", "2", "--policy", "fastest", "--episodes", "1")
    assert out.returncode == 2
    line = out.stderr.strip().splitlines()[-1]
    assert "'fastest'" in line and all(name in line for name in policy_names(1))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--phase", "1", "--n-ue", "0", "--policy", "random"], "--n-ue: got 0"),
        (["--phase", "3", "--n-ue", "2", "--policy", "random"], "--phase"),
        (["--phase", "2", "--n-ue", "2", "--policy", "random"], "--n-ue is a phase-1 flag"),
        (["--phase", "2", "--n-clusters", "101", "--policy", "random"], "--n-clusters 101"),
        (["--phase", "1", "--n-ue", "9", "--policy", "oracle"], "oracle"),
        (["--phase", "1", "--n-ue", "2", "--policy", "random", "--episodes", "x"], "--episodes"),
        (["--phase", "1", "--n-ue", "2", "--policy", "random", "--out", "x.csv"], ".parquet"),
        (["--phase", "1", "--n-ue", "2", "--policy", "random", "--set", "scenario.ue.kappa=-1"], "scenario.ue.kappa"),
        (["--phase", "1", "--n-ue", "2", "--policy", "random", "--config", "missing.yaml"], "missing.yaml"),
    ],
)
def test_bad_input_is_one_clear_line_and_nonzero_exit(args, needle, tmp_path):
    out = run_mec("evaluate", *args, "--slots", "2", "--episodes", "1", cwd=ROOT)
    assert out.returncode != 0
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "x.csv").exists()


def test_compare_writes_every_policy_for_every_size(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "phase1: {n_ue: [2]}\nphase2: {n_users: 8, n_clusters: [2]}\nevaluation: {episodes: 1, slots: 3, seed: 1}\n"
    )
    out = run_mec("compare", "--config", str(config), "--out", str(tmp_path / "cmp"))
    assert out.returncode == 0, out.stderr
    summary = pd.read_parquet(tmp_path / "cmp" / "summary.parquet")
    assert set(summary.query("phase == 1")["policy"]) == set(policy_names(1))
    assert set(summary.query("phase == 2")["policy"]) == set(policy_names(2))
    # The oracle is the best equal-split policy of phase 1 on these episodes (it dominates every heuristic slot by
    # slot); local search, which also moves spectrum weights, is at least as good; the slot tables carry the upper
    # bound, which no policy's slot exceeds.
    phase1 = summary.query("phase == 1").set_index("policy")["reward_per_slot"]
    assert phase1.drop("local-search").idxmax() == "oracle"
    assert phase1["local-search"] >= phase1["oracle"] - 1e-9
    slots = pd.read_parquet(tmp_path / "cmp" / "phase1_slots.parquet")
    assert slots["slot_bound"].notna().all() and (slots["reward"] <= slots["slot_bound"]).all()


def test_benchmark_script_prints_json():
    out = subprocess.run([sys.executable, "benchmarks/bench_simulator.py", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert {(r["phase"], r["n_clusters"] if r["phase"] == 2 else r["n_ue"]) for r in report["results"]} >= {
        (1, 7),
        (2, 10),
    }
    assert report["oracle"]["oracle_ms_per_slot"] > 0


# --------------------------------------------------------------------------- mec reproduce

COMMITTED_SEEDS = ROOT / "docs" / "summary" / "backends" / "learned_seeds.parquet"


def test_reproduce_finds_a_rerun_of_some_committed_rows_equal(tmp_path):
    """A rerun covering two of the committed (point, seed) rows, the others not rerun: equal, exit 0."""
    committed = pd.read_parquet(COMMITTED_SEEDS)
    rerun = committed[(committed["phase"] == 1) & (committed["n"] == 3) & (committed["seed"] < 2)]
    io.write_parquet(rerun.sample(frac=1.0, random_state=0), tmp_path / "rerun.parquet")  # row order is irrelevant
    out = run_mec("reproduce", "--committed", str(COMMITTED_SEEDS), "--rerun", str(tmp_path / "rerun.parquet"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"2 of {len(committed)} committed rows rerun: all equal bit for bit" in out.stdout
    # the rerun's file records where it was written
    assert io.machine()["cpu"] in out.stdout and "written before files recorded" in out.stdout


def test_reproduce_names_the_row_and_value_that_differ_by_one_ulp(tmp_path):
    committed = pd.read_parquet(COMMITTED_SEEDS)
    rerun = committed.copy()
    row = rerun.index[(rerun["n"] == 7) & (rerun["seed"] == 1)][0]
    rerun.loc[row, "reward_per_slot"] = np.nextafter(rerun.loc[row, "reward_per_slot"], np.inf)
    rerun.to_parquet(tmp_path / "rerun.parquet")
    out = run_mec("reproduce", "--committed", str(COMMITTED_SEEDS), "--rerun", str(tmp_path / "rerun.parquet"))
    assert out.returncode == 1
    assert f"1 of the {len(committed)} rerun rows differ (1 values)" in out.stdout
    (line,) = [line for line in out.stdout.splitlines() if "reward_per_slot" in line and "mappo" in line]
    assert line.split()[:6] == ["1", "7", "7", "1", "mappo", "1"]
    assert f"{committed.loc[row, 'reward_per_slot']:.17f}"[:12] in line


def test_reproduce_counts_nan_as_equal_to_nan_and_a_rerun_of_nothing_as_a_failure(tmp_path):
    committed = pd.DataFrame({"phase": [1, 1], "n": [3, 7], "seed": [0, 0], "reward_per_slot": [2.5, np.nan]})
    committed.to_parquet(tmp_path / "committed.parquet")
    committed.to_parquet(tmp_path / "same.parquet")
    out = run_mec("reproduce", "--committed", str(tmp_path / "committed.parquet"), "--rerun",
                  str(tmp_path / "same.parquet"))  # fmt: skip
    assert out.returncode == 0 and "2 of 2 committed rows rerun: all equal" in out.stdout
    committed.assign(seed=5).to_parquet(tmp_path / "other_seed.parquet")
    out = run_mec("reproduce", "--committed", str(tmp_path / "committed.parquet"), "--rerun",
                  str(tmp_path / "other_seed.parquet"))  # fmt: skip
    assert out.returncode == 1 and "none of the 2 committed rows was rerun" in out.stdout


@pytest.mark.parametrize(
    "make, needle",
    [
        (None, "--rerun {rerun}: no such file"),
        (lambda p: p.write_text("not parquet"), "--rerun {rerun}: not a readable Parquet file"),
        (lambda p: pd.DataFrame({"x": [1.0]}).to_parquet(p), "no key column in both tables"),
        (lambda p: pd.DataFrame({"phase": [1, 1], "n": [3, 3], "seed": [0, 0], "reward_per_slot": [1.0, 2.0]})
         .to_parquet(p), "the rerun table has several rows per key"),  # fmt: skip
    ],
)
def test_reproduce_bad_input_is_one_line_and_exit_2(make, needle, tmp_path):
    rerun = tmp_path / "rerun.parquet"
    if make is not None:
        make(rerun)
    out = run_mec("reproduce", "--committed", str(COMMITTED_SEEDS), "--rerun", str(rerun))
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle.format(rerun=rerun) in line
