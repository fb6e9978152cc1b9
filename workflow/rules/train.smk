# Training: every run of config["runs"] (K3DN variants, ablations, retrained baselines) with its recipe.


rule train:
    input:
        train_inputs,
    output:
        "results/runs/{run}/model.safetensors",
    log:
        "logs/train/{run}.log",
    benchmark:
        "benchmarks/train/{run}.tsv"
    conda:
        CONDA_ENV
    threads: config.get("train_threads", 8)
    resources:
        gpu=run_gpus,
    params:
        cmd=train_cmd,
    shell:
        "{params.cmd} > {log} 2>&1"
