"""The workflow config resolved into what each Snakemake rule runs (imported by ``workflow/rules/common.smk``).

The Snakefile always loads ``config/config.yaml``, the paper's grid; a ``--configfile`` is merged over it
key by key (Snakemake's own merge). ``config/miniature.yaml`` is such a file: it changes scale and data
sources only, through

* ``scale.iterations``: every stage of every recipe trains this many iterations;
* ``scale.train``: training-config values set on every run (batch, crop, ...), after the run's own;
* ``published.<m>.dataset_overrides``: model overrides on one data set's test sets only (Wiener's Pixel
  ``pair_centroid``), merged over ``overrides`` and under ``scale.overrides``;
* ``scale.overrides``: model overrides of a published method (the optimisation iterations of Xin et al.);
* ``datasets.<name>.image_size`` and ``args``: the size of the stand-ins and of the generated sets;
* ``miniature``: stand-ins of every data set and checkpoint, served on 127.0.0.1 (``k3dn.miniature``).

So a run added to the paper config is in the miniature automatically.

A user config (``--configfile my_method.yaml``, after the miniature's if any) adds a method of one's own to the
paper's grid without restating it: ``published.<m>`` (its model, e.g. a plugin's, see :mod:`k3dn.registry`),
``checkpoint_catalogues.<label>``: a user checkpoint catalogue (:mod:`baselines.published`; a path relative to
the working directory), ``external.<m>``: result images made elsewhere (``from: {<test set>: <folder>}``,
``bit_depth``, ``note``), imported by ``k3dn import-predictions`` instead of predicted, and
``tables.<t>.extra_rows.<m>: <label>``, rows appended to a paper table. Snakemake
merges mappings key by key but replaces lists, so rows are added through this mapping, never by restating
``rows``, and several user configs add theirs side by side.

Nothing here imports torch: the
Snakefile parses this on every invocation, dry runs included. Checks that need the models (a crop against a
model's size multiple) run in ``k3dn preflight``, the first job.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from k3dn.data.adapters import ADAPTERS
from k3dn.provenance import config_hash
from k3dn.report.specs import MODEL_FIGURES

#: Splits each data set's adapter writes; a test set is named ``<dataset>_<split>``.
SPLITS = {a.name: a.splits for a in ADAPTERS.values()}
#: Data sets with no all-in-focus target: predicted for the figures, never scored.
UNSCORED = tuple(a.name for a in ADAPTERS.values() if not a.scored)
RAW = "resources/raw"
MANIFESTS = "resources/manifests"
CHECKPOINTS = "resources/checkpoints"
DEVICES = ("auto", "cpu", "cuda")
PIXEL_SCENES = 17


class WorkflowConfigError(ValueError):
    """A config problem; the message names the key and the fix."""


def jsonarg(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def dataset_of(test: str) -> str:
    return test.rsplit("_", 1)[0]


def manifest_path(test: str) -> str:
    return f"{MANIFESTS}/{dataset_of(test)}/{test}.csv"


def recipe_stages(recipe: str | Path) -> list[int]:
    """The ``stages`` of a training config file (its ``base:`` chain resolved)."""
    from k3dn.train.config import load_config

    return list(load_config(recipe)["stages"])


@dataclass
class Plan:
    """The experiment grid of one workflow config, with every derived name the rules need.

    Partial runs: an input that only a person can fetch (a sync.com file, a web form) and that is not in place
    is *missing*. Unless the config sets ``require_all: true``, every method that needs a missing input is left
    out of the DAG (``left_out``: method -> reason) and the table rows it would fill say ``not run: <reason>``;
    the rest runs. With ``require_all`` the grid stays whole and ``k3dn preflight`` stops on the first job.
    The miniature's stand-ins put every such input in place, so nothing is missing there.
    """

    config: dict
    checkpoints: dict  # baselines/checkpoints.yaml entries (name -> raw mapping)
    raw_root: str = RAW
    ckpt_root: str = CHECKPOINTS
    runs: dict = field(init=False)
    published: dict = field(init=False)
    external: dict = field(init=False)  # name -> {from, bit_depth, note, test}: folders imported, not predicted
    methods: dict = field(init=False)
    tables: dict = field(init=False)
    missing: dict = field(init=False)  # item -> what to fetch and where to put it
    left_out: dict = field(init=False)  # method (or method/test) -> "not run: ..." reason

    def __post_init__(self):
        self.config = copy.deepcopy(self.config)
        self.runs = self.config["runs"]
        self.published = self.config["published"]
        self.external = {
            m: {**e, "test": list(e.get("from") or {})} for m, e in (self.config.get("external") or {}).items()
        }
        self.methods = {**self.runs, **self.published, **self.external}
        self.tables = self.config["tables"]
        self._add_user_catalogues()
        self._add_extra_rows()
        self.check()
        self.missing, self.left_out = {}, {}
        if not self.config.get("miniature"):
            self.missing = self._missing_inputs()
        if self.missing and not self.config.get("require_all"):
            self._leave_out()

    # ---- a user's own methods --------------------------------------------------------------------------
    def _add_user_catalogues(self) -> None:
        """The catalogues of ``checkpoint_catalogues`` merged into :attr:`checkpoints`, and added to
        ``$K3DN_CHECKPOINTS`` of this process: the jobs it starts (fetch, predict) read the same catalogue."""
        from baselines.published import add_catalogues, load_checkpoints, use_user_catalogues
        from k3dn.data.catalog import CatalogError

        for label, path in (self.config.get("checkpoint_catalogues") or {}).items():
            where = f"config: checkpoint_catalogues.{label}"
            if not Path(path).is_file():
                raise WorkflowConfigError(f"{where}: {path}: no such file (paths are relative to {Path.cwd()})")
            try:
                self.checkpoints = add_catalogues(self.checkpoints, [path])
                use_user_catalogues([path])
                load_checkpoints()  # the merge the jobs will read: a model that loads two entries fails here, not there
            except CatalogError as e:
                raise WorkflowConfigError(f"{where}: {e}") from e

    def _add_extra_rows(self) -> None:
        """``tables.<t>.extra_rows`` (method -> label) appended to the table's rows in the order of their labels:
        a mapping's order is not kept everywhere the plan is made (``resources/workflow.json`` sorts its keys)."""
        for tname, t in self.tables.items():
            labels = {r["label"] for r in t["rows"]}
            extra = t.pop("extra_rows", None) or {}
            for method, label in sorted(extra.items(), key=lambda item: (item[1], item[0])):
                if label in labels:
                    raise WorkflowConfigError(
                        f"config: tables.{tname}.extra_rows.{method}: label {label!r} is already a row of "
                        f"{tname}; give the row another label"
                    )
                labels.add(label)
                t["rows"].append({"label": label, "method": method})

    # ---- partial runs --------------------------------------------------------------------------------
    def _missing_inputs(self) -> dict:
        from k3dn.manual_inputs import manual_blockers

        items = [("dataset", d) for d in self.downloads()] + [("checkpoint", c) for c in self.needed_checkpoints()]
        out = {}
        for kind, name in items:
            dest = Path(self.raw_root if kind == "dataset" else self.ckpt_root) / name
            blockers = manual_blockers(kind, name, dest)
            if blockers:
                out[name] = "; ".join(
                    f"download {b.url or '(see its notes)'} and save it as {b.path}" for b in blockers
                )
        return out

    def _needs(self, method: str, test: str | None = None) -> list[str]:
        spec = self.methods[method]
        items = []
        if method in self.runs:
            ds = spec["data"]
            items += [ds, self.config["datasets"][ds].get("from")]
        elif spec.get("checkpoint"):
            items.append(spec["checkpoint"])
        if test:
            ds = dataset_of(test)
            items += [ds, self.config["datasets"][ds].get("from")]
        return [i for i in items if i in self.missing]

    def _leave_out(self) -> None:
        for m in list(self.methods):
            gone = self._needs(m)
            if gone:
                self.left_out[m] = f"not run: {gone[0]} is missing ({self.missing[gone[0]]})"
                self._drop(m)
                continue
            keep = []
            for t in self.methods[m]["test"]:
                gone = self._needs(m, t)
                if gone:
                    self.left_out[f"{m}/{t}"] = f"not run: {gone[0]} is missing ({self.missing[gone[0]]})"
                else:
                    keep.append(t)
            if not keep:
                self.left_out[m] = self.left_out[f"{m}/{self.methods[m]['test'][0]}"]
                self._drop(m)
            else:
                self.methods[m]["test"] = keep
        self.methods = {**self.runs, **self.published, **self.external}
        for t in self.tables.values():
            for r in t["rows"]:
                m = r.get("method")
                reason = self.left_out.get(m) or self.left_out.get(f"{m}/{t.get('test')}")
                if m and reason:
                    r["method"], r["not_run"] = None, reason
        figs = self.config.get("figures", {})

        def ran(m, t):
            return m in self.methods and t in self.methods[m]["test"]

        for q in list(figs.get("qualitative", {}).values()) + ([figs["dpd_disp"]] if "dpd_disp" in figs else []):
            q["methods"] = [m for m in q["methods"] if ran(m, q["test"])]
        figs["qualitative"] = {
            k: q for k, q in figs.get("qualitative", {}).items() if q["methods"] and ran(q["reference"], q["test"])
        }
        for name in ("reblur", "psf_kernels"):
            if name in figs and not ran(figs[name]["run"], figs[name]["test"]):
                del figs[name]
        if "disparity_clusters" in figs:
            figs["disparity_clusters"]["runs"] = [
                r for r in figs["disparity_clusters"]["runs"] if ran(r["run"], r["test"])
            ]

    def _drop(self, method: str) -> None:
        for kind in (self.runs, self.published, self.external):
            kind.pop(method, None)

    def report(self) -> str:
        """What preflight says up front about missing inputs (empty when nothing is missing)."""
        if not self.missing:
            return ""
        lines = ["These inputs can only be fetched by hand and are not in place:"]
        lines += [f"  - {k}: {v}" for k, v in self.missing.items()]
        if self.config.get("require_all"):
            lines.append("require_all is set: the run stops at preflight until they are in place.")
        else:
            lines.append(
                f"Left out until they are in place ({len(self.left_out)}): {', '.join(sorted(self.left_out))}."
                " Their table rows say 'not run'. Set require_all: true to stop instead."
            )
        return "\n".join(lines)

    # ---- validation that needs no model --------------------------------------------------------------
    def check(self) -> None:
        cfg = self.config
        kinds = {"runs": self.runs, "published": self.published, "external": self.external}
        for a, b in (("runs", "published"), ("runs", "external"), ("published", "external")):
            clash = sorted(set(kinds[a]) & set(kinds[b]))
            if clash:
                raise WorkflowConfigError(f"config: {clash} are under both {a}: and {b}:; rename one")
        if cfg["device"] not in DEVICES:
            raise WorkflowConfigError(f"config: device: unknown device {cfg['device']!r}; use one of {DEVICES}")
        for name, spec in self.methods.items():
            kind = next(k for k, v in kinds.items() if name in v)
            key = f"{kind}.{name}.{'from' if kind == 'external' else 'test'}"
            if not spec.get("test"):
                raise WorkflowConfigError(f"config: {key}: no test set; list at least one, e.g. [dpdd_test]")
            for t in spec["test"]:
                ds, split = dataset_of(t), t.rsplit("_", 1)[-1]
                if ds not in cfg["datasets"]:
                    raise WorkflowConfigError(
                        f"config: {key}: {t!r} names data set {ds!r}, which "
                        f"is not under datasets: (known: {sorted(cfg['datasets'])})"
                    )
                if split not in SPLITS.get(ds, ()):
                    raise WorkflowConfigError(
                        f"config: {key}: {ds} has no split {split!r} (splits: {list(SPLITS.get(ds, ()))})"
                    )
        self._check_external()
        for name, spec in self.runs.items():
            ds = spec["data"]
            if ds not in cfg["datasets"] or "train" not in SPLITS.get(ds, ()):
                raise WorkflowConfigError(
                    f"config: runs.{name}.data: {ds!r} is not a training set under "
                    f"datasets: ({[d for d in cfg['datasets'] if 'train' in SPLITS.get(d, ())]})"
                )
            recipe = spec.get("recipe", ds)
            if recipe not in cfg["recipes"]:
                raise WorkflowConfigError(
                    f"config: runs.{name}.recipe: {recipe!r} is not under recipes: ({sorted(cfg['recipes'])})"
                )
        for name, spec in self.published.items():
            unknown = set(spec.get("dataset_overrides", {})) - {dataset_of(t) for t in spec["test"]}
            if unknown:
                raise WorkflowConfigError(
                    f"config: published.{name}.dataset_overrides: {sorted(unknown)} is not a data set of its "
                    f"test sets ({spec['test']})"
                )
            ck = spec.get("checkpoint")
            if ck and ck not in self.checkpoints:
                raise WorkflowConfigError(
                    f"config: published.{name}.checkpoint: {ck!r} is not in baselines/checkpoints.yaml "
                    "(a checkpoint of one's own: list its catalogue under checkpoint_catalogues)"
                )
            if ck and spec["model"] != self.checkpoints[ck]["model"]:
                # the catalogue's model (with its weight tag) decides the input protocol of the prediction
                raise WorkflowConfigError(
                    f"config: published.{name}.model: {spec['model']!r}, but checkpoint {ck!r} is loaded by "
                    f"{self.checkpoints[ck]['model']!r} (baselines/checkpoints.yaml)"
                )
        for tname, t in self.tables.items():
            for r in t["rows"]:
                m = r.get("method")
                if m and m not in self.methods:
                    raise WorkflowConfigError(
                        f"config: tables.{tname}: row {r['label']!r} names method {m!r}, "
                        "which is neither a run nor a published method"
                    )
                if m in self.external and t.get("kind") == "speed":
                    raise WorkflowConfigError(
                        f"config: tables.{tname}: row {r['label']!r}: {m!r} is a folder of result images "
                        "(external:); a speed table times a model the suite runs"
                    )
                if m and t.get("kind") != "speed" and t["test"] not in self.methods[m]["test"]:
                    raise WorkflowConfigError(
                        f"config: tables.{tname}: row {r['label']!r}: method {m!r} is not "
                        f"tested on {t['test']}; add it to that method's test: list"
                    )
        figs = cfg.get("figures", {})
        uses = [
            (f"qualitative.{n}", m, q["test"])
            for n, q in figs.get("qualitative", {}).items()
            for m in q["methods"] + [q["reference"]]
        ]
        uses += [("dpd_disp", m, figs["dpd_disp"]["test"]) for m in figs.get("dpd_disp", {}).get("methods", [])]
        uses += [(n, figs[n]["run"], figs[n]["test"]) for n in ("reblur", "psf_kernels") if n in figs]
        uses += [
            ("disparity_clusters", r["run"], r["test"]) for r in figs.get("disparity_clusters", {}).get("runs", [])
        ]
        for where, m, test in uses:
            if m not in self.methods or test not in self.methods[m]["test"]:
                raise WorkflowConfigError(
                    f"config: figures.{where}: method {m!r} is not tested on {test}; add it to that method's test: list"
                )
        for where, m, _test in uses:
            if where in MODEL_FIGURES and m not in self.runs:
                raise WorkflowConfigError(f"config: figures.{where}: {m!r} is not a training run of K3DN")

    def _check_external(self) -> None:
        for name, spec in self.external.items():
            for t, folder in spec["from"].items():
                if dataset_of(t) in UNSCORED:
                    raise WorkflowConfigError(
                        f"config: external.{name}.from.{t}: {dataset_of(t)} has no targets to score imported images against"
                    )
                if not Path(folder).is_dir():
                    raise WorkflowConfigError(
                        f"config: external.{name}.from.{t}: {folder}: no such folder (paths are relative to {Path.cwd()})"
                    )
            if spec.get("bit_depth") not in (8, 16):
                raise WorkflowConfigError(f"config: external.{name}.bit_depth: 8 or 16, the bit depth of every file")
            if not str(spec.get("note") or "").strip():
                raise WorkflowConfigError(
                    f"config: external.{name}.note: say how the images were made (code, weights, settings, source)"
                )
        for m in (self.config.get("sensitivity") or {}).get("methods", []):
            if m in self.external:
                raise WorkflowConfigError(
                    f"config: sensitivity.methods: {m!r} is a folder of result images (external:); its variants "
                    "need predictions the suite makes"
                )

    # ---- training ------------------------------------------------------------------------------------
    def recipe(self, run: str) -> str:
        spec = self.runs[run]
        return self.config["recipes"][spec.get("recipe", spec["data"])]

    def train_values(self, run: str) -> dict:
        """Every training-config value the workflow sets for ``run`` (``k3dn train --set key=value``), in order:
        the model and data, the run's own ``set``, then the miniature's ``scale``."""
        spec, ds = self.runs[run], self.runs[run]["data"]
        values = {
            "model.name": spec["model"],
            "model.overrides": spec.get("overrides", {}),
            "data.train": f"{MANIFESTS}/{ds}/{ds}_train.csv",
        }
        if "val" in SPLITS[ds]:
            values["data.val"] = f"{MANIFESTS}/{ds}/{ds}_val.csv"
        values.update(spec.get("set", {}))
        scale = self.config.get("scale") or {}
        values.update(scale.get("train", {}))
        if "iterations" in scale:
            values["stages"] = [int(scale["iterations"])] * len(recipe_stages(self.recipe(run)))
        return values

    def train_sets(self, run: str) -> list[str]:
        return [f"{k}={jsonarg(v)}" for k, v in self.train_values(run).items()]

    # ---- methods ---------------------------------------------------------------------------------------
    def checkpoint_dir(self, ckpt: str) -> str:
        return f"{CHECKPOINTS}/{ckpt}"

    def checkpoint_file(self, ckpt: str) -> str:
        """What ``--weights`` takes: the file, or the folder of a checkpoint published as several files."""
        files = self.checkpoints[ckpt]["file"]
        return self.checkpoint_dir(ckpt) if isinstance(files, list) else f"{self.checkpoint_dir(ckpt)}/{files}"

    def per_image_methods(self) -> list[str]:
        return [m for m, spec in self.published.items() if spec.get("per_image")]

    def image_ids(self, test: str) -> list[str]:
        """Row ids of a test set, for methods run one job per image. Only the Pixel set's are known before its
        manifest exists: scenes 001..017, or the miniature's stand-in scenes."""
        if dataset_of(test) != "pixel":
            raise WorkflowConfigError(
                f"config: per_image methods need known image ids; {test} has none (only pixel_test does)"
            )
        mini = self.config.get("miniature")
        n = int(mini["standins"]["pixel"]["scenes"]) if mini else PIXEL_SCENES
        return [f"{i:03d}" for i in range(1, n + 1)]

    def defocus_rows(self) -> list[dict]:
        """Rows of ``table7b_pixel_defocus.csv`` (``k3dn report defocus``) whose method ran."""
        spec = self.config.get("defocus") or {}
        rows = []
        for r in spec.get("rows", []):
            m = r.get("method")
            if m is None:
                rows.append({"label": r["label"], "kind": "constant"})
            elif m in self.runs:
                rows.append({"label": r["label"], "method": m, "kind": "k3dn", "run": f"results/runs/{m}"})
            elif m in self.published and spec["test"] in self.published[m]["test"]:
                rows.append(
                    {
                        "label": r["label"],
                        "method": m,
                        "kind": "maps",
                        "pred": f"results/predictions/{m}/{spec['test']}",
                    }
                )
        return rows

    def method_args(self, method: str, test: str | None = None) -> str:
        """Arguments of ``k3dn predict`` / ``k3dn report speed`` that build the method's model."""
        if method in self.runs:
            return f"--run results/runs/{method}"
        spec = self.published[method]
        args = f"--model {spec['model']}"
        if spec.get("checkpoint"):
            args += f" --weights {self.checkpoint_file(spec['checkpoint'])}"
        overrides = {
            **spec.get("overrides", {}),
            **(spec.get("dataset_overrides", {}).get(dataset_of(test), {}) if test else {}),
            **((self.config.get("scale") or {}).get("overrides", {}).get(method, {})),
        }
        for k, v in overrides.items():
            args += f" --override {k}={jsonarg(v)}"
        if spec["model"] in ("wiener", "xin2021") and test and dataset_of(test) == "pixel":
            # The Table 7 baselines use the Pixel set's calibrated per-patch kernels.
            args += f" --override kernels={RAW}/pixel/k3dn_processed/blur_kernels.npz"
        return args

    def external_files(self, method: str, test: str) -> list[str]:
        """The files of an external folder: the import job's inputs (an added or removed file, or a newer one,
        imports it again)."""
        return sorted(str(p) for p in Path(self.external[method]["from"][test]).iterdir())

    def external_fingerprint(self, method: str, test: str) -> str:
        """A digest of every file's name, size and modification time: the import job's params, so that files
        replaced by older ones (an archive unpacked, ``cp -p``), which mtimes alone do not show, import again."""
        facts = [
            (Path(f).name, st.st_size, st.st_mtime_ns)
            for f in self.external_files(method, test)
            for st in [Path(f).stat()]
        ]
        return config_hash(facts)

    def checkpoint_identity(self, ckpt: str) -> str:
        """A digest of what in the checkpoint's catalogue entry decides the weights (model, file, member, input
        protocol, parameter count, every published file's path, sha256 and size): the params of the jobs that
        fetch and use it, so that other weights published under the same name (a plugin's, published again) are
        fetched and used again. Prose (notes, citation, licence), URLs and where the catalogue lies are left
        out: editing or moving them reruns nothing."""
        entry = self.checkpoints[ckpt]
        files = sorted(
            {
                (f.get("path"), f.get("sha256"), f.get("size"))
                for source in entry.get("sources") or []
                for f in source.get("files") or []
            },
            key=str,
        )
        keys = ("model", "file", "member", "input_protocol", "params")
        return config_hash([{k: entry.get(k) for k in keys}, files])

    def weights_identity(self, method: str) -> str:
        """:meth:`checkpoint_identity` of a published method's checkpoint ("" for a run, whose weights file is
        a job input, or a method without weights)."""
        ckpt = self.published.get(method, {}).get("checkpoint")
        return self.checkpoint_identity(ckpt) if ckpt else ""

    def import_args(self, method: str, test: str) -> str:
        """Arguments of ``k3dn import-predictions`` for an external method's folder of ``test``."""
        from shlex import quote

        spec = self.external[method]
        return (
            f"--from {quote(str(spec['from'][test]))} --manifest {manifest_path(test)} --method {method}"
            # --note=: a note that starts with a dash is still its value
            f" --bit-depth {spec['bit_depth']} --note={quote(str(spec['note']))}"
        )

    def extra_tables(self) -> list[str]:
        """The tables (``results/tables/<name>.csv``) the workflow makes besides the config's paper tables."""
        extra = ["protocol_sensitivity"]
        extra += ["disparity_features"] if "disparity_clusters" in self.figures() else []
        return extra + (["table7b_pixel_defocus"] if self.defocus_rows() else [])

    # ---- protocol sensitivity -------------------------------------------------------------------------
    def sensitivity_variants(self) -> list[tuple[str, str, str]]:
        """``(method, test, variant)`` of the predictions made only for the sensitivity table."""
        sens = self.config.get("sensitivity") or {}
        return [
            (m, t, v)
            for m in sens.get("methods", [])
            if m in self.methods
            for t in self.methods[m]["test"]
            if dataset_of(t) not in UNSCORED
            for v, spec in sens.get("variants", {}).items()
            if dataset_of(t) in spec.get("datasets", [dataset_of(t)])
        ]

    def variant_args(self, variant: str) -> str:
        return " ".join(str(a) for a in self.config["sensitivity"]["variants"][variant]["args"])

    def sensitivity_entries(self) -> list[dict]:
        """Every method on every scored test set, with its variant prediction folders (``k3dn report
        sensitivity``)."""
        variants = {}
        for m, t, v in self.sensitivity_variants():
            variants.setdefault((m, t), {})[v] = f"results/predictions/{m}/{t}~{v}"
        return [
            {
                "method": m,
                "test": t,
                "pred": f"results/predictions/{m}/{t}",
                "manifest": manifest_path(t),
                "variants": variants.get((m, t), {}),
            }
            for m, spec in self.methods.items()
            for t in spec["test"]
            if dataset_of(t) not in UNSCORED
        ]

    # ---- figures -------------------------------------------------------------------------------------
    def figures(self) -> dict:
        """Figure name -> ``{"kind", "spec", "inputs"}``: ``k3dn report figure KIND --spec SPEC`` draws it from
        the files ``inputs`` (one rule each); the name is the PNG's (``qualitative_<test set>``)."""
        figs, out = self.config.get("figures", {}), {}

        def pred(m, t):
            return f"results/predictions/{m}/{t}"

        def run(m):
            return f"results/runs/{m}"

        if figs.get("ablations"):
            tables = {t: f"results/tables/{t}.csv" for t in figs["ablations"]}
            out["ablations"] = {"spec": {"tables": tables}, "inputs": list(tables.values())}
        if figs.get("speed_accuracy"):
            acc, speed = (f"results/tables/{t}.csv" for t in figs["speed_accuracy"])
            out["speed_accuracy"] = {"spec": {"accuracy": acc, "speed": speed}, "inputs": [acc, speed]}
        for name, q in figs.get("qualitative", {}).items():
            t, methods = q["test"], list(dict.fromkeys(["identity"] + q["methods"] + [q["reference"]]))
            methods = [m for m in methods if m in self.methods and t in self.methods[m]["test"]]
            spec = {
                "manifest": manifest_path(t),
                "predictions": {m: pred(m, t) for m in methods},
                "metrics": {m: f"results/metrics/{m}/{t}.csv" for m in methods},
                "reference": q["reference"],
                "blurry": "identity",
                "crop": q.get("crop", 128),
            }
            out[name] = {"kind": "qualitative", "spec": spec, "inputs": list(spec["metrics"].values())}
        if figs.get("dpd_disp") and figs["dpd_disp"]["methods"]:
            d = figs["dpd_disp"]
            spec = {"manifest": manifest_path(d["test"]), "predictions": {m: pred(m, d["test"]) for m in d["methods"]}}
            out["dpd_disp"] = {"spec": spec, "inputs": [f"{p}/predictions.json" for p in spec["predictions"].values()]}
        for name in ("reblur", "psf_kernels"):
            if name in figs:
                spec = {"run": run(figs[name]["run"]), "manifest": manifest_path(figs[name]["test"])}
                out[name] = {"spec": spec, "inputs": [f"{spec['run']}/model.safetensors"]}
        if figs.get("disparity_clusters", {}).get("runs"):
            runs = [
                {"run": run(r["run"]), "manifest": manifest_path(r["test"]), "title": f"{r['run']} on {r['test']}"}
                for r in figs["disparity_clusters"]["runs"]
            ]
            spec = {"runs": runs, "csv": "results/tables/disparity_features.csv"}
            out["disparity_clusters"] = {"spec": spec, "inputs": [f"{r['run']}/model.safetensors" for r in runs]}
        for name, f in out.items():
            f.setdefault("kind", name)
            # figures read test images: the manifests of every test set they name
            spec = f["spec"]
            manifests = [spec["manifest"]] if "manifest" in spec else [r["manifest"] for r in spec.get("runs", [])]
            f["inputs"] += [str(Path(m).parent) for m in dict.fromkeys(manifests)]
        return out

    # ---- data ----------------------------------------------------------------------------------------
    def needed_datasets(self) -> list[str]:
        """Every data set a run trains on or a method is tested on, with the sets they are made from."""
        used = {s["data"] for s in self.runs.values()}
        used |= {dataset_of(t) for s in self.methods.values() for t in s["test"]}
        for ds in list(used):
            src = self.config["datasets"][ds].get("from")
            if src:
                used.add(src)
        return sorted(used)

    def needed_checkpoints(self) -> list[str]:
        return sorted({p["checkpoint"] for p in self.published.values() if p.get("checkpoint")})

    def downloads(self) -> list[str]:
        """Registered data sets the workflow downloads (LPIPS's weight files among them when it is on)."""
        names = [d for d in self.needed_datasets() if self.config["datasets"][d]["obtain"] == "download"]
        if self.config.get("lpips") and "lpips_weights" in self.config["datasets"]:
            names.append("lpips_weights")
        return names

    def train_config(self, run: str) -> dict:
        """The run's full training config (recipe file + the workflow's values); a bad key fails here, naming it."""
        from k3dn.train.config import ConfigError, load_config

        try:
            return load_config(self.recipe(run), self.train_sets(run))
        except ConfigError as e:
            raise WorkflowConfigError(f"config: runs.{run}: {e}") from e

    def manifest_problems(self) -> list[str]:
        """Training manifests a run names that no rule writes (a split its data set does not have)."""
        written = {f"{MANIFESTS}/{ds}/{ds}_{split}.csv" for ds in SPLITS for split in SPLITS[ds]}
        problems = []
        for run in self.runs:
            data = self.train_config(run)["data"]
            for key in ("train", "val"):
                path = data.get(key)
                if path and path not in written:
                    ds = self.runs[run]["data"]
                    problems.append(
                        f"config: runs.{run}: data.{key} {path} is not a manifest the workflow writes "
                        f"({ds} has splits {list(SPLITS[ds])}); set data.{key} in {self.recipe(run)} "
                        f"to one of them{' or null' if key == 'val' else ''}"
                    )
        return problems

    def preflight_checks(self) -> list[dict]:
        """What ``k3dn preflight`` checks per run that needs the model: its crop against the model's size multiple
        and the training set's image size."""
        out = []
        for run, spec in self.runs.items():
            cfg = self.train_config(run)
            out.append(
                {
                    "run": run,
                    "model": cfg["model"]["name"],
                    "overrides": cfg["model"]["overrides"],
                    "crop": cfg["data"]["crop"],
                    "crop_fit": cfg["data"]["crop_fit"],
                    "data": spec["data"],
                    "image_size": self.image_size(spec["data"]),
                    "recipe": self.recipe(run),
                    "set_by_run": "data.crop" in spec.get("set", {}),
                }
            )
        return out

    def standin_dataset_config(self, ds: str) -> dict:
        """The config a data set's miniature stand-in is written from: its own ``datasets`` entry, and for a set
        that another is generated from (SYNTHIA-SF -> RDPD) that set's ``image_size``."""
        out = dict(self.config["datasets"].get(ds, {}))
        for spec in self.config["datasets"].values():
            if spec.get("from") == ds and spec.get("image_size") and "image_size" not in out:
                out["image_size"] = spec["image_size"]
        return out

    def image_size(self, ds: str):
        """The declared (H, W) of a data set's training images, or None."""
        size = self.config["datasets"].get(ds, {}).get("image_size")
        return tuple(int(s) for s in size) if size else None


def checkpoint_entries(path=None) -> dict:
    """The entries of the checkpoint catalogue: ``baselines/checkpoints.yaml`` with the user catalogues of
    ``$K3DN_CHECKPOINTS`` (``path``: that file only)."""
    from baselines.published import checkpoint_entries as entries

    return entries(path)


def load_plan(workflow_json) -> Plan:
    """The plan of the merged config a workflow run wrote (``resources/workflow.json``)."""
    path = Path(workflow_json)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WorkflowConfigError(f"{path}: cannot read the workflow config ({e}); run the workflow first") from e
    return Plan(config, checkpoint_entries())


def merged(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base`` key by key (Snakemake's rule for several config files)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
