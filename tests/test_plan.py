"""The workflow's plan without Snakemake (mec.plan): which of a variant's jobs are the study's own, the params a job
receives, what a training job asks of the machine, and how the command line's overrides are merged and typed.

Everything here is plain function calls on validated configs: milliseconds, no dry run. What the Snakefile makes of
it (the jobs a target schedules) is tested by dry runs in test_variants.py and test_workflow.py.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mec import plan
from mec.config import DEFAULT_CONFIG, config_from_dict, config_to_dict, variant_configs

REPO = Path(__file__).resolve().parents[1]


def study_plan(raw: dict | None = None) -> plan.StudyPlan:
    cfg = config_from_dict(raw or {})
    return plan.StudyPlan(cfg, variant_configs(cfg))


@pytest.fixture(scope="module")
def default_plan() -> plan.StudyPlan:
    return plan.StudyPlan(DEFAULT_CONFIG, variant_configs(DEFAULT_CONFIG))


# --------------------------------------------------------------------------- which jobs a variant shares


def test_a_training_only_variant_shares_the_studys_baselines_but_not_its_training(default_plan):
    # ippo changes training.critic, sb3 training.backend: the baselines read no training key.
    for name in ("ippo", "sb3"):
        assert default_plan.variant_dir(name) == f"variants/{name}/"
        for phase, n in plan.sweep_points(default_plan.config_of(name)):
            assert default_plan.is_study_job(name, ["evaluate_baselines"], phase, n)
            assert default_plan.baseline_dir(name, phase, n) == ""
            for seed in DEFAULT_CONFIG.workflow.seeds:
                assert not default_plan.is_study_job(name, ["train_agents"], phase, n, seed)
                assert default_plan.run_dir(name, phase, n, seed) == f"variants/{name}/"
    # Its evaluation alone reads nothing training changes, but it evaluates the variant's own checkpoint: a run's
    # training and its evaluation go together.
    assert default_plan.is_study_job("ippo", ["evaluate_policy"], 1, 3, 0)
    assert not default_plan.is_study_job("ippo", list(plan.RUN_RULES), 1, 3, 0)


def test_no_coordinator_shares_the_baselines_which_never_read_the_coordinator(default_plan):
    name = "no_coordinator"
    variant = default_plan.config_of(name)
    assert variant.phase2.coordinator == "equal" != DEFAULT_CONFIG.phase2.coordinator
    assert plan.BASELINE_BLIND_KEYS == ("coordinator",)
    for phase, n in plan.sweep_points(variant):
        assert phase == 2
        assert default_plan.baseline_dir(name, phase, n) == ""
        assert default_plan.run_dir(name, phase, n, 0) == "variants/no_coordinator/"
        # The learned agents' phase section holds the coordinator, the baselines' does not.
        assert plan.param_value(variant, "phase_section", phase, n) != plan.param_value(
            DEFAULT_CONFIG, "phase_section", phase, n
        )
        assert "coordinator" not in plan.param_value(variant, "baseline_phase_section", phase, n)


def test_a_variant_off_the_studys_points_or_scenario_shares_nothing(default_plan):
    # flat: K = 1, no sweep point of the study.
    assert plan.sweep_points(default_plan.config_of("flat")) == [(2, 1)]
    assert default_plan.baseline_dir("flat", 2, 1) == "variants/flat/"
    assert default_plan.run_dir("flat", 2, 1, 0) == "variants/flat/"
    # tight_deadlines: a scenario change, at the study's own points.
    for phase, n in plan.sweep_points(default_plan.config_of("tight_deadlines")):
        assert default_plan.baseline_dir("tight_deadlines", phase, n) == "variants/tight_deadlines/"
        assert default_plan.run_dir("tight_deadlines", phase, n, 0) == "variants/tight_deadlines/"


def test_tuning_runs_train_apart_on_their_own_seeds_and_share_the_baselines(default_plan):
    names = default_plan.family("tuning.grid")
    assert len(names) == 18
    for name in names:
        cfg = default_plan.config_of(name)
        assert plan.runs(cfg) == [(1, 5, 100), (1, 5, 101)]
        assert default_plan.baseline_dir(name, 1, 5) == ""
        assert {default_plan.run_dir(name, *run) for run in plan.runs(cfg)} == {f"variants/{name}/"}


def test_a_trade_off_weight_equal_to_the_studys_is_the_study_itself():
    p = study_plan({"workflow": {"w_energy": [0.0, 0.1], "w_energy_overrides": {}}})
    assert p.study.reward.w_energy_per_j == 0.1
    assert p.family("workflow.w_energy") == ["w_energy_0.0", "w_energy_0.1"]
    assert p.variant_dir("w_energy_0.1") == ""
    assert p.variant_dir("w_energy_0.0") == "variants/w_energy_0.0/"
    assert p.baseline_dir("w_energy_0.0", 1, 3) == "variants/w_energy_0.0/"  # the reward changes the baselines' score
    assert p.run_dir("w_energy_0.1", 1, 3, 0) == p.baseline_dir("w_energy_0.1", 1, 3) == ""
    assert p.variant_dir(None) == p.run_dir(None, 1, 3, 0) == ""


def test_the_studys_weight_on_a_restricted_axis_reuses_the_studys_jobs_one_by_one(default_plan):
    # The default axis has its own sizes and seeds (w_energy_overrides): a folder of its own for its summaries, but
    # every one of its jobs is the study's.
    name = "w_energy_0.1"
    assert default_plan.variant_dir(name) == "variants/w_energy_0.1/"
    cfg = default_plan.config_of(name)
    assert plan.runs(cfg) == [(p, n, s) for p, n in [(1, 3), (1, 7), (2, 4), (2, 10)] for s in (0, 1, 2)]
    assert {default_plan.run_dir(name, *run) for run in plan.runs(cfg)} == {""}
    assert {default_plan.baseline_dir(name, p, n) for p, n in plan.sweep_points(cfg)} == {""}


def test_a_point_or_seed_outside_the_study_is_never_the_studys_job():
    # A variant with the study's config but a seed and an N the study does not have.
    more = {"workflow.seeds": [0, 9], "phase1.n_ue": [3, 12]}
    p = study_plan({"workflow": {"variants": {"more": more}, "ablations": [], "backend_variants": [], "scenarios": []}})
    assert p.variant_dir("more") == "variants/more/"
    assert p.run_dir("more", 1, 3, 0) == "" and p.baseline_dir("more", 1, 3) == ""
    assert p.run_dir("more", 1, 3, 9) == "variants/more/"
    assert p.baseline_dir("more", 1, 12) == p.run_dir("more", 1, 12, 0) == "variants/more/"


# --------------------------------------------------------------------------- the params of a job


def test_adding_a_sweep_value_changes_no_other_points_params():
    before = config_from_dict({"phase1": {"n_ue": [2, 3]}, "phase2": {"n_clusters": [4, 5]}})
    after = config_from_dict({"phase1": {"n_ue": [2, 3, 9]}, "phase2": {"n_clusters": [4, 5, 8]}})
    for rule in plan.JOB_PARAMS:
        for phase, n in plan.sweep_points(before):
            assert plan.job_param_values(after, rule, phase, n) == plan.job_param_values(before, rule, phase, n)
    assert plan.own_phase_section(after, 1, 3)["n_ue"] == [3]
    assert plan.own_phase_section(after, 2, 5)["n_clusters"] == [5]
    assert plan.sweep_points(after) == [(1, 2), (1, 3), (1, 9), (2, 4), (2, 5), (2, 8)]


def test_params_are_the_sections_each_job_reads():
    cfg = DEFAULT_CONFIG
    sections = config_to_dict(cfg)
    baselines = plan.job_param_values(cfg, "evaluate_baselines", 2, 4)
    assert set(baselines) == {"scenario", "reward", "phase_section", "evaluation"}
    # best_of (the learned policy's best-of-K decisions) is read by the learned evaluation alone, and only when on
    evaluation = {k: v for k, v in sections["evaluation"].items() if k != "best_of"}
    assert baselines["scenario"] == sections["scenario"] and baselines["evaluation"] == evaluation
    assert baselines["phase_section"] == {
        **{k: v for k, v in sections["phase2"].items() if k != "coordinator"},
        "n_clusters": [4],
    }
    training = plan.job_param_values(cfg, "train_agents", 1, 3)
    assert set(training) == {"scenario", "reward", "phase_section", "training"}  # run_dir is the job's path
    assert plan.JOB_PARAMS["train_agents"]["run_dir"] == plan.RUN_FOLDER
    assert training["phase_section"] == {**sections["phase1"], "n_ue": [3]}
    assert set(plan.job_param_values(cfg, "evaluate_policy", 1, 3)) == {"scenario", "reward", "phase_section",
                                                                         "evaluation"}  # fmt: skip
    with pytest.raises(ValueError):
        plan.param_value(cfg, plan.RUN_FOLDER, 1, 3)


def test_best_of_k_changes_only_the_learned_evaluations_params_and_only_when_on():
    """evaluation.best_of off (0 or 1) leaves every job's params as they were before the key existed; on, it reaches
    the learned policy's evaluation, never the baselines' jobs (a variant with it shares the study's baselines)."""
    before = {"episodes": 5, "slots": 200, "seed": 12345}  # the evaluation section without the key
    for off in (0, 1):
        cfg = config_from_dict({"evaluation": {"best_of": off}})
        assert plan.job_param_values(cfg, "evaluate_policy", 1, 3)["evaluation"] == before
        assert plan.job_param_values(cfg, "evaluate_baselines", 1, 3)["evaluation"] == before
    on = config_from_dict({"evaluation": {"best_of": 16}})
    assert plan.job_param_values(on, "evaluate_policy", 1, 3)["evaluation"] == {**before, "best_of": 16}
    for rule in ("evaluate_baselines", "train_agents"):
        assert plan.job_param_values(on, rule, 1, 3) == plan.job_param_values(DEFAULT_CONFIG, rule, 1, 3)


def test_writing_out_a_default_or_its_preset_changes_no_param():
    written = config_from_dict({"training": {"lr": DEFAULT_CONFIG.training.lr}, "phase1": {"n_ue": [2, 3]}})
    short = config_from_dict({"phase1": {"n_ue": [2, 3]}})
    for rule in plan.JOB_PARAMS:
        assert plan.job_param_values(written, rule, 1, 2) == plan.job_param_values(short, rule, 1, 2)


def _rule_params(rule: str) -> str:
    """The text of rule `rule`'s params section in rules/*.smk, without its comments."""
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        found = re.search(rf"^rule {rule}:\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
        if found:
            params = re.search(r"^    params:\n((?:        .*\n|\s*\n)*)", found.group(1), re.M)
            assert params, f"rule {rule} has no params"
            lines = [line.strip() for line in params.group(1).splitlines()]
            return "\n".join(line for line in lines if line and not line.startswith("#"))
    raise AssertionError(f"no rule {rule} in rules/")


@pytest.mark.parametrize("rule", list(plan.JOB_PARAMS))
def test_the_job_rules_take_their_params_from_the_plan_alone(rule):
    """A param added to a job rule beside JOB_PARAMS would not count in what decides whether a variant shares the
    study's job: the rules' params are JOB_PARAMS' and nothing else."""
    assert _rule_params(rule) == f'**job_params("{rule}"),'


# --------------------------------------------------------------------------- resources of a training job


def test_default_training_jobs_resources():
    # 120 iterations of 1000 slots: phase 1 2 x (15 + 120 x 0.54) s = 159.6 s -> 3 min; phase 2 at 100 UEs
    # 2 x (15 + 120 x 2.74) s = 687.6 s -> 12 min. Memory 1.25 x (1300 + 9 x N) MB per 1000-slot batch.
    cfg = DEFAULT_CONFIG
    assert (cfg.training.iterations, cfg.training.train_batch_slots, cfg.phase2.n_users) == (120, 1000, 100)
    assert plan.train_runtime_min(cfg, 1) == 3 and plan.train_runtime_min(cfg, 2) == 12
    assert [plan.train_mem_mb(cfg, 1, n) for n in (2, 7)] == [1648, 1704]
    assert plan.train_mem_mb(cfg, 2, 4) == plan.train_mem_mb(cfg, 2, 10) == 2750  # 100 UEs at any K
    assert plan.job_n_ue(cfg, 1, 7) == 7 and plan.job_n_ue(cfg, 2, 7) == 100


def test_a_retry_asks_for_more_and_the_model_scales_with_the_config():
    cfg = DEFAULT_CONFIG
    assert plan.train_runtime_min(cfg, 2, attempt=2) == 24 and plan.train_mem_mb(cfg, 2, 4, attempt=3) == 8250
    bigger = dataclasses.replace(
        cfg,
        training=dataclasses.replace(cfg.training, iterations=60, train_batch_slots=2000, num_env_runners=2),
        phase2=dataclasses.replace(cfg.phase2, n_users=50),
    )
    # Phase 2: 2000 slots x 50 UEs is the reference batch: 2 x (15 + 60 x 2.74) s = 358.8 s -> 6 min. Memory:
    # 1.25 x (1300 + 2 x 700 + 0.009 x 2000 x 50) MB = 4500 MB; phase 1, N = 3: 1.25 x (2700 + 54) = 3442.5 -> 3443.
    assert plan.train_runtime_min(bigger, 2) == 6
    assert plan.train_mem_mb(bigger, 2, 8) == 4500 and plan.train_mem_mb(bigger, 1, 3) == 3443
    # Phase 1: 2 x (15 + 60 x 0.54 x 2) s = 159.6 s -> 3 min.
    assert plan.train_runtime_min(bigger, 1) == 3


def test_the_tiny_studys_training_jobs_fit_in_a_minute():
    cfg = config_from_dict({"training": {"iterations": 2, "train_batch_slots": 40, "episode_slots": 20,
                                         "minibatch_size": 20, "eval_episodes": 1},
                            "phase2": {"n_users": 12, "n_clusters": [2, 3]}})  # fmt: skip
    assert plan.train_runtime_min(cfg, 1) == plan.train_runtime_min(cfg, 2) == 1
    assert plan.train_mem_mb(cfg, 1, 2) == 1626 and plan.train_mem_mb(cfg, 2, 3) == 1631


# --------------------------------------------------------------------------- overrides of the command line


def test_command_line_values_are_typed_as_in_a_config_file():
    assert plan.typed("3") == 3 and plan.typed("3e-4") == 3e-4 and plan.typed("1.0e-3") == 1e-3
    assert plan.typed("false") is False and plan.typed("abc") == "abc" and plan.typed(None) is None
    assert plan.typed("[1, 2]") == "[1, 2]"  # a list written as text stays text (the schema names it)
    assert plan.typed({"a": ["2", "x"]}) == {"a": [2, "x"]}
    merged = {"training": {"iterations": "3", "lr": "3e-4", "critic": "local"}, "seed": "7", "other": "5"}
    plan.retype_command_line(merged, {"training": {"iterations": "3", "lr": "3e-4"}, "seed": "7", "absent": "1"})
    assert merged == {"training": {"iterations": 3, "lr": 3e-4, "critic": "local"}, "seed": 7, "other": "5"}


def test_free_key_sections_given_on_the_command_line_replace_the_files():
    config = {
        "reward": {"w_qos": 1.0, "w_energy_per_j": 0.1},
        "workflow": {"variants": {"a": {"training.lr": 1.0}}, "w_energy_overrides": {"x": 1}, "seeds": [0, 1]},
        "tuning": {"grid": {"training.lr": [1, 2]}, "n": 5},
    }
    given = {"reward": {"preset": "reference"}, "workflow": {"variants": {"b": {"training.critic": "local"}}}}
    plan.replace_from_overrides(config, given)
    assert config["reward"] == {"preset": "reference"}
    assert config["workflow"] == {"variants": {"b": {"training.critic": "local"}}, "w_energy_overrides": {"x": 1},
                                  "seeds": [0, 1]}  # fmt: skip
    assert config["tuning"] == {"grid": {"training.lr": [1, 2]}, "n": 5}
    given["workflow"]["variants"]["b"]["training.critic"] = "central"  # a copy, not the given mapping
    assert config["workflow"]["variants"]["b"] == {"training.critic": "local"}
