"""Reported the way the field reports: the probability of improvement (rliable's) with its bootstrap interval, the
IQM beside the means in the comparison tables, and the per-episode results in marl-eval's JSON layout."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mec import aggregate, io, markdown, marl_eval, metrics, reproduce
from workflow_script import run_workflow_script

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "summary"


# --------------------------------------------------------------------------- probability of improvement, by hand


def test_probability_of_improvement_is_the_mean_of_s_over_all_pairs():
    # One task: x = (1, 2, 3) against y = 2: S = 0, 1/2, 1 -> 1/2.
    assert aggregate.probability_of_improvement([1, 2, 3], [2])[0] == 0.5
    # x = (1, 3), y = (0, 2, 3): pairs (1,0)=1 (1,2)=0 (1,3)=0 (3,0)=1 (3,2)=1 (3,3)=1/2 -> 3.5 / 6.
    assert aggregate.probability_of_improvement([1, 3], [0, 2, 3])[0] == pytest.approx(3.5 / 6)
    assert aggregate.probability_of_improvement([5, 6], [1, 2])[0] == 1.0
    assert aggregate.probability_of_improvement([1, 2], [5, 6])[0] == 0.0
    assert aggregate.probability_of_improvement([4, 4], [4])[0] == 0.5  # all ties


def test_probability_of_improvement_averages_over_tasks_comparing_runs_within_a_task():
    # Runs x tasks. Task 0: x = (3, 1) vs y = 2 -> (1 + 0) / 2 = 1/2; task 1: x = (5, 4) vs y = 4 -> (1 + 1/2) / 2 =
    # 3/4; task 2: x = (0, 0) vs y = 9 -> 0. Mean over the tasks: (1/2 + 3/4 + 0) / 3 = 5/12.
    x = np.array([[3.0, 5.0, 0.0], [1.0, 4.0, 0.0]])
    y = np.array([[2.0, 4.0, 9.0]])
    assert aggregate.probability_of_improvement(x, y)[0] == pytest.approx(5 / 12)
    # Pooled over the same values as one task instead, every x of (3, 5, 0, 1, 4, 0) meets every y of (2, 4, 9):
    # 3 beats 2, 5 beats 2 and 4, 4 beats 2 and ties 4, the rest beat none: 4.5 over 18 pairs.
    assert aggregate.probability_of_improvement(x.ravel(), y.ravel())[0] == pytest.approx(4.5 / 18)


def test_probability_of_improvement_bootstrap_interval():
    x, y = np.arange(25.0).reshape(5, 5), np.full((1, 5), 10.0)
    p, low, high = aggregate.probability_of_improvement(x, y, ci_level=0.95, resamples=2000, seed=3)
    assert p == pytest.approx((0.5 + 4 * 0.6) / 5)  # task 0: 15, 20 above and 10 equal; tasks 1-4: three above
    assert 0 <= low < p < high <= 1
    assert aggregate.probability_of_improvement(x, y, ci_level=0.95, resamples=2000, seed=3) == (p, low, high)
    # Every run beats every run: every resample too, so the interval is the value itself.
    assert aggregate.probability_of_improvement([[5, 6], [7, 8]], [[1, 2]], ci_level=0.9, resamples=100) == (1, 1, 1)
    assert np.isnan(aggregate.probability_of_improvement([1, 2], [0])[1:]).all()  # no resamples: no interval


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [([], [1.0], "at least one run"), ([[1.0, 2.0]], [[1.0]], "same tasks"), ([np.nan], [1.0], "NaN")],
)
def test_probability_of_improvement_refuses_what_it_cannot_compare(x, y, match):
    with pytest.raises(ValueError, match=match):
        aggregate.probability_of_improvement(x, y)


# --------------------------------------------------------------------------- comparison table


def _from_before(comparison: pd.DataFrame) -> pd.DataFrame:
    """A committed comparison table as tables were before the probabilities of improvement, the IQMs, best-of-K and
    the decision times: their columns and rows left out."""
    new = {*aggregate.POI_COLUMNS, aggregate.BEST_HEURISTIC, "decide_latency_ms", "decide_batch_ms_per_slot"}
    dropped = [column for column in comparison if column in new or column.endswith("_iqm")]
    return comparison[comparison["kind"] != aggregate.LEARNED_CENTRAL].drop(columns=dropped).reset_index(drop=True)


def _episodes() -> pd.DataFrame:
    """Phase 2, K = 4, 3 evaluation episodes: a learned policy of 2 seeds, two heuristics and local search."""
    rows = []
    learned = {0: [10.0, 20.0, 30.0], 1: [12.0, 18.0, 31.0]}
    for seed, rewards in learned.items():
        rows += [("mappo", "learned", seed, e, r) for e, r in enumerate(rewards)]
    baselines = {"greedy": [11.0, 19.0, 30.0], "all-local": [9.0, 17.0, 29.0], aggregate.LOCAL_SEARCH: [13.0, 21.0,
                                                                                                       32.0]}
    for policy, rewards in baselines.items():
        kind = "search" if policy == aggregate.LOCAL_SEARCH else "heuristic"
        rows += [(policy, kind, np.nan, e, r) for e, r in enumerate(rewards)]
    frame = pd.DataFrame(rows, columns=["policy", "kind", "seed", "episode", "reward_per_slot"])
    return frame.assign(phase=2, n=4)


def _samples(episodes: pd.DataFrame) -> pd.DataFrame:
    """The comparison's samples: a learned policy's per-seed means, a baseline's episodes."""
    learned = episodes[episodes["kind"] == "learned"]
    seeds = learned.groupby(["phase", "n", "policy", "kind", "seed"], as_index=False)["reward_per_slot"].mean()
    return pd.concat([seeds, episodes[episodes["kind"] != "learned"].drop(columns="seed")], ignore_index=True)


def test_comparison_table_carries_the_probability_of_improvement_and_the_iqm():
    episodes = _episodes()
    by = ["phase", "n", "policy", "kind"]
    table = aggregate.comparison_table(_samples(episodes), by, ["reward_per_slot"], ci_level=0.9, resamples=500,
                                       episodes=episodes)  # fmt: skip
    learned = table[table["kind"] == "learned"].iloc[0]
    assert learned[aggregate.BEST_HEURISTIC] == "greedy"  # mean 20 against all-local's 18.3
    # Over greedy, per episode: (10 vs 11, 12 vs 11) -> 1/2; (20, 18 vs 19) -> 1/2; (30, 31 vs 30) -> 3/4.
    assert learned[aggregate.POI_BEST_HEURISTIC] == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    assert learned[f"{aggregate.POI_BEST_HEURISTIC}_ci_low"] <= learned[aggregate.POI_BEST_HEURISTIC]
    assert learned[f"{aggregate.POI_BEST_HEURISTIC}_ci_high"] >= learned[aggregate.POI_BEST_HEURISTIC]
    assert learned[aggregate.POI_LOCAL_SEARCH] == 0.0  # local search is ahead on every episode
    baselines = table[table["kind"] != "learned"]
    assert baselines[list(aggregate.POI_COLUMNS)].isna().all().all()
    # The IQM of two seeds' means (20 and 20.33) weights both halves equally: their mean.
    assert learned["reward_per_slot_iqm"] == pytest.approx((20.0 + 61 / 3) / 2)
    # Without episodes: the table of before, plus the IQM.
    plain = aggregate.comparison_table(_samples(episodes), by, ["reward_per_slot"], ci_level=0.9, resamples=500)
    assert aggregate.POI_BEST_HEURISTIC not in plain
    pd.testing.assert_frame_equal(plain, table[plain.columns])


def test_comparison_table_refuses_policies_evaluated_on_other_episodes():
    episodes = _episodes()
    other = episodes.assign(episode=np.where(episodes["policy"] == "greedy", episodes["episode"] + 10,
                                             episodes["episode"]))  # fmt: skip
    with pytest.raises(ValueError, match="mappo and greedy were not evaluated on the same episodes"):
        aggregate.comparison_table(_samples(episodes), ["phase", "n", "policy", "kind"], ["reward_per_slot"],
                                   ci_level=0.9, resamples=50, episodes=other)  # fmt: skip


def test_the_tables_show_the_probability_of_improvement_and_iqm_only_where_computed():
    episodes = _episodes()
    table = aggregate.comparison_table(_samples(episodes), ["phase", "n", "policy", "kind"], ["reward_per_slot"],
                                       ci_level=0.9, resamples=500, episodes=episodes)  # fmt: skip
    header, body = markdown.phase2_rows(table)
    assert header[-3:] == ["learned: IQM over seeds", "P(learned > best heuristic)", "P(learned > local search)"]
    learned = table[table["kind"] == "learned"].iloc[0]
    low, high = learned[[f"{aggregate.POI_BEST_HEURISTIC}_ci_low", f"{aggregate.POI_BEST_HEURISTIC}_ci_high"]]
    assert body[0][-3:] == ["20.17", f"0.58 [{low:.2f}, {high:.2f}]", "0.00 [0.00, 0.00]"]
    assert "P(learned > ...) is the probability of improvement" in markdown.readme_results(table)
    # Tables from before: the same columns as they always had, and no note.
    committed = _from_before(pd.read_parquet(COMMITTED / "comparison.parquet"))
    header, _ = markdown.phase1_rows(committed)
    assert header[-1] == "learned CI above best heuristic" and not any("P(" in cell for cell in header)
    assert "probability of improvement" not in markdown.readme_results(committed)
    header, _ = markdown.phase2_rows(pd.read_parquet(COMMITTED / "phase2" / "comparison.parquet"))
    assert header[-1] == "(learned − all-local) / (local search − all-local)"


def test_phase1_rows_add_the_probabilities_at_the_end():
    committed = _from_before(pd.read_parquet(COMMITTED / "comparison.parquet"))
    before_header, before = markdown.phase1_rows(committed)
    learned = committed["kind"] == "learned"
    extended = committed.assign(**{column: np.where(learned, 0.75, np.nan) for column in aggregate.POI_COLUMNS})
    header, body = markdown.phase1_rows(extended)
    assert header == [*before_header, "P(learned > best heuristic)", "P(learned > local search)"]
    assert [row[:-2] for row in body] == before and body[0][-2:] == ["0.75 [0.75, 0.75]"] * 2


def test_new_comparison_columns_leave_reproduce_comparing_the_committed_ones():
    """`mec reproduce` compares the columns two tables share: a rerun table with the new columns against a committed
    one without them matches value for value."""
    committed = _from_before(pd.read_parquet(COMMITTED / "comparison.parquet"))
    rerun = committed.assign(reward_per_slot_iqm=committed["reward_per_slot"],
                             **dict.fromkeys(aggregate.POI_COLUMNS, 0.5), best_heuristic="greedy-edf")  # fmt: skip
    result = reproduce.compare(committed, rerun)
    assert result.equal and result.rerun == result.committed == len(committed)
    assert "reward_per_slot" in result.values and aggregate.POI_BEST_HEURISTIC not in result.values
    # A changed committed value is still caught.
    changed = rerun.assign(reward_per_slot=rerun["reward_per_slot"] + np.where(rerun.index == 0, 1e-9, 0.0))
    assert not reproduce.compare(committed, changed).equal


# --------------------------------------------------------------------------- marl-eval export


def _episode_metrics(episodes: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    others = {name: rng.uniform(0, 1, len(episodes)) for name in metrics.SUMMARY_KEYS if name != "reward_per_slot"}
    return episodes.assign(**others, training_slots=np.where(episodes["kind"] == "learned", 3000, np.nan))


def test_the_layout_is_marl_evals():
    data = marl_eval.layout(_episode_metrics(_episodes()))
    assert list(data) == ["mec_phase2"] and list(data["mec_phase2"]) == ["k4"]
    algorithms = data["mec_phase2"]["k4"]
    assert sorted(algorithms) == ["all-local", "greedy", aggregate.LOCAL_SEARCH, "mappo"]
    run = algorithms["mappo"]["run_1"]
    assert run["absolute_metrics"]["reward_per_slot"] == [12.0, 18.0, 31.0]
    assert run["step_1"]["step_count"] == 3000 and run["step_1"]["reward_per_slot"] == [12.0, 18.0, 31.0]
    # A baseline's every run is its one evaluation.
    assert algorithms["greedy"]["run_0"] == algorithms["greedy"]["run_1"]
    assert algorithms["greedy"]["run_0"]["step_1"]["step_count"] == 0
    assert marl_eval.problems(data) == []
    assert marl_eval.layout(_episode_metrics(_episodes()), "Tight")["mec_phase2_tight"] == data["mec_phase2"]


def test_problems_finds_what_marl_evals_loader_trips_on():
    data = marl_eval.layout(_episode_metrics(_episodes()))
    broken = json.loads(json.dumps(data))
    del broken["mec_phase2"]["k4"]["greedy"]["run_1"]
    broken["mec_phase2"]["k4"]["mappo"]["run_0"]["step_1"].pop("step_count")
    broken["mec_phase2"]["k4"]["all-local"]["run_0"]["absolute_metrics"]["mean_qos"] = []
    found = "\n".join(marl_eval.problems(broken))
    assert "not the same runs throughout" in found
    assert "mappo/run_0/step_1: no integer step_count" in found
    assert "all-local/run_0/absolute_metrics/mean_qos: not a non-empty list of numbers" in found


def test_the_layout_keeps_what_every_point_of_a_phase_has():
    """marl-eval reads every task with the algorithms and runs of its first: a policy or seed missing at one point
    of the phase is left out of all."""
    first = _episode_metrics(_episodes())
    second = first.assign(n=5)
    second = second[(second["policy"] != "all-local") & ~(second["seed"] == 1)]
    data = marl_eval.layout(pd.concat([first, second]))
    assert list(data["mec_phase2"]) == ["k4", "k5"]
    for task in data["mec_phase2"].values():
        assert sorted(task) == ["greedy", aggregate.LOCAL_SEARCH, "mappo"]
        assert all(list(runs) == ["run_0"] for runs in task.values())
    assert marl_eval.problems(data) == []


# --------------------------------------------------------------------------- the workflow's aggregate_metrics


def _slot_rows(policy: str, rng, episodes: int = 3, slots: int = 4, n_ue: int = 2, offset: float = 0.0):
    rows = []
    for episode in range(episodes):
        for slot in range(slots):
            qos = rng.uniform(0, 1, n_ue) + offset
            energy = rng.uniform(1, 3, n_ue)
            rows.append({
                "episode": episode, "slot": slot, "n_tasks": n_ue, "n_offloaded": int(rng.integers(0, n_ue + 1)),
                "n_deadline_met": int((qos > 0.5).sum()), "sum_qos": qos.sum(), "sum_energy_j": energy.sum(),
                "local_energy_j": energy[0], "transmit_energy_j": 0.0, "server_energy_j": energy[1],
                "reward": qos.sum() - 0.1 * energy.sum(), "policy": policy,
            })  # fmt: skip
    return pd.DataFrame(rows)


def _fake_study(root: Path, seeds=(0, 1, 2), points=((1, 2), (1, 3))) -> SimpleNamespace:
    """Per-slot evaluations of a learned policy (several seeds) and of three baselines, and the training histories,
    as the workflow's jobs leave them, for aggregate_metrics."""
    rng = np.random.default_rng(7)
    iterations, batch = 2, 100
    config = {"training": {"iterations": iterations, "train_batch_slots": batch}}
    policy_episodes, train_metrics, baseline_episodes = [], [], []
    for phase, n in points:
        point = {"phase": phase, "n": n, "n_ue": n, "n_clusters": 1}
        for seed in seeds:
            run = root / f"phase{phase}" / f"n{n}" / f"seed{seed}"
            history = pd.DataFrame({"iteration": range(1, iterations + 1),
                                    **{f"eval/{name}": rng.uniform(0, 1, iterations)
                                       for name in aggregate.CURVE_METRICS}})  # fmt: skip
            io.write_parquet(history, run / "metrics.parquet", {"config": config, "seed": seed})
            io.write_parquet(_slot_rows("mappo", rng, offset=0.1), run / "eval" / "episodes.parquet",
                             {**point, "config": config, "training_seed": seed, "policy": "mappo",
                              "checkpoint_iteration": 2})  # fmt: skip
            policy_episodes.append(str(run / "eval" / "episodes.parquet"))
            train_metrics.append(str(run / "metrics.parquet"))
        slots = pd.concat([_slot_rows(policy, rng) for policy in ("greedy-edf", "all-local", aggregate.LOCAL_SEARCH)])
        path = root / f"phase{phase}" / f"n{n}" / "baselines" / "episodes.parquet"
        io.write_parquet(slots, path, point)
        baseline_episodes.append(str(path))
    summary = root / "summary"
    return SimpleNamespace(
        scriptdir=str(ROOT / "workflow_scripts"),
        input=SimpleNamespace(policy_episodes=policy_episodes, train_metrics=train_metrics,
                              baseline_episodes=baseline_episodes),
        params=SimpleNamespace(statistics={"ci_level": 0.95, "bootstrap_resamples": 200, "seed": 0}),
        wildcards=SimpleNamespace(variant_dir=""),
        output=SimpleNamespace(**{name: str(summary / file) for name, file in [
            ("learned", "learned.parquet"), ("learned_seeds", "learned_seeds.parquet"),
            ("learning_curves", "learning_curves.parquet"), ("comparison", "comparison.parquet"),
            ("comparison_html", "comparison.html"), ("marl_eval", "marl_eval.json")]}),
    )  # fmt: skip


def test_the_export_reads_back_as_the_summary_tables(tmp_path):
    """aggregate_metrics' marl_eval.json, read back: each learned run's mean over its episodes is that seed's row of
    learned_seeds.parquet, the mean over runs the learned row of comparison.parquet, and a baseline's mean over its
    episodes its row there; and the probability of improvement in the comparison is the export's, by hand."""
    smk = _fake_study(tmp_path)
    run_workflow_script("aggregate_metrics", smk)
    data = marl_eval.read(smk.output.marl_eval)
    assert marl_eval.problems(data) == []
    assert list(data) == ["mec_phase1"] and list(data["mec_phase1"]) == ["n2", "n3"]
    back = marl_eval.records(data)
    seeds = pd.read_parquet(smk.output.learned_seeds)
    comparison = pd.read_parquet(smk.output.comparison)
    names = ["reward_per_slot", "mean_qos", "energy_per_task_j", "offload_fraction"]
    per_run = back.groupby(["phase", "n", "policy", "seed"], as_index=False)[list(metrics.SUMMARY_KEYS)].mean()
    learned = per_run[per_run["policy"] == "mappo"].merge(seeds, on=["phase", "n", "policy", "seed"])
    assert len(learned) == len(seeds) == 6
    for name in names:  # every episode has as many slots and tasks: the mean over episodes is the pooled value
        np.testing.assert_allclose(learned[f"{name}_x"], learned[f"{name}_y"], rtol=1e-12)
    means = per_run.groupby(["phase", "n", "policy"], as_index=False)[names].mean()
    joined = means.merge(comparison, on=["phase", "n", "policy"])
    assert sorted(joined["policy"].unique()) == ["all-local", "greedy-edf", aggregate.LOCAL_SEARCH, "mappo"]
    for name in names:
        np.testing.assert_allclose(joined[f"{name}_x"], joined[f"{name}_y"], rtol=1e-12)
    # The probability of improvement of the comparison, from the export: per episode over the seeds, then the mean.
    for _, row in comparison[comparison["kind"] == "learned"].iterrows():
        task = data["mec_phase1"][f"n{row['n']}"]
        x = np.array([run["absolute_metrics"]["reward_per_slot"] for run in task["mappo"].values()])
        y = np.array(task[row[aggregate.BEST_HEURISTIC]]["run_0"]["absolute_metrics"]["reward_per_slot"])
        expected = ((x > y) + 0.5 * (x == y)).mean()
        assert row[aggregate.POI_BEST_HEURISTIC] == pytest.approx(expected)
        assert not np.isnan(row[aggregate.POI_LOCAL_SEARCH])
    assert (tmp_path / "summary" / "comparison.html").read_text().count("P(learned &gt; best heuristic)") == 1
