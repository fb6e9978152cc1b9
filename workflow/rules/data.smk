# Data: check what must be fetched by hand, obtain each data set (download, generate or render),
# and turn it into manifests.


def needed_datasets():
    """Every data set some run trains on or some method is tested on, with the sets they are made from."""
    used = {RUNS[r]["data"] for r in RUNS}
    used |= {dataset_of(t) for m in METHODS for t in method_tests(m)}
    for ds in list(used):
        src = config["datasets"][ds].get("from")
        if src:
            used.add(src)
    return sorted(used)


def needed_checkpoints():
    return sorted({p["checkpoint"] for p in PUBLISHED.values() if p.get("checkpoint")})


def obtain_inputs(wildcards):
    spec = config["datasets"][wildcards.ds]
    deps = ["resources/preflight.ok"]
    if spec.get("from"):
        deps.append(f"{RAW}/{spec['from']}/.ready")
    return deps


def obtain_cmd(wildcards):
    ds, spec = wildcards.ds, config["datasets"][wildcards.ds]
    how, dest = spec["obtain"], f"{RAW}/{ds}"
    extra = " ".join(str(a) for a in spec.get("args", []))
    if how == "download":
        return f"k3dn data download {ds} --dest {dest}"
    if how == "render":
        return f"k3dn synth dp --out {dest} {extra}"
    if how == "standin":
        return f"k3dn synth standin-{ds.split('_')[0]} --out {dest} {extra}"
    if how == "generate":
        src = f"{RAW}/{spec['from']}"
        if ds == "ddd_syn":
            return f"k3dn synth ddd-syn --nyu {src} --out {dest} {extra}"
        if ds == "rdpd":
            return f"k3dn synth rdpd --synthia {src} --out {dest} {extra}"
    raise ValueError(f"config: data set {ds!r}: cannot obtain it by {how!r}")


rule preflight:
    output:
        touch("resources/preflight.ok"),
    log:
        "logs/preflight.log",
    params:
        datasets=" ".join(d for d in needed_datasets() if config["datasets"][d]["obtain"] == "download"),
        checkpoints=" ".join(needed_checkpoints()) if config["checkpoints"] == "download" else "",
    shell:
        "k3dn preflight --datasets {params.datasets} --checkpoints {params.checkpoints} 2>&1 | tee {log}"


rule obtain:
    input:
        obtain_inputs,
    output:
        touch(f"{RAW}/{{ds}}/.ready"),
    log:
        "logs/obtain/{ds}.log",
    params:
        cmd=obtain_cmd,
    retries: 2
    shell:
        "{params.cmd} > {log} 2>&1"


def manifest_args(wildcards):
    # The official sample counts are checked for downloaded sets only; generated ones are sized by config.
    return "" if config["datasets"][wildcards.ds]["obtain"] == "download" else "--any-count"


rule manifests:
    input:
        f"{RAW}/{{ds}}/.ready",
    output:
        directory(f"{MANIFESTS}/{{ds}}"),
    log:
        "logs/manifests/{ds}.log",
    params:
        extra=manifest_args,
    shell:
        "k3dn data manifest {wildcards.ds} --root {RAW}/{wildcards.ds} --out {output} {params.extra} > {log} 2>&1"
