# Results across variants of the study (rules/common.smk): ablations and backends compared with the study, the
# QoS-energy trade-off, the hyperparameter sweep and the README's results section. A variant's own training,
# evaluation and summaries are the study's rules under results/variants/<name>/.


rule compare_variants:
    input:
        unpack(comparison_inputs),
    output:
        table=COMPARISON_TABLE,
        markdown=COMPARISON_MARKDOWN,
    log:
        f"{LOGS}/compare_variants/{{comparison}}.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        studies=comparison_studies,
    script:
        "../workflow_scripts/compare_variants.py"


rule plot_comparison:
    input:
        table=COMPARISON_TABLE,
        baselines=study_file(SUMMARY_BASELINES),
    output:
        figure=report(
            COMPARISON_FIGURE,
            caption="../report/plot_comparison.rst",
            category="Phase {phase}",
            subcategory="Variants of the study",
            labels={"figure": "{comparison}"},
        ),
    log:
        f"{LOGS}/plot_comparison/phase{{phase}}_{{comparison}}.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        plotting=section("plotting"),
    script:
        "../workflow_scripts/plot_comparison.py"


rule aggregate_pareto:
    input:
        unpack(pareto_inputs),
    output:
        table=PARETO_TABLE,
    log:
        f"{LOGS}/aggregate_pareto.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        studies=pareto_studies,
    script:
        "../workflow_scripts/aggregate_pareto.py"


rule plot_pareto:
    input:
        table=PARETO_TABLE,
    output:
        figure=report(
            PARETO_FIGURE,
            caption="../report/plot_pareto.rst",
            category="Phase {phase}",
            subcategory="QoS-energy trade-off",
        ),
    log:
        f"{LOGS}/plot_pareto/phase{{phase}}.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        plotting=section("plotting"),
    script:
        "../workflow_scripts/plot_pareto.py"


rule aggregate_tuning:
    input:
        metrics=tuning_inputs,
    output:
        table=TUNING_TABLE,
        markdown=TUNING_MARKDOWN,
    log:
        f"{LOGS}/aggregate_tuning.log",
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=tuning_runs,
        statistics=section("statistics"),
    script:
        "../workflow_scripts/aggregate_tuning.py"


# The page whose generated section README_RESULTS is, and the README's headline table (README_RESULTS, README and
# README_FIGURES are common.smk's).
RESULTS_PAGE = "docs/results.md"
README_HEADLINE = f"{RESULTS}/README_headline.md"


# Writes results/README_results.md and results/README_headline.md and copies the figures the section shows to
# docs/results/, then splices the section into docs/results.md and the headline into README.md between their
# markers. Neither page nor docs/results/ is an output: Snakemake would delete them before the job, and docs/results/
# also holds figures that other runs committed there (the variants').
rule readme_results:
    input:
        unpack(readme_inputs),
    output:
        markdown=README_RESULTS,
        headline=README_HEADLINE,
    log:
        f"{LOGS}/readme_results.log",
    localrule: True
    conda:
        "envs/mec.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        readme=README,
        page=RESULTS_PAGE,
        figures=README_FIGURES,
        scenarios=readme_scenarios,
    script:
        "../workflow_scripts/readme_results.py"
