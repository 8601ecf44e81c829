"""The study on a SLURM cluster, and training jobs that join a running Ray cluster.

The SLURM tests need a cluster: `tests/slurm/cluster.sh start` sets up a one-node one on this machine (`.ci/run`
does, and sets MEC_REQUIRE_SLURM=1 so that they can never skip silently in CI). Without one they are skipped.
They run the workflow with profiles/slurm exactly as a user would (only a shorter first status check, and SLURM's
logs of successful jobs kept to be checked), in temporary copies of the workflow (tests/test_workflow.py):

- the tiny study (.test/config.yaml) to completion, every job a SLURM job with the threads, memory and runtime its
  rule declares, and summary tables identical to a local run's;
- a training job cancelled with scancel mid-way is resubmitted and resumes from its checkpoint;
- jobs over their memory or time request fail, and the failure names the rule and the limit.

The Ray test starts a Ray head with `ray start --head --block` and stops exactly that process group
(`ray stop` would stop every Ray instance on the machine, other jobs' private ones included).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mec.decision_time import DECISION_TIME_COLUMNS
from test_workflow import REPO, RESULTS, copy_workflow, tiny_config, write_config

SUMMARIES = ("baselines", "learned", "learned_seeds", "learning_curves", "comparison")
SLURM_FLAGS = (
    "--workflow-profile", "profiles/slurm",
    # The profile's first status check after 40 s suits hour-long jobs; these take seconds.
    "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-keep-successful-logs",
)  # fmt: skip
STUDY_TIMEOUT_S = 1200
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


# --------------------------------------------------------------------------- helpers


def _cluster_problem() -> str | None:
    """Why no SLURM cluster answers here, or None if one does."""
    if shutil.which("sinfo") is None:
        return "sinfo not found"
    conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    if not Path(conf).is_file():  # without one, sinfo looks for the controller in DNS, which can take a minute
        return f"no {conf}"
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo timed out"
    states = probe.stdout.split()
    if probe.returncode != 0 or not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states):
        return f"sinfo: {(probe.stderr or probe.stdout).strip() or 'no node up'}"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    problem = _cluster_problem()
    if problem is not None:
        if os.environ.get("MEC_REQUIRE_SLURM") == "1":
            pytest.fail(f"MEC_REQUIRE_SLURM=1 but no SLURM cluster answers: {problem}")
        pytest.skip(f"no SLURM cluster ({problem}); start one with tests/slurm/cluster.sh start")


def smk_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def snakemake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def run_snakemake(workdir: Path, *args: str, timeout: int = STUDY_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_cmd(*args), cwd=workdir, env=smk_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def slurm_job(job_id: str) -> dict[str, str]:
    """SLURM's record of a job (kept for MinJobAge after it ends: an hour on the test cluster)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"SLURM does not know job {job_id}: {out.stderr}"
    return dict(field.split("=", 1) for field in out.stdout.split() if "=" in field)


def job_blocks(output: str) -> dict[str, dict]:
    """Snakemake's job display ("rule <name>:" then indented "key: value" lines) by Snakemake job id."""
    jobs, current = {}, None
    for line in output.splitlines():
        start = re.match(r"^(?:local)?rule (\w+):$", line)
        if start:
            current = {"rule": start.group(1)}
            continue
        field = re.match(r"^    (\w+): (.*)$", line)
        if current is not None and field:
            current[field.group(1)] = field.group(2)
            if field.group(1) == "jobid":
                jobs[field.group(2)] = current
        elif current is not None and not line.startswith("    "):
            current = None
    return jobs


def resources_of(block: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in block["resources"].split(", ") if "=" in item)


def minutes(limit: str) -> int:
    """SLURM's TimeLimit ([days-]hours:minutes:seconds) in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(part) for part in clock.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def error_blocks(output: str) -> list[str]:
    """The "Error in rule ..." blocks of the submitting Snakemake (those with a SLURM job's message; the failed
    jobs' logs that it prints hold the inner Snakemake's own error blocks)."""
    blocks = [match.group(0) for match in re.finditer(r"^Error in rule \w+:\n(?:    .*\n?)*", output, flags=re.M)]
    return [block for block in blocks if "message: SLURM-job '" in block]


def rule_log(workdir: Path, rule: str, name: str) -> Path:
    (path,) = workdir.glob(f"{RESULTS}/logs/{rule}/**/{name}.log")
    return path


def wait_for(predicate, timeout_s: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"snakemake ended (rc {process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


# --------------------------------------------------------------------------- the tiny study on SLURM


def test_tiny_study_on_slurm_matches_a_local_run(slurm_cluster, tmp_path):
    """Every job of the tiny study is a SLURM job (its id in Snakemake's log, its record in SLURM: completed, under
    this run's name, with the CPUs, memory and time its rule declares), and the summary tables equal those of a
    local run of the same config and seeds."""
    on_slurm = copy_workflow(tmp_path / "slurm")
    local = copy_workflow(tmp_path / "local")
    # The local run (summaries only: the figures are not compared) runs beside the SLURM run, in its idle polls.
    local_targets = [f"{RESULTS}/summary/{name}.parquet" for name in SUMMARIES]
    local_run = subprocess.Popen(
        snakemake_cmd(*local_targets, "--cores", "1", "--configfile", ".test/config.yaml"),
        cwd=local, env=smk_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        result = run_snakemake(on_slurm, *SLURM_FLAGS, "--configfile", ".test/config.yaml")
        local_out, _ = local_run.communicate(timeout=STUDY_TIMEOUT_S)
    finally:
        if local_run.poll() is None:
            local_run.kill()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert local_run.returncode == 0, local_out[-5000:]

    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    blocks = job_blocks(output)
    submitted = {m.group(1): (m.group(2), m.group(3)) for m in SUBMITTED.finditer(output)}
    remote = {jobid for jobid, block in blocks.items() if block["rule"] != "all"}
    assert set(submitted) == remote and len(remote) >= 20, (sorted(submitted), sorted(remote))
    assert len({slurm_id for slurm_id, _ in submitted.values()}) == len(submitted)  # one SLURM job per job

    train_jobs = 0
    for jobid, (slurm_id, slurm_log) in submitted.items():
        block, record = blocks[jobid], slurm_job(slurm_id)
        assert record["JobState"] == "COMPLETED" and record["JobName"] == run_id, (block["rule"], record)
        assert Path(slurm_log).is_file() and f"/rule_{block['rule']}/" in slurm_log
        assert record["StdOut"] == slurm_log
        declared = resources_of(block)
        threads = int(block.get("threads", 1))  # Snakemake shows threads only above one
        assert int(record["NumCPUs"]) == threads
        assert record["MinMemoryNode"] == f"{declared['mem_mb']}M"
        assert minutes(record["TimeLimit"]) == int(declared["runtime"])
        if block["rule"] == "train_agents":
            train_jobs += 1
            job_log = (on_slurm / block["log"]).read_text()
            assert "Ray: a private instance with 1 CPUs; torch uses 1 threads" in job_log
    # the study's N = 2, 3 and K = 2, 3, its tight-deadline scenario's N = 2, 3 and its capable-edge scenario's K = 2, 3
    assert train_jobs == 4 + 2 + 2

    for name in SUMMARIES:
        got = pd.read_parquet(on_slurm / f"{RESULTS}/summary/{name}.parquet")
        expected = pd.read_parquet(local / f"{RESULTS}/summary/{name}.parquet")
        assert len(got) > 0
        # The decision times are wall-clock measurements (mec.decision_time), equal in no two runs; all else is.
        timings = [c for c in DECISION_TIME_COLUMNS if c in expected]
        measured = got[timings].to_numpy().ravel()
        assert (measured[~np.isnan(measured)] > 0).all()  # NaN for the upper bound, which decides nothing
        pd.testing.assert_frame_equal(got.drop(columns=timings), expected.drop(columns=timings), check_exact=True)


# --------------------------------------------------------------------------- failures


def test_a_cancelled_training_job_is_resubmitted_and_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    """scancel a training job after its first iteration: Snakemake reports the cancellation, resubmits the job
    (the profile's retries: 1) with twice the memory and runtime, and the new SLURM job resumes from the
    checkpoint. The job asks for 2 CPUs (training.num_cpus) and Ray and torch use exactly those."""
    workdir = copy_workflow(tmp_path)
    iterations = 12  # tiny iterations (about a second each): time to cancel after the first
    config = write_config(tmp_path / "slow.yaml", tiny_config(training__iterations=iterations,
                                                              training__num_cpus=2))  # fmt: skip
    target = f"{RESULTS}/phase1/n2/seed0/metrics.parquet"
    console = tmp_path / "snakemake.out"
    with console.open("w") as out:
        process = subprocess.Popen(snakemake_cmd(target, *SLURM_FLAGS, "--configfile", str(config)), cwd=workdir,
                                   env=smk_env(), stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        first = wait_for(lambda: SUBMITTED.search(console.read_text()), 120, "the submission", process).group(2)
        log_glob = f"{RESULTS}/logs/train_agents/**/phase1_n2_seed0.log"

        def first_iteration_logged():
            return any(" iter 1/" in path.read_text(errors="replace") for path in workdir.glob(log_glob))

        wait_for(first_iteration_logged, 300, "the first iteration", process)
        subprocess.run(["scancel", first], check=True, timeout=30)
        process.wait(timeout=STUDY_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    output = console.read_text()
    assert process.returncode == 0, output[-5000:]
    assert f"SLURM-job '{first}' failed, SLURM status is: 'CANCELLED'" in output
    (cancelled_block,) = error_blocks(output)
    assert "Error in rule train_agents:" in cancelled_block
    ids = [m.group(2) for m in SUBMITTED.finditer(output)]
    assert len(ids) == 2 and ids[0] == first, ids
    cancelled, retried = slurm_job(first), slurm_job(ids[1])
    assert cancelled["JobState"] == "CANCELLED" and retried["JobState"] == "COMPLETED"
    assert int(cancelled["NumCPUs"]) == int(retried["NumCPUs"]) == 2
    assert int(retried["MinMemoryNode"].rstrip("M")) == 2 * int(cancelled["MinMemoryNode"].rstrip("M"))
    assert minutes(retried["TimeLimit"]) == 2 * minutes(cancelled["TimeLimit"])

    job_log = rule_log(workdir, "train_agents", "phase1_n2_seed0").read_text()  # the second attempt's
    resumed = re.search(r"resuming after iteration (\d+)", job_log)
    assert resumed and 1 <= int(resumed.group(1)) < iterations, job_log[-3000:]
    assert "Ray: a private instance with 2 CPUs; torch uses 2 threads" in job_log
    assert list(pd.read_parquet(workdir / target)["iteration"]) == list(range(1, iterations + 1))


def test_jobs_over_their_memory_or_time_request_fail_naming_rule_and_limit(slurm_cluster, tmp_path):
    """Two training jobs at once: N = 2 with 300 MB (SLURM kills it within seconds), N = 3 with a one-minute
    limit on a run of many iterations (SLURM ends it at its limit). No retries. Each failure is reported as an
    error in rule train_agents, with SLURM's reason: TIMEOUT in the message; the memory kill in the SLURM log the
    message points to (state OUT_OF_MEMORY on clusters that enforce memory with cgroups). The Snakefile's onerror
    handler then names the rule and the exceeded resource of each, in one line."""
    workdir = copy_workflow(tmp_path)
    config = write_config(tmp_path / "long.yaml", tiny_config(training__iterations=5000))
    targets = [f"{RESULTS}/phase1/n{n}/seed0/metrics.parquet" for n in (2, 3)]
    result = run_snakemake(
        workdir, *targets, *SLURM_FLAGS, "--configfile", str(config), "--retries", "0",
        "--set-resources", "train_agents:mem_mb=300 if wildcards.n == '2' else 4000", "train_agents:runtime=1",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    blocks = {re.search(rf"{RESULTS}/phase1/n(\d)/", block).group(1): block for block in error_blocks(output)}
    assert set(blocks) == {"2", "3"}, output[-5000:]
    for n, block in blocks.items():
        assert block.startswith("Error in rule train_agents:"), block
        slurm_log = Path(re.search(r"log: .*?(\S+/slurm_logs/\S+\.log)", block).group(1))
        if n == "2":
            assert re.search(r"SLURM status is: '(FAILED|OUT_OF_MEMORY)'", block), block
            assert "Exceeded job memory limit" in slurm_log.read_text(), slurm_log.read_text()[-3000:]
        else:
            assert "SLURM status is: 'TIMEOUT'" in block, block
            assert "DUE TO TIME LIMIT" in slurm_log.read_text(), slurm_log.read_text()[-3000:]
    # The Snakefile's onerror handler adds one line per killed job naming the rule and the resource.
    killed = (rf"^Error: rule train_agents \({RESULTS}/phase1/n(\d)/\S+; SLURM job \d+\) was killed for exceeding its "
              r"(memory request \(mem_mb\)|time request \(runtime)")
    reasons = re.findall(killed, output, flags=re.M)
    assert sorted(reasons) == [("2", "memory request (mem_mb)"), ("3", "time request (runtime")], output[-3000:]
    for target in targets:
        assert not (workdir / target).exists()


# --------------------------------------------------------------------------- Ray cluster


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def ray_head(tmp_path):
    """A one-node Ray cluster with 3 CPUs (more than this machine's 2: the job must report the cluster's count, not
    a private instance's), in its own temp dir and process group; stopped by stopping that group. Token
    authentication on, with a token of its own that the jobs joining it get from their environment (as ray start
    turns it on by default wherever ~/.ray/auth_token exists)."""
    port = _free_port()
    env = {**smk_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    temp_dir = Path(f"/tmp/ray-head-{os.getpid()}-{port}")  # short: Ray's socket paths must fit
    ray = Path(sys.executable).with_name("ray")
    log = (tmp_path / "ray-head.log").open("w")
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--block", "--num-cpus", "3", "--num-gpus", "0", "--port", str(port),
         "--temp-dir", str(temp_dir), "--include-dashboard", "false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _port_open(port) and "Ray runtime started" in (tmp_path / "ray-head.log").read_text(),
                 120, "the Ray head")  # fmt: skip
        yield f"127.0.0.1:{port}", head, env
    finally:
        # The whole group: `ray start` and the GCS, raylet and workers it started. SIGTERM makes Ray drain for up to
        # 30 s; a test cluster has nothing to drain.
        if _group_alive(head.pid):
            os.killpg(head.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _group_alive(head.pid):
            time.sleep(0.2)
        if _group_alive(head.pid):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_training_job_joins_a_running_ray_cluster_and_leaves_it_up(ray_head, tmp_path):
    """training.ray_address: the job connects to the cluster (it reports the cluster's 3 CPUs; its env runner is
    an actor there), trains to the end, and the cluster is still up after it, for whoever started it."""
    address, head, env = ray_head
    out = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {
        "iterations": 2, "episode_slots": 10, "eval_episodes": 1, "train_batch_slots": 20, "minibatch_size": 10,
        "num_epochs": 1, "checkpoint_every": 1, "num_env_runners": 1, "ray_address": address}}))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "mec", "train", "--phase", "1", "--n-ue", "2", "--seed", "0", "--out", str(out),
         "--config", str(config), "--num-cpus", "1"],
        cwd=REPO, env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Ray: joined the cluster at {address} (3 CPUs on 1 nodes); torch uses 1 threads here" in proc.stdout
    assert "iter 2/2" in proc.stdout
    assert list(pd.read_parquet(out / "metrics.parquet")["iteration"]) == [1, 2]
    assert np.isfinite(pd.read_parquet(out / "metrics.parquet")["eval/reward_per_slot"]).all()
    # The driver disconnected; the cluster it joined is still up.
    assert head.poll() is None and _port_open(int(address.rsplit(":", 1)[1]))
    status = subprocess.run([str(Path(sys.executable).with_name("ray")), "status", "--address", address],
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert status.returncode == 0 and "3.0 CPU" in status.stdout, status.stdout + status.stderr


# --------------------------------------------------------------------------- failure messages (no cluster needed)


def test_failure_lines_name_the_rule_and_the_exceeded_resource(tmp_path):
    """Snakemake's error blocks point at each failed job's SLURM log; the reason SLURM killed it is read there (or
    from the SLURM state in the block) and reported in one line. Other failures add nothing."""
    from mec.slurm import failure_lines

    mem_log = tmp_path / ".snakemake/slurm_logs/rule_train_agents/1_2_0/12.log"
    mem_log.parent.mkdir(parents=True)
    mem_log.write_text("slurmstepd: error: Exceeded job memory limit\n")
    time_log = tmp_path / "b/slurm_logs/13.log"
    time_log.parent.mkdir(parents=True)
    time_log.write_text("slurmstepd: error: *** JOB 13 ON node CANCELLED AT 2026-11-25T07:00 DUE TO TIME LIMIT ***\n")
    other_log = tmp_path / "c/slurm_logs/14.log"
    other_log.parent.mkdir(parents=True)
    other_log.write_text("Traceback (most recent call last):\nValueError: boom\n")
    log = tmp_path / "snakemake.log"
    log.write_text(f"""[Wed Nov 25 07:00:00 2026]
Error in rule train_agents:
    message: SLURM-job '12' failed, SLURM status is: 'FAILED'. For further error details see the cluster/cloud log.
    jobid: 3
    output: results/phase1/n2/seed0/metrics.parquet, results/phase1/n2/seed0/run/checkpoints/final/mec_checkpoint.json
    log: results/logs/train_agents/phase1_n2_seed0.log, {mem_log} (check log file(s) for error details)
    external_jobid: 12

Error in rule train_agents:
    message: SLURM-job '13' failed, SLURM status is: 'TIMEOUT'.
    output: results/phase1/n3/seed0/metrics.parquet
    log: {time_log} (check log file(s) for error details)

Error in rule evaluate_policy:
    message: SLURM-job '14' failed, SLURM status is: 'FAILED'.
    output: results/phase1/n3/seed0/eval/episodes.parquet
    log: {other_log} (check log file(s) for error details)
""")
    assert failure_lines(log) == [
        "rule train_agents (results/phase1/n2/seed0/metrics.parquet; SLURM job 12) was killed for exceeding its "
        "memory request (mem_mb): raise it with --set-resources train_agents:mem_mb=<value> or in the profile's "
        "set-resources",
        "rule train_agents (results/phase1/n3/seed0/metrics.parquet; SLURM job 13) was killed for exceeding its time "
        "request (runtime, minutes): raise it with --set-resources train_agents:runtime=<value> or in the profile's "
        "set-resources",
    ]
    # Snakemake 9 passes the onerror handler a list of its log files; an unreadable one is skipped.
    assert failure_lines([str(log), tmp_path / "missing.log"]) == failure_lines(log)
    assert failure_lines(tmp_path / "missing.log") == [] and failure_lines(None) == [] and failure_lines([]) == []
