# Statistics over samples (evaluation episodes for the baselines, training seeds for learned policies) per
# (phase, N or K, policy): mean, IQM and bootstrap confidence intervals.


rule aggregate_metrics:
    input:
        episodes=all_baseline_episodes,
    output:
        baselines=SUMMARY_BASELINES,
    log:
        f"{LOGS}/aggregate_metrics/baselines.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        # The default study (13 sweep points, 67 policies in all): about 5 s and under 500 MB.
        mem_mb=2000,
        runtime=15,
    params:
        statistics=section("statistics"),
    script:
        "../workflow_scripts/aggregate_metrics.py"
