# Training: every run of config["runs"] (K3DN variants, ablations, retrained baselines) with its recipe.


def train_inputs(wildcards):
    return [manifest_dir(RUNS[wildcards.run]["data"])]


def run_gpus(wildcards):
    return RUNS[wildcards.run].get("gpus", config.get("gpus_per_run", 1))


def train_cmd(wildcards, resources):
    spec = RUNS[wildcards.run]
    ds = spec["data"]
    recipe = config["recipes"][spec.get("recipe", ds)]
    sets = [f"model.name={spec['model']}", f"model.overrides={jsonarg(spec.get('overrides', {}))}",
            f"data.train={manifest_dir(ds)}/{ds}_train.csv"]
    if "val" in SPLITS[ds]:
        sets.append(f"data.val={manifest_dir(ds)}/{ds}_val.csv")
    extra = {**config.get("train_set", {}), **spec.get("set", {})}
    sets += [f"{k}={jsonarg(v)}" for k, v in extra.items()]
    args = f"train --config {recipe} --out results/runs/{wildcards.run} " + " ".join(f"--set '{s}'" for s in sets)
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
    threads: config.get("train_threads", 8)
    resources:
        gpu=run_gpus,
    params:
        cmd=train_cmd,
    shell:
        "{params.cmd} > {log} 2>&1"
