# MAPPO training: one job per (phase, N or K, seed). A killed or timed-out job resumes from its latest checkpoint
# when it reruns (mec.runs; the run/ folder is not an output, so Snakemake leaves it in place).


rule train_agents:
    output:
        metrics=TRAIN_METRICS,
        final=FINAL_CHECKPOINT,
    log:
        f"{LOGS}/train_agents/{{variant_dir}}phase{{phase}}_n{{n}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train_agents/{{variant_dir}}phase{{phase}}_n{{n}}_seed{{seed}}.tsv"
    conda:
        "envs/mec.yaml"
    threads: train_threads
    resources:
        # Measured, with their scaling, in rules/common.smk.
        mem_mb=train_mem_mb,
        runtime=train_runtime_min,
    params:
        # Everything that changes what is learned: the system, the reward, the job's own phase section and the
        # training section (its validation episodes included). Not the final evaluation, statistics, plotting or
        # the workflow's lists.
        scenario=section("scenario"),
        reward=section("reward"),
        phase_section=phase_section,
        training=section("training"),
        run_dir=f"{RUN}/run",
    script:
        "../workflow_scripts/train_agents.py"
