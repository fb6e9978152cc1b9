# Data: check every input and the config before any work (preflight), obtain each data set (download,
# generate or render), and turn it into manifests.


def obtain_inputs(wildcards):
    spec = config["datasets"][wildcards.ds]
    deps = [ancient("resources/preflight.ok")]
    if spec.get("from"):
        deps.append(f"{RAW}/{spec['from']}/.ready")
    return deps


def obtain_cmd(wildcards):
    ds, spec = wildcards.ds, config["datasets"][wildcards.ds]
    how, dest = spec["obtain"], f"{RAW}/{ds}"
    extra = " ".join(str(a) for a in spec.get("args", []))
    if how == "download":
        return f"k3dn data {registry_args('datasets')} download {ds} --dest {dest}"
    if how == "render":
        return f"k3dn synth dp --out {dest} {extra}"
    if how == "generate":
        src = f"{RAW}/{spec['from']}"
        if ds == "ddd_syn":
            size = " ".join(str(s) for s in spec["image_size"]) if spec.get("image_size") else ""
            return f"k3dn synth ddd-syn --nyu {src} --out {dest} {'--out-size ' + size if size else ''} {extra}"
        if ds == "rdpd":
            return f"k3dn synth rdpd --synthia {src} --out {dest} {extra}"
    raise ValueError(f"config: data set {ds!r}: cannot obtain it by {how!r}")


rule preflight:
    input:
        # ancient: a rerun of this job would rerun everything after it (see k3dn.preflight.recheck)
        ancient(miniature_registries()),
    output:
        touch("resources/preflight.ok"),
    log:
        "logs/preflight.log",
    benchmark:
        "benchmarks/preflight.tsv",
    # A config changed after this job passed is checked again at the start of the run (onstart), not by
    # rerunning this job: downstream jobs take its output as `ancient`.
    shell:
        "k3dn preflight --workflow {WORKFLOW_CONFIG} > {log} 2>&1 || (cat {log} >&2; exit 1)"


rule obtain:
    input:
        obtain_inputs,
    output:
        touch(f"{RAW}/{{ds}}/.ready"),
    log:
        "logs/obtain/{ds}.log",
    benchmark:
        "benchmarks/obtain/{ds}.tsv",
    params:
        cmd=obtain_cmd,
    retries: 2
    shell:
        "{params.cmd} > {log} 2>&1"


def manifest_args(wildcards):
    spec = config["datasets"][wildcards.ds]
    args = []
    # The official sample counts are checked for downloaded sets only; generated ones are sized by config.
    if spec["obtain"] != "download" or config.get("scale"):
        args.append("--any-count")
    if spec.get("crop"):
        args.append("--crop " + " ".join(str(c) for c in spec["crop"]))
    return " ".join(args)


rule manifests:
    input:
        f"{RAW}/{{ds}}/.ready",
    output:
        directory(f"{MANIFESTS}/{{ds}}"),
    log:
        "logs/manifests/{ds}.log",
    benchmark:
        "benchmarks/manifests/{ds}.tsv",
    params:
        extra=manifest_args,
    shell:
        "k3dn data manifest {wildcards.ds} --root {RAW}/{wildcards.ds} --out {output} {params.extra} > {log} 2>&1"
