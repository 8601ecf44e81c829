# The MEC study as a Snakemake workflow. Run everything with
#   snakemake --workflow-profile profiles/default --configfile config.yaml
# and the tiny CI study with --configfile .test/config.yaml. Only stale jobs rerun: every config value a rule uses
# reaches it through params (see rules/common.smk), so a change reruns exactly the jobs it affects.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


# Every check fails with one line naming the config key, before any job is scheduled: the config files themselves
# (duplicate keys), the schema (types, known keys), then mec.config (cross-field checks such as K <= phase2.n_users,
# sizes that would not fit in memory).
with one_line_config_errors():
    check_config_files()  # duplicate keys, which Snakemake's YAML reader lets through
    validate(config, "config/schema.yaml")
    STUDY = config_from_dict(config)
    # Every variant's config (workflow.variants, workflow.w_energy, tuning.grid), validated the same way.
    VARIANTS = variant_configs(STUDY)


include: "rules/baselines.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/plots.smk"
include: "rules/variants.smk"


rule all:
    default_target: True
    input:
        final_output(),
    localrule: True


# Partial targets. phase1, phase2: training, evaluation, each run's figures and each sweep point's learning curves
# of one phase. baselines: every heuristic and the oracle, and their summary (no training). figures: every figure.
rule phase1:
    input:
        phase_output(1),
    localrule: True


rule phase2:
    input:
        phase_output(2),
    localrule: True


# scenarios: the scenarios of workflow.scenarios alone, each through every stage (a part of the study that runs
# beside the study's own sweep elsewhere: config/parts/capable_edge.yaml).
rule scenarios:
    input:
        scenario_output(),
    localrule: True


rule baselines:
    input:
        baseline_output(),
    localrule: True


rule figures:
    input:
        figure_output(),
    localrule: True


# Targets across variants of the study (workflow.variants and the keys after it in config.yaml); none is part of
# the default target. ablations, compare_backends: the variants' training and evaluation, a table and a figure per
# phase comparing each with the study. pareto: the QoS-energy trade-off over workflow.w_energy. tune: the
# hyperparameter grid of the tuning section, ranked by validation reward. readme_results: the README's results
# section from the summary tables (it rewrites README.md between its markers, hence not in `all`).
rule ablations:
    input:
        comparison_output("ablations"),
    localrule: True


rule compare_backends:
    input:
        comparison_output("backends"),
    localrule: True


rule pareto:
    input:
        pareto_output,
    localrule: True


rule tune:
    input:
        tuning_output,
    localrule: True


# A job that SLURM killed for its memory or time request gets one line naming the rule and the resource (Snakemake's
# own message only gives SLURM's job state; the reason is in the job's SLURM log).
onerror:
    from mec.slurm import failure_lines

    for line in failure_lines(log):
        print(f"Error: {line}", file=sys.stderr)
