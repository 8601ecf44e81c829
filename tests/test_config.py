"""Tests for mec.config: defaults, round trip, presets, overrides and rejection messages."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from mec.config import (
    DEFAULT_CONFIG,
    REWARD_PRESETS,
    ConfigError,
    Range,
    RewardConfig,
    StudyConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    set_dotted,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_YAML = REPO_ROOT / "config.yaml"


# --------------------------------------------------------------------------- defaults


def test_defaults_match_the_study_values():
    cfg = config_from_dict({})
    sc = cfg.scenario
    assert sc.task.data_mbit == Range(16.0, 80.0)
    assert sc.task.cycles_gcycles == Range(1.5, 3.5)
    assert sc.task.deadline_s == Range(2.0, 4.0)
    assert sc.ue.distance_m == Range(10.0, 50.0)
    assert sc.ue.cpu_ghz == Range(0.5, 1.5)
    assert sc.ue.tx_power_w == 0.2
    assert sc.ue.kappa == 1e-27
    assert (sc.server.cpu_ghz, sc.server.power_w, sc.server.bandwidth_mhz) == (6.0, 5.0, 20.0)
    assert (sc.channel.model, sc.channel.noise_dbm_per_hz) == ("pathloss_3gpp", -174.0)
    assert sc.slot_s == 4.0 and sc.carry_over_queue is False
    assert cfg.reward == RewardConfig(1.0, 0.1)
    assert cfg.phase1.n_ue == (2, 3, 4, 5, 6, 7) and cfg.phase1.theta_min == 0.01
    p2 = cfg.phase2
    assert (p2.n_users, p2.n_clusters) == (100, (4, 5, 6, 7, 8, 9, 10))
    assert (p2.theta_min, p2.phi_min, p2.kmeans_n_init) == (0.01, 0.02, 10)
    assert (cfg.evaluation.episodes, cfg.evaluation.slots, cfg.evaluation.seed) == (5, 200, 12345)
    assert cfg == DEFAULT_CONFIG


def _declared_keys(cls) -> dict:
    """Every key declared by the fields of a section: name -> the keys of a nested section, or None."""
    return {
        field.name: _declared_keys(field.metadata["parser"]) if isinstance(field.metadata["parser"], type) else None
        for field in dataclasses.fields(cls)
    }


def _stated_keys(raw: dict, declared: dict) -> dict:
    return {name: _stated_keys(raw[name], declared[name]) if declared.get(name) else None for name in raw}


def test_config_yaml_loads_to_exactly_the_defaults():
    cfg = load_config(CONFIG_YAML)  # strict: a key config.yaml states but no field declares is rejected
    assert isinstance(cfg, StudyConfig)
    assert cfg == config_from_dict({})
    # The file states every declared key explicitly (every section, every key in it), so it is a complete
    # reference for users: a new key is declared once in mec/config.py and shown with its value in config.yaml.
    raw = yaml.safe_load(CONFIG_YAML.read_text())
    assert _stated_keys(raw, _declared_keys(StudyConfig)) == _declared_keys(StudyConfig)
    assert set(raw["reward"]) == {field.name for field in dataclasses.fields(RewardConfig)}


def test_every_key_is_declared_with_its_default_parser_and_meaning():
    """DEFAULT_CONFIG is the fields' defaults; every key has a parser that knows its schema and a one-line meaning."""
    assert DEFAULT_CONFIG == StudyConfig()
    assert DEFAULT_CONFIG.training.num_epochs == 8 and DEFAULT_CONFIG.reward == REWARD_PRESETS["study"]
    sections = [StudyConfig]
    while sections:
        cls = sections.pop()
        for field in dataclasses.fields(cls):
            parser, meaning = field.metadata["parser"], field.metadata["meaning"]
            assert meaning and "\n" not in meaning, f"{cls.__name__}.{field.name}"
            if isinstance(parser, type):
                sections.append(parser)
            else:
                assert hasattr(parser, "schema"), f"{cls.__name__}.{field.name}: a parser without a schema fragment"


def test_config_is_frozen_and_typed():
    cfg = config_from_dict({"phase1": {"n_ue": [3, 2]}, "evaluation": {"seed": 0}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.phase1.theta_min = 0.5  # type: ignore[misc]
    assert cfg.phase1.n_ue == (3, 2)  # order kept, stored as a tuple
    assert isinstance(cfg.scenario.server.cpu_ghz, float)
    assert type(cfg.evaluation.seed) is int


def test_the_simulator_converts_the_config_units_to_si():
    from mec.scenario import PhaseSetup
    from mec.simulator import SimParams

    p = SimParams.from_config(DEFAULT_CONFIG, PhaseSetup.from_config(DEFAULT_CONFIG, 1, 2))
    assert p.server_cpu_hz == pytest.approx(6e9)  # scenario.server.cpu_ghz
    assert p.bandwidth_hz == pytest.approx(20e6)  # scenario.server.bandwidth_mhz
    assert p.noise_w_per_hz == pytest.approx(3.981e-21, rel=1e-3)  # scenario.channel.noise_dbm_per_hz


def test_integral_ints_given_as_int_and_numbers_as_int_are_accepted():
    cfg = config_from_dict({"scenario": {"server": {"cpu_ghz": 8}, "task": {"deadline_s": [3, 3]}}})
    assert cfg.scenario.server.cpu_ghz == 8.0
    assert cfg.scenario.task.deadline_s == Range(3.0, 3.0)


def test_empty_section_takes_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("phase1:\n  # n_ue: [2]\nscenario:\n  task:\n")
    assert load_config(path) == DEFAULT_CONFIG
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == DEFAULT_CONFIG


def test_exponent_without_dot_reads_as_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scenario:\n  ue:\n    kappa: 2e-27\n")
    assert load_config(path).scenario.ue.kappa == 2e-27
    assert config_from_dict(apply_overrides({}, ["scenario.ue.kappa=3e-28"])).scenario.ue.kappa == 3e-28


# --------------------------------------------------------------------------- round trip


def test_round_trip_defaults():
    data = config_to_dict(DEFAULT_CONFIG)
    assert data["phase1"]["n_ue"] == [2, 3, 4, 5, 6, 7]
    assert data["scenario"]["task"]["data_mbit"] == {"low": 16.0, "high": 80.0}
    assert data["reward"] == {"w_qos": 1.0, "w_energy_per_j": 0.1}
    assert config_from_dict(data) == DEFAULT_CONFIG


def test_round_trip_non_default_through_yaml():
    cfg = config_from_dict(
        {
            "scenario": {"channel": {"model": "inverse_square"}, "carry_over_queue": True, "ue": {"kappa": 5e-28}},
            "reward": {"preset": "reference"},
            "phase2": {"n_users": 20, "n_clusters": [5, 2], "theta_min": 0.05},
        }
    )
    data = config_to_dict(cfg)
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(data))) == cfg
    assert data["reward"] == {"w_qos": 1.0, "w_energy_per_j": 1e-6}


# --------------------------------------------------------------------------- reward presets


def test_reward_presets():
    assert REWARD_PRESETS["study"] == RewardConfig(1.0, 0.1)
    assert REWARD_PRESETS["reference"] == RewardConfig(1.0, 1e-6)
    assert config_from_dict({"reward": {"preset": "reference"}}).reward == RewardConfig(1.0, 1e-6)
    assert config_from_dict({"reward": {"preset": "study"}}).reward == RewardConfig(1.0, 0.1)


def test_reward_explicit_and_partial_weights():
    assert config_from_dict({"reward": {"w_qos": 2.0, "w_energy_per_j": 0.0}}).reward == RewardConfig(2.0, 0.0)
    assert config_from_dict({"reward": {"w_energy_per_j": 0.5}}).reward == RewardConfig(1.0, 0.5)
    assert config_from_dict({"reward": {"w_qos": 0}}).reward == RewardConfig(0.0, 0.1)


# --------------------------------------------------------------------------- overrides


def test_overrides_parse_typed_values():
    raw = apply_overrides(
        {},
        [
            "scenario.carry_over_queue=true",
            "phase1.n_ue=[2,3]",
            "scenario.server.cpu_ghz=8",
            "scenario.channel.model=inverse_square",
            "reward={preset: reference}",
            "scenario.task.data_mbit={low: 1, high: 2}",
        ],
    )
    assert raw["scenario"]["carry_over_queue"] is True
    assert raw["phase1"]["n_ue"] == [2, 3]
    cfg = config_from_dict(raw)
    assert cfg.scenario.carry_over_queue is True
    assert cfg.phase1.n_ue == (2, 3)
    assert cfg.scenario.server.cpu_ghz == 8.0
    assert cfg.scenario.channel.model == "inverse_square"
    assert cfg.reward == REWARD_PRESETS["reference"]
    assert cfg.scenario.task.data_mbit == Range(1.0, 2.0)


def test_overrides_do_not_mutate_input_and_last_wins():
    raw = yaml.safe_load(CONFIG_YAML.read_text())
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["evaluation.seed=7", "evaluation.seed=8", "scenario.task.deadline_s.low=3"])
    assert raw == before
    assert out is not raw and out["scenario"] is not raw["scenario"]
    cfg = config_from_dict(out)
    assert cfg.evaluation.seed == 8
    assert cfg.scenario.task.deadline_s == Range(3.0, 4.0)


def test_load_config_applies_overrides():
    cfg = load_config(CONFIG_YAML, ["phase2.n_users=50", "phase2.n_clusters=[2]"])
    assert (cfg.phase2.n_users, cfg.phase2.n_clusters) == (50, (2,))


def test_unknown_key_from_override_is_caught_by_validation():
    with pytest.raises(ConfigError, match=r"scenario\.servr"):
        config_from_dict(apply_overrides({}, ["scenario.servr.cpu_ghz=3"]))


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("phase1.n_ue", "phase1.n_ue"),
        ("=3", "=3"),
        ("phase1..n_ue=3", "phase1..n_ue=3"),
        ("scenario.slot_s.x=1", "scenario.slot_s"),
        ("evaluation.seed=[1, 2", "evaluation.seed"),
    ],
)
def test_bad_override(override, needle):
    raw = {"scenario": {"slot_s": 4.0}}
    with pytest.raises(ConfigError) as info:
        apply_overrides(raw, [override])
    message = str(info.value)
    assert "\n" not in message
    assert needle in message
    assert raw == {"scenario": {"slot_s": 4.0}}


# --------------------------------------------------------------------------- rejections


def _set(path: str, value):
    """A raw config with a single dotted key set."""
    raw: dict = {}
    set_dotted(raw, path, value)
    return raw


# (id, raw config, substrings the single-line message must contain: the key and the value)
REJECTIONS = [
    (
        "negative_range_low",
        _set("scenario.task.data_mbit", {"low": -3, "high": 5}),
        ["scenario.task.data_mbit.low", "-3", "> 0"],
    ),
    ("zero_range_low", _set("scenario.ue.distance_m", [0, 5]), ["scenario.ue.distance_m.low", "0"]),
    (
        "low_above_high",
        _set("scenario.task.deadline_s", {"low": 4.5, "high": 2}),
        ["scenario.task.deadline_s", "4.5", "2"],
    ),
    ("range_missing_high", _set("scenario.ue.cpu_ghz", {"low": 1.0}), ["scenario.ue.cpu_ghz", "1.0"]),
    ("range_three_items", _set("scenario.ue.cpu_ghz", [1, 2, 3]), ["scenario.ue.cpu_ghz", "[1, 2, 3]"]),
    (
        "range_extra_key",
        _set("scenario.ue.cpu_ghz", {"low": 1, "high": 2, "mid": 1.5}),
        ["scenario.ue.cpu_ghz.mid", "low, high"],
    ),
    ("negative_power", _set("scenario.server.power_w", -5.0), ["scenario.server.power_w", "-5.0"]),
    ("zero_kappa", _set("scenario.ue.kappa", 0.0), ["scenario.ue.kappa", "0.0"]),
    ("zero_slot", _set("scenario.slot_s", 0), ["scenario.slot_s", "0"]),
    ("unknown_activation", _set("training.activation", "gelu"), ["training.activation", "gelu", "tanh, relu"]),
    ("unknown_top", {"scenaro": {}}, ["scenaro", "scenario, reward, phase1, phase2, evaluation"]),
    ("unknown_nested", _set("scenario.task.foo", 1), ["scenario.task.foo", "data_mbit, cycles_gcycles, deadline_s"]),
    (
        "k_above_n_users",
        {"phase2": {"n_users": 6, "n_clusters": [4, 8]}},
        ["phase2.n_clusters", "8", "phase2.n_users", "6"],
    ),
    ("bool_for_float", _set("scenario.server.cpu_ghz", True), ["scenario.server.cpu_ghz", "true"]),
    ("bool_for_int", _set("evaluation.episodes", True), ["evaluation.episodes", "true"]),
    ("string_for_float", _set("scenario.ue.tx_power_w", "0.2"), ["scenario.ue.tx_power_w", "'0.2'"]),
    ("none_for_float", _set("scenario.channel.noise_dbm_per_hz", None), ["scenario.channel.noise_dbm_per_hz", "None"]),
    ("list_for_float", _set("reward.w_qos", [1]), ["reward.w_qos", "[1]"]),
    ("float_for_int", _set("evaluation.slots", 2.5), ["evaluation.slots", "2.5"]),
    ("integral_float_for_int", _set("phase2.kmeans_n_init", 10.0), ["phase2.kmeans_n_init", "10.0"]),
    ("float_in_int_list", _set("phase1.n_ue", [2, 2.5]), ["phase1.n_ue[1]", "2.5", "1..12"]),
    ("string_for_bool", _set("scenario.carry_over_queue", "yes"), ["scenario.carry_over_queue", "'yes'"]),
    ("int_for_bool", _set("scenario.carry_over_queue", 1), ["scenario.carry_over_queue", "1"]),
    ("nan", _set("scenario.server.bandwidth_mhz", math.nan), ["scenario.server.bandwidth_mhz", "nan"]),
    ("inf_noise", _set("scenario.channel.noise_dbm_per_hz", -math.inf), ["scenario.channel.noise_dbm_per_hz", "-inf"]),
    (
        "nan_in_range",
        _set("scenario.task.cycles_gcycles", [1.0, math.nan]),
        ["scenario.task.cycles_gcycles.high", "nan"],
    ),
    (
        "bad_channel",
        _set("scenario.channel.model", "free_space"),
        ["scenario.channel.model", "'free_space'", "pathloss_3gpp, inverse_square"],
    ),
    ("duplicate_n_ue", _set("phase1.n_ue", [2, 3, 3]), ["phase1.n_ue", "[2, 3, 3]", "distinct"]),
    ("duplicate_k", _set("phase2.n_clusters", [4, 4]), ["phase2.n_clusters", "[4, 4]", "distinct"]),
    ("n_ue_above_12", _set("phase1.n_ue", [2, 13]), ["phase1.n_ue[1]", "13", "1..12"]),
    ("n_ue_zero", _set("phase1.n_ue", [0]), ["phase1.n_ue[0]", "0", "1..12"]),
    ("n_ue_empty", _set("phase1.n_ue", []), ["phase1.n_ue", "[]", "non-empty"]),
    ("n_ue_scalar", _set("phase1.n_ue", 4), ["phase1.n_ue", "4", "list"]),
    ("k_zero", _set("phase2.n_clusters", [0, 4]), ["phase2.n_clusters[0]", "0"]),
    ("n_users_zero", _set("phase2.n_users", 0), ["phase2.n_users", "0", ">= 1"]),
    ("theta_one", _set("phase1.theta_min", 1.0), ["phase1.theta_min", "1.0", "[0, 1)"]),
    ("theta_negative", _set("phase2.theta_min", -0.01), ["phase2.theta_min", "-0.01"]),
    ("phase1_floor_infeasible", _set("phase1.theta_min", 0.2), ["phase1.theta_min", "0.2", "max(n_ue)"]),
    ("phase2_theta_infeasible", _set("phase2.theta_min", 0.02), ["phase2.theta_min", "0.02", "n_users"]),
    ("phase2_phi_infeasible", _set("phase2.phi_min", 0.2), ["phase2.phi_min", "0.2", "max(n_clusters)"]),
    ("kmeans_zero", _set("phase2.kmeans_n_init", 0), ["phase2.kmeans_n_init", "0"]),
    ("episodes_zero", _set("evaluation.episodes", 0), ["evaluation.episodes", "0"]),
    ("seed_negative", _set("evaluation.seed", -1), ["evaluation.seed", "-1", ">= 0"]),
    (
        "preset_and_weights",
        _set("reward", {"preset": "study", "w_qos": 2.0}),
        ["reward", "'preset': 'study'", "not both"],
    ),
    ("unknown_preset", _set("reward", {"preset": "greedy"}), ["reward.preset", "'greedy'", "study, reference"]),
    ("negative_weight", _set("reward", {"w_energy_per_j": -0.1}), ["reward.w_energy_per_j", "-0.1", ">= 0"]),
    ("both_weights_zero", _set("reward", {"w_qos": 0, "w_energy_per_j": 0}), ["reward", "'w_qos': 0", "not both zero"]),
    ("reward_unknown_key", _set("reward", {"w_latency": 1}), ["reward.w_latency", "preset, w_qos, w_energy_per_j"]),
    ("section_not_mapping", {"phase1": [2, 3]}, ["phase1", "[2, 3]", "mapping"]),
    ("top_not_mapping", [1, 2], ["top level", "[1, 2]"]),
]


@pytest.mark.parametrize(("raw", "needles"), [case[1:] for case in REJECTIONS], ids=[case[0] for case in REJECTIONS])
def test_rejections(raw, needles):
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_rejection_message_format():
    with pytest.raises(ConfigError) as info:
        config_from_dict(_set("scenario.task.data_mbit", {"low": -3, "high": 5}))
    assert str(info.value) == "config key 'scenario.task.data_mbit.low': got -3; allowed: a number > 0"
    with pytest.raises(ConfigError) as info:
        config_from_dict(_set("scenario.task.foo", 1))
    assert str(info.value) == (
        "config key 'scenario.task.foo': unknown; allowed keys: data_mbit, cycles_gcycles, deadline_s"
    )


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_floors_at_exact_limit_are_accepted():
    cfg = config_from_dict(
        {"phase1": {"n_ue": [4], "theta_min": 0.25}, "phase2": {"n_users": 100, "theta_min": 0.01, "phi_min": 0.1}}
    )
    assert cfg.phase1.theta_min == 0.25 and cfg.phase2.phi_min == 0.1


# --------------------------------------------------------------------------- file errors


FILE_CASES = [
    ("missing", None, "not found"),
    ("invalid_yaml", "scenario: [1, 2\n", "invalid YAML"),
    ("tab_yaml", "scenario:\n\tslot_s: 1\n", "invalid YAML"),
    ("top_list", "- 1\n- 2\n", "[1, 2]"),
    ("top_scalar", "just a string\n", "'just a string'"),
    ("bad_value", "evaluation:\n  seed: -4\n", "evaluation.seed"),
]


@pytest.mark.parametrize(("text", "needle"), [case[1:] for case in FILE_CASES], ids=[case[0] for case in FILE_CASES])
def test_file_errors_name_the_path(tmp_path, text, needle):
    path = tmp_path / "study.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert needle in message


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_config_from_sections_puts_the_phase_section_under_its_name():
    from mec.config import config_from_sections

    cfg = config_from_sections(2, {"n_users": 12, "n_clusters": [3]}, evaluation={"episodes": 2})
    assert cfg.phase2.n_users == 12 and cfg.phase2.n_clusters == (3,)
    assert cfg.evaluation.episodes == 2
    assert cfg.phase1 == config_from_dict({}).phase1  # untouched sections keep the defaults
    with pytest.raises(ConfigError, match="phase1.n_ue"):
        config_from_sections(1, {"n_ue": [0]})


# --------------------------------------------------------------------------- where things are, and what they say


def _comment_block_above(text: str, line: str) -> str:
    """The comment lines right above `line` in a YAML file, joined."""
    lines = text.splitlines()
    i = lines.index(line)
    block = []
    while i > 0 and lines[i - 1].startswith("#"):
        i -= 1
        block.insert(0, lines[i].lstrip("# "))
    return " ".join(block)


def _section_comments(text: str, section: str) -> dict[str, str]:
    """key -> its inline comment in config.yaml's `section`."""
    lines = text.splitlines()
    start = lines.index(f"{section}:") + 1
    comments = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        key, _, rest = line.strip().partition(":")
        comments[key] = rest.partition("#")[2].strip()
    return comments


def test_the_statistics_comment_and_fields_say_what_the_intervals_are():
    """Means get Student's t interval and IQMs a percentile bootstrap (mec.aggregate); config.yaml's statistics
    comments and the fields' meanings (which feed config/schema.yaml) say so, and never call the mean's a bootstrap
    interval."""
    import numpy as np
    from scipy import stats

    from mec.aggregate import interval_estimates

    samples = np.array([[1.0, 2.0, 4.0, 8.0, 16.0]])
    est = interval_estimates(samples, 0.9, resamples=200, seed=0)
    half = stats.t.ppf(0.95, 4) * samples.std(ddof=1) / math.sqrt(5)
    assert est["mean_ci_high"][0] - est["mean"][0] == pytest.approx(half, rel=1e-12)  # Student-t, as said below
    text = CONFIG_YAML.read_text()
    header = _comment_block_above(text, "statistics:")
    inline = _section_comments(text, "statistics")
    meanings = {field.name: field.metadata["meaning"] for field in dataclasses.fields(StudyConfig().statistics)}
    assert set(inline) == set(meanings) == {"ci_level", "bootstrap_resamples", "seed"}
    for said in (header, inline["ci_level"], meanings["ci_level"]):
        assert "Student-t" in said and "mean" in said, said
        assert "bootstrap" in said and "IQM" in said, said
    for said in (inline["bootstrap_resamples"], meanings["bootstrap_resamples"], inline["seed"], meanings["seed"]):
        assert "IQM" in said, said
    assert "bootstrap interval" not in header + meanings["ci_level"]


def test_config_py_declares_the_sections_first():
    """A reader looking for a key finds the sections near the top of mec/config.py; the parsers, the schema writer
    and the variants live in modules of their own and are still importable from mec.config."""
    import mec.config as config
    import mec.config_parsers
    import mec.config_schema
    import mec.variants

    lines = (REPO_ROOT / "mec" / "config.py").read_text().splitlines()
    first_section = lines.index("class TaskConfig:")
    assert first_section < 150
    assert not [line for line in lines if line.startswith("def ") and "(key: str, value: Any)" in line]
    assert config.study_variants is mec.variants.study_variants
    assert config.schema_text is mec.config_schema.schema_text
    assert config.set_dotted is mec.config_parsers.set_dotted
    with pytest.raises(AttributeError):
        config.no_such_name  # noqa: B018


def test_set_dotted_is_the_one_writer_of_a_dotted_key():
    inner = {"critic": "central"}
    raw = {"training": inner, "workflow": None}
    set_dotted(raw, "training.lr", 3e-4)
    set_dotted(raw, "workflow.variants.ippo", {"training.critic": "local"})
    set_dotted(raw, ("scenario", "task", "deadline_s"), [1.0, 2.0])
    assert raw == {
        "training": {"critic": "central", "lr": 3e-4},
        "workflow": {"variants": {"ippo": {"training.critic": "local"}}},
        "scenario": {"task": {"deadline_s": [1.0, 2.0]}},
    }
    assert inner == {"critic": "central"}  # the caller's mappings are copied, never changed
    raw = {"reward": {"w_qos": 1.0}}
    set_dotted(raw, "reward.preset", "reference")  # a preset replaces the weights
    assert raw == {"reward": {"preset": "reference"}}
    with pytest.raises(ConfigError, match=r"^'training.lr' is 0.001, not a mapping, so it has no key 'x'$"):
        set_dotted({"training": {"lr": 1e-3}}, "training.lr.x", 1)
    with pytest.raises(ConfigError, match="dotted config key"):
        set_dotted({}, "training..lr", 1)
