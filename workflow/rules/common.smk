# Helpers of the rules: the config resolved by k3dn.workflow (tested without Snakemake), and the inputs and
# arguments each rule needs.

import sys
from pathlib import Path
from shlex import quote as shlex_quote

from snakemake.utils import validate

from k3dn.workflow import MANIFESTS, RAW, UNSCORED, Plan, checkpoint_entries, dataset_of, jsonarg, manifest_path

validate(config, "../schemas/config.schema.yaml")

PLAN = Plan(config, checkpoint_entries())
RUNS, PUBLISHED, METHODS, TABLES = PLAN.runs, PLAN.published, PLAN.methods, PLAN.tables
if PLAN.missing:
    print(PLAN.report(), file=sys.stderr)
MINIATURE = config.get("miniature")
WORKFLOW_CONFIG = "resources/workflow.json"  # the merged config, read by `k3dn preflight` (written at start)


onstart:
    from k3dn.preflight import recheck

    recheck(config, WORKFLOW_CONFIG, "resources/preflight.ok")
    if MINIATURE:
        from k3dn.miniature.serve import start_server

        start_server(f"{MINIATURE['root']}/www", MINIATURE["url"], log="logs/miniature/serve.log")


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
    extra = ["protocol_sensitivity"] + (["table7b_pixel_defocus"] if PLAN.defocus_rows() else [])
    return [f"results/tables/{t}.csv" for t in [*TABLES, *extra]]


def result_files():
    """Every method on every test set it lists: a run or method in no table or figure is still run by `all`."""
    return [f"results/predictions/{m}/{t}/predictions.json" if dataset_of(t) in UNSCORED
            else f"results/metrics/{m}/{t}.csv" for m in METHODS for t in method_tests(m)]


def figure_files():
    return [f"results/figures/{name}.png" for name in PLAN.figures()]
