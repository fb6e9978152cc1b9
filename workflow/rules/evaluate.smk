# Predictions of every method on every test set it applies to, per-image metrics, and speed.


def predict_inputs(wildcards):
    return method_inputs(wildcards.method) + [manifest_dir(dataset_of(wildcards.test))]


def predict_args(wildcards):
    return method_args(wildcards.method, wildcards.test)


def test_manifest(wildcards):
    return manifest(wildcards.test)


def test_manifest_dir(wildcards):
    return manifest_dir(dataset_of(wildcards.test))


def speed_inputs(wildcards):
    return method_inputs(wildcards.method)


def speed_args(wildcards):
    return method_args(wildcards.method)


rule predict:
    input:
        predict_inputs,
    output:
        # A marker, not the folder: an interrupted run keeps its finished images and resumes.
        touch("results/predictions/{method}/{test}/.done"),
    log:
        "logs/predict/{method}/{test}.log",
    threads: config.get("predict_threads", 4)
    resources:
        gpu=config.get("gpus_per_run", 1),
    params:
        model=predict_args,
        manifest=test_manifest,
        device=config["device"],
    shell:
        "k3dn predict {params.model} --manifest {params.manifest} --device {params.device}"
        " --out results/predictions/{wildcards.method}/{wildcards.test} > {log} 2>&1"


rule evaluate:
    input:
        "results/predictions/{method}/{test}/.done",
        test_manifest_dir,
    output:
        "results/metrics/{method}/{test}.csv",
    log:
        "logs/evaluate/{method}/{test}.log",
    params:
        manifest=test_manifest,
        lpips="--lpips" if config["lpips"] else "",
        protocol=config["protocol"],
    shell:
        "k3dn evaluate --pred results/predictions/{wildcards.method}/{wildcards.test} --manifest {params.manifest}"
        " --protocol {params.protocol} {params.lpips} --out {output} > {log} 2>&1"


rule speed:
    input:
        speed_inputs,
    output:
        "results/speed/{method}.csv",
    log:
        "logs/speed/{method}.log",
    resources:
        gpu=config.get("gpus_per_run", 1),
    params:
        model=speed_args,
        size=" ".join(str(s) for s in config["speed"]["size"]),
        warmup=config["speed"]["warmup"],
        runs=config["speed"]["runs"],
        dtype=config["speed"]["dtype"],
        device=config["device"],
    shell:
        "k3dn report speed --method {wildcards.method} {params.model} --size {params.size} --warmup {params.warmup}"
        " --runs {params.runs} --dtype {params.dtype} --device {params.device} --out {output} > {log} 2>&1"
