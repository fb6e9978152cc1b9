# Published baseline checkpoints: fetched and verified, or (smoke) random weights in the published container.


rule checkpoint:
    input:
        "resources/preflight.ok",
    output:
        touch("resources/checkpoints/{ckpt}/.ready"),
    log:
        "logs/checkpoints/{ckpt}.log",
    params:
        verb="fetch" if config["checkpoints"] == "download" else "fake",
    retries: 2
    shell:
        "k3dn baselines {params.verb} {wildcards.ckpt} --dest resources/checkpoints/{wildcards.ckpt} > {log} 2>&1"
