"""Rule train_agents: train, or resume, the agents of one (phase, N or K, seed) job with the backend of
training.backend (mec.backends.train: RLlib MAPPO, mec.backends.rllib, or Stable-Baselines3 PPO, mec.backends.sb3).

mec.runs keeps the run directory (params.run_dir: its own metrics, checkpoints and resume state) apart from
the rule's output. Snakemake deletes a job's outputs before it reruns it and after it fails, but no file of the run
directory is an output, so a job that was killed, timed out or failed resumes from its latest checkpoint (a complete
run trains nothing), and a failure costs only the failing job's own output. A run directory that another config
left behind (a changed hyperparameter, fewer iterations) is discarded first: resuming it would mix two studies. More
iterations than before extend the run. The output, the complete learning history, is written last: copied
atomically from the run directory once training is complete and its final checkpoint is in place. A failure ends in
one line in the job's log (mec.io.log_to_file), a traceback only for what looks like a bug.
"""

import logging
import os
import shutil
from pathlib import Path

# The job's threads, as the rule declares (training.num_cpus); set before torch and numpy start their thread pools.
os.environ["OMP_NUM_THREADS"] = str(snakemake.threads)  # noqa: F821
# Every job starts its own local Ray instance in its own temp dir (mec.backends.rllib.training), never a cluster that
# RAY_ADDRESS would point ray.init() at: concurrent jobs on one machine must not share one.
os.environ.pop("RAY_ADDRESS", None)
import mec_rule  # noqa: E402,F401 - first of the project: puts mec on the path

from mec import backends, io  # noqa: E402
from mec.config import config_from_sections  # noqa: E402
from mec.runs import CHECKPOINT_META, METRICS, check_metrics_file  # noqa: E402

log = logging.getLogger("train_agents")


def main(smk) -> None:
    phase, n, seed = int(smk.wildcards.phase), int(smk.wildcards.n), int(smk.wildcards.seed)
    p = smk.params
    cfg = config_from_sections(phase, p.phase_section, scenario=p.scenario, reward=p.reward, training=p.training)
    run_dir = Path(smk.params.run_dir).absolute()  # RLlib saves checkpoints to absolute paths (or URIs) only
    backends.train(cfg, phase, n, seed, run_dir, num_cpus=smk.threads, log=log.info, restart_stale=True)
    check_metrics_file(run_dir / METRICS, cfg.training.iterations)  # never a partial history as output
    final = run_dir / "checkpoints" / "final" / CHECKPOINT_META
    if not final.is_file():
        raise RuntimeError(f"{final}: training ended without its final checkpoint; rerun the job to resume it")
    # Last: the output says the run folder is complete (evaluate_policy reads its best checkpoint).
    io.atomic_write(smk.output.metrics, lambda tmp: shutil.copyfile(run_dir / METRICS, tmp))
    log.info("wrote %s", smk.output.metrics)


if __name__ == "__main__":
    # Ray, RLlib and torch warn on stdout/stderr directly: into the job's log as well, not onto the console. Every
    # writer appends, so their lines interleave instead of overwriting each other.
    log_fd = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)  # noqa: F821
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    io.log_to_file(snakemake.log[0], append=True)  # noqa: F821
    main(snakemake)  # noqa: F821
