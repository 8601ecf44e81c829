# Statistics over samples per (phase, N or K, policy): mean, IQM and bootstrap confidence intervals. A sample is an
# evaluation episode for the baselines and a training seed for the learned policy (its mean over the episodes); the
# probability of improvement of the learned policy compares its (seed, episode) rewards with the baselines' on the
# same episodes. aggregate_metrics also exports those per-episode results in marl-eval's JSON layout.


rule aggregate_baselines:
    input:
        episodes=all_baseline_episodes,
    output:
        baselines=SUMMARY_BASELINES,
    log:
        f"{LOGS}/{{variant_dir}}aggregate_baselines.log",
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
        "../workflow_scripts/aggregate_baselines.py"


rule aggregate_metrics:
    input:
        policy_episodes=all_policy_episodes,
        train_metrics=all_train_metrics,
        baseline_episodes=all_baseline_episodes,
    output:
        learned=SUMMARY_LEARNED,
        learned_seeds=SUMMARY_SEEDS,
        learning_curves=SUMMARY_CURVES,
        comparison=SUMMARY_COMPARISON,
        comparison_html=report(
            SUMMARY_COMPARISON_HTML,
            caption="../report/comparison_table.rst",
            category="Summary tables",
        ),
        marl_eval=SUMMARY_MARL_EVAL,
    log:
        f"{LOGS}/{{variant_dir}}aggregate_metrics.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        statistics=section("statistics"),
    script:
        "../workflow_scripts/aggregate_metrics.py"
