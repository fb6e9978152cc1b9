# Helpers of the rules: config validation, name lookups, and the inputs/commands each rule needs.

import json

import yaml
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

RUNS = config["runs"]
PUBLISHED = config["published"]
METHODS = {**RUNS, **PUBLISHED}
TABLES = config["tables"]
_clash = sorted(set(RUNS) & set(PUBLISHED))
if _clash:
    raise ValueError(f"config: names used both as runs and as published methods: {_clash}")

# Splits each data set's adapter writes (k3dn data manifest); a test set is named <dataset>_<split>.
# DPD-disp has no targets: its predictions feed the figures, never `evaluate`.
SPLITS = {"dpdd": ["train", "val", "test"], "pixel": ["test"], "dpd_disp": ["test"],
          "ddd_syn": ["train", "test"], "rdpd": ["train", "val", "test"], "synth": ["train", "val", "test"]}
with open("config/checkpoints.yaml") as _f:
    CHECKPOINTS = yaml.safe_load(_f)["checkpoints"]
_unknown = sorted({p["checkpoint"] for p in PUBLISHED.values() if p.get("checkpoint")} - set(CHECKPOINTS))
if _unknown:
    raise ValueError(f"config: checkpoint(s) {_unknown} are not in config/checkpoints.yaml")
RAW = "resources/raw"
MANIFESTS = "resources/manifests"


wildcard_constraints:
    ds="[a-z0-9_]+",
    run="|".join(RUNS) or "NONE",
    method="|".join(METHODS) or "NONE",
    ckpt="[a-z0-9_]+",


def dataset_of(test):
    return test.rsplit("_", 1)[0]


def manifest_dir(ds):
    return f"{MANIFESTS}/{ds}"


def manifest(test):
    ds = dataset_of(test)
    return f"{MANIFESTS}/{ds}/{test}.csv"


def jsonarg(obj):
    return json.dumps(obj, separators=(",", ":"))


# ---- methods: a training run or a published checkpoint --------------------------------------------------


def checkpoint_dir(ckpt):
    return f"resources/checkpoints/{ckpt}"


def checkpoint_file(ckpt):
    """The path `--weights` takes: the file, or the folder of a checkpoint published as several files."""
    files = CHECKPOINTS[ckpt]["file"]
    return checkpoint_dir(ckpt) if isinstance(files, list) else f"{checkpoint_dir(ckpt)}/{files}"


def method_inputs(method):
    if method in RUNS:
        return [f"results/runs/{method}/model.safetensors"]
    ckpt = PUBLISHED[method].get("checkpoint")
    return [f"{checkpoint_dir(ckpt)}/.ready"] if ckpt else []


def method_args(method, test=None):
    """Arguments of `k3dn predict` / `k3dn report speed` that build the method's model."""
    if method in RUNS:
        return f"--run results/runs/{method}"
    spec = PUBLISHED[method]
    args = f"--model {spec['model']}"
    if spec.get("checkpoint"):
        args += f" --weights {checkpoint_file(spec['checkpoint'])}"
    for k, v in spec.get("overrides", {}).items():
        args += f" --override {k}={jsonarg(v)}"
    if spec["model"] == "wiener" and test and dataset_of(test) == "pixel":
        # The Table 7 baseline uses the Pixel set's calibrated per-patch kernels.
        args += f" --override kernels={RAW}/pixel/k3dn_processed/blur_kernels.npz"
    return args


def method_tests(method):
    return METHODS[method]["test"]


# ---- targets --------------------------------------------------------------------------------------------


def table_inputs(table):
    spec = TABLES[table]
    methods = [r["method"] for r in spec["rows"] if r.get("method")]
    if spec.get("kind") == "speed":
        return [f"results/speed/{m}.csv" for m in methods]
    return [f"results/metrics/{m}/{spec['test']}.csv" for m in methods]


def table_files():
    return [f"results/tables/{t}.csv" for t in TABLES]


def figure_files():
    figs = config.get("figures", {})
    out = [f"results/figures/{name}.png" for name in figs.get("qualitative", {})]
    if figs.get("ablations"):
        out.append("results/figures/ablations.png")
    if figs.get("speed_accuracy"):
        out.append("results/figures/speed_accuracy.png")
    return out
