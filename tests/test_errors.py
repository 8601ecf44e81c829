"""Bad input ends in one line, before anything is written or deleted (issue 15, items 4, 7 and 8): config checks
that RLlib or memory would otherwise enforce too late, the `mec` command's flags, and the workflow's config
handling (dry runs only, in a temporary copy of the workflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mec import cli, io
from mec.config import (
    DEFAULT_CONFIG,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_from_sections,
    load_config,
    memory_limit_bytes,
)
from test_workflow import RESULTS, copy_workflow, snakemake, tiny_config, write_config

BIG = 10**9


def one_line(message: str) -> str:
    assert "\n" not in message.strip(), message
    return message


# --------------------------------------------------------------------------- mec.config (item 4)


@pytest.mark.parametrize(
    ("raw", "keys"),
    [
        pytest.param({"evaluation": {"slots": BIG}}, "'evaluation.episodes' x 'evaluation.slots'", id="eval-slots"),
        pytest.param({"evaluation": {"episodes": BIG}}, "'evaluation.episodes' x 'evaluation.slots'", id="eval-eps"),
        pytest.param({"training": {"episode_slots": BIG, "train_batch_slots": BIG}},
                     "'training.eval_episodes' x 'training.episode_slots'", id="episode-slots"),  # fmt: skip
        pytest.param({"training": {"eval_episodes": BIG}}, "'training.eval_episodes' x 'training.episode_slots'",
                     id="eval-episodes"),  # fmt: skip
    ],
)
def test_sizes_that_cannot_fit_in_memory_are_rejected_with_estimate_and_limit(raw, keys):
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    message = one_line(str(info.value))
    assert keys in message and " GB of episode arrays" in message
    assert f"allowed: at most {memory_limit_bytes() / 1e9:.3g} GB" in message and "of RAM" in message


def test_episode_slots_of_a_billion_alone_is_rejected_too():
    with pytest.raises(ConfigError, match="training.train_batch_slots"):
        config_from_dict({"training": {"episode_slots": BIG}})


def test_the_memory_limit_is_half_the_physical_memory():
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_limit_bytes() == int(0.5 * ram)
    config_from_dict({})  # the default study fits


def test_validation_seed_equal_to_the_evaluation_seed_is_rejected():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"training": {"eval_seed": DEFAULT_CONFIG.evaluation.seed}})
    message = one_line(str(info.value))
    assert message.startswith("config key 'training.eval_seed': got 12345; allowed: a seed other than evaluation.seed")
    with pytest.raises(ConfigError, match="training.eval_seed"):
        config_from_dict({"training": {"eval_seed": 7}, "evaluation": {"seed": 7}})
    # A job's config from a few sections leaves the others at their defaults: no cross-section check there.
    assert config_from_sections(1, {"n_ue": [2]}, training={"eval_seed": 12345}).training.eval_seed == 12345


def test_minibatch_larger_than_the_batch_is_rejected_in_our_terms():
    with pytest.raises(ConfigError, match=r"^config key 'training.minibatch_size': got 1000; allowed: at most "):
        config_from_dict({"training": {"minibatch_size": 1000, "train_batch_slots": 800}})


def test_duplicate_yaml_keys_are_an_error_naming_key_and_file(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("training:\n  iterations: 3\n  lr: 1.0e-3\n  iterations: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = one_line(str(info.value))
    assert f"config file '{path}'" in message and "duplicate key 'iterations'" in message and "line 4" in message
    with pytest.raises(ConfigError, match="duplicate key 'iterations'"):
        apply_overrides({}, ["training={iterations: 3, iterations: 4}"])
    # A merge key (<<) is no duplicate of the keys beside it.
    path.write_text("anchors: {a: &t {iterations: 3}}\ntraining:\n  <<: *t\n  iterations: 4\n")
    with pytest.raises(ConfigError, match="config key 'anchors': unknown"):
        load_config(path)


def test_a_reward_preset_override_replaces_the_files_weights(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reward:\n  w_qos: 1.0\n  w_energy_per_j: 0.1\n")
    cfg = load_config(path, ["reward.preset=reference"])
    assert (cfg.reward.w_qos, cfg.reward.w_energy_per_j) == (1.0, 1e-6)


def test_results_dir_is_a_relative_folder_no_variant_may_move():
    assert DEFAULT_CONFIG.workflow.results_dir == "results"
    assert config_from_dict({"workflow": {"results_dir": "results-test"}}).workflow.results_dir == "results-test"
    for bad in ("", "/abs", "../up", "a/../b", ".hidden", 3):
        with pytest.raises(ConfigError, match="workflow.results_dir"):
            config_from_dict({"workflow": {"results_dir": bad}})
    with pytest.raises(ConfigError, match="cannot be overridden here"):
        config_from_dict({"workflow": {"variants": {"v": {"workflow.results_dir": "elsewhere"}}}})


# --------------------------------------------------------------------------- the mec command (item 7)


def run_cli(capsys, argv) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err
    return code, err


EVALUATE = ["evaluate", "--policy", "random", "--episodes", "1", "--slots", "2"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param([*EVALUATE, "--phase", "1", "--n-ue", "150"], "--n-ue 150: allowed 1..12", id="n-ue-150"),
        pytest.param([*EVALUATE, "--phase", "1", "--n-ue", "13"], "--n-ue 13: allowed 1..12", id="n-ue-13"),
        pytest.param([*EVALUATE, "--phase", "2", "--n-clusters", "60"], "--n-clusters 60: allowed 1..50",
                     id="n-clusters-60"),  # fmt: skip
        pytest.param([*EVALUATE, "--phase", "1", "--n-ue", "11", "--set", "phase1.theta_min=0.1"],
                     "--n-ue 11: allowed 1..10", id="n-ue-over-theta"),  # fmt: skip
        pytest.param(["train", "--phase", "1", "--n-ue", "13", "--seed", "0", "--out", "OUT"], "--n-ue 13",
                     id="train-n-ue-13"),  # fmt: skip
        # The config checks memory at its workflow.phases' sizes (here N = 2), the command at the job's (100 UEs).
        pytest.param(["train", "--phase", "2", "--n-clusters", "4", "--seed", "0", "--out", "OUT", "--set",
                      "workflow.phases=[1]", "--set", "phase1.n_ue=[2]", "--set", "training.eval_episodes=100000"],
                     "'training.eval_episodes' x 'training.episode_slots'", id="train-memory-at-the-jobs-size"),
        pytest.param(["evaluate", "--policy", "random", "--phase", "1", "--n-ue", "2", "--slots", str(BIG)],
                     "--slots: got 5 x 1000000000 slots", id="slots-flag-memory"),  # fmt: skip
    ],
)
def test_bad_sizes_end_in_one_line(capsys, tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    argv = [str(tmp_path / "run") if arg == "OUT" else arg for arg in argv]
    code, err = run_cli(capsys, [*argv, "--config", str(Path(__file__).parents[1] / "config.yaml")])
    assert code == 2
    assert err.startswith("error: ") and expected in one_line(err), err
    assert list(tmp_path.iterdir()) == []


def test_train_out_that_is_a_file_or_unwritable_ends_in_one_line(capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    base = ["train", "--phase", "1", "--n-ue", "2", "--seed", "0", "--set", "training.iterations=1", "--out"]
    code, err = run_cli(capsys, [*base, str(afile)])
    assert code == 2 and "is an existing file, not a directory" in one_line(err)
    code, err = run_cli(capsys, [*base, str(afile / "run")])
    assert code == 2 and f"{afile} is a file, not a directory" in one_line(err)
    assert afile.read_text() == "keep"
    # Unwritable: a read-only directory (not for root, who may write anywhere), and /proc, where even root may not.
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, err = run_cli(capsys, [*base, str(locked / "run")])
        assert code == 2 and "Permission denied" in one_line(err)
        assert list(locked.iterdir()) == []
    code, err = run_cli(capsys, [*base, "/proc/mec-no-such-run/run"])
    assert code == 2 and err.startswith("error: --out /proc/mec-no-such-run/run: ") and one_line(err)


def test_evaluate_out_that_is_a_directory_ends_in_one_line(capsys, tmp_path):
    folder = tmp_path / "table.parquet"
    folder.mkdir()
    code, err = run_cli(capsys, [*EVALUATE, "--phase", "1", "--n-ue", "2", "--out", str(folder)])
    assert code == 2 and "is a directory" in one_line(err)


# --------------------------------------------------------------------------- operating-system errors (issue 27)


@pytest.fixture
def no_evaluation(monkeypatch):
    """The command must stop before it evaluates anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("the evaluation ran before the paths were checked")

    monkeypatch.setattr(cli, "evaluation_episodes", refuse)


def _loop(tmp_path: Path) -> Path:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return loop


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        pytest.param(lambda tmp: Path("/proc/table.parquet"), "cannot write a file in /proc: ", id="proc"),
        pytest.param(lambda tmp: tmp / "afile" / "table.parquet", "afile is a file, not a directory",
                     id="under-a-file"),  # fmt: skip
        pytest.param(lambda tmp: _loop(tmp) / "table.parquet", "loop cannot be followed (Too many levels of "
                     "symbolic links)", id="symlink-loop"),  # fmt: skip
        pytest.param(lambda tmp: tmp / ("a" * 300 + ".parquet"), "is 308 bytes long; allowed: at most 255 bytes",
                     id="name-too-long"),  # fmt: skip
    ],
)
def test_an_out_that_cannot_be_written_ends_in_one_line_before_the_evaluation(capsys, tmp_path, no_evaluation, out,
                                                                              expected):  # fmt: skip
    (tmp_path / "afile").write_text("keep")
    path = out(tmp_path)
    for flag in ("--out", "--schedule-out"):
        code, err = run_cli(capsys, [*EVALUATE, "--phase", "1", "--n-ue", "2", flag, str(path)])
        assert code == 2 and err.startswith(f"error: {flag} {path}: ") and expected in one_line(err), err
    assert (tmp_path / "afile").read_text() == "keep"


def test_a_full_disk_ends_in_one_line_before_the_work(capsys, tmp_path, monkeypatch, no_evaluation):
    """The probe file's write fails as on a full disk (ENOSPC): evaluate and train stop before any work, the
    training before Ray starts."""
    import errno

    from mec import io

    real_write = os.write

    def full(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(io.os, "write", full)
    out = tmp_path / "t.parquet"
    code, err = run_cli(capsys, [*EVALUATE, "--phase", "1", "--n-ue", "2", "--out", str(out)])
    assert code == 2 and f"cannot write a file in {tmp_path}: No space left on device" in one_line(err), err
    monkeypatch.setitem(sys.modules, "mec.backends", None)  # importing the backends (Ray) would fail the test
    run = tmp_path / "run"
    code, err = run_cli(capsys, ["train", "--phase", "1", "--n-ue", "2", "--seed", "0", "--out", str(run)])
    assert code == 2 and f"--out {run}: cannot write a file in {run}: No space left on device" in one_line(err)
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and list(run.iterdir()) == []  # no probe left behind


def test_schedule_out_equal_to_out_is_refused(capsys, tmp_path, no_evaluation):
    out = tmp_path / "t.parquet"
    code, err = run_cli(capsys, [*EVALUATE, "--phase", "1", "--n-ue", "2", "--out", str(out),
                                 "--schedule-out", str(tmp_path / "." / "t.parquet")])  # fmt: skip
    assert code == 2 and "the same file as --out" in one_line(err) and str(out) in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_config_of_a_device_or_fifo_is_refused_without_reading_it(capsys, tmp_path, special):
    if special == "fifo":
        special = str(tmp_path / "config.fifo")
        os.mkfifo(special)  # opening it would block until a writer comes
    code, err = run_cli(capsys, [*EVALUATE, "--phase", "1", "--n-ue", "2", "--config", special])
    assert code == 2 and f"config file '{special}'" in err and "not a regular file" in one_line(err)


def test_a_config_file_larger_than_a_study_config_is_refused(tmp_path):
    from mec.config import MAX_CONFIG_BYTES

    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes") as info:
        load_config(big)
    assert str(big) in str(info.value)


def test_errors_quote_the_flags_given_not_the_config_defaults(capsys):
    """--episodes 1 at --n-ue 2 with a huge evaluation.slots: the message speaks of the flag and of 2 UEs, not of
    evaluation.episodes = 5 and phase 2's 100 UEs (the config's own sizes)."""
    code, err = run_cli(capsys, ["evaluate", "--policy", "all-local", "--phase", "1", "--n-ue", "2", "--episodes", "1",
                                 "--set", f"evaluation.slots={BIG}"])  # fmt: skip
    line = one_line(err)
    assert code == 2 and f"--episodes x 'evaluation.slots': got 1 x {BIG} slots at 2 UEs" in line, line
    assert "100 UEs" not in line and "5 x" not in line


def test_a_metrics_file_without_provenance_is_named(tmp_path):
    import pandas as pd

    from mec import io
    from mec.runs import check_metrics_file

    path = tmp_path / "metrics.parquet"
    pd.DataFrame({"iteration": [1, 2]}).to_parquet(path)
    with pytest.raises(io.CorruptFileError) as info:
        check_metrics_file(path)
    assert str(path) in str(info.value) and "no provenance" in str(info.value) and "\n" not in str(info.value)
    assert io.read_provenance(path).get("config") is None  # .get still answers None


def test_a_checkpoint_config_error_names_the_checkpoint_file(capsys, tmp_path):
    from mec.runs import CHECKPOINT_META, META_KEYS

    checkpoint = tmp_path / "best"
    checkpoint.mkdir()
    meta = {key: 1 for key in META_KEYS}
    meta.update(config={"training": {"lr": -1.0}}, phase=1, n=2, seed=0, iteration=1)
    (checkpoint / CHECKPOINT_META).write_text(json.dumps(meta))
    code, err = run_cli(capsys, ["evaluate", "--checkpoint", str(checkpoint)])
    assert code == 2 and f"config of checkpoint {checkpoint / CHECKPOINT_META}: config key 'training.lr'" in err


@pytest.mark.parametrize(
    ("folder", "iteration", "expected"),
    [
        pytest.param("iter_0002", 3, "its own history", id="iter-folder"),
        pytest.param("final", 2, "says the run has 3 iterations", id="final-short"),
        pytest.param("best", 99, "says the run has 3 iterations", id="past-the-run"),
    ],
)
def test_a_checkpoint_whose_iteration_its_run_contradicts_is_refused(capsys, tmp_path, folder, iteration, expected):
    """Its history copy (rows 1..2 in iter_0002, 1..3 elsewhere), its folder name and run.json (3 iterations) say
    another iteration than its metadata: one line naming the file, before any policy is loaded."""
    import pandas as pd

    from mec.runs import CHECKPOINT_META

    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / folder
    checkpoint.mkdir(parents=True)
    meta = {"config": {}, "phase": 1, "n": 2, "seed": 0, "iteration": iteration, "backend": "rllib"}
    (checkpoint / CHECKPOINT_META).write_text(json.dumps(meta))
    rows = 2 if folder == "iter_0002" else 3
    pd.DataFrame({"iteration": list(range(1, rows + 1))}).to_parquet(checkpoint / "metrics.parquet")
    (run / "run.json").write_text(json.dumps({"iterations": 3, "phase": 1, "n": 2, "seed": 0}))
    code, err = run_cli(capsys, ["evaluate", "--checkpoint", str(checkpoint)])
    line = one_line(err)
    assert code == 2 and f"{checkpoint / CHECKPOINT_META}: iteration {iteration}, but " in line and expected in line


def test_reproduce_errors_name_the_files(capsys, tmp_path):
    import pandas as pd

    committed, rerun = tmp_path / "committed.parquet", tmp_path / "rerun.parquet"
    pd.DataFrame({"a": [1.0]}).to_parquet(committed)
    pd.DataFrame({"a": [1.0]}).to_parquet(rerun)
    code, err = run_cli(capsys, ["reproduce", "--committed", str(committed), "--rerun", str(rerun)])
    assert code == 2 and f"--committed {committed} and --rerun {rerun}: no key column" in one_line(err), err
    code, err = run_cli(capsys, ["reproduce", "--committed", "/dev/zero", "--rerun", str(rerun)])
    assert code == 2 and "--committed /dev/zero: not a regular file" in one_line(err), err


def test_slot_s_below_the_deadlines_with_carry_over_is_refused():
    """With carry-over, slot_s is the time between slot starts: a slot shorter than the latest deadline is refused
    (1e-12 s passed before); without carry-over slot_s is unused and any positive value is accepted."""
    from mec.config import config_from_dict

    with pytest.raises(ConfigError, match=r"scenario.slot_s.*1e-12.*scenario.task.deadline_s.high = 4 s"):
        config_from_dict({"scenario": {"carry_over_queue": True, "slot_s": 1e-12}})
    with pytest.raises(ConfigError, match="scenario.slot_s"):
        config_from_dict({"scenario": {"carry_over_queue": True, "slot_s": 3.9}})
    assert config_from_dict({"scenario": {"carry_over_queue": True, "slot_s": 4.0}}).scenario.slot_s == 4.0
    tight = {"carry_over_queue": True, "slot_s": 2.0, "task": {"deadline_s": [1.0, 2.0]}}
    assert config_from_dict({"scenario": tight}).scenario.slot_s == 2.0
    assert config_from_dict({"scenario": {"slot_s": 1e-12}}).scenario.slot_s == 1e-12


def test_set_reward_preset_is_accepted_by_the_command(capsys, tmp_path):
    out = tmp_path / "t.parquet"
    code = cli.main([*EVALUATE, "--phase", "1", "--n-ue", "2", "--set", "reward.preset=reference", "--out", str(out),
                     "--config", str(Path(__file__).parents[1] / "config.yaml")])  # fmt: skip
    assert code == 0 and out.is_file()


def test_a_failed_job_writes_its_traceback_into_its_log(tmp_path):
    """What looks like a bug (here a TypeError) ends the job's log with its traceback."""
    log = tmp_path / "job.log"
    script = tmp_path / "job.py"
    script.write_text(f"from mec import io\nio.log_to_file({str(log)!r})\nraise TypeError('boom in the job')\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "TypeError: boom in the job" in text
    assert "TypeError: boom in the job" in result.stderr  # and on the console, as before


@pytest.mark.parametrize(
    ("raise_", "line"),
    [
        pytest.param("raise ValueError('run: locked; wait')", "the job failed: run: locked; wait", id="project"),
        pytest.param("open('/proc/version/x', 'w')", "the job failed: NotADirectoryError: [Errno 20] Not a "
                     "directory: '/proc/version/x'", id="os-error"),  # fmt: skip
        pytest.param("io.read_parquet(__file__)", "not a readable Parquet file", id="corrupt-file"),
    ],
)
def test_a_job_failing_on_purpose_ends_its_log_in_one_line(tmp_path, raise_, line):
    """The project's own errors (a ValueError raised by its code, a corrupt file) and operating-system errors say
    it all in one line: the log ends with it, without a traceback; the console gets it too."""
    log = tmp_path / "job.log"
    script = tmp_path / "job.py"
    script.write_text(f"from mec import io\nio.log_to_file({str(log)!r})\n{raise_}\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    text = log.read_text()
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert line in text and line.removeprefix("the job failed: ") in result.stderr
    assert "Traceback" not in result.stderr


def test_a_library_value_error_keeps_its_traceback():
    from mec import io

    try:
        int("twelve")
    except ValueError as exc:  # raised by this file's frame: the project's own
        assert io.one_line_failure(exc)
    try:
        json.loads("{not json")
    except ValueError as exc:  # raised inside the json module: may be a bug of the caller, keep the traceback
        assert not io.one_line_failure(exc)
    assert not io.one_line_failure(KeyError("config"))


# --------------------------------------------------------------------------- the workflow (items 7 and 8)


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("errors"))


def config_error_line(result) -> str:
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "rror" in line]
    assert result.returncode != 0 and len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith("Error: invalid config: ")
    return errors[0]


def test_a_quoted_integer_gets_no_exponent_hint(workflow, tmp_path):
    raw = tiny_config()
    raw["training"]["iterations"] = "2"
    line = config_error_line(snakemake(workflow, "-n", "--cores", "1", "--configfile",
                                       str(write_config(tmp_path / "q.yaml", raw))))  # fmt: skip
    assert "'training.iterations'" in line and "signed exponent" not in line and "without quotes" in line


def test_a_duplicate_key_in_a_configfile_stops_the_workflow(workflow, tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text((Path(workflow) / ".test/config.yaml").read_text() + "\nplotting:\n  dpi: 90\n")
    line = config_error_line(snakemake(workflow, "-n", "--cores", "1", "--configfile", str(path)))
    assert f"config file '{path}'" in line and "duplicate key 'plotting'" in line


def test_the_validation_seed_equal_to_the_evaluation_seed_stops_the_workflow(workflow, tmp_path):
    configfile = write_config(tmp_path / "s.yaml", tiny_config(training__eval_seed=12345))
    assert "'training.eval_seed'" in config_error_line(snakemake(workflow, "-n", "--cores", "1", "--configfile",
                                                                 str(configfile)))  # fmt: skip


def test_numbers_on_the_snakemake_command_line_work_as_in_a_config_file(workflow):
    result = snakemake(workflow, "-n", "--cores", "1", "--quiet", "rules", "--configfile", ".test/config.yaml",
                       "--config", "training={iterations: 3, lr: 3e-4, use_gpu: false}", "reward={preset: reference}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    bad = snakemake(workflow, "-n", "--cores", "1", "--configfile", ".test/config.yaml",
                    "--config", "training={iterations: 0}")  # fmt: skip
    assert "'training.iterations'" in config_error_line(bad)


def planned_outputs(workdir: Path, *args: str) -> set[str]:
    result = snakemake(workdir, "--cores", "1", "--summary", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    return {row[0] for row in rows[1:] if len(row) > 1}


def test_the_tiny_study_writes_into_its_own_results_dir(workflow):
    assert RESULTS != "results"
    tiny = planned_outputs(workflow, "--configfile", ".test/config.yaml")
    study = planned_outputs(workflow)
    assert tiny and all(path.startswith(f"{RESULTS}/") for path in tiny), sorted(tiny)[:5]
    assert study and all(path.startswith("results/") or path.startswith("docs/") for path in study)
    assert not tiny & study


def test_a_failed_workflow_job_writes_its_traceback_into_its_log(tmp_path):
    workdir = copy_workflow(tmp_path)
    script = workdir / "workflow_scripts" / "evaluate_baselines.py"
    marker = "def main(smk) -> None:\n"
    assert marker in script.read_text()
    # This copy only: the job fails at its start.
    script.write_text(script.read_text().replace(marker, marker + "    raise RuntimeError('job broken on purpose')\n"))
    target = f"{RESULTS}/phase1/n2/baselines/summary.parquet"
    result = snakemake(workdir, target, "--cores", "1", "--configfile", ".test/config.yaml")
    assert result.returncode != 0
    log = workdir / f"{RESULTS}/logs/evaluate_baselines/phase1_n2.log"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: job broken on purpose" in text
    assert not (workdir / target).exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(None, "not found", id="missing"),
        pytest.param("dir", "IsADirectoryError", id="directory"),
        pytest.param(b"\xa1\xff\x00binary", "cannot be read (UnicodeDecodeError", id="binary"),
        pytest.param(b"training: [1,\n", "invalid YAML", id="invalid-yaml"),
    ],
)
def test_make_study_with_a_bad_config_file_stops_in_one_line_before_snakemake(tmp_path, content, needle):
    """`make study CONFIG=...` reads the file first (python -m mec.config): Snakemake's own reading of --configfile
    would end in a traceback. Nothing runs and nothing is written."""
    path = tmp_path / "study.yaml"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(["make", "-s", "--no-print-directory", "study", f"CONFIG={path}"], cwd=repo,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0] and str(path) in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "snakemake" not in result.stdout + result.stderr


def test_the_workflow_path_refuses_a_checkpoint_whose_iteration_its_folder_contradicts(tmp_path):
    """mec.backends.load_policy (what evaluate_policy and every evaluation load through) makes the same iteration
    check as `mec evaluate`, before any module is loaded."""
    from mec import backends
    from mec.runs import CHECKPOINT_META

    checkpoint = tmp_path / "run" / "checkpoints" / "iter_0002"
    checkpoint.mkdir(parents=True)
    meta = {"config": {}, "phase": 1, "n": 2, "seed": 0, "iteration": 5, "backend": "rllib"}
    (checkpoint / CHECKPOINT_META).write_text(json.dumps(meta))
    with pytest.raises(io.BadCheckpointError, match=r"iteration 5, but its folder is iter_0002; use an unaltered"):
        backends.load_policy(checkpoint)
