# Figures: one per (phase, metric), each metric against N (phase 1) or K (phase 2). Only the plotting section
# reaches these jobs, so a style change reruns them and nothing else.


rule plot_baselines:
    input:
        summary=SUMMARY_BASELINES,
    output:
        figure=report(
            BASELINE_FIGURE,
            caption="../report/plot_baselines.rst",
            category="Baselines",
            subcategory="Phase {phase}",
            labels={"phase": "{phase}", "metric": "{metric}"},
        ),
    log:
        f"{LOGS}/plot_baselines/phase{{phase}}_{{metric}}.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        plotting=section("plotting"),
    script:
        "../workflow_scripts/plot_baselines.py"
