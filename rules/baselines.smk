# Every heuristic, and the oracle in phase 1, on the same seeded evaluation episodes: one job per (phase, N or K).


rule evaluate_baselines:
    output:
        episodes=BASELINE_EPISODES,
        summary=BASELINE_SUMMARY,
    log:
        f"{LOGS}/evaluate_baselines/{{variant_dir}}phase{{phase}}_n{{n}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_baselines/{{variant_dir}}phase{{phase}}_n{{n}}.tsv"
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        # Measured on the default study's largest job (phase 2, K = 10: 48 policies x 5 episodes x 200 slots x
        # 100 UEs): a few seconds and under 500 MB on one core. Runtime is in minutes.
        mem_mb=1000,
        runtime=15,
    params:
        # Only the sections that change the numbers (mec.plan.JOB_PARAMS): training, workflow, statistics and
        # plotting edits (and the other phase's section, and the phase-2 coordinator the heuristics never use) leave
        # these jobs alone.
        **job_params("evaluate_baselines"),
    script:
        "../workflow_scripts/evaluate_baselines.py"
