# The paper's tables (one CSV each, beside the published numbers) and the figures.


rule table:
    input:
        lambda w: table_inputs(w.table),
    output:
        "results/tables/{table}.csv",
    log:
        "logs/tables/{table}.log",
    benchmark:
        "benchmarks/tables/{table}.tsv",
    params:
        spec=lambda w: jsonarg(TABLES[w.table]),
    shell:
        "k3dn report table --spec {params.spec:q} --out {output} > {log} 2>&1"


rule protocol_sensitivity:
    input:
        [f"results/metrics/{e['method']}/{e['test']}.csv" for e in PLAN.sensitivity_entries()],
        [f"{d}/predictions.json" for e in PLAN.sensitivity_entries() for d in e["variants"].values()],
    output:
        "results/tables/protocol_sensitivity.csv",
    log:
        "logs/tables/protocol_sensitivity.log",
    benchmark:
        "benchmarks/tables/protocol_sensitivity.tsv",
    params:
        spec=jsonarg(PLAN.sensitivity_entries()),
        device=config["device"],
    shell:
        "k3dn report sensitivity --spec {params.spec:q} --device {params.device} --out {output} > {log} 2>&1"


def figures_spec():
    figs = PLAN.config.get("figures", {})
    spec = {}
    if figs.get("ablations"):
        spec["ablations"] = {t: f"results/tables/{t}.csv" for t in figs["ablations"]}
    if figs.get("speed_accuracy"):
        spec["speed_accuracy"] = [f"results/tables/{t}.csv" for t in figs["speed_accuracy"]]
    spec["qualitative"] = {
        name: {"manifest": manifest_path(q["test"]),
               "predictions": {m: f"results/predictions/{m}/{q['test']}" for m in q["methods"]}}
        for name, q in figs.get("qualitative", {}).items()
    }
    return spec


def figures_inputs():
    spec = figures_spec()
    deps = list(spec.get("ablations", {}).values()) + spec.get("speed_accuracy", [])
    for q in spec["qualitative"].values():
        deps += [f"{d}/predictions.json" for d in q["predictions"].values()]
    return deps


rule make_figures:
    input:
        figures_inputs(),
    output:
        figure_files(),
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv",
    params:
        spec=jsonarg(figures_spec()),
    shell:
        "k3dn report figures --spec {params.spec:q} --out-dir results/figures > {log} 2>&1"


def report_spec():
    tables = {t: f"results/tables/{t}.csv" for t in list(TABLES) + ["protocol_sensitivity"]}
    figures = {Path(f).stem: f for f in figure_files()}
    note = ("MINIATURE RUN: stand-in data and random weights at toy scale; these numbers test the pipeline, "
            "not any method.") if MINIATURE else ""
    return {"tables": tables, "figures": figures, "note": note}


rule report:
    input:
        table_files(),
        figure_files(),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv",
    params:
        spec=jsonarg(report_spec()),
    shell:
        "k3dn report html --spec {params.spec:q} --out {output} > {log} 2>&1"
