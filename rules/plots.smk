# Figures, written as PNG atomically. Only the plotting section (and, for the learning curves, the statistics
# section) reaches these jobs, so a style change reruns them and nothing else.


rule plot_sweep:
    input:
        baselines=SUMMARY_BASELINES,
        learned=SUMMARY_LEARNED,
    output:
        figure=report(
            SWEEP_FIGURE,
            caption="../report/plot_sweep.rst",
            category="Phase {phase}",
            subcategory="Across the sweep",
            labels={"figure": "{metric}"},
        ),
    log:
        f"{LOGS}/plot_sweep/{{variant_dir}}phase{{phase}}_{{metric}}.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        plotting=section("plotting"),
    script:
        "../workflow_scripts/plot_sweep.py"


rule plot_relative_sweep:
    input:
        comparison=SUMMARY_COMPARISON,
    output:
        figure=report(
            RELATIVE_FIGURE,
            caption="../report/plot_relative_sweep.rst",
            category="Phase {phase}",
            subcategory="Across the sweep",
            labels={"figure": "relative"},
        ),
    log:
        f"{LOGS}/plot_relative_sweep/{{variant_dir}}phase{{phase}}.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        plotting=section("plotting"),
    script:
        "../workflow_scripts/plot_relative_sweep.py"


rule plot_learning_curves:
    input:
        metrics=point_train_metrics,
        baselines=point_baseline_episodes,
    output:
        figure=report(
            CURVES_FIGURE,
            caption="../report/plot_learning_curves.rst",
            category="Phase {phase}",
            subcategory="Learning curves",
            labels={"N or K": "{n}"},
        ),
    log:
        f"{LOGS}/plot_learning_curves/{{variant_dir}}phase{{phase}}_n{{n}}.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        statistics=section("statistics"),
        plotting=section("plotting"),
    script:
        "../workflow_scripts/plot_learning_curves.py"


# Each training run's reference set in one job: evaluation metrics over learning and the edge schedule's Gantt
# view. Phase 1 draws per-UE figures and phase 2 per-cluster ones, so the rule is stated once per phase.
for phase in (1, 2):

    rule:
        name:
            f"plot_run_phase{phase}"
        input:
            metrics=TRAIN_METRICS,
            schedule=POLICY_SCHEDULE,
        output:
            **run_figure_outputs(phase),
        log:
            f"{LOGS}/plot_run/{{variant_dir}}phase{{phase}}_n{{n}}_seed{{seed}}.log",
        wildcard_constraints:
            phase=str(phase),
        conda:
            "envs/mec.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            plotting=section("plotting"),
        script:
            "../workflow_scripts/plot_run.py"
