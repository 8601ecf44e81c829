# MAPPO training: one job per (phase, N or K, seed). A killed, timed-out or failed job resumes from its latest
# checkpoint when it reruns (mec.runs; nothing in the run/ folder is an output, so Snakemake leaves it in place, and
# a failure costs only the failing job's own output, written last).


rule train_agents:
    output:
        # The complete learning history, copied from the run folder once training is complete.
        metrics=TRAIN_METRICS,
    log:
        f"{LOGS}/train_agents/{{variant_dir}}phase{{phase}}_n{{n}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_agents/{{variant_dir}}phase{{phase}}_n{{n}}_seed{{seed}}.tsv"
    conda:
        "envs/mec.yaml"
    threads: train_threads
    resources:
        # Measured, with their scaling, in mec.plan.
        mem_mb=train_mem_mb,
        runtime=train_runtime_min,
    params:
        # Everything that changes what is learned (mec.plan.JOB_PARAMS): the system, the reward, the job's own phase
        # section and the training section (its validation episodes included), and the job's run folder. Not the
        # final evaluation, statistics, plotting or the workflow's lists.
        **job_params("train_agents"),
    script:
        "../workflow_scripts/train_agents.py"
