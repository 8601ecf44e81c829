# The learned policy of each training job on the evaluation episodes of its sweep point: the same seeded episodes,
# schema and metric definitions as evaluate_baselines.


rule evaluate_policy:
    input:
        # Written once training is complete; the best checkpoint is in the run folder beside it (RUN_STATE).
        metrics=TRAIN_METRICS,
    output:
        episodes=POLICY_EPISODES,
        schedule=POLICY_SCHEDULE,
    log:
        f"{LOGS}/evaluate_policy/{{variant_dir}}phase{{phase}}_n{{n}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_policy/{{variant_dir}}phase{{phase}}_n{{n}}_seed{{seed}}.tsv"
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        # Measured on the default study's largest job (phase 2, K = 10: 5 episodes x 200 slots x 100 UEs, with the
        # schedule trace): about 7 s and 650 MB (all processes) on one core; with evaluation.best_of = 16 its rows
        # and the decision times (mec.best_of decides in chunks of at most 2^18 UE rows) peak near 830 MB. Runtime is
        # in minutes.
        mem_mb=1000,
        runtime=10,
    params:
        **job_params("evaluate_policy"),
    script:
        "../workflow_scripts/evaluate_policy.py"
