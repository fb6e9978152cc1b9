# K3DN reproducibility suite: data -> manifests -> training -> predictions -> metrics -> tables, figures.
#   snakemake --cores all all --configfile config/miniature.yaml   # every job of the paper's grid, CPU, minutes
#   snakemake --cores all tables                                    # the paper (GPU box)
# Rules are thin: each calls a `k3dn` command (k3dn/cli.py), which is tested without Snakemake.

from snakemake.utils import min_version

min_version("9.0")


# The paper's grid is always the base. A --configfile (config/miniature.yaml, a user's own) is merged over it
# key by key by Snakemake, so it can change scale and sources but never drop an experiment.
configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/miniature.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule tables:
    default_target: True
    input:
        table_files(),


rule figures:
    input:
        figure_files(),


rule all:
    input:
        table_files(),
        figure_files(),
        result_files(),
        "results/report.html",
