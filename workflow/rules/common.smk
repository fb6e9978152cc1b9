# Helpers of the rules: the config resolved by k3dn.workflow (tested without Snakemake), and the inputs and
# arguments each rule needs.

import sys
from pathlib import Path
from shlex import quote as shlex_quote

from snakemake.utils import validate

from k3dn.report.specs import MODEL_FIGURES
from k3dn.workflow import (
    MANIFESTS,
    RAW,
    UNSCORED,
    Plan,
    checkpoint_entries,
    dataset_of,
    jsonarg,
    manifest_path,
)

validate(config, "../schemas/config.schema.yaml")

PLAN = Plan(config, checkpoint_entries())
RUNS, PUBLISHED, METHODS, TABLES = PLAN.runs, PLAN.published, PLAN.methods, PLAN.tables
# folders of result images made elsewhere: imported, never predicted
EXTERNAL = PLAN.external
if PLAN.missing:
    print(PLAN.report(), file=sys.stderr)
MINIATURE = config.get("miniature")
# The `k3dn` environment of every job when run with --software-deployment-method conda
# (the path is relative to workflow/rules/, where the rules are).
CONDA_ENV = "../../environment.yml"
WORKFLOW_CONFIG = "resources/workflow.json"  # the merged config, read by `k3dn preflight` (written at start)


onstart:
    from k3dn.preflight import recheck

    recheck(config, WORKFLOW_CONFIG, "resources/preflight.ok")
    if MINIATURE:
        from k3dn.miniature.serve import start_server

        start_server(
            f"{MINIATURE['root']}/www",
            MINIATURE["url"],
            log="logs/miniature/serve.log",
        )


onsuccess:
    if MINIATURE:
        from k3dn.miniature.serve import stop_server

        stop_server(MINIATURE["url"])


onerror:
    if MINIATURE:
        from k3dn.miniature.serve import stop_server

        stop_server(MINIATURE["url"])


wildcard_constraints:
    ds="[a-z0-9_]+",
    run="|".join(RUNS) or "NONE",
    method="|".join(METHODS) or "NONE",
    ckpt="[a-z0-9_]+",
    test="[a-z0-9_]+",
    variant="[a-z0-9_]+",
    table="|".join(TABLES),
    image="[A-Za-z0-9_]+",


def manifest_dir(ds):
    return f"{MANIFESTS}/{ds}"


def method_inputs(method):
    if method in RUNS:
        return [f"results/runs/{method}/model.safetensors"]
    ckpt = PUBLISHED[method].get("checkpoint")
    return [f"{PLAN.checkpoint_dir(ckpt)}/.ready"] if ckpt else []


def method_tests(method):
    return METHODS[method]["test"]


def registry_args(kind):
    """``--registry`` of the data/checkpoint commands: the miniature's derived registries, else the repository's."""
    if not MINIATURE:
        return ""
    return f"--registry {MINIATURE['root']}/{kind}.yaml"


# ---- targets --------------------------------------------------------------------------------------------


def table_inputs(table):
    spec = TABLES[table]
    methods = [r["method"] for r in spec["rows"] if r.get("method")]
    if spec.get("kind") == "speed":
        return [f"results/speed/{m}.csv" for m in methods]
    return [f"results/metrics/{m}/{spec['test']}.csv" for m in methods]


def table_files():
    extra = ["protocol_sensitivity"] + (
        ["table7b_pixel_defocus"] if PLAN.defocus_rows() else []
    )
    return [f"results/tables/{t}.csv" for t in [*TABLES, *extra]]


def result_files():
    """Every method on every test set it lists: a run or method in no table or figure is still run by `all`."""
    return [
        (
            f"results/predictions/{m}/{t}/predictions.json"
            if dataset_of(t) in UNSCORED
            else f"results/metrics/{m}/{t}.csv"
        )
        for m in METHODS
        for t in method_tests(m)
    ]


def figure_files():
    return [f"results/figures/{name}.png" for name in PLAN.figures()]


# ---- used by miniature.smk


def miniature_registries():
    if not MINIATURE:
        return []
    return [
        f"{MINIATURE['root']}/datasets.yaml",
        f"{MINIATURE['root']}/checkpoints.yaml",
    ]


# ---- used by data.smk


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
            size = (
                f"--out-size {spec['image_size'][0]} {spec['image_size'][1]}"
                if spec.get("image_size")
                else ""
            )
            return f"k3dn synth ddd-syn --nyu {src} --out {dest} {size} {extra}"
        if ds == "rdpd":
            return f"k3dn synth rdpd --synthia {src} --out {dest} {extra}"
    raise ValueError(f"config: data set {ds!r}: cannot obtain it by {how!r}")


def manifest_args(wildcards):
    spec = config["datasets"][wildcards.ds]
    args = []
    # The official sample counts are checked for downloaded sets only; generated ones are sized by config.
    if spec["obtain"] != "download" or config.get("scale"):
        args.append("--any-count")
    if spec.get("crop"):
        args.append("--crop " + " ".join(str(c) for c in spec["crop"]))
    return " ".join(args)


# ---- used by train.smk


def train_inputs(wildcards):
    return [manifest_dir(RUNS[wildcards.run]["data"])]


def job_gpus():
    """What a job that can use CUDA claims of the `gpu` pool: none where the config puts every job on the CPU."""
    return 0 if config["device"] == "cpu" else config.get("gpus_per_run", 1)


def run_gpus(wildcards):
    return (
        0 if config["device"] == "cpu" else RUNS[wildcards.run].get("gpus", job_gpus())
    )


def train_cmd(wildcards, resources):
    run = wildcards.run
    values = PLAN.train_sets(run)
    if config["device"] != "auto":
        # The recipe's engine.device is auto: without this, a run configured for the CPU (the miniature, which
        # claims no GPU) would still train on a GPU where one is visible. engine.* is resume-neutral.
        values.append(f"engine.device={jsonarg(config['device'])}")
    sets = " ".join(f"--set {shlex_quote(s)}" for s in values)
    args = f"train --config {PLAN.recipe(run)} --out results/runs/{run} {sets}"
    if resources.gpu > 1:
        # One process per GPU; on SLURM the job owns its node's GPUs, locally they are shared by --resources gpu=N.
        return (
            f"torchrun --standalone --nproc_per_node={resources.gpu} -m k3dn.cli {args}"
        )
    return f"k3dn {args}"


# ---- used by evaluate.smk


def predict_inputs(wildcards):
    return method_inputs(wildcards.method) + [manifest_dir(dataset_of(wildcards.test))]


def lpips_args():
    if not config["lpips"]:
        return ""
    root = f"{RAW}/lpips_weights"
    args = (
        f"--lpips --lpips-backbone {root}/alexnet-owt-7be5be79.pth"
        f" --lpips-lin {root}/lpips-0.1.4-py3-none-any/lpips/weights/v0.1/alex.pth"
    )
    return args + (" --lpips-standin" if MINIATURE else "")


def speed_gpus():
    """Table 12's timings run alone on their GPU. Locally the `gpu` resource is a counter, not a device: every job
    with --device auto runs on cuda:0, so a timing that claimed 1 of `--resources gpu=G` could share GPU 0 with a
    training or prediction job. It claims the whole local pool instead (1 under profiles/default, G with
    `--resources gpu=G`), so no other GPU job starts while it runs. On SLURM each job is allocated GPUs of its
    own: profiles/slurm sets speed's claim back to one GPU."""
    per_job = job_gpus()
    if not per_job or "gpu" not in workflow.global_resources:
        return per_job
    return workflow.global_resources["gpu"].value or per_job


# ---- used by report.smk


def figure_runs_model(wildcards):
    # the others only plot files: they neither claim a GPU nor queue behind the GPU jobs
    return FIGURES[wildcards.figure]["kind"] in MODEL_FIGURES


def figure_gpus(wildcards):
    return job_gpus() if figure_runs_model(wildcards) else 0


def figure_device(wildcards):
    return config["device"] if figure_runs_model(wildcards) else "cpu"


def pairwise_methods():
    """Test set -> the methods of its first table (its main one: Table 1 for DPD-blur), each against each."""
    out = {}
    for spec in TABLES.values():
        if spec.get("kind") == "speed" or spec["test"] in out:
            continue
        methods = list(
            dict.fromkeys(r["method"] for r in spec["rows"] if r.get("method"))
        )
        if len(methods) >= 2:
            out[spec["test"]] = methods
    return out


PAIRWISE = pairwise_methods()


def report_spec():
    tables = {t: f"results/tables/{t}.csv" for t in list(TABLES) + PLAN.extra_tables()}
    figures = {Path(f).stem: f for f in figure_files()}
    note = (
        (
            "MINIATURE RUN: stand-in data and random weights at toy scale; these numbers test the pipeline, "
            "not any method."
        )
        if MINIATURE
        else ""
    )
    table_specs = {
        t: {k: s[k] for k in ("title", "test", "kind", "groups") if k in s}
        for t, s in TABLES.items()
    }
    pairwise = {t: f"results/pairwise/{t}.csv" for t in PAIRWISE}
    return {
        "tables": tables,
        "figures": figures,
        "note": note,
        "table_specs": table_specs,
        "pairwise": pairwise,
    }
