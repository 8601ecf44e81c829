"""Training jobs end to end (Ray, RLlib new API stack): `python -m mec train` and `evaluate --checkpoint`.

Every run is tiny: 10-slot episodes, 20 slots per iteration, 2 iterations, 1 CPU, no env runners. The training
runs are subprocesses (as the workflow runs them); their PYTHONHASHSEED is pinned so that a dependence of the
results on Python's string hashing shows up deterministically rather than as a flaky test.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mec.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG_YAML = """\
phase2:
  n_users: 8
  n_clusters: [2]
  kmeans_n_init: 2
training:
  iterations: 2
  episode_slots: 10
  eval_episodes: 2
  train_batch_slots: 20
  minibatch_size: 10
  num_epochs: 1
  checkpoint_every: 1
  num_cpus: 1
  num_env_runners: 0
"""
SLOTS_PER_ITER = 20
CHECKPOINTS = ("latest", "best", "final", "iter_0001", "iter_0002")
COMMON_COLUMNS = (
    "iteration",
    "env_steps",
    "wall_s",
    "train/ue/policy_loss",
    "train/scheduler/policy_loss",
    "eval/reward_per_slot",
    "eval/mean_qos",
    "eval/deadline_met_fraction",
    "eval/offload_fraction",
    "eval/energy_per_task_j",
    "eval/sum_qos_per_slot",
)


def _set_order(hash_seed: int) -> str:
    code = "print(list({'ue', 'scheduler'}))"  # the phase-1 role names
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout


def _two_hash_seeds() -> tuple[int, int]:
    """Two PYTHONHASHSEED values under which a set of the phase-1 role names iterates in different orders."""
    first = _set_order(0)
    for seed in range(1, 50):
        if _set_order(seed) != first:
            return 0, seed
    raise AssertionError("no two hash seeds order the role names differently")


@pytest.fixture(scope="module")
def hash_seeds():
    return _two_hash_seeds()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("training")
    (d / "config.yaml").write_text(CONFIG_YAML)
    return d


def train_args(workdir: Path, phase: int, n: int, out: Path, *extra: str) -> list[str]:
    size = ["--n-ue", str(n)] if phase == 1 else ["--n-clusters", str(n)]
    return ["train", "--phase", str(phase), *size, "--seed", "0", "--out", str(out),
            "--config", str(workdir / "config.yaml"), "--num-cpus", "1", *extra]  # fmt: skip


def mec(args: list[str], hash_seed: int = 0, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": str(hash_seed)}
    return subprocess.run([sys.executable, "-m", "mec", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def meta(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "mec_checkpoint.json").read_text())


def metrics(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "metrics.parquet")


@pytest.fixture(scope="module")
def phase1_run(workdir, hash_seeds):
    out = workdir / "p1"
    proc = mec(train_args(workdir, 1, 2, out), hash_seed=hash_seeds[0])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.fixture(scope="module")
def phase2_run(workdir):
    out = workdir / "p2"
    proc = mec(train_args(workdir, 2, 2, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


# --------------------------------------------------------------------------- smoke runs


def check_run(run: Path, phase: int, n_groups: int, n_ue: int, stages: int, iterations: int = 2):
    frame = metrics(run)
    assert frame["iteration"].tolist() == list(range(1, iterations + 1))
    for column in COMMON_COLUMNS:
        assert column in frame.columns, column
        assert frame[column].notna().all(), column
    # env steps: one per stage, SLOTS_PER_ITER slots per iteration.
    assert frame["env_steps"].tolist() == [SLOTS_PER_ITER * stages * i for i in range(1, iterations + 1)]
    assert (frame["wall_s"].diff().dropna() > 0).all()
    for column in ("eval/mean_qos", "eval/deadline_met_fraction", "eval/offload_fraction"):
        assert frame[column].between(0, 1).all(), column
    assert (frame["eval/energy_per_task_j"] > 0).all()
    np.testing.assert_allclose(frame["eval/mean_qos"], frame["eval/sum_qos_per_slot"] / n_ue, rtol=1e-9)
    group = "ue" if phase == 1 else "cluster"
    for column in (f"eval/{group}_qos_per_slot", f"eval/{group}_energy_j_per_slot"):
        assert column in frame.columns, column
        assert all(len(v) == n_groups for v in frame[column]), column
    np.testing.assert_allclose([np.sum(v) for v in frame[f"eval/{group}_qos_per_slot"]],
                               frame["eval/sum_qos_per_slot"], rtol=1e-9)  # fmt: skip
    np.testing.assert_allclose([np.sum(v) for v in frame[f"eval/{group}_energy_j_per_slot"]],
                               frame["eval/sum_energy_j_per_slot"], rtol=1e-9)  # fmt: skip
    ckpt = run / "checkpoints"
    for name in CHECKPOINTS[:3] + tuple(f"iter_{i:04d}" for i in range(1, iterations + 1)):
        assert (ckpt / name / "mec_checkpoint.json").is_file(), name
        m = meta(ckpt / name)
        assert (m["phase"], m["n"], m["seed"]) == (phase, n_groups if phase == 2 else n_ue, 0)
    assert meta(ckpt / "latest")["iteration"] == meta(ckpt / "final")["iteration"] == iterations
    for i in range(1, iterations + 1):
        assert meta(ckpt / f"iter_{i:04d}")["iteration"] == i
        row = frame[frame["iteration"] == i].iloc[0]
        assert meta(ckpt / f"iter_{i:04d}")["eval_reward_per_slot"] == row["eval/reward_per_slot"]
    best_row = frame.loc[frame["eval/reward_per_slot"].idxmax()]
    assert meta(ckpt / "best")["iteration"] == best_row["iteration"]
    assert meta(ckpt / "best")["eval_reward_per_slot"] == best_row["eval/reward_per_slot"]
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["status"] == "complete" and run_json["iterations"] == iterations
    assert run_json["machine"]["cpus"] == os.cpu_count() and run_json["commit"] != ""  # where it was trained
    modules = sorted(p.name for p in (ckpt / "final" / "learner_group" / "learner" / "rl_module").iterdir()
                     if p.is_dir())  # fmt: skip
    assert modules == sorted(["ue", "scheduler"] + (["coordinator"] if phase == 2 else []))


def hidden_entries(run: Path) -> list[str]:
    """Temporary checkpoint directories (.<name>.<random>, .<name>.old) left in checkpoints/."""
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("."))


def test_train_phase1_smoke(phase1_run):
    run, proc = phase1_run
    check_run(run, phase=1, n_groups=2, n_ue=2, stages=2)
    assert hidden_entries(run) == []
    assert "iter 2/2" in proc.stdout


def test_train_phase2_smoke(phase2_run):
    run, _ = phase2_run
    check_run(run, phase=2, n_groups=2, n_ue=8, stages=3)
    assert hidden_entries(run) == []
    assert "train/coordinator/policy_loss" in metrics(run).columns


def test_rerunning_a_finished_run_does_not_retrain(phase1_run, workdir, hash_seeds):
    run, _ = phase1_run
    before = (run / "metrics.parquet").read_bytes()
    stamp = (run / "metrics.parquet").stat().st_mtime_ns
    final_stamp = (run / "checkpoints" / "final" / "mec_checkpoint.json").stat().st_mtime_ns
    proc = mec(train_args(workdir, 1, 2, run), hash_seed=hash_seeds[0])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not retrained" in proc.stdout
    assert (run / "metrics.parquet").read_bytes() == before
    assert (run / "metrics.parquet").stat().st_mtime_ns == stamp
    assert (run / "checkpoints" / "final" / "mec_checkpoint.json").stat().st_mtime_ns == final_stamp


def test_a_run_with_another_seed_in_the_same_directory_is_refused(phase1_run, workdir, tmp_path):
    run, _ = phase1_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "checkpoints" / "final")  # not complete, so it would resume
    args = train_args(workdir, 1, 2, copy)
    args[args.index("--seed") + 1] = "1"
    proc = mec(args)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert "cannot resume this run here (it holds phase 1, size 2, seed 0)" in proc.stderr


def test_a_complete_run_of_another_config_is_not_taken_for_this_one(phase1_run, workdir, tmp_path):
    run, _ = phase1_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)  # complete: checkpoints/final is there
    proc = mec(train_args(workdir, 1, 2, copy, "--set", "training.lr=0.0005"))
    assert proc.returncode == 2
    assert "not retrained" not in proc.stdout
    assert "cannot resume this run here (it was trained with another config)" in proc.stderr


# --------------------------------------------------------------------------- resume


def test_raising_iterations_resumes_and_keeps_the_earlier_rows(phase1_run, workdir, tmp_path, hash_seeds):
    run, _ = phase1_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    proc = mec(train_args(workdir, 1, 2, copy, "--set", "training.iterations=4"), hash_seed=hash_seeds[0])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming after iteration 2" in proc.stdout
    frame = metrics(copy)
    check_run(copy, phase=1, n_groups=2, n_ue=2, stages=2, iterations=4)
    pd.testing.assert_frame_equal(frame.iloc[:2].reset_index(drop=True), metrics(run))
    assert frame["wall_s"].iloc[2] > frame["wall_s"].iloc[1]
    assert hidden_entries(copy) == []


def test_a_kill_between_metrics_and_checkpoint_reruns_that_iteration(phase1_run, workdir, tmp_path, hash_seeds):
    """State of a job killed after writing iteration 2's metrics row, while saving its checkpoint: metrics has rows
    1 and 2, checkpoints hold iteration 1, and _write_checkpoint's temporary directory (.latest.<random>) holds a
    partly written RLlib checkpoint without mec_checkpoint.json."""
    run, _ = phase1_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpt = copy / "checkpoints"
    partial = ckpt / ".latest.k1ll3d0"
    shutil.copytree(ckpt / "iter_0002", partial)
    (partial / "mec_checkpoint.json").unlink()
    for name in ("final", "iter_0002", "latest", "best"):
        shutil.rmtree(ckpt / name)
    shutil.copytree(ckpt / "iter_0001", ckpt / "latest")
    shutil.copytree(ckpt / "iter_0001", ckpt / "best")
    (copy / "run.json").unlink()
    assert metrics(copy)["iteration"].tolist() == [1, 2]
    proc = mec(train_args(workdir, 1, 2, copy), hash_seed=hash_seeds[0])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming after iteration 1" in proc.stdout
    check_run(copy, phase=1, n_groups=2, n_ue=2, stages=2)
    pd.testing.assert_frame_equal(metrics(copy).iloc[:1], metrics(run).iloc[:1])
    # The killed save's temporary directory is a full-size checkpoint copy; the resumed job should remove it
    # rather than leave one behind per kill.
    assert hidden_entries(copy) == []


def _remove_ray_temp_dir_of(pid: int) -> None:
    """The killed job's Ray temp dir (/tmp/ray-mec-*, which it would have removed itself), found by its driver log."""
    for d in Path("/tmp").glob("ray-mec-*"):
        if any(d.glob(f"session_*/logs/python-core-driver-*_{pid}.log")):
            shutil.rmtree(d, ignore_errors=True)


def test_a_killed_job_completes_when_rerun(workdir, tmp_path, hash_seeds):
    out = tmp_path / "run"
    args = train_args(workdir, 1, 2, out, "--set", "training.iterations=3")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": str(hash_seeds[0])}
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mec", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            path = out / "metrics.parquet"
            if path.exists() and len(pd.read_parquet(path)) >= 1:
                break
            time.sleep(0.01)
        was_running = proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)  # the job and everything it started in its session
    finally:
        proc.wait()
        _remove_ray_temp_dir_of(proc.pid)
    assert was_running, (tmp_path / "log.txt").read_text()[-2000:]
    assert not (out / "checkpoints" / "final").exists()
    rows_at_kill = len(metrics(out))
    assert 1 <= rows_at_kill < 3
    rerun = mec(args, hash_seed=hash_seeds[0])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    check_run(out, phase=1, n_groups=2, n_ue=2, stages=2, iterations=3)


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_training_metrics(phase1_run, workdir, tmp_path, hash_seeds):
    """Two jobs with the same config and seed must give the same numbers, whatever PYTHONHASHSEED the process got."""
    run, _ = phase1_run
    other = tmp_path / "again"
    proc = mec(train_args(workdir, 1, 2, other), hash_seed=hash_seeds[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = metrics(run), metrics(other)
    np.testing.assert_array_equal(a["eval/reward_per_slot"], b["eval/reward_per_slot"])
    columns = [c for c in a.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(a[columns], b[columns])


def test_same_seed_gives_identical_metrics_at_the_default_epochs(workdir, tmp_path):
    """The same at RLlib's multi-epoch minibatching (the default 8 epochs, several minibatches per epoch), where each
    module's batch is reshuffled from one global generator in the order of the batch's modules: hash seeds 0 and 2
    (which order the learner connectors' module dicts differently) must give the same numbers."""
    config = tmp_path / "epochs.yaml"
    config.write_text(CONFIG_YAML.replace("num_epochs: 1", "num_epochs: 8").replace("train_batch_slots: 20",
                                                                                   "train_batch_slots: 40"))
    frames = []
    for hash_seed in (0, 2):
        out = tmp_path / f"hash{hash_seed}"
        args = train_args(workdir, 1, 3, out)
        args[args.index("--config") + 1] = str(config)
        proc = mec(args, hash_seed=hash_seed)
        assert proc.returncode == 0, proc.stderr[-2000:]
        frames.append(metrics(out))
    columns = [c for c in frames[0].columns if c != "wall_s"]
    assert frames[0]["train/ue/policy_loss"].abs().sum() > 0
    pd.testing.assert_frame_equal(frames[0][columns], frames[1][columns])


@pytest.mark.parametrize("ue_rows", [0, 3])
def test_a_resumed_run_equals_the_uninterrupted_one_row_for_row(workdir, tmp_path, ue_rows):
    """Stopping after iteration 2 and resuming to 4 gives exactly the uninterrupted run's rows: the checkpoint holds
    every random state the next iteration draws from (episode seeds, action noise, minibatch shuffles, and with
    training.ue_rows_per_slot the UE rows each update draws)."""
    config = tmp_path / "resume.yaml"
    config.write_text(CONFIG_YAML.replace("num_epochs: 1", "num_epochs: 3").replace("iterations: 2", "iterations: 4")
                      + f"  ue_rows_per_slot: {ue_rows}\n")  # fmt: skip
    short = tmp_path / "short.yaml"
    short.write_text(config.read_text().replace("iterations: 4", "iterations: 2"))
    runs = {}
    for name, steps in (("straight", [config]), ("resumed", [short, config])):
        out = tmp_path / name
        for step in steps:
            args = train_args(workdir, 2, 2, out)
            args[args.index("--config") + 1] = str(step)
            proc = mec(args)
            assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = metrics(out)
    assert "resuming after iteration 2" in proc.stdout + proc.stderr
    columns = [c for c in runs["straight"].columns if c != "wall_s"]
    assert runs["resumed"]["iteration"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(runs["straight"][columns], runs["resumed"][columns])


# --------------------------------------------------------------------------- restoring modules


@pytest.fixture(scope="module")
def ray_session():
    import ray

    tmp = tempfile.mkdtemp(prefix="ray-mectest-", dir="/tmp")
    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _temp_dir=tmp)  # fmt: skip
    yield
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


def decisions_on(policy, cfg, setup, slots=3):
    from mec.evaluation import evaluation_episodes
    from mec.simulator import Simulator

    episodes = evaluation_episodes(cfg, setup, 3, slots, seed=99)
    sim = Simulator(cfg, setup, slots)
    state = sim.reset_from(episodes)
    out = []
    for _ in range(slots):
        d = policy.act(state)
        out.append(d)
        sim.step(d)
        if not sim.done:
            state = sim.state()
    return out


def assert_same_decisions(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.offload, y.offload)
        np.testing.assert_array_equal(x.priority, y.priority)
        np.testing.assert_array_equal(x.cpu_weight, y.cpu_weight)
        np.testing.assert_allclose(x.spectrum_weight, y.spectrum_weight, rtol=1e-6)


def test_restored_modules_act_like_the_live_algorithm(phase2_run, workdir, ray_session, tmp_path):
    from mec.envs.features import FeatureScales
    from mec.backends.rllib.policy import LearnedPolicy
    from mec.scenario import PhaseSetup
    from mec.backends.rllib.training import build_ppo_config, load_modules, module_specs
    from mec.runs import CHECKPOINT_META

    run, _ = phase2_run
    final = run / "checkpoints" / "final"
    cfg = load_config(workdir / "config.yaml")
    setup = PhaseSetup.from_config(cfg, 2, 2)
    scales = FeatureScales(cfg.scenario)
    restored, m = load_modules(final)
    assert sorted(restored) == ["coordinator", "scheduler", "ue"] and m["iteration"] == 2

    algo = build_ppo_config(cfg, 2, 2, 0).build_algo()
    try:
        fresh = decisions_on(LearnedPolicy({mid: algo.get_module(mid) for mid in module_specs(cfg, 2)}, scales),
                             cfg, setup)  # fmt: skip
        algo.restore_from_path(str(final))
        live = {mid: algo.get_module(mid) for mid in module_specs(cfg, 2)}
        from_live = decisions_on(LearnedPolicy(live, scales), cfg, setup)
        from_disk = decisions_on(LearnedPolicy(restored, scales), cfg, setup)
        assert_same_decisions(from_live, from_disk)
        # Not vacuous: the untrained modules of a new algorithm with the same seed decide differently.
        assert not all(np.array_equal(x.priority, y.priority) for x, y in zip(fresh, from_live))

        # A further iteration, saved the way training saves, restores to what the live modules now do.
        algo.train()
        saved = tmp_path / "ckpt"
        algo.save_to_path(str(saved))
        (saved / CHECKPOINT_META).write_text(json.dumps({**m, "iteration": 3}))
        trained = {mid: algo.get_module(mid) for mid in module_specs(cfg, 2)}
        after = decisions_on(LearnedPolicy(trained, scales), cfg, setup)
        assert_same_decisions(after, decisions_on(LearnedPolicy(load_modules(saved)[0], scales), cfg, setup))
        assert not all(np.array_equal(x.priority, y.priority) for x, y in zip(after, from_live))
    finally:
        algo.stop()


# --------------------------------------------------------------------------- evaluate --checkpoint


def test_evaluate_checkpoint_writes_summary_slots_and_schedule(phase2_run, tmp_path):
    run, _ = phase2_run
    best = run / "checkpoints" / "best"
    # On the validation episodes (training.eval_seed) the checkpoint was picked on, its reward is the saved one.
    eval_seed = str(meta(best)["config"]["training"]["eval_seed"])
    proc = mec(["evaluate", "--checkpoint", str(best), "--episodes", "2", "--slots", "10", "--seed", eval_seed,
                "--json", "--out", "a.parquet", "--schedule-out", "s.parquet", "--best-of", "0"],
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    m = meta(best)
    assert summary["phase"] == 2 and summary["n_ue"] == 8 and summary["n_clusters"] == 2
    assert summary["policy"] == f"mappo-seed0-iter{m['iteration']}"
    assert (summary["episodes"], summary["slots"], summary["tasks"]) == (2, 20, 160)
    # 2 episodes x 10 slots from evaluation.seed are exactly the training job's evaluation episodes.
    assert summary["reward_per_slot"] == pytest.approx(m["eval_reward_per_slot"], rel=1e-9)
    slots = pd.read_parquet(tmp_path / "a.parquet")
    assert len(slots) == 20 and set(slots["policy"]) == {summary["policy"]}
    assert slots["reward"].mean() == pytest.approx(summary["reward_per_slot"], rel=1e-12)
    schedule = pd.read_parquet(tmp_path / "s.parquet")
    assert len(schedule) == 2 * 10 * 8
    assert not schedule.duplicated(["episode", "slot", "ue"]).any()
    assert sorted(schedule["ue"].unique()) == list(range(8))
    assert set(schedule["cluster"]) <= {0, 1}
    off = schedule[schedule["offload"]]
    local = schedule[~schedule["offload"]]
    assert len(off) == slots["n_offloaded"].sum()
    assert (off["exec_end_s"] >= off["exec_start_s"]).all()
    assert (off["exec_start_s"] >= off["upload_end_s"]).all()
    assert (off["upload_end_s"] > 0).all()
    assert local[["upload_end_s", "exec_start_s", "exec_end_s"]].isna().all().all()
    np.testing.assert_allclose(off["completion_time_s"], off["exec_end_s"])
    per_slot_qos = schedule.groupby(["episode", "slot"])["qos"].sum().to_numpy()
    np.testing.assert_allclose(per_slot_qos, slots.sort_values(["episode", "slot"])["sum_qos"], rtol=1e-12)


def test_evaluate_checkpoint_accepts_a_relative_path(phase2_run, monkeypatch, capsys):
    from mec.cli import main

    run, _ = phase2_run
    monkeypatch.chdir(run.parent)
    code = main(["evaluate", "--checkpoint", f"{run.name}/checkpoints/final", "--episodes", "1", "--slots", "3",
                 "--json", "--best-of", "0"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["slots"] == 3


@pytest.mark.parametrize(
    "case",
    ["not-a-checkpoint", "missing", "with-phase", "no-modules"],
)
def test_evaluate_checkpoint_errors_are_one_line_and_exit_2(phase2_run, tmp_path, capsys, case):
    from mec.cli import main

    run, _ = phase2_run
    args = ["evaluate", "--episodes", "1", "--slots", "2"]
    if case == "not-a-checkpoint":
        args += ["--checkpoint", str(run)]  # a run directory, not one of its checkpoints
    elif case == "missing":
        args += ["--checkpoint", str(tmp_path / "nowhere")]
    elif case == "with-phase":
        args += ["--checkpoint", str(run / "checkpoints" / "final"), "--phase", "2"]
    else:
        fake = tmp_path / "fake"
        fake.mkdir()
        shutil.copy(run / "checkpoints" / "final" / "mec_checkpoint.json", fake)
        args += ["--checkpoint", str(fake)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err


def test_minibatches_are_counted_in_slots_per_role_module():
    # RLlib slices each module's own batch; a role module has one sample per slot, so training.minibatch_size
    # slots per minibatch means exactly that number (not times the number of roles), and the batch is
    # train_batch_slots env slots = train_batch_slots * stages env steps.
    from mec.config import config_from_dict
    from mec.backends.rllib.training import build_ppo_config

    cfg = config_from_dict(
        {"phase2": {"n_users": 8, "n_clusters": [2]},
         "training": {"train_batch_slots": 40, "episode_slots": 20, "minibatch_size": 10}}
    )
    ppo = build_ppo_config(cfg, 2, 2, seed=0)
    assert ppo.minibatch_size == 10
    assert ppo.train_batch_size_per_learner == 40 * 3


@pytest.mark.parametrize("phase", [1, 2])
def test_marginal_credit_reaches_the_ue_loss_aligned_with_its_actions(ray_session, monkeypatch, phase):
    """One real training iteration: the UE module's batch carries the fleet env's credit row for row, so UEs that
    ran locally have credit exactly 0 and offloading UEs almost never do (the loss-masked bootstrap step aside)."""
    from ray.rllib.core.columns import Columns

    from mec.backends.rllib import modules
    from mec.config import config_from_dict
    from mec.envs.fleet import CREDIT_KEY
    from mec.backends.rllib.training import build_ppo_config

    seen = []
    original = modules.FleetPPOLearner.compute_loss_for_module

    def recording(self, *, module_id, config, batch, fwd_out):
        if module_id == "ue":
            credit = batch[CREDIT_KEY]
            offload = batch[Columns.ACTIONS]["offload"].reshape(credit.shape) > 0.5
            live = batch[Columns.LOSS_MASK].bool()[:, None].expand_as(offload)
            seen.append((int((~offload & live & (credit != 0)).sum()), int((offload & live & (credit != 0)).sum()),
                         int((offload & live).sum())))  # fmt: skip
        return original(self, module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)

    monkeypatch.setattr(modules.FleetPPOLearner, "compute_loss_for_module", recording)
    cfg = config_from_dict({"phase2": {"n_users": 8, "n_clusters": [2]}, "training": {
        "train_batch_slots": 45, "minibatch_size": 20, "num_epochs": 1, "episode_slots": 15, "hidden": [8]}})  # fmt: skip
    algo = build_ppo_config(cfg, phase, 3 if phase == 1 else 2, seed=0).build_algo()
    try:
        algo.train()
    finally:
        algo.stop()
    assert seen
    local_with_credit, offload_with_credit, offloads = map(sum, zip(*seen))
    assert local_with_credit == 0
    assert offloads > 20 and offload_with_credit >= 0.9 * offloads
