# The paper's tables (one CSV each, beside the published numbers) and the figures.


rule table:
    input:
        lambda w: table_inputs(w.table),
    output:
        "results/tables/{table}.csv",
    log:
        "logs/tables/{table}.log",
    benchmark:
        "benchmarks/tables/{table}.tsv"
    conda:
        CONDA_ENV
    params:
        spec=lambda w: jsonarg(TABLES[w.table]),
    shell:
        "k3dn report table --spec {params.spec:q} --out {output} > {log} 2>&1"


rule protocol_sensitivity:
    input:
        [
            f"results/metrics/{e['method']}/{e['test']}.csv"
            for e in PLAN.sensitivity_entries()
        ],
        [
            f"{d}/predictions.json"
            for e in PLAN.sensitivity_entries()
            for d in e["variants"].values()
        ],
    output:
        "results/tables/protocol_sensitivity.csv",
    log:
        "logs/tables/protocol_sensitivity.log",
    benchmark:
        "benchmarks/tables/protocol_sensitivity.tsv"
    conda:
        CONDA_ENV
    resources:
        gpu=job_gpus(),
    params:
        spec=jsonarg(PLAN.sensitivity_entries()),
        device=config["device"],
    shell:
        "k3dn report sensitivity --spec {params.spec:q} --device {params.device} --out {output} > {log} 2>&1"


DEFOCUS = PLAN.defocus_rows()


rule defocus_table:
    input:
        [f"{r['pred']}/predictions.json" for r in DEFOCUS if r["kind"] == "maps"],
        [f"{r['run']}/model.safetensors" for r in DEFOCUS if r["kind"] == "k3dn"],
        manifest_dir("pixel"),
    output:
        "results/tables/table7b_pixel_defocus.csv",
    log:
        "logs/tables/table7b_pixel_defocus.log",
    benchmark:
        "benchmarks/tables/table7b_pixel_defocus.tsv"
    conda:
        CONDA_ENV
    resources:
        gpu=job_gpus(),
    params:
        rows=jsonarg(DEFOCUS),
        manifest=manifest_path(config.get("defocus", {}).get("test", "pixel_test")),
        device=config["device"],
    shell:
        "k3dn report defocus --rows {params.rows:q} --manifest {params.manifest} --device {params.device}"
        " --out {output} > {log} 2>&1"


FIGURES = PLAN.figures()


rule figure:
    input:
        lambda w: FIGURES[w.figure]["inputs"],
    output:
        "results/figures/{figure}.png",
    log:
        "logs/figures/{figure}.log",
    benchmark:
        "benchmarks/figures/{figure}.tsv"
    wildcard_constraints:
        figure="|".join(f for f in FIGURES if f != "disparity_clusters") or "NONE",
    conda:
        CONDA_ENV
    # Only the model figures (reblur, PSF kernels) use the GPU; the plots name the CPU and claim none.
    resources:
        gpu=figure_gpus,
    params:
        kind=lambda w: FIGURES[w.figure]["kind"],
        spec=lambda w: jsonarg(FIGURES[w.figure]["spec"]),
        device=figure_device,
    shell:
        "k3dn report figure {params.kind} --spec {params.spec:q} --device {params.device} --out {output}"
        " > {log} 2>&1"


# Its second output is the table of how well the unsupervised disparity features order by true disparity.
rule disparity_clusters:
    input:
        lambda w: FIGURES["disparity_clusters"]["inputs"],
    output:
        figure="results/figures/disparity_clusters.png",
        table="results/tables/disparity_features.csv",
    log:
        "logs/figures/disparity_clusters.log",
    benchmark:
        "benchmarks/figures/disparity_clusters.tsv"
    conda:
        CONDA_ENV
    resources:
        gpu=job_gpus(),
    params:
        spec=lambda w: jsonarg(FIGURES["disparity_clusters"]["spec"]),
        device=config["device"],
    shell:
        "k3dn report figure disparity_clusters --spec {params.spec:q} --device {params.device}"
        " --out {output.figure} > {log} 2>&1"


rule pairwise:
    input:
        lambda w: [f"results/metrics/{m}/{w.test}.csv" for m in PAIRWISE[w.test]],
    output:
        "results/pairwise/{test}.csv",
    log:
        "logs/pairwise/{test}.log",
    benchmark:
        "benchmarks/pairwise/{test}.tsv"
    wildcard_constraints:
        test="|".join(PAIRWISE) or "NONE",
    conda:
        CONDA_ENV
    params:
        methods=lambda w: " ".join(PAIRWISE[w.test]),
    shell:
        "k3dn report pairwise --test {wildcards.test} --methods {params.methods} --out {output} > {log} 2>&1"


rule report:
    input:
        list(report_spec()["tables"].values()),
        list(report_spec()["pairwise"].values()),
        figure_files(),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    conda:
        CONDA_ENV
    params:
        spec=jsonarg(report_spec()),
    shell:
        "k3dn report html --spec {params.spec:q} --out {output} > {log} 2>&1"
