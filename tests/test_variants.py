"""Variants of the study: their configs (mec.config), the tables across them (mec.aggregate, mec.markdown), the
README splice, and what the workflow's targets across variants schedule (dry runs of the tiny study).

The dry runs read the jobs of a target's DAG from `snakemake <target> --summary` in a fresh copy of the workflow
(every output is then pending): which files a target would build says which jobs it runs, and where it reads what
it shares with the study.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
import yaml

from mec import aggregate, markdown
from mec.config import (
    DEFAULT_CONFIG,
    ConfigError,
    config_from_dict,
    config_to_dict,
    study_variants,
    study_without_variants,
    variant_config,
    variant_configs,
)

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "workflow_scripts", "config", "report", "profiles", ".test", "config.yaml")
TEST_CONFIG = REPO / ".test" / "config.yaml"
# A guard against a hung run, not a speed target: the tiny study (both phases and both scenarios) takes a few
# minutes on 2 idle cores, several times that beside other work.
SNAKEMAKE_TIMEOUT_S = 900
# The tiny study's outputs folder (its workflow.results_dir).
RESULTS = yaml.safe_load(TEST_CONFIG.read_text())["workflow"]["results_dir"]


# --------------------------------------------------------------------------- configs of the variants


def test_default_variants_and_their_configs():
    variants = study_variants(DEFAULT_CONFIG)
    names = list(variants)
    assert names[:7] == ["ippo", "no_coordinator", "flat", "sb3", "tight_deadlines", "capable_edge",
                         "spectrum_grant"]
    assert names[7:12] == ["w_energy_0.0", "w_energy_0.05", "w_energy_0.1", "w_energy_0.2", "w_energy_0.5"]
    tuning = [name for name in names if name.startswith("tune_")]
    assert len(tuning) == 3 * 3 * 2 and "tune_lr0.0003_entropy_coeff0.005_minibatch_size250" in tuning
    configs = variant_configs(DEFAULT_CONFIG)
    assert configs["ippo"].training.critic == "local" and configs["ippo"].phase1 == DEFAULT_CONFIG.phase1
    assert configs["no_coordinator"].phase2.coordinator == "equal"
    assert configs["no_coordinator"].workflow.phases == (2,)
    assert configs["flat"].phase2.n_clusters == (1,)
    assert configs["sb3"].training.backend == "sb3"
    tight = configs["tight_deadlines"]
    assert DEFAULT_CONFIG.workflow.scenarios == ("tight_deadlines", "capable_edge")
    assert (tight.scenario.task.deadline_s.low, tight.scenario.task.deadline_s.high) == (1.0, 2.0)
    assert tight.workflow.phases == (1,) and tight.phase1 == DEFAULT_CONFIG.phase1 and tight.training == DEFAULT_CONFIG.training
    capable = configs["capable_edge"]  # phase 2 only, a 4x server, everything else the study's
    assert capable.scenario.server.cpu_ghz == 24.0 and capable.workflow.phases == (2,)
    assert capable.scenario.server.bandwidth_mhz == DEFAULT_CONFIG.scenario.server.bandwidth_mhz
    assert capable.phase2 == DEFAULT_CONFIG.phase2 and capable.training == DEFAULT_CONFIG.training
    assert capable.workflow.seeds == DEFAULT_CONFIG.workflow.seeds
    grant = configs["spectrum_grant"]  # both phases, the schedulers grant the spectrum, everything else the study's
    assert grant.scenario.spectrum_by == "scheduler" and DEFAULT_CONFIG.scenario.spectrum_by == "ue"
    assert grant.workflow.phases == DEFAULT_CONFIG.workflow.phases and grant.training == DEFAULT_CONFIG.training
    assert "spectrum_grant" not in DEFAULT_CONFIG.workflow.scenarios + DEFAULT_CONFIG.workflow.ablations
    w = configs["w_energy_0.5"]
    assert w.reward.w_energy_per_j == 0.5 and w.reward.w_qos == 1.0
    assert (w.phase1.n_ue, w.phase2.n_clusters, w.workflow.seeds) == ((3, 7), (4, 10), (0, 1, 2))
    tune = configs["tune_lr0.001_entropy_coeff0.02_minibatch_size125"]
    t = tune.training
    assert (t.lr, t.entropy_coeff, t.minibatch_size, t.iterations) == (1e-3, 0.02, 125, 60)
    assert (tune.workflow.phases, tune.phase1.n_ue, tune.workflow.seeds) == ((1,), (5,), (100, 101))
    assert dict(variants["tune_lr0.001_entropy_coeff0.02_minibatch_size125"].axes) == {
        "training.lr": 1e-3, "training.entropy_coeff": 0.02, "training.minibatch_size": 125,
    }  # fmt: skip
    # A variant declares no variants of its own.
    for cfg in configs.values():
        assert not cfg.workflow.variants and not cfg.tuning.grid and not cfg.workflow.w_energy
        assert not cfg.workflow.scenarios
    assert variants["flat"].description == "phase2.n_clusters=[1], workflow.phases=[2]"


def test_the_studys_own_energy_weight_is_the_study():
    cfg = config_from_dict({"workflow": {"w_energy": [0.0, 0.1], "w_energy_overrides": None}})
    configs = variant_configs(cfg)
    assert configs["w_energy_0.1"] == study_without_variants(cfg)
    assert configs["w_energy_0.0"] != study_without_variants(cfg)


def test_config_with_variants_round_trips_and_stays_hashable():
    cfg = config_from_dict({"tuning": {"grid": {"training.hidden": [[32], [64, 64]]}}})
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg)))) == cfg
    assert hash(cfg) == hash(config_from_dict(config_to_dict(cfg)))
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert [name for name in study_variants(cfg) if name.startswith("tune_")] == ["tune_hidden32", "tune_hidden64x64"]
    assert variant_configs(cfg)["tune_hidden64x64"].training.hidden == (64, 64)


def test_an_empty_grid_or_axis_declares_no_variants():
    cfg = config_from_dict({"workflow": {"variants": None, "ablations": [], "backend_variants": [], "scenarios": [],
                                          "w_energy": []},
                            "tuning": {"grid": {}}})  # fmt: skip
    assert study_variants(cfg) == {}


def test_a_reward_preset_in_a_variant_replaces_the_weights():
    cfg = config_from_dict({"workflow": {"variants": {"ref": {"reward.preset": "reference"}}, "ablations": ["ref"],
                                         "backend_variants": [], "scenarios": []}})  # fmt: skip
    assert variant_configs(cfg)["ref"].reward.w_energy_per_j == 1e-6


@pytest.mark.parametrize(
    ("workflow", "tuning", "needles"),
    [
        pytest.param({"variants": {"ippo": {"training.critc": "local"}}}, None,
                     ["variant 'ippo' (workflow.variants.ippo)", "'training.critc': unknown"], id="unknown-key"),
        pytest.param({"variants": {"ippo": {"training.critic": "mapo"}}}, None,
                     ["variant 'ippo'", "'training.critic': got 'mapo'", "central, local"], id="bad-value"),
        pytest.param({"variants": {"big": {"phase2.n_clusters": [200]}}}, None,
                     ["variant 'big'", "K=200 > phase2.n_users=100"], id="cross-field"),
        pytest.param({"variants": {"tune_x": {"training.lr": 0.1}}}, None,
                     ["'workflow.variants name': got 'tune_x'", "not starting with w_energy_ or tune_"],
                     id="reserved-name"),
        pytest.param({"variants": {"x": {"tuning.n": 3}}}, None,
                     ["'workflow.variants.x.tuning.n': cannot be overridden"], id="family-key"),
        pytest.param({"variants": {"x": {}}}, None, ["'workflow.variants.x': got {}", "non-empty"], id="empty-variant"),
        pytest.param({"ablations": ["ippo", "nope"]}, None,
                     ["'workflow.ablations[1]': got 'nope'", "ippo, no_coordinator"], id="unknown-ablation"),
        pytest.param({"scenarios": ["ippo", "nope"]}, None,
                     ["'workflow.scenarios[1]': got 'nope'", "a name declared in workflow.variants"],
                     id="unknown-scenario"),
        pytest.param({"scenarios": ["ippo", "ippo"]}, None, ["'workflow.scenarios'", "distinct variant names"],
                     id="repeated-scenario"),
        pytest.param({"backend_variants": ["ippo"]}, None, ["'workflow.backend_variants[0]': got 'ippo'", "rllib"],
                     id="backend-variant-with-the-same-backend"),
        pytest.param({"w_energy": [0.1, -0.2]}, None, ["'workflow.w_energy[1]': got -0.2"], id="negative-weight"),
        pytest.param({"w_energy_overrides": {"reward.w_qos": 2.0}}, None,
                     ["'workflow.w_energy_overrides.reward.w_qos': cannot be overridden"], id="axis-overrides-reward"),
        pytest.param(None, {"grid": {"lr": [0.1]}}, ["'tuning.grid key': got 'lr'", "training.lr"], id="grid-key"),
        pytest.param(None, {"grid": {"training.iterations": [5]}}, ["'tuning.grid key'"], id="grid-iterations"),
        pytest.param(None, {"grid": {"training.lr": [0.1, 0.1]}}, ["'tuning.grid.training.lr'", "distinct"],
                     id="grid-repeats"),
        pytest.param(None, {"grid": {"training.lr": [0.1, -1.0]}},
                     ["variant 'tune_lr-1.0' (tuning.grid)", "'training.lr': got -1.0"], id="grid-value"),
        pytest.param(None, {"phase": 3}, ["'tuning.phase': got 3; allowed: 1 or 2"], id="tuning-phase"),
        pytest.param(None, {"phase": 2, "n": 101}, ["(tuning.grid)", "K=101 > phase2.n_users=100"], id="tuning-size"),
    ],
)  # fmt: skip
def test_a_bad_variant_fails_with_one_line_naming_it_and_the_key(workflow, tuning, needles):
    workflow = dict(workflow or {})
    if "variants" in workflow:  # the default ablations and backend variants are not declared any more
        workflow = {"ablations": [], "backend_variants": [], "scenarios": [], **workflow}
    raw = {"workflow": workflow, "tuning": tuning or {}}
    with pytest.raises(ConfigError) as info:
        variant_configs(config_from_dict(raw))
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_variant_config_applies_overrides_on_the_studys_values():
    workflow = {"variants": {"v": {"training.critic": "local"}}, "ablations": ["v"], "backend_variants": [],
                "scenarios": []}
    cfg = config_from_dict({"training": {"lr": 1e-3}, "workflow": workflow})
    v = variant_config(cfg, study_variants(cfg)["v"])
    assert v.training.lr == 1e-3 and v.training.critic == "local"
    assert cfg.training.critic == "central"  # the study's config is untouched


# --------------------------------------------------------------------------- tables across variants


def _run(rewards) -> pd.DataFrame:
    return pd.DataFrame({"iteration": np.arange(1, len(rewards) + 1), aggregate.VALIDATION_REWARD: rewards})


def test_a_tuning_run_is_scored_by_its_best_checkpoints_validation_reward():
    sample = aggregate.tuning_sample(_run([1.0, 3.0, 2.0, 3.0, 2.5]))
    assert sample == {"best_validation_reward": 3.0, "best_iteration": 2, "final_validation_reward": 2.5}


def test_rank_tuning_ranks_by_validation_reward_not_the_last_iteration():
    """Point a is best at its best checkpoint but worst at the last iteration; b and c tie on validation reward and
    are ordered by the last iteration."""
    samples = pd.DataFrame([
        {"variant": "a", "seed": 0, "training.lr": 1e-3, "best_validation_reward": 5.0, "best_iteration": 3,
         "final_validation_reward": 1.0},
        {"variant": "a", "seed": 1, "training.lr": 1e-3, "best_validation_reward": 7.0, "best_iteration": 5,
         "final_validation_reward": 1.0},
        {"variant": "b", "seed": 0, "training.lr": 3e-4, "best_validation_reward": 4.0, "best_iteration": 9,
         "final_validation_reward": 3.0},
        {"variant": "b", "seed": 1, "training.lr": 3e-4, "best_validation_reward": 4.0, "best_iteration": 9,
         "final_validation_reward": 3.0},
        {"variant": "c", "seed": 0, "training.lr": 1e-4, "best_validation_reward": 4.0, "best_iteration": 9,
         "final_validation_reward": 3.5},
        {"variant": "c", "seed": 1, "training.lr": 1e-4, "best_validation_reward": 4.0, "best_iteration": 9,
         "final_validation_reward": 3.5},
    ])  # fmt: skip
    table = aggregate.rank_tuning(samples, ["training.lr"], ci_level=0.95, resamples=200)
    assert list(table["variant"]) == ["a", "c", "b"] and list(table["rank"]) == [1, 2, 3]
    assert list(table.columns) == ["rank", "variant", "training.lr", *aggregate.TUNING_COLUMNS[2:]]
    a = table.iloc[0]
    assert a["validation_reward"] == 6.0 and a["final_validation_reward"] == 1.0 and a["best_iteration"] == 4.0
    assert a["seeds"] == 2 and a["training.lr"] == 1e-3
    # Student's t over 2 seeds (5 and 7): 6 +- t_{0.975, 1} * 1 (a wide interval, as two samples deserve).
    half = stats.t.ppf(0.975, 1) * np.std([5.0, 7.0], ddof=1) / np.sqrt(2)
    assert a["validation_reward_ci_low"] == pytest.approx(6.0 - half)
    assert a["validation_reward_ci_high"] == pytest.approx(6.0 + half)
    assert table.iloc[2][["validation_reward_ci_low", "validation_reward_ci_high"]].tolist() == [4.0, 4.0]
    text = markdown.tuning_markdown(table, ["training.lr"])
    assert text.splitlines()[0] == (
        "| rank | lr | validation reward (best checkpoint) | validation reward (last iteration) | best iteration "
        "| seeds |"
    )
    assert text.splitlines()[2].startswith("| 1 | 0.001 | 6 [")


def test_pareto_front_keeps_the_non_dominated_points():
    qos = np.array([0.9, 0.8, 0.95, 0.85, 0.9])
    energy = np.array([2.0, 1.0, 3.0, 2.5, 2.0])
    # (0.85, 2.5) is dominated by (0.9, 2.0); the two equal points do not dominate each other.
    assert aggregate.pareto_front(qos, energy).tolist() == [True, True, True, False, True]


def _summary(policies: dict, sizes=(2, 3), phase: int = 1, samples: int = 3) -> pd.DataFrame:
    rows = []
    for policy, level in policies.items():
        for n in sizes:
            for metric in aggregate.VARIANT_METRICS:
                value = level * n if metric == "reward_per_slot" else level / 10
                rows.append({"phase": phase, "n": n, "n_ue": n, "n_clusters": 1, "policy": policy, "metric": metric,
                             "samples": samples, "mean": value, "mean_ci_low": value - 0.1,
                             "mean_ci_high": value + 0.1, "ci_level": 0.95})  # fmt: skip
    return pd.DataFrame(rows)


def test_variant_comparison_keeps_the_studys_order_and_labels():
    studies = [
        {"study": "study", "description": "config.yaml"},
        {"study": "ippo", "description": "training.critic=local"},
    ]
    table = aggregate.variant_comparison(studies, [_summary({"mappo": 2.0}), _summary({"ippo": 1.5}, sizes=(3,))])
    assert list(dict.fromkeys(table["study"])) == ["study", "ippo"]
    assert set(table["metric"]) == set(aggregate.VARIANT_METRICS)
    text = markdown.comparison_markdown(table, "Ablations")
    assert "| N | study (mappo) | ippo (ippo) |" in text
    assert "| 2 | 4 [3.9, 4.1] | — |" in text and "| 3 | 6 [5.9, 6.1] | 4.5 [4.4, 4.6] |" in text
    assert "- `ippo`: training.critic=local" in text
    # A variant only has columns in the phases it covers.
    studies.append({"study": "flat", "description": "phase2.n_clusters=[1]"})
    learned = [_summary({"mappo": 2.0}), _summary({"ippo": 1.5}), _summary({"mappo": 1.0}, sizes=(1,), phase=2)]
    text = markdown.comparison_markdown(aggregate.variant_comparison(studies, learned), "Ablations")
    phase1, phase2 = text.split("Phase 1:")[1].split("Phase 2:")
    assert "| N | study (mappo) | ippo (ippo) |\n" in phase1 and "flat" not in phase1
    assert "| K | study | flat (mappo) |" in phase2 and "| 1 | — | 1 [0.9, 1.1] |" in phase2
    with pytest.raises(ValueError, match="3 studies but 1"):
        aggregate.variant_comparison(studies, [_summary({"mappo": 2.0})])


def test_pareto_table_labels_every_policy_with_its_weight_and_kind():
    studies = [{"study": "w_energy_0.0", "w_energy": 0.0}, {"study": "study", "w_energy": 0.1}]
    learned = [_summary({"mappo": 2.0}), _summary({"mappo": 1.0})]
    base = _summary({"oracle": 3.0, "local-search": 2.5, "greedy-edf": 1.0})
    table = aggregate.pareto_table(studies, learned, [base, base])
    assert set(table["metric"]) == {"mean_qos", "energy_per_task_j", "reward_per_slot"}
    kinds = table.drop_duplicates("policy").set_index("policy")["kind"].to_dict()
    assert kinds == {"mappo": "learned", "oracle": "oracle", "local-search": "search", "greedy-edf": "heuristic"}
    mappo = table[(table["policy"] == "mappo") & (table["metric"] == "mean_qos") & (table["n"] == 2)]
    assert mappo.set_index("w_energy")["mean"].to_dict() == {0.0: 0.2, 0.1: 0.1}


# --------------------------------------------------------------------------- README results section


def _comparison(with_search: bool) -> pd.DataFrame:
    """A comparison.parquet of phase 1 (N = 2) and phase 2 (K = 4) with known numbers."""
    rows = [
        (1, 2, "mappo", "learned", 1.9, 95.0), (1, 2, "upper-bound", "bound", 2.0, 100.0),
        (1, 2, "oracle", "oracle", 1.96, 98.0),
        (1, 2, "greedy-edf", "heuristic", 1.8, 90.0), (1, 2, "all-local", "heuristic", 1.0, 50.0),
        (2, 4, "mappo", "learned", 60.0, np.nan), (2, 4, "greedy-edf-urgency", "heuristic", 55.0, np.nan),
        (2, 4, "all-local", "heuristic", 40.0, np.nan),
    ]  # fmt: skip
    if with_search:
        rows += [(1, 2, "local-search", "search", 1.98, 99.0), (2, 4, "local-search", "search", 64.0, np.nan)]
    frame = pd.DataFrame(rows, columns=["phase", "n", "policy", "kind", "reward_per_slot", "percent_of_bound"])
    return frame.assign(
        samples=np.where(frame["kind"] == "learned", 3, 5),
        reward_per_slot_ci_low=frame["reward_per_slot"] - 0.5,
        reward_per_slot_ci_high=frame["reward_per_slot"] + 0.5,
        percent_of_bound_ci_low=frame["percent_of_bound"] - 1,
        percent_of_bound_ci_high=frame["percent_of_bound"] + 1,
        ci_level=0.95,
    )


def test_readme_results_tables_with_and_without_local_search():
    text = markdown.readme_results(_comparison(with_search=True), [("Phase 1: reward", "docs/results/p1.png")])
    assert "mean over 3 training seeds" in text and "mean over 5 evaluation episodes" in text
    # Phase 1: learned, best heuristic, oracle and local search as % of the bound, the bound's reward, and whether
    # the learned interval [1.4, 2.4] lies above the best heuristic's 1.8 (no).
    assert "| 2 | mappo: 1.9 [1.4, 2.4] | 95.0% [94.0, 96.0] | greedy-edf: 1.8 [1.3, 2.3] | 90.0% [89.0, 91.0] | " \
           "98.0% [97.0, 99.0] | 99.0% [98.0, 100.0] | 2 [1.5, 2.5] | no |" in text  # fmt: skip
    # Phase 2: the best heuristic is not local search (a reference); [59.5, 60.5] lies above 55; learned reaches
    # (60 - 40) / (64 - 40) = 0.833 of local search's gain over all-local.
    assert "| 4 | mappo: 60 [59.5, 60.5] | greedy-edf-urgency: 55 [54.5, 55.5] | yes | 64 [63.5, 64.5] | 0.833 |" in text
    assert "![Phase 1: reward](docs/results/p1.png)" in text
    plain = markdown.readme_results(_comparison(with_search=False))
    assert "local search" not in plain.split("### Phase 1")[1].split("### Phase 2")[0].split("|", 1)[1]
    assert "| 4 | mappo: 60 [59.5, 60.5] | greedy-edf-urgency: 55 [54.5, 55.5] | yes |" in plain


def test_readme_results_gives_each_scenario_its_own_tables():
    """A scenario of workflow.scenarios: its own section, named with its overrides, from its own comparison table."""
    study, tight = _comparison(with_search=False), _comparison(with_search=False)
    tight = tight[tight["phase"] == 1].assign(reward_per_slot=lambda f: f["reward_per_slot"] + 1.0)
    text = markdown.readme_results(study, scenarios=[("tight", "scenario.task.deadline_s={low: 1.0}", tight,
                                                      "The learned rows come from 3 runs.")])  # fmt: skip
    section = text.split("### Phase 1, scenario tight (`scenario.task.deadline_s={low: 1.0}`)")[1]
    assert section.lstrip().startswith("The learned rows come from 3 runs.")
    assert "| 2 | mappo: 2.9 [1.4, 2.4] |" in section and "### Phase 2" not in section  # only the means moved
    assert "| 2 | mappo: 1.9 [1.4, 2.4] |" in text.split("### Phase 1, scenario")[0]


def test_readme_results_names_the_runs_behind_the_learned_rows():
    def run(phase, n, seed):
        training = {"iterations": 120, "train_batch_slots": 1000, "backend": "rllib", "critic": "central"}
        return {"config": {"training": training}, "phase": phase, "n": n, "training_seed": seed}

    runs = [run(1, 3, 0), run(1, 2, 0), run(1, 2, 2), run(2, 10, 0)]
    sentence = markdown.runs_sentence(runs)
    assert sentence == ("The learned rows come from 4 training runs (phase 1: N = 2, 3; phase 2: K = 10; seeds 0, 2) "
                        "of 120 PPO iterations of 1000 slots (rllib backend, central critic), each evaluated at its "
                        "best checkpoint.")  # fmt: skip
    assert markdown.runs_sentence([]) == ""
    assert markdown.readme_results(_comparison(with_search=False), study=sentence).count(sentence) == 1
    # Runs that recorded where they were trained (run.json, via evaluate_policy's provenance) say so.
    origin = {"commit": "0123456789ab", "machine": {"cpu": "Some CPU", "cpus": 2, "system": "Linux"}}
    trained = [{**run(1, 2, seed), "trained": origin} for seed in (0, 1)]
    assert markdown.runs_sentence(trained).endswith(
        "best checkpoint. Trained at commit 0123456789ab on Some CPU (bit-identical reruns need the same CPU model).")
    other = {"commit": "ba9876543210", "machine": {"cpu": "Other CPU"}}
    assert "at commits 0123456789ab, ba9876543210 on Other CPU and Some CPU" in markdown.runs_sentence(
        [*trained, {**run(1, 3, 0), "trained": other}])
    assert "Trained at" not in markdown.runs_sentence([*trained, run(1, 3, 0)])  # one run without a record


README_TEXT = "# Title\n\nIntro.\n\n## Results\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\n## Next\n"


def test_splice_readme_replaces_only_the_section_and_is_idempotent(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    readme.chmod(0o644)
    assert markdown.splice_readme(readme, "| a |\n| --- |\n| 1 |\n")
    expected = "# Title\n\nIntro.\n\n## Results\n\n<!-- results:start -->\n| a |\n| --- |\n| 1 |\n" \
               "<!-- results:end -->\n\n## Next\n"  # fmt: skip
    assert readme.read_text() == expected
    modified = readme.stat().st_mtime_ns
    assert not markdown.splice_readme(readme, "| a |\n| --- |\n| 1 |")  # same section: nothing written
    assert readme.read_text() == expected and readme.stat().st_mtime_ns == modified
    assert readme.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


@pytest.mark.parametrize(
    "text",
    [
        "# no markers\n",
        "<!-- results:end -->\n<!-- results:start -->\n",
        "<!-- results:start -->\n<!-- results:start -->\n<!-- results:end -->\n",
    ],
)
def test_splice_readme_refuses_a_readme_without_one_pair_of_markers(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="needs one line <!-- results:start --> followed by one line"):
        markdown.splice_readme(readme, "new")
    assert readme.read_text() == text


def test_splice_readme_is_atomic(tmp_path, monkeypatch):
    """A write that fails half-way leaves the README as it was and no temporary file behind."""
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    original = Path.write_text

    def fail_half_way(self, data, *args, **kwargs):
        original(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        markdown.splice_readme(readme, "new section")
    monkeypatch.undo()
    assert readme.read_text() == README_TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


# --------------------------------------------------------------------------- what the targets schedule


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT_S,
    )


def tiny_config(path: Path, workflow=None, tuning=None) -> Path:
    """.test/config.yaml with the workflow and tuning sections updated key by key."""
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw["workflow"] = {**raw["workflow"], **(workflow or {})}
    raw["tuning"] = {**raw["tuning"], **(tuning or {})}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def dag_files(workdir: Path, target: str, configfile: Path) -> set[str]:
    """Every output file of `target`'s DAG (from `snakemake --summary`)."""
    result = snakemake(workdir, target, "--cores", "1", "--summary", "--configfile", str(configfile))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    header = next(row for row in rows if row[0] == "output_file")
    return {row[0] for row in rows if len(row) == len(header) and row != header}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("variants"))


def _under(files: set[str], folder: str, suffix: str) -> set[str]:
    """The paths ending in `suffix` directly under RESULTS/<folder> ("": the study's, not a variant's), relative to
    it and without the suffix."""
    prefix = f"{RESULTS}/{folder}"
    return {
        path.removeprefix(prefix).removesuffix(suffix)
        for path in files
        if path.startswith(prefix)
        and path.endswith(suffix)
        and (folder or not path.startswith(f"{RESULTS}/variants/"))
    }


def _runs(files: set[str], folder: str) -> set[str]:
    """phase<P>/n<N or K>/seed<s> of the training jobs under RESULTS/<folder>."""
    return {path for path in _under(files, folder, "/metrics.parquet") if "/seed" in path}


def _baseline_points(files: set[str], folder: str) -> set[str]:
    return _under(files, folder, "/baselines/episodes.parquet")


TINY_POINTS = {"phase1/n2", "phase1/n3", "phase2/n2", "phase2/n3"}


def test_ablations_train_only_the_variants_and_share_the_studys_baselines(workdir, tmp_path):
    files = dag_files(workdir, "ablations", tiny_config(tmp_path / "c.yaml"))
    assert _runs(files, "variants/ippo/") == {f"{p}/seed0" for p in TINY_POINTS}
    assert _runs(files, "variants/no_coordinator/") == {"phase2/n2/seed0", "phase2/n3/seed0"}
    assert _runs(files, "variants/flat/") == {"phase2/n1/seed0"}
    assert _runs(files, "") == {f"{p}/seed0" for p in TINY_POINTS}  # the study itself, which they are compared with
    # IPPO and the no-coordinator variant leave what the heuristics see unchanged: the study's baselines serve them.
    assert _baseline_points(files, "") == TINY_POINTS
    assert _baseline_points(files, "variants/ippo/") == _baseline_points(files, "variants/no_coordinator/") == set()
    assert _baseline_points(files, "variants/flat/") == {"phase2/n1"}  # K = 1 is no point of the study
    assert {
        f"{RESULTS}/summary/ablations.parquet", f"{RESULTS}/summary/ablations.md",
        f"{RESULTS}/figures/phase1/ablations.png", f"{RESULTS}/figures/phase2/ablations.png",
        f"{RESULTS}/variants/flat/summary/learned.parquet",
    } <= files  # fmt: skip
    # No figures of the variants' own runs, nothing of the other targets.
    assert not any("/variants/" in path and "/figures/" in path for path in files)
    assert not any(name in path for path in files for name in ("sb3", "w_energy", "tune_", "pareto"))


def test_compare_backends_trains_the_backend_variant_beside_the_study(workdir, tmp_path):
    files = dag_files(workdir, "compare_backends", tiny_config(tmp_path / "c.yaml"))
    assert _runs(files, "variants/sb3/") == _runs(files, "") == {f"{p}/seed0" for p in TINY_POINTS}
    assert _baseline_points(files, "variants/sb3/") == set()
    assert {f"{RESULTS}/summary/backends.md", f"{RESULTS}/figures/phase1/backends.png",
            f"{RESULTS}/figures/phase2/backends.png"} <= files  # fmt: skip


def test_the_studys_energy_weight_is_not_trained_again_and_a_new_weight_adds_only_its_jobs(workdir, tmp_path):
    before = dag_files(workdir, "pareto", tiny_config(tmp_path / "a.yaml"))
    # 0.1 is the tiny study's own weight: the study's results, no variant folder of its own.
    assert not any("w_energy_0.1" in path for path in before)
    assert _runs(before, "variants/w_energy_0.0/") == {f"{p}/seed0" for p in TINY_POINTS}
    assert _baseline_points(before, "variants/w_energy_0.0/") == TINY_POINTS  # the reward changed: own baselines
    assert {f"{RESULTS}/summary/pareto.parquet", f"{RESULTS}/figures/phase1/pareto.png"} <= before
    after = dag_files(workdir, "pareto", tiny_config(tmp_path / "b.yaml", workflow={"w_energy": [0.0, 0.1, 0.2]}))
    added = after - before
    assert added and all(path.startswith((f"{RESULTS}/variants/w_energy_0.2/", f"{RESULTS}/logs/")) for path in added)
    assert before - after == set()


def test_a_restricted_trade_off_axis_reuses_the_studys_runs_job_by_job(workdir, tmp_path):
    """With fewer sizes on the axis, the study's weight is a variant of its own (its own summaries), yet each of its
    jobs is one of the study's: nothing is trained or evaluated under its folder."""
    configfile = tiny_config(tmp_path / "c.yaml", workflow={"w_energy_overrides": {"phase1.n_ue": [2]}})
    files = dag_files(workdir, "pareto", configfile)
    own = {path for path in files if "/w_energy_0.1/" in path and not path.startswith(f"{RESULTS}/logs/")}
    assert own == {f"{RESULTS}/variants/w_energy_0.1/summary/{name}.parquet"
                   for name in ("learned", "learned_seeds", "learning_curves", "comparison", "baselines")} | {
        f"{RESULTS}/variants/w_energy_0.1/summary/{name}"
        for name in ("comparison.html", "marl_eval.json")}  # fmt: skip
    assert _runs(files, "") == {"phase1/n2/seed0", "phase2/n2/seed0", "phase2/n3/seed0"}
    assert _runs(files, "variants/w_energy_0.0/") == {"phase1/n2/seed0", "phase2/n2/seed0", "phase2/n3/seed0"}


def test_tune_trains_the_grid_and_reads_no_test_episodes(workdir, tmp_path):
    files = dag_files(workdir, "tune", tiny_config(tmp_path / "c.yaml"))
    assert _runs(files, "variants/tune_lr0.0003/") == _runs(files, "variants/tune_lr0.001/") == {"phase1/n2/seed100"}
    assert f"{RESULTS}/summary/tuning.parquet" in files and f"{RESULTS}/summary/tuning.md" in files
    # Ranked on validation episodes only: no evaluation (evaluation.seed's test episodes) and no baseline in the DAG.
    assert not any("/eval/" in path or "/baselines/" in path for path in files)
    # The study's main results are not needed either.
    assert _runs(files, "") == set()


@pytest.mark.parametrize(
    ("target", "changes", "needle"),
    [
        pytest.param("tune", {"tuning": {"grid": None}}, "target tune: config key 'tuning.grid' is empty", id="tune"),
        pytest.param("pareto", {"workflow": {"w_energy": []}}, "target pareto: config key 'workflow.w_energy' is empty",
                     id="pareto"),
        pytest.param("all", {"workflow": {"variants": {"ippo": {"training.critic": "mapo"}}, "ablations": ["ippo"],
                                          "backend_variants": [], "scenarios": []}},
                     "Error: invalid config: variant 'ippo' (workflow.variants.ippo): config key "
                     "'training.critic': got 'mapo'", id="bad-variant"),
    ],
)  # fmt: skip
def test_a_target_without_its_variants_or_a_bad_variant_stops_with_one_line(workdir, tmp_path, target, changes, needle):
    configfile = tiny_config(tmp_path / "c.yaml", **changes)
    result = snakemake(workdir, target, "-n", "--cores", "1", "--configfile", str(configfile))
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "rror" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert needle in errors[0]


# --------------------------------------------------------------------------- a variant target end to end


def test_tune_end_to_end(tmp_path):
    """The tiny grid (2 learning rates x 1 seed, 2 iterations): trained and ranked by validation reward."""
    workdir = copy_workflow(tmp_path / "wf")
    result = snakemake(workdir, "tune", "--cores", "2", "--configfile", ".test/config.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    table = pd.read_parquet(workdir / f"{RESULTS}/summary/tuning.parquet")
    assert sorted(table["variant"]) == ["tune_lr0.0003", "tune_lr0.001"]
    assert sorted(table["training.lr"]) == [3e-4, 1e-3] and list(table["rank"]) == [1, 2]
    for row in table.itertuples(index=False):
        history = pd.read_parquet(workdir / f"{RESULTS}/variants/{row.variant}/phase1/n2/seed100/metrics.parquet")
        assert len(history) == 2  # tuning.iterations
        assert row.validation_reward == pytest.approx(history[aggregate.VALIDATION_REWARD].max(), rel=1e-12)
    assert table["validation_reward"].is_monotonic_decreasing
    text = (workdir / f"{RESULTS}/summary/tuning.md").read_text()
    assert "| rank | lr |" in text and "| 1 | " in text and "| 2 | " in text
    assert not list(workdir.glob(f"{RESULTS}/**/eval")), "tuning evaluated on test episodes"


def test_comparison_html_holds_the_readme_tables_for_the_report():
    """The HTML page of the report shows the same cells as the README's tables, escaped, one table per phase."""
    html = markdown.comparison_html(_comparison(with_search=True), "The study <default>")
    assert html.startswith("<!DOCTYPE html>") and "<h2>The study &lt;default&gt;</h2>" in html
    assert html.count("<table>") == 2 and "<h3>Phase 1</h3>" in html and "<h3>Phase 2</h3>" in html
    assert "<td>mappo: 1.9 [1.4, 2.4]</td><td>95.0% [94.0, 96.0]</td>" in html
    assert "<td>0.833</td>" in html  # phase 2: the learned share of local search's gain over all-local
