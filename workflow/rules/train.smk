# Training: every run of config["runs"] (K3DN variants, ablations, retrained baselines) with its recipe.


def train_inputs(wildcards):
    return [manifest_dir(RUNS[wildcards.run]["data"])]


def run_gpus(wildcards):
    return RUNS[wildcards.run].get("gpus", config.get("gpus_per_run", 1))


def train_cmd(wildcards, resources):
    run = wildcards.run
    sets = " ".join(f"--set {shlex_quote(s)}" for s in PLAN.train_sets(run))
    args = f"train --config {PLAN.recipe(run)} --out results/runs/{run} {sets}"
    if resources.gpu > 1:
        # One process per GPU; on SLURM the job owns its node's GPUs, locally they are shared by --resources gpu=N.
        return f"torchrun --standalone --nproc_per_node={resources.gpu} -m k3dn.cli {args}"
    return f"k3dn {args}"


rule train:
    input:
        train_inputs,
    output:
        "results/runs/{run}/model.safetensors",
    log:
        "logs/train/{run}.log",
    benchmark:
        "benchmarks/train/{run}.tsv",
    threads: config.get("train_threads", 8)
    resources:
        gpu=run_gpus,
    params:
        cmd=train_cmd,
    shell:
        "{params.cmd} > {log} 2>&1"
