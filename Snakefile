# K3DN reproducibility suite: data -> manifests -> training -> predictions -> metrics -> tables.
#   snakemake --cores all tables                                  # the paper (GPU box)
#   snakemake --cores all tables --configfile config/smoke.yaml   # synthetic data, CPU, minutes
# Rules are thin: each calls the `k3dn` command (k3dn/cli.py), which is tested without Snakemake.

from snakemake.utils import min_version

min_version("9.0")


# The paper config is the default. A --configfile (e.g. config/smoke.yaml) replaces it instead of being
# merged into it key by key, so a smoke run never inherits the paper's experiment grid.
if "runs" not in config:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
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
