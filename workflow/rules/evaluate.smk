# Predictions of every method on every test set it applies to, per-image metrics, and speed.


PER_IMAGE = PLAN.per_image_methods()
# external folders are imported instead
PREDICTED = [m for m in METHODS if m not in EXTERNAL]


rule predict:
    input:
        predict_inputs,
    output:
        # Written last; <id>.png and the key (.key.json) beside it let an interrupted run resume; other weights,
        # model config or code, or a finished folder run again (--forcerun), redo every image.
        "results/predictions/{method}/{test}/predictions.json",
    log:
        "logs/predict/{method}/{test}.log",
    benchmark:
        "benchmarks/predict/{method}/{test}.tsv"
    wildcard_constraints:
        method="|".join(m for m in PREDICTED if m not in PER_IMAGE) or "NONE",
    conda:
        CONDA_ENV
    threads: config.get("predict_threads", 4)
    resources:
        gpu=job_gpus(),
    params:
        model=lambda w: PLAN.method_args(w.method, w.test),
        weights=lambda w: PLAN.weights_identity(w.method),  # other weights under the same name: predict again
        manifest=lambda w: manifest_path(w.test),
        device=config["device"],
        dtype=config.get("predict_dtype", "float32"),
    shell:
        "k3dn predict {params.model} --manifest {params.manifest} --device {params.device} --dtype {params.dtype}"
        " --out results/predictions/{wildcards.method}/{wildcards.test} > {log} 2>&1"


# Methods that take long per image (Xin et al.'s optimisation): one job per image, each with the scene's
# official settings where the method has them, then gathered into the usual folder.
rule predict_image:
    input:
        predict_inputs,
    output:
        "results/predictions/{method}/{test}/images/{image}/predictions.json",
    log:
        "logs/predict/{method}/{test}/{image}.log",
    benchmark:
        "benchmarks/predict/{method}/{test}/{image}.tsv"
    wildcard_constraints:
        method="|".join(PER_IMAGE) or "NONE",
        image="[A-Za-z0-9_]+",
    conda:
        CONDA_ENV
    resources:
        gpu=job_gpus(),
    params:
        model=lambda w: PLAN.method_args(w.method, w.test),
        weights=lambda w: PLAN.weights_identity(w.method),  # other weights under the same name: predict again
        manifest=lambda w: manifest_path(w.test),
        device=config["device"],
        dtype=config.get("predict_dtype", "float32"),
    shell:
        "k3dn predict {params.model} --override 'scene=\"{wildcards.image}\"' --ids {wildcards.image}"
        " --manifest {params.manifest} --device {params.device} --dtype {params.dtype}"
        " --out results/predictions/{wildcards.method}/{wildcards.test}/images/{wildcards.image} > {log} 2>&1"


rule gather_predictions:
    input:
        lambda w: [
            f"results/predictions/{w.method}/{w.test}/images/{i}/predictions.json"
            for i in PLAN.image_ids(w.test)
        ],
    output:
        "results/predictions/{method}/{test}/predictions.json",
    log:
        "logs/predict/{method}/{test}.log",
    wildcard_constraints:
        method="|".join(PER_IMAGE) or "NONE",
    conda:
        CONDA_ENV
    params:
        parts=lambda w, input: " ".join(str(Path(p).parent) for p in input),
    shell:
        "k3dn gather --parts {params.parts} --out results/predictions/{wildcards.method}/{wildcards.test}"
        " > {log} 2>&1"


rule predict_variant:
    input:
        predict_inputs,
    output:
        "results/predictions/{method}/{test}~{variant}/predictions.json",
    log:
        "logs/predict/{method}/{test}~{variant}.log",
    benchmark:
        "benchmarks/predict/{method}/{test}~{variant}.tsv"
    wildcard_constraints:
        method="|".join(PREDICTED) or "NONE",
    conda:
        CONDA_ENV
    threads: config.get("predict_threads", 4)
    resources:
        gpu=job_gpus(),
    params:
        model=lambda w: PLAN.method_args(w.method, w.test),
        weights=lambda w: PLAN.weights_identity(w.method),  # other weights under the same name: predict again
        manifest=lambda w: manifest_path(w.test),
        device=config["device"],
        variant=lambda w: PLAN.variant_args(w.variant),
    shell:
        "k3dn predict {params.model} --manifest {params.manifest} --device {params.device} {params.variant}"
        " --out results/predictions/{wildcards.method}/{wildcards.test}~{wildcards.variant} > {log} 2>&1"


# Result images made elsewhere (config external:), checked against the manifest and copied with their sha256;
# `k3dn evaluate` then scores them like any prediction and the tables mark them external.
rule import_predictions:
    input:
        lambda w: PLAN.external_files(w.method, w.test),
        lambda w: manifest_dir(dataset_of(w.test)),
    output:
        "results/predictions/{method}/{test}/predictions.json",
    log:
        "logs/import/{method}/{test}.log",
    benchmark:
        "benchmarks/import/{method}/{test}.tsv"
    wildcard_constraints:
        method="|".join(EXTERNAL) or "NONE",
    conda:
        CONDA_ENV
    params:
        args=lambda w: PLAN.import_args(w.method, w.test),
        files=lambda w: PLAN.external_fingerprint(w.method, w.test),  # files replaced by older ones too
    shell:
        # --replace: Snakemake deletes predictions.json before the job, so an earlier import is no longer marked
        "k3dn import-predictions {params.args} --replace"
        " --out results/predictions/{wildcards.method}/{wildcards.test} > {log} 2>&1"


rule evaluate:
    input:
        "results/predictions/{method}/{test}/predictions.json",
        lambda w: manifest_dir(dataset_of(w.test)),
        [f"{RAW}/lpips_weights/.ready"] if config["lpips"] else [],
    output:
        "results/metrics/{method}/{test}.csv",
    log:
        "logs/evaluate/{method}/{test}.log",
    benchmark:
        "benchmarks/evaluate/{method}/{test}.tsv"
    conda:
        CONDA_ENV
    params:
        manifest=lambda w: manifest_path(w.test),
        lpips=lpips_args(),
        protocol=config["protocol"],
    shell:
        "k3dn evaluate --pred results/predictions/{wildcards.method}/{wildcards.test} --manifest {params.manifest}"
        " --protocol {params.protocol} {params.lpips} --out {output} --quiet > {log} 2>&1"


rule speed:
    input:
        lambda w: method_inputs(w.method),
    output:
        "results/speed/{method}.csv",
    log:
        "logs/speed/{method}.log",
    benchmark:
        "benchmarks/speed/{method}.tsv"
    conda:
        CONDA_ENV
    resources:
        gpu=speed_gpus(),  # the whole local GPU pool: common.smk says why
    params:
        model=lambda w: PLAN.method_args(w.method),
        weights=lambda w: PLAN.weights_identity(w.method),
        size=" ".join(str(s) for s in config["speed"]["size"]),
        warmup=config["speed"]["warmup"],
        runs=config["speed"]["runs"],
        dtype=config["speed"]["dtype"],
        device=config["device"],
    shell:
        "k3dn report speed --method {wildcards.method} {params.model} --size {params.size} --warmup {params.warmup}"
        " --runs {params.runs} --dtype {params.dtype} --device {params.device} --out {output} > {log} 2>&1"
