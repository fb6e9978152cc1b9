# Published baseline checkpoints: fetched, verified and strictly loaded (the miniature: random weights in the
# published containers, fetched the same way from its local server).


rule fetch_weights:
    input:
        ancient("resources/preflight.ok"),
    output:
        touch("resources/checkpoints/{ckpt}/.ready"),
    log:
        "logs/checkpoints/{ckpt}.log",
    benchmark:
        "benchmarks/checkpoints/{ckpt}.tsv"
    retries: 2
    conda:
        CONDA_ENV
    params:
        registry=registry_args("checkpoints"),
        entry=lambda w: PLAN.checkpoint_identity(w.ckpt),  # other weights under the same name: fetch again
    shell:
        "k3dn baselines fetch {wildcards.ckpt} --dest resources/checkpoints/{wildcards.ckpt} {params.registry}"
        " > {log} 2>&1"
