"""The Stable-Baselines3 backend (training.backend: sb3) and its slot-per-step joint-action view.

Every run is tiny (10-slot episodes, 20 slots per iteration, 1 epoch); the CLI runs are subprocesses, as the
workflow runs them, and the rest runs in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("stable_baselines3")

from mec import metrics  # noqa: E402
from mec.backends import load_policy, sb3  # noqa: E402
from mec.backends.slot_env import SlotCodec, make_slot_env  # noqa: E402
from mec.config import config_from_dict, config_to_dict, load_config  # noqa: E402
from mec.envs import features  # noqa: E402
from mec.evaluation import evaluation_episodes, make_policy, run_policy  # noqa: E402
from mec.scenario import PhaseSetup  # noqa: E402
from mec.simulator import Simulator  # noqa: E402
from workflow_script import run_workflow_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "phase2": {"n_users": 12, "n_clusters": [3], "kmeans_n_init": 2},
    "training": {"iterations": 2, "episode_slots": 10, "eval_episodes": 2, "train_batch_slots": 20,
                 "minibatch_size": 10, "num_epochs": 1, "checkpoint_every": 1, "num_cpus": 1},
}  # fmt: skip
CONFIG_YAML = json.dumps(TINY)  # JSON is YAML
SLOTS_PER_ITER = 20
LOSS_KEYS = ("policy_loss", "vf_loss", "entropy", "approx_kl")
SUMMARY = ("mean_qos", "deadline_met_fraction", "energy_per_task_j", "reward_per_slot", "offload_fraction",
           "local_energy_j", "transmit_energy_j", "server_energy_j")  # fmt: skip


def expected_columns(phase: int) -> list[str]:
    """metrics.parquet's columns as the RLlib backend writes them, spelled out independently of the code."""
    roles = ["ue", "scheduler"] + (["coordinator"] if phase == 2 else [])
    group = "ue" if phase == 1 else "cluster"
    return (
        ["iteration", "env_steps", "slots", "wall_s", "train/episode_return_mean"]
        + [f"train/{role}/{key}" for role in roles for key in LOSS_KEYS]
        + [f"eval/{key}" for key in SUMMARY]
        + ["eval/sum_qos_per_slot", "eval/sum_energy_j_per_slot", f"eval/{group}_qos_per_slot",
           f"eval/{group}_energy_j_per_slot"]
    )  # fmt: skip


def tiny_cfg(**training):
    return config_from_dict({**TINY, "training": {**TINY["training"], "backend": "sb3", **training}})


def mec(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mec", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def train_args(workdir: Path, phase: int, n: int, out: Path, *extra: str) -> list[str]:
    size = ["--n-ue", str(n)] if phase == 1 else ["--n-clusters", str(n)]
    return ["train", "--phase", str(phase), *size, "--seed", "0", "--out", str(out),
            "--config", str(workdir / "config.yaml"), *extra]  # fmt: skip


def read_meta(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "mec_checkpoint.json").read_text())


def no_wall(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["wall_s"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sb3")
    (d / "config.yaml").write_text(CONFIG_YAML)
    return d


@pytest.fixture(scope="module")
def cli_runs(workdir):
    """`mec train --backend sb3` for phase 1 (N = 3; `python -m mec` in a subprocess, as the workflow runs it) and
    phase 2 (12 UEs, K = 3; the same CLI in this process, which saves the interpreter start)."""
    from mec.cli import main

    out = workdir / "sb3_p1"
    proc = mec(train_args(workdir, 1, 3, out, "--backend", "sb3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {1: (out, proc.stdout)}
    out = workdir / "sb3_p2"
    assert main(train_args(workdir, 2, 3, out, "--backend", "sb3")) == 0
    runs[2] = (out, None)
    return runs


# --------------------------------------------------------------------------- the slot-per-step view


@pytest.mark.parametrize("phase, coordinator", [(1, "learned"), (2, "learned"), (2, "equal")])
def test_slot_view_spaces_and_env_checker(phase, coordinator):
    from gymnasium.utils.env_checker import check_env

    cfg = config_from_dict({**TINY, "phase2": {**TINY["phase2"], "coordinator": coordinator}})
    env = make_slot_env(phase, 3, cfg, episode_slots=4)
    n_ue, k = (3, 1) if phase == 1 else (12, 3)
    n_ue_features, n_coordinator_features = len(features.UE_FEATURES), len(features.COORDINATOR_FEATURES)
    obs_size = n_ue * n_ue_features + (n_ue * k + k * n_coordinator_features if phase == 2 else 0)
    act_size = 3 * n_ue + (k if phase == 2 and coordinator == "learned" else 0)
    assert env.observation_space.shape == (obs_size,) and env.action_space.shape == (act_size,)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        steps += 1
    assert steps == 4  # one step per slot


def test_slot_view_decodes_the_documented_action_layout():
    cfg = tiny_cfg()
    codec = SlotCodec(cfg, PhaseSetup.from_config(cfg, 2, 3))
    n, k = 12, 3
    a = np.zeros((1, k + 3 * n))
    a[0, :k] = [1.0, 0.0, -2.0]  # logits 5, 0, -5 (clipped to [-1, 1] first)
    a[0, k : k + n] = np.where(np.arange(n) % 2 == 0, 0.3, -0.3)  # even UEs offload
    a[0, k + n : k + 2 * n] = np.linspace(-1, 1, n)
    a[0, k + 2 * n :] = np.arange(n)[::-1] / n
    d = codec.decisions(a)
    np.testing.assert_array_equal(d.offload[0], np.arange(n) % 2 == 0)
    np.testing.assert_allclose(d.spectrum_weight[0], 0.01 + (np.linspace(-1, 1, n) + 1) / 2 * 0.99)
    np.testing.assert_allclose(d.priority[0], np.arange(n)[::-1] / n)
    np.testing.assert_allclose(d.cpu_weight[0] / d.cpu_weight[0].sum(), np.exp([5, 0, -5]) / np.exp([5, 0, -5]).sum())


def test_slot_view_rewards_match_the_batched_evaluation_of_the_same_policy():
    """Training view and evaluation adapter encode and decode identically: one policy, one episode, same rewards."""
    cfg = tiny_cfg()
    setup = PhaseSetup.from_config(cfg, 2, 3)
    model = sb3.build_model(cfg, sb3.make_vec_env(cfg, 2, 3), seed=1)
    env = make_slot_env(2, 3, cfg, episode_slots=5)
    obs, _ = env.reset(seed=3)
    episode = env.unwrapped.core.sim.episodes  # the drawn episode (one extra, never played slot)
    rewards = []
    for _ in range(5):
        action, _ = model.policy.predict(obs[None], deterministic=True)
        obs, reward, _, truncated, _ = env.step(action[0])
        rewards.append(reward)
    assert truncated
    frame = run_policy(cfg, setup, sb3.SB3Policy(model.policy, SlotCodec(cfg, setup)), episode)
    np.testing.assert_allclose(rewards, frame["reward"].to_numpy()[:5] / setup.n_ue, rtol=1e-12)
    assert len(set(np.round(rewards, 9))) > 1  # real, varying slot rewards


# --------------------------------------------------------------------------- training runs


def test_cli_phase1_run_has_the_rllib_schema_and_layout(cli_runs):
    run, stdout = cli_runs[1]
    frame = pd.read_parquet(run / "metrics.parquet")
    assert list(frame.columns) == expected_columns(1)
    assert frame["iteration"].tolist() == [1, 2]
    # One SB3 env step is one slot.
    assert frame["env_steps"].tolist() == frame["slots"].tolist() == [SLOTS_PER_ITER, 2 * SLOTS_PER_ITER]
    assert frame[[f"train/{r}/{k}" for r in ("ue", "scheduler") for k in LOSS_KEYS]].isna().all().all()
    assert frame["train/episode_return_mean"].notna().all()  # two 10-slot episodes finish per iteration
    assert frame["eval/mean_qos"].between(0, 1).all() and (frame["eval/energy_per_task_j"] > 0).all()
    np.testing.assert_allclose(frame["eval/mean_qos"], frame["eval/sum_qos_per_slot"] / 3, rtol=1e-9)
    assert [len(v) for v in frame["eval/ue_qos_per_slot"]] == [3, 3]
    ckpt = run / "checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == ["best", "final", "iter_0001", "iter_0002", "latest"]
    for name in ("best", "final", "latest"):
        assert (ckpt / name / sb3.MODEL_FILE).is_file()
        m = read_meta(ckpt / name)
        assert (m["backend"], m["phase"], m["n"], m["seed"]) == ("sb3", 1, 3, 0)
        assert m["config"]["training"]["backend"] == "sb3"
    best = read_meta(ckpt / "best")
    assert best["eval_reward_per_slot"] == frame["eval/reward_per_slot"].max()
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert "[train sb3 phase=1 N=3 seed=0] iter 2/2 eval reward/slot" in stdout


def test_cli_phase2_run_matches_an_rllib_run_column_for_column(cli_runs, workdir):
    sb3_run, _ = cli_runs[2]
    rllib_run = workdir / "rllib_p2"
    proc = mec(train_args(workdir, 2, 3, rllib_run, "--num-cpus", "1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours, theirs = pd.read_parquet(sb3_run / "metrics.parquet"), pd.read_parquet(rllib_run / "metrics.parquet")
    assert list(ours.columns) == list(theirs.columns) == expected_columns(2)
    pd.testing.assert_series_equal(ours.dtypes, theirs.dtypes)
    assert [len(v) for v in ours["eval/cluster_qos_per_slot"]] == [3, 3]
    assert read_meta(rllib_run / "checkpoints" / "final")["backend"] == "rllib"


def test_evaluate_checkpoint_restores_the_sb3_policy(cli_runs, tmp_path, capsys):
    from mec.cli import main

    run, _ = cli_runs[2]
    best = run / "checkpoints" / "best"
    m = read_meta(best)
    capsys.readouterr()
    # On the validation episodes it was picked on, the restored policy reproduces the saved evaluation reward.
    seed = str(m["config"]["training"]["eval_seed"])
    code = main(["evaluate", "--checkpoint", str(best), "--episodes", "2", "--slots", "10", "--seed", seed, "--json",
                 "--out", str(tmp_path / "slots.parquet"), "--best-of", "0"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["policy"] == f"sb3-ppo-seed0-iter{m['iteration']}"
    assert (summary["n_ue"], summary["n_clusters"], summary["tasks"]) == (12, 3, 2 * 10 * 12)
    assert summary["reward_per_slot"] == pytest.approx(m["eval_reward_per_slot"], rel=1e-9)
    assert len(pd.read_parquet(tmp_path / "slots.parquet")) == 20


def test_a_complete_run_is_not_retrained(cli_runs, workdir):
    run, _ = cli_runs[1]
    before = (run / "metrics.parquet").stat().st_mtime_ns
    lines = []
    cfg = load_config(workdir / "config.yaml", ["training.backend=sb3"])
    sb3.train(cfg, 1, 3, 0, run, log=lines.append)
    assert lines == [f"[train sb3 phase=1 N=3 seed=0] complete: {run}/checkpoints/final exists; not retrained"]
    assert (run / "metrics.parquet").stat().st_mtime_ns == before


def test_checkpoint_round_trip_gives_the_same_actions(tmp_path):
    cfg = tiny_cfg()
    setup = PhaseSetup.from_config(cfg, 2, 3)
    model = sb3.build_model(cfg, sb3.make_vec_env(cfg, 2, 3), seed=0)
    sb3.train_iteration(model, 0, 1)
    meta = {"backend": "sb3", "phase": 2, "n": 3, "seed": 0, "config": config_to_dict(cfg),
            "iteration": 1, "eval_reward_per_slot": 0.0}  # fmt: skip
    sb3._write_checkpoint(model, tmp_path / "ckpt", meta)
    restored, restored_meta = load_policy(tmp_path / "ckpt")
    assert restored.name == "sb3-ppo" and restored_meta == meta
    live = sb3.SB3Policy(model.policy, SlotCodec(cfg, setup))
    sim = Simulator(cfg, setup, 3)
    state = sim.reset_from(evaluation_episodes(cfg, setup, 4, 3, 11))
    for _ in range(3):
        a, b = live.act(state), restored.act(state)
        for field in ("offload", "spectrum_weight", "priority", "cpu_weight"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        sim.step(a)
        if sim.done:
            break
        state = sim.state()


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(tmp_path):
    cfg = tiny_cfg()
    runs = [sb3.train(cfg, 2, 3, seed, tmp_path / f"s{seed}-{i}", log=lambda line: None)
            for i, seed in enumerate((0, 0, 1))]  # fmt: skip
    first, again, other = (no_wall(pd.read_parquet(r / "metrics.parquet")) for r in runs)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["eval/reward_per_slot"], other["eval/reward_per_slot"])


class Killed(Exception):
    """Stands for a kill of the training job at a chosen point."""


@pytest.mark.parametrize("when", ["after-checkpoint", "between-metrics-and-checkpoint"])
def test_resume_after_a_kill_continues_from_latest_and_matches_an_uninterrupted_run(tmp_path, monkeypatch, when):
    cfg = tiny_cfg(iterations=3)
    full = sb3.train(cfg, 1, 3, 0, tmp_path / "full", log=lambda line: None)
    out = tmp_path / "killed"
    if when == "after-checkpoint":

        def log(line):
            if "iter 2/3" in line:
                raise Killed(line)

        with pytest.raises(Killed):
            sb3.train(cfg, 1, 3, 0, out, log=log)
        resumed_from = 2
    else:
        write = sb3._write_checkpoint

        def write_or_die(model, target, meta):
            if meta["iteration"] == 2:
                raise Killed(target)
            write(model, target, meta)

        monkeypatch.setattr(sb3, "_write_checkpoint", write_or_die)
        with pytest.raises(Killed):
            sb3.train(cfg, 1, 3, 0, out, log=lambda line: None)
        monkeypatch.setattr(sb3, "_write_checkpoint", write)
        assert pd.read_parquet(out / "metrics.parquet")["iteration"].tolist() == [1, 2]
        resumed_from = 1
    assert not (out / "checkpoints" / "final").exists()
    lines = []
    sb3.train(cfg, 1, 3, 0, out, log=lines.append)
    assert f"resuming after iteration {resumed_from}" in lines[0]
    assert read_meta(out / "checkpoints" / "final")["iteration"] == 3
    pd.testing.assert_frame_equal(no_wall(pd.read_parquet(out / "metrics.parquet")),
                                  no_wall(pd.read_parquet(full / "metrics.parquet")))  # fmt: skip


def test_bad_values_are_one_line_errors(tmp_path, capsys):
    from mec.cli import main

    with pytest.raises(ValueError, match=r"^training.minibatch_size 1: the sb3 backend allows >= 2"):
        sb3.train(tiny_cfg(minibatch_size=1), 1, 3, 0, tmp_path / "mb1")
    with pytest.raises(SystemExit):
        main(["train", "--phase", "1", "--n-ue", "2", "--seed", "0", "--out", str(tmp_path / "x"), "--backend", "tf"])
    assert "invalid choice: 'tf' (choose from 'rllib', 'sb3')" in capsys.readouterr().err


def test_sb3_beats_random_on_phase1_after_a_few_iterations(tmp_path):
    """Learning sanity: 3 iterations of 200 slots on N = 2 beat the random policy and all-local."""
    cfg = tiny_cfg(episode_slots=50, train_batch_slots=200, minibatch_size=50, num_epochs=8)
    setup = PhaseSetup.from_config(cfg, 1, 2)
    model = sb3.build_model(cfg, sb3.make_vec_env(cfg, 1, 2), seed=0)
    for iteration in (1, 2, 3):
        sb3.train_iteration(model, 0, iteration)
    episodes = evaluation_episodes(cfg, setup, 5, 50, 7)
    learned = metrics.summarise(run_policy(cfg, setup, sb3.SB3Policy(model.policy, SlotCodec(cfg, setup)), episodes))
    for name in ("random", "all-local"):
        baseline = metrics.summarise(run_policy(cfg, setup, make_policy(name, 1, 0), episodes))
        assert learned["reward_per_slot"] > baseline["reward_per_slot"] + 0.1, name


def test_workflow_scripts_train_and_evaluate_with_the_sb3_backend(tmp_path):
    """train_agents and evaluate_policy take the backend from the training section / the checkpoint."""
    run_dir = tmp_path / "run"  # the rule's run folder: beside its one output, metrics.parquet
    final = run_dir / "checkpoints" / "final" / "mec_checkpoint.json"
    common = {"wildcards": SimpleNamespace(phase="2", n="3", seed="0"), "threads": 1,
              "scriptdir": str(ROOT / "workflow_scripts")}  # fmt: skip
    train_smk = SimpleNamespace(
        **common,
        params=SimpleNamespace(
            phase_section=TINY["phase2"],
            scenario={},
            reward={},
            run_dir=str(run_dir),
            training={**TINY["training"], "backend": "sb3"},
        ),
        output=SimpleNamespace(metrics=str(tmp_path / "metrics.parquet")),
    )
    run_workflow_script("train_agents", train_smk)
    assert read_meta(final.parent)["backend"] == "sb3"
    copied, history = pd.read_parquet(tmp_path / "metrics.parquet"), pd.read_parquet(run_dir / "metrics.parquet")
    pd.testing.assert_frame_equal(copied, history)
    assert history["iteration"].tolist() == [1, 2]
    eval_smk = SimpleNamespace(
        **common,
        params=SimpleNamespace(
            phase_section=TINY["phase2"], scenario={}, reward={},
            evaluation={"episodes": 2, "slots": 5, "seed": 9, "best_of": 0},
        ),
        input=SimpleNamespace(metrics=str(tmp_path / "metrics.parquet")),
        output=SimpleNamespace(episodes=str(tmp_path / "episodes.parquet"), schedule=str(tmp_path / "sched.parquet")),
    )
    run_workflow_script("evaluate_policy", eval_smk)
    episodes = pd.read_parquet(tmp_path / "episodes.parquet")
    assert set(episodes["policy"]) == {"sb3-ppo"} and len(episodes) == 2 * 5
    assert len(pd.read_parquet(tmp_path / "sched.parquet")) == 2 * 5 * 12
