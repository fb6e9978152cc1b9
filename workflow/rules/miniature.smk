# The miniature (config/miniature.yaml): every data set and checkpoint the grid needs is stood in by a file in
# its real layout and container, served on 127.0.0.1 by a server this workflow starts and stops; the manual-only
# ones are put in place as a user would. Preflight then sees, and the download rules fetch, exactly what they
# would in a paper run. Without a `miniature:` block these rules do not exist.


if MINIATURE:
    MINI = MINIATURE["root"]

    rule standin_data:
        output:
            touch(f"{MINI}/done/{{ds}}.data"),
        log:
            "logs/miniature/{ds}.log",
        benchmark:
            "benchmarks/miniature/{ds}.tsv"
        conda:
            CONDA_ENV
        params:
            spec=lambda w: jsonarg(MINIATURE["standins"].get(w.ds, {})),
            dataset=lambda w: jsonarg(PLAN.standin_dataset_config(w.ds)),
            dest=lambda w: f"{RAW}/{w.ds}",
        shell:
            "k3dn miniature data {wildcards.ds} --root {MINI} --spec {params.spec:q} --dataset {params.dataset:q}"
            " --dest {params.dest} > {log} 2>&1"

    rule standin_weights:
        output:
            touch(f"{MINI}/done/weights"),
        log:
            "logs/miniature/weights.log",
        benchmark:
            "benchmarks/miniature/weights.tsv"
        conda:
            CONDA_ENV
        params:
            checkpoints=" ".join(PLAN.needed_checkpoints()),
        shell:
            "k3dn miniature weights --root {MINI} --checkpoints {params.checkpoints} > {log} 2>&1"

    rule miniature_registries:
        input:
            [f"{MINI}/done/{ds}.data" for ds in PLAN.downloads()],
            f"{MINI}/done/weights",
        output:
            miniature_registries(),
        log:
            "logs/miniature/registries.log",
        benchmark:
            "benchmarks/miniature/registries.tsv"
        conda:
            CONDA_ENV
        params:
            datasets=" ".join(PLAN.downloads()),
            checkpoints=" ".join(PLAN.needed_checkpoints()),
            url=MINIATURE["url"],
        shell:
            "k3dn miniature registries --root {MINI} --url {params.url} --datasets {params.datasets}"
            " --checkpoints {params.checkpoints} > {log} 2>&1"
