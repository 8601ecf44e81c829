"""Rules plot_run_phase1, plot_run_phase2: a training run's reference set of figures, each written as a PNG
atomically. Evaluation metrics over learning (mec.plotting.LEARNING_FIGURES: sums, and per UE or per cluster, of QoS
and energy) from the run's metrics.parquet, and a Gantt view of one slot of the edge schedule under the learned
policy (the first evaluation episode's slot with the most offloaded tasks) from its evaluation schedule.
"""

import logging

import mec_rule  # first of the project: puts mec on the path

from mec import io, plotting
from mec.runs import check_metrics_file

log = logging.getLogger("plot_run")


def main(smk) -> None:
    look = smk.params.plotting
    size = {"style": look["style"], "width_in": look["width_in"], "height_in": look["height_in"]}
    phase, n, seed = int(smk.wildcards.phase), int(smk.wildcards.n), int(smk.wildcards.seed)
    # The run's own record (written by training and evaluation) says how many UEs and how it was evaluated.
    # Exactly the rows 1..training.iterations, or an error naming the file (removed: a rerun rebuilds it).
    history = check_metrics_file(smk.input.metrics, remove_if_bad=True)
    config = io.read_provenance(smk.input.metrics)["config"]
    t = config["training"]
    n_ue = config["phase2"]["n_users"] if phase == 2 else None
    evaluation = f"{plotting.counted(t['eval_episodes'], 'episode')} of {t['episode_slots']} slots"
    for name, path in smk.output.items():
        if name == plotting.SCHEDULE_FIGURE:
            policy = io.read_provenance(smk.input.schedule)["policy"]
            schedule = io.read_parquet(smk.input.schedule, remove_if_corrupt=True)
            fig = plotting.schedule_figure(schedule, phase, n, seed, policy=policy, n_ue=n_ue, **size)
        else:
            fig = plotting.learning_figure(history, name, phase, n, seed, n_ue=n_ue, evaluation=evaluation, **size)
        plotting.save_figure(fig, path, dpi=look["dpi"])
        log.info("wrote %s", path)


if __name__ == "__main__":
    mec_rule.run(main, snakemake)  # noqa: F821
