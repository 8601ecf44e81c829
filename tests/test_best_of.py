"""Best-of-K decisions (mec.best_of) and decision times per slot (mec.decision_time).

The learned policies here are untrained role modules (RLlib) or an untrained SB3 model: best-of-K's guarantees do
not depend on what was learned. Per slot, best-of-K is never below the deterministic action's reward (exactly), K = 1
is the deterministic policy itself, the same seed gives the same decisions (torch's global generator untouched), and
the K - 1 sampled candidates take one forward pass per role and all K are resolved as one batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from conftest_rl import untrained_policy
from mec import best_of, decision_time, reproduce
from mec.config import config_from_dict, config_to_dict
from mec.evaluation import evaluation_episodes, make_policy, run_policy
from mec.scenario import PhaseSetup
from mec.simulator import Decisions, SimParams, Simulator, resolve_slot, slot_block_state

FIELDS = ("offload", "spectrum_weight", "priority", "cpu_weight")


def _cfg(carry_over: bool = False):
    return config_from_dict({
        "scenario": {"carry_over_queue": carry_over},
        "phase2": {"n_users": 12, "n_clusters": [3], "kmeans_n_init": 2},
        "evaluation": {"episodes": 3, "slots": 6},
    })  # fmt: skip


def _learned(cfg, phase: int, n: int, seed: int = 3):
    """A LearnedPolicy of untrained role modules (their weights drawn from `seed`)."""
    from mec.envs.fleet import FleetEnv

    env = FleetEnv({"config": config_to_dict(cfg), "phase": phase, "n": n, "episode_slots": 4})
    return untrained_policy(env, cfg.scenario, seed, name="mappo")


def _slots(cfg, phase: int, n: int):
    setup = PhaseSetup.from_config(cfg, phase, n)
    episodes = evaluation_episodes(cfg, setup, 3, 6, 11)
    return setup, episodes, slot_block_state(episodes, SimParams.from_config(cfg, setup), 6)


def _same(a: Decisions, b: Decisions) -> None:
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("phase, n", [(1, 4), (2, 3)])
def test_best_of_k_is_never_below_the_deterministic_action_on_any_slot(phase, n):
    cfg = _cfg()
    policy = _learned(cfg, phase, n)
    _, _, state = _slots(cfg, phase, n)
    plain = resolve_slot(state, policy.act(state)).reward
    for k in (2, 4, 16):
        chooser = best_of.BestOfKPolicy(policy, k, seed=5)
        chosen = resolve_slot(state, chooser.act(state)).reward
        assert (chosen >= plain).all(), k  # exactly: the deterministic action is candidate 0
        # candidate 0 is the deterministic action itself, and each slot keeps its best candidate
        np.testing.assert_array_equal(chooser.last_rewards[0], plain)
        np.testing.assert_array_equal(chosen, chooser.last_rewards.max(axis=0))
    assert (chosen > plain).any()  # sampling finds better joint actions on some slot


@pytest.mark.parametrize("phase, n", [(1, 4), (2, 3)])
def test_best_of_one_is_the_deterministic_policy(phase, n):
    cfg = _cfg()
    policy = _learned(cfg, phase, n)
    setup, episodes, state = _slots(cfg, phase, n)
    _same(best_of.BestOfKPolicy(policy, 1).act(state), policy.act(state))
    # and its candidates' first row is the deterministic action at any K
    with torch.random.fork_rng(devices=[]):
        candidates = policy.candidates(state, 8)
    _same(best_of.select(candidates, np.arange(state.batch_size)), policy.act(state))
    one = run_policy(cfg, setup, best_of.BestOfKPolicy(policy, 1), episodes)
    pd.testing.assert_frame_equal(one, run_policy(cfg, setup, policy, episodes))


def test_the_same_seed_gives_the_same_decisions_and_leaves_torchs_generator_alone():
    cfg = _cfg(carry_over=True)
    setup = PhaseSetup.from_config(cfg, 2, 3)
    policy = _learned(cfg, 2, 3)
    episodes = evaluation_episodes(cfg, setup, 3, 6, 11)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = run_policy(cfg, setup, best_of.BestOfKPolicy(policy, 8, seed=7), episodes)
    assert torch.equal(torch.get_rng_state(), before)
    again = run_policy(cfg, setup, best_of.BestOfKPolicy(policy, 8, seed=7), episodes)
    pd.testing.assert_frame_equal(first, again)
    other = run_policy(cfg, setup, best_of.BestOfKPolicy(policy, 8, seed=8), episodes)
    assert not first["reward"].equals(other["reward"])
    plain = run_policy(cfg, setup, policy, episodes)
    assert first["reward"].sum() >= plain["reward"].sum() - 1e-9  # (with carry-over only slot by slot greedy)


def test_the_sampled_candidates_take_one_forward_pass_per_role_and_all_k_one_kernel_call(monkeypatch):
    cfg = _cfg()
    policy = _learned(cfg, 2, 3)
    _, _, state = _slots(cfg, 2, 3)
    passes = {role: [] for role in policy.modules}
    for role, module in policy.modules.items():
        for method in ("forward_exploration", "forward_inference"):
            original = getattr(module, method)

            def counted(batch, _original=original, _role=role, **kwargs):
                passes[_role].append(batch["obs"]["obs"].shape[0])
                return _original(batch, **kwargs)

            monkeypatch.setattr(module, method, counted)
    calls = []
    original_resolve = best_of.resolve_slot
    monkeypatch.setattr(best_of, "resolve_slot", lambda s, d: calls.append(s.batch_size) or original_resolve(s, d))
    k = 16
    best_of.BestOfKPolicy(policy, k).act(state)
    assert calls == [k * state.batch_size]
    # the deterministic action's own pass (the policy's act, bit for bit), then one pass over every sampled candidate
    assert passes == {role: [state.batch_size, (k - 1) * state.batch_size] for role in policy.modules}


def test_sb3_candidates_start_with_its_deterministic_action_and_best_of_k_holds():
    from mec.backends import sb3
    from mec.backends.slot_env import SlotCodec

    cfg = _cfg()
    setup, _, state = _slots(cfg, 2, 3)
    model = sb3.build_model(cfg, sb3.make_vec_env(cfg, 2, 3), seed=1)
    policy = sb3.SB3Policy(model.policy, SlotCodec(cfg, setup))
    with torch.random.fork_rng(devices=[]):
        candidates = policy.candidates(state, 6)
    assert candidates.offload.shape == (6 * state.batch_size, setup.n_ue)
    _same(best_of.select(candidates, np.arange(state.batch_size)), policy.act(state))
    plain = resolve_slot(state, policy.act(state)).reward
    chooser = best_of.BestOfKPolicy(policy, 6, seed=2)
    assert chooser.name == "sb3-ppo-best-of-6"
    assert (resolve_slot(state, chooser.act(state)).reward >= plain).all()


def test_best_of_names():
    assert best_of.best_of_name("mappo", 16) == "mappo-best-of-16"
    assert best_of.best_of_k("mappo-best-of-16") == 16 and best_of.is_best_of("sb3-ppo-best-of-4")
    assert not best_of.is_best_of("mappo") and not best_of.is_best_of("local-search")
    with pytest.raises(ValueError, match="K >= 1"):
        best_of.BestOfKPolicy(None, 0)


# --------------------------------------------------------------------------- decision time per slot


def test_decision_time_measures_both_timings_and_changes_no_decision():
    cfg = _cfg()
    setup, episodes, state = _slots(cfg, 1, 4)
    measured = decision_time.measure(make_policy("random", 1, seed=0), state, latency_slots=4)
    assert set(measured) == set(decision_time.DECISION_TIME_COLUMNS)
    assert all(value > 0 and np.isfinite(value) for value in measured.values())
    alone = decision_time.one_slot(state, 2)
    assert alone.batch_size == 1 and alone.data_bits[0].tolist() == state.data_bits[2].tolist()
    threads = torch.get_num_threads()
    decision_time.measure(_learned(cfg, 1, 4), state, latency_slots=2)
    assert torch.get_num_threads() == threads  # set back after the one-core measurement


def test_run_baselines_records_decision_times_without_changing_any_other_value():
    from mec.evaluation import run_baselines

    cfg = _cfg()
    setup = PhaseSetup.from_config(cfg, 1, 3)
    episodes = evaluation_episodes(cfg, setup, 2, 4, 11)
    slots, summary = run_baselines(cfg, setup, episodes)
    plain_slots, plain = run_baselines(cfg, setup, episodes, time_decisions=False)
    pd.testing.assert_frame_equal(slots, plain_slots)
    pd.testing.assert_frame_equal(summary.drop(columns=list(decision_time.DECISION_TIME_COLUMNS)), plain)
    assert (summary[list(decision_time.DECISION_TIME_COLUMNS)] > 0).all().all()


def test_mec_reproduce_never_compares_the_decision_times():
    assert reproduce.UNCOMPARED_COLUMNS == decision_time.DECISION_TIME_COLUMNS
    committed = pd.DataFrame({"phase": [1, 1], "n": [3, 7], "seed": [0, 0], "reward_per_slot": [2.5, 3.0],
                              "decide_latency_ms": [0.1, 0.2], "decide_batch_ms_per_slot": [0.01, 0.02]})  # fmt: skip
    rerun = committed.assign(decide_latency_ms=[0.3, 0.4], decide_batch_ms_per_slot=[0.05, 0.06])
    result = reproduce.compare(committed, rerun)
    assert result.equal and result.values == ["reward_per_slot"]
    assert not reproduce.compare(committed, rerun.assign(reward_per_slot=[2.5, 3.1])).equal


# --------------------------------------------------------------------------- aggregation

def test_aggregation_keeps_best_of_k_its_own_kind_and_carries_the_decision_times():
    from mec import aggregate

    assert aggregate.DECISION_TIME_COLUMNS == decision_time.DECISION_TIME_COLUMNS
    assert aggregate.learned_kind("mappo") == "learned" and aggregate.learned_kind("ippo") == "learned"
    assert aggregate.learned_kind("mappo-best-of-16") == aggregate.LEARNED_CENTRAL == best_of.CENTRAL_KIND
    # per-seed samples (each seed's evaluation timed on its own) and a baseline without timings (an older file)
    seeds = pd.DataFrame({"phase": 1, "n": 3, "policy": ["mappo", "mappo", "mappo-best-of-4", "mappo-best-of-4"],
                          "seed": [0, 1, 0, 1], "reward_per_slot": [1.0, 2.0, 3.0, 4.0]})  # fmt: skip
    times = {"mappo": {"decide_latency_ms": 0.5, "decide_batch_ms_per_slot": 0.1},
             "mappo-best-of-4": {"decide_latency_ms": 1.5}}  # fmt: skip
    seeds = aggregate.decision_time_columns(seeds, times)
    assert seeds["decide_batch_ms_per_slot"].isna().tolist() == [False, False, True, True]
    seeds.loc[1, "decide_latency_ms"] = 0.7
    base = pd.DataFrame({"phase": 1, "n": 3, "policy": ["all-local"], "seed": [0], "reward_per_slot": [0.5]})
    samples = pd.concat([seeds, base], ignore_index=True)
    table = pd.DataFrame({"phase": 1, "n": 3, "policy": ["all-local", "mappo-best-of-4", "mappo"],
                          "reward_per_slot": [0.5, 3.5, 1.5]})  # fmt: skip
    out = aggregate.with_decision_times(table, samples, ["phase", "n", "policy"])
    assert list(out.columns) == [*table.columns, *aggregate.DECISION_TIME_COLUMNS]
    pd.testing.assert_frame_equal(out[table.columns], table)  # no other value changes
    assert out["decide_latency_ms"].tolist()[1:] == [1.5, 0.6] and np.isnan(out["decide_latency_ms"].iloc[0])
    assert out["decide_batch_ms_per_slot"].iloc[2] == pytest.approx(0.1)


# --------------------------------------------------------------------------- a trained checkpoint: CLI and workflow

TINY_YAML = """\
phase2: {n_users: 8, n_clusters: [2], kmeans_n_init: 2}
training: {iterations: 2, episode_slots: 10, eval_episodes: 2, train_batch_slots: 20, minibatch_size: 10,
           num_epochs: 1, checkpoint_every: 1, num_cpus: 1, num_env_runners: 0}
"""


def _mec(args, cwd):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "mec", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny phase-2 run (K = 2, 8 users, 2 iterations) in <dir>/run, as the workflow lays it out."""
    root = tmp_path_factory.mktemp("best_of")
    (root / "config.yaml").write_text(TINY_YAML)
    proc = _mec(["train", "--phase", "2", "--n-clusters", "2", "--seed", "0", "--out", str(root / "run"),
                 "--config", str(root / "config.yaml"), "--num-cpus", "1"], cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_mec_evaluate_best_of_k_reports_it_beside_the_policy(trained, tmp_path):
    import json

    best = trained / "run" / "checkpoints" / "best"
    args = ["evaluate", "--checkpoint", str(best), "--episodes", "2", "--slots", "5", "--json", "--best-of", "4"]
    proc = _mec([*args, "--out", "a.parquet", "--schedule-out", "s.parquet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plain, chosen = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert chosen["policy"] == plain["policy"] + "-best-of-4" and plain["policy"].startswith("mappo-seed0-iter")
    assert chosen["reward_per_slot"] >= plain["reward_per_slot"]
    slots = pd.read_parquet(tmp_path / "a.parquet")
    per_policy = {name: rows.set_index(["episode", "slot"])["reward"] for name, rows in slots.groupby("policy")}
    assert set(per_policy) == {plain["policy"], chosen["policy"]} and len(slots) == 2 * 2 * 5
    assert (per_policy[chosen["policy"]] >= per_policy[plain["policy"]]).all()  # slot by slot, exactly
    assert set(pd.read_parquet(tmp_path / "s.parquet")["policy"]) == set(per_policy)
    # the policy's own rows are those of an evaluation without --best-of; the same seed gives the same rows
    alone = _mec([*args[:-2], "--best-of", "0", "--out", "b.parquet"], cwd=tmp_path)
    assert alone.returncode == 0 and len(alone.stdout.strip().splitlines()) == 1
    # without --best-of, evaluation.best_of (config.yaml: 16) decides
    default = _mec([*args[:-2], "--out", "d.parquet"], cwd=tmp_path)
    assert default.returncode == 0 and json.loads(default.stdout.strip().splitlines()[-1])["policy"].endswith(
        "-best-of-16")  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"),
                                  slots[slots["policy"] == plain["policy"]].reset_index(drop=True))  # fmt: skip
    again = _mec([*args, "--out", "c.parquet"], cwd=tmp_path)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "c.parquet"), slots)
    # --best-of 1 is off; --best-of with a baseline is refused in one line
    one = _mec([*args[:-1], "1"], cwd=tmp_path)
    assert one.returncode == 0 and len(one.stdout.strip().splitlines()) == 1
    bad = _mec(["evaluate", "--phase", "1", "--n-ue", "3", "--policy", "greedy-edf", "--best-of", "4"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--best-of 4 with --policy" in bad.stderr


@pytest.mark.parametrize("best_of_k", [0, 4])
def test_evaluate_policy_writes_best_of_k_rows_and_decision_times_when_the_key_is_set(trained, tmp_path, best_of_k):
    from types import SimpleNamespace

    from mec import io
    from workflow_script import run_workflow_script

    evaluation = {"episodes": 2, "slots": 5, "seed": 9, "best_of": best_of_k}
    smk = SimpleNamespace(
        wildcards=SimpleNamespace(phase="2", n="2", seed="0"), threads=1,
        params=SimpleNamespace(phase_section={"n_users": 8, "n_clusters": [2], "kmeans_n_init": 2}, scenario={},
                               reward={}, evaluation=evaluation),
        input=SimpleNamespace(metrics=str(trained / "metrics.parquet")),
        output=SimpleNamespace(episodes=str(tmp_path / "episodes.parquet"), schedule=str(tmp_path / "sched.parquet")),
    )  # fmt: skip
    run_workflow_script("evaluate_policy", smk)
    episodes = pd.read_parquet(tmp_path / "episodes.parquet")
    names = ["mappo", *(["mappo-best-of-4"] if best_of_k else [])]
    assert sorted(episodes["policy"].unique()) == names and len(episodes) == len(names) * 2 * 5
    times = io.read_provenance(tmp_path / "episodes.parquet")[decision_time.PROVENANCE_KEY]
    assert sorted(times) == names
    assert all(set(t) == set(decision_time.DECISION_TIME_COLUMNS) and min(t.values()) > 0 for t in times.values())
    if best_of_k:
        own = episodes[episodes["policy"] == "mappo"].set_index(["episode", "slot"])["reward"]
        chosen = episodes[episodes["policy"] == "mappo-best-of-4"].set_index(["episode", "slot"])["reward"]
        assert (chosen >= own).all()


def test_a_batch_beyond_the_candidate_limit_is_decided_in_chunks(monkeypatch):
    cfg = _cfg()
    policy = _learned(cfg, 2, 3)
    _, _, state = _slots(cfg, 2, 3)  # 18 slots of 12 UEs
    monkeypatch.setattr(best_of, "MAX_CANDIDATE_ROWS", 4 * 5 * 12)  # 5 slots' 4 candidates per chunk
    calls = []
    original_resolve = best_of.resolve_slot
    monkeypatch.setattr(best_of, "resolve_slot", lambda s, d: calls.append(s.batch_size) or original_resolve(s, d))
    chooser = best_of.BestOfKPolicy(policy, 4, seed=1)
    chosen = resolve_slot(state, chooser.act(state)).reward
    assert calls == [20, 20, 20, 12] and chooser.last_rewards.shape == (4, 18)
    np.testing.assert_array_equal(chosen, chooser.last_rewards.max(axis=0))
    assert (chosen >= resolve_slot(state, policy.act(state)).reward).all()


def test_the_readme_decision_time_table_at_n7_and_k10():
    from mec import markdown

    rows = []
    for phase, n, heuristics in ((1, 7, ("all-local", "greedy-edf")), (2, 10, ("all-local", "greedy-edf-equal"))):
        rows += [{"phase": phase, "n": n, "policy": "mappo", "kind": "learned", "decide_latency_ms": 0.9 * phase,
                  "decide_batch_ms_per_slot": 0.01},
                 {"phase": phase, "n": n, "policy": "local-search", "kind": "search", "decide_latency_ms": 26.0,
                  "decide_batch_ms_per_slot": 25.5},
                 {"phase": phase, "n": n, "policy": heuristics[0], "kind": "heuristic", "decide_latency_ms": 0.02,
                  "decide_batch_ms_per_slot": 0.001},
                 {"phase": phase, "n": n, "policy": heuristics[1], "kind": "heuristic", "decide_latency_ms": 0.3,
                  "decide_batch_ms_per_slot": 0.004}]  # fmt: skip
    rows += [{"phase": 1, "n": 7, "policy": "oracle", "kind": "oracle", "decide_latency_ms": 1.5,
              "decide_batch_ms_per_slot": 1.2},
             {"phase": 1, "n": 7, "policy": "mappo-best-of-16", "kind": "learned-central", "decide_latency_ms": 3.0,
              "decide_batch_ms_per_slot": 0.2},
             {"phase": 1, "n": 3, "policy": "mappo", "kind": "learned", "decide_latency_ms": 9.0,
              "decide_batch_ms_per_slot": 9.0},
             {"phase": 1, "n": 7, "policy": "upper-bound", "kind": "bound"}]  # fmt: skip
    text = markdown.decision_time_markdown(pd.DataFrame(rows))
    lines = text.strip().splitlines()
    assert lines[0] == ("| policy | phase 1, N = 7: one slot alone [ms] | phase 1, N = 7: per slot in a batch [ms] | "
                        "phase 2, K = 10: one slot alone [ms] | phase 2, K = 10: per slot in a batch [ms] |")
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| mappo", "| mappo-best-of-16 (centralised)", "| local-search", "| oracle", "| heuristics: fastest",
        "| heuristics: slowest"]  # fmt: skip
    assert lines[2] == "| mappo | 0.9 | 0.01 | 1.8 | 0.01 |"  # N = 3's row is not in the table
    assert lines[3].endswith("| 3 | 0.2 | — | — |") and lines[5].endswith("| 1.5 | 1.2 | — | — |")
    fastest = "0.02 (all-local) | 0.001 (all-local)"
    assert lines[6] == f"| heuristics: fastest | {fastest} | {fastest} |"
    assert lines[7].endswith("| 0.3 (greedy-edf-equal) | 0.004 (greedy-edf-equal) |")


def test_bench_decision_time_prints_both_timings_of_every_baseline_at_n7_and_k10():
    import json
    import subprocess
    import sys
    from pathlib import Path

    from mec.policies import evaluated_policy_names

    root = Path(__file__).resolve().parents[1]
    args = [sys.executable, "benchmarks/bench_decision_time.py", "--quick", "--slots", "6", "--set",
            "phase2.n_users=20"]  # fmt: skip
    out = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    rows = pd.DataFrame(report["results"])
    for (phase, n), point in rows.groupby(["phase", "n"]):
        assert sorted(point["policy"]) == sorted(evaluated_policy_names(phase, 7 if phase == 1 else 20))
    assert sorted(set(zip(rows["phase"], rows["n"]))) == [(1, 7), (2, 10)]
    assert (rows[list(decision_time.DECISION_TIME_COLUMNS)] > 0).all().all() and (rows["batch_slots"] == 6).all()
    assert set(rows["kind"]) == {"heuristic", "oracle", "search"}
    table = subprocess.run([*args, "--markdown"], cwd=root, capture_output=True, text=True, timeout=600)
    assert table.returncode == 0 and table.stdout.startswith("| policy | phase 1, N = 7: one slot alone [ms] |")
    assert "| local-search |" in table.stdout and "| heuristics: slowest |" in table.stdout


def test_bench_decision_time_times_a_checkpoint_and_its_best_of_k_at_its_own_point(trained):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    best = trained / "run" / "checkpoints" / "best"
    out = subprocess.run([sys.executable, "benchmarks/bench_decision_time.py", "--quick", "--slots", "4",
                          "--set", "phase2.n_users=20", "--checkpoint", str(best), "--best-of", "4"],
                         cwd=root, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = pd.DataFrame(json.loads(out.stdout)["results"])
    assert sorted(set(zip(rows["phase"], rows["n"]))) == [(1, 7), (2, 2), (2, 10)]
    own = rows[(rows["phase"] == 2) & (rows["n"] == 2)].set_index("policy")
    assert own.loc["mappo", "kind"] == "learned" and own.loc["mappo-best-of-4", "kind"] == "learned-central"
    # the checkpoint's own config with --set on top (20 users, not its 8), the baselines beside it on the same slots
    assert (own["n_ue"] == 20).all() and (own["n_clusters"] == 2).all() and "local-search" in own.index
    assert (own[list(decision_time.DECISION_TIME_COLUMNS)] > 0).all().all()


def test_aggregation_reports_best_of_k_beside_the_policy_with_every_policys_decision_time(trained, tmp_path):
    """evaluate_baselines and evaluate_policy (evaluation.best_of = 4) of the tiny run, then aggregate_metrics: the
    best-of-K rows are their own policy of kind learned-central beside the learned policy's, which keeps kind
    learned and its own numbers; every summary table has both decision times of every policy."""
    import shutil
    from types import SimpleNamespace

    from mec import aggregate
    from workflow_script import run_workflow_script

    job = tmp_path / "phase2" / "n2" / "seed0"
    (job / "eval").mkdir(parents=True)
    shutil.copy(trained / "run" / "metrics.parquet", job / "metrics.parquet")
    (job / "run").symlink_to(trained / "run")
    section = {"n_users": 8, "n_clusters": [2], "kmeans_n_init": 2}
    evaluation = {"episodes": 2, "slots": 5, "seed": 9}
    common = {"wildcards": SimpleNamespace(phase="2", n="2", seed="0", variant_dir=""), "threads": 1}
    base = tmp_path / "baselines"
    run_workflow_script("evaluate_baselines", SimpleNamespace(
        **common, params=SimpleNamespace(phase_section=section, scenario={}, reward={}, evaluation=evaluation),
        output=SimpleNamespace(episodes=str(base / "episodes.parquet"), summary=str(base / "summary.parquet"))))
    run_workflow_script("evaluate_policy", SimpleNamespace(
        **common, params=SimpleNamespace(phase_section=section, scenario={}, reward={},
                                         evaluation={**evaluation, "best_of": 4}),
        input=SimpleNamespace(metrics=str(job / "metrics.parquet")),
        output=SimpleNamespace(episodes=str(job / "eval" / "episodes.parquet"),
                               schedule=str(job / "eval" / "schedule.parquet"))))  # fmt: skip
    out = tmp_path / "summary"
    names = ("learned", "learned_seeds", "learning_curves", "comparison")
    run_workflow_script("aggregate_metrics", SimpleNamespace(
        **common, params=SimpleNamespace(statistics={"ci_level": 0.95, "bootstrap_resamples": 200, "seed": 0}),
        input=SimpleNamespace(policy_episodes=[str(job / "eval" / "episodes.parquet")],
                              train_metrics=[str(job / "metrics.parquet")],
                              baseline_episodes=[str(base / "episodes.parquet")]),
        output=SimpleNamespace(**{name: str(out / f"{name}.parquet") for name in names},
                               comparison_html=str(out / "comparison.html"), marl_eval=str(out / "marl_eval.json"))))
    timings = list(aggregate.DECISION_TIME_COLUMNS)
    comparison = pd.read_parquet(out / "comparison.parquet").set_index("policy")
    assert comparison.loc["mappo", "kind"] == "learned"
    assert comparison.loc["mappo-best-of-4", "kind"] == "learned-central"
    assert comparison.loc["mappo-best-of-4", "reward_per_slot"] >= comparison.loc["mappo", "reward_per_slot"]
    assert (comparison.drop(index="upper-bound", errors="ignore")[timings] > 0).all().all()
    seeds = pd.read_parquet(out / "learned_seeds.parquet").set_index("policy")
    assert seeds.loc["mappo", "kind"] == "learned" and (seeds[timings] > 0).all().all()
    learned = pd.read_parquet(out / "learned.parquet")
    assert set(learned["policy"]) == {"mappo", "mappo-best-of-4"} and (learned[timings] > 0).all().all()
    summary = pd.read_parquet(base / "summary.parquet").set_index("policy")
    assert comparison.loc["local-search", "decide_latency_ms"] == summary.loc["local-search", "decide_latency_ms"]


def test_the_sweep_figure_draws_best_of_k_dashed_and_labelled_centralised():
    from mec import metrics, plotting

    rows = [{"phase": 1, "n": n, "n_ue": n, "n_clusters": 1, "policy": policy, "metric": metric, "samples": 2,
             "mean": 1.0, "mean_ci_low": 0.9, "mean_ci_high": 1.1, "iqm": 1.0, "iqm_ci_low": 0.9, "iqm_ci_high": 1.1,
             "ci_level": 0.95}
            for n in (2, 3) for metric in metrics.SUMMARY_KEYS
            for policy in ("all-local", "greedy-edf", "mappo", "mappo-best-of-16")]  # fmt: skip
    table = pd.DataFrame(rows)
    baselines = table[~table["policy"].str.startswith("mappo")]
    learned = table[table["policy"].str.startswith("mappo")]
    fig = plotting.sweep_figure(baselines, 1, "mean_qos", learned=learned)
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    own = next(label for label in lines if label.startswith("mappo (learned,"))
    central = next(label for label in lines if label.startswith("mappo-best-of-16 ("))
    assert "centralised" in central and lines[central].get_linestyle() == "--" and lines[own].get_linestyle() == "-"
