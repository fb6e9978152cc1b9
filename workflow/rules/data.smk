# Data: check every input and the config before any work (preflight), obtain each data set (download,
# generate or render), and turn it into manifests.


rule preflight:
    input:
        # ancient: a rerun of this job would rerun everything after it (see k3dn.preflight.recheck)
        ancient(miniature_registries()),
    output:
        touch("resources/preflight.ok"),
    log:
        "logs/preflight.log",
    benchmark:
        "benchmarks/preflight.tsv"
    conda:
        CONDA_ENV
    # A config changed after this job passed is checked again at the start of the run (onstart), not by
    # rerunning this job: downstream jobs take its output as `ancient`.
    params:
        workflow=WORKFLOW_CONFIG,
    shell:
        "k3dn preflight --workflow {params.workflow} > {log} 2>&1 || (cat {log} >&2; exit 1)"


rule obtain:
    input:
        obtain_inputs,
    output:
        touch(f"{RAW}/{{ds}}/.ready"),
    log:
        "logs/obtain/{ds}.log",
    benchmark:
        "benchmarks/obtain/{ds}.tsv"
    retries: 2
    conda:
        CONDA_ENV
    params:
        cmd=obtain_cmd,
    shell:
        "{params.cmd} > {log} 2>&1"


rule manifests:
    input:
        f"{RAW}/{{ds}}/.ready",
    output:
        directory(f"{MANIFESTS}/{{ds}}"),
    log:
        "logs/manifests/{ds}.log",
    benchmark:
        "benchmarks/manifests/{ds}.tsv"
    conda:
        CONDA_ENV
    params:
        root=lambda w: f"{RAW}/{w.ds}",
        extra=manifest_args,
    shell:
        "k3dn data manifest {wildcards.ds} --root {params.root} --out {output} {params.extra} > {log} 2>&1"
