"""The paper's tables, rebuilt from per-image metric files and set beside the published numbers.

A table spec (from the workflow config) names its test set, groups, metrics and rows::

    {"title": "...", "test": "dpdd_test", "groups": ["indoor", "outdoor", "combined"],
     "metrics": ["psnr", "ssim", "mae"], "published": "config/paper/table1_dpdd.csv",
     "rows": [{"label": "Ours (Tiny)", "method": "k3dn_tiny_dpdd"}, {"label": "Xin et al.", "method": null}]}

Every path is the caller's: ``published`` (relative to the caller's working directory; the workflow's specs name
the repository's ``config/paper/*.csv``) and the metrics/speed roots; nothing is read from beside this package.

Each row becomes one line: our mean per (group, metric), the published value, and their difference *only where
both were measured under the same protocol* (each published number carries one, ``config/paper``; ``protocol`` in
the spec names ours where the metric files' reading protocol is not its name, e.g. the Pixel set's
``linear-raw``); elsewhere ``diff_note`` says why not. A speed table's group is the device its published times
come from (``NVIDIA A40``): a time difference exists only where ours was measured on that device class
(:func:`same_device_class`), and our device stands beside our time. Its other metrics do not depend on the device
(:data:`SPEED_METRICS`): a published parameter count (protocol ``count``) is compared with ours, published MACs
only when counted at our input size (protocol ``macs@HxW``). Then the uncertainty
(:mod:`k3dn.report.stats`): the 95% bootstrap interval of the row's mean PSNR over images, and the paired interval
of its per-image PSNR difference from the reference K3DN row (``reference`` in the spec, else Ours (Lightweight)),
resolved or not, both over the images of ``ci_group`` (:func:`interval_group`: every image where the table has a
``combined``/``all`` group, else its last group). Then the provenance of our number (:data:`PROVENANCE`:
protocol, image count, code version of the evaluation and of the prediction with the checksum of the code that
predicted, config hash, weights and data checksums, device, dtype, label source); a metrics file without one of
these columns is an error. A row whose
method is null is a published method the suite cannot run; it keeps its published values and an empty "ours". A
row the workflow left out (an input missing) says why in ``note`` (``not run: ...``).

``prediction_source`` says who made the scored images: ``suite`` (``k3dn predict``: the suite's model, a port of
the method where it is a baseline) or ``external`` (``k3dn import-predictions``: result images made elsewhere,
e.g. released by the authors, re-scored here); an external row's ``note`` holds ``external predictions (<bit
depth>-bit PNGs): <how they were made>``, so it is never read as the suite's port. A metrics file without the
column predates imports and is the suite's.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from k3dn.errors import InputError
from k3dn.evaluate import PROVENANCE as METRICS_PROVENANCE
from k3dn.evaluate import SOURCE
from k3dn.report.stats import mean_ci, paired_diff_ci

#: Groups over which per-image metrics are averaged; "combined"/"all" take every image.
_ALL = ("combined", "all")
PROVENANCE = ["protocol", "n_images", *METRICS_PROVENANCE]
SPEED_PROVENANCE = ["device", "git_commit", "size", "warmup", "runs", "dtype"]
#: A speed table's metrics: the column of ``k3dn report speed``'s file and its scale. Only ``seconds`` depends on
#: the device; a published parameter count or MAC count is matched whatever its group.
SPEED_METRICS = {"seconds": ("seconds_mean", 1.0), "params_m": ("params", 1e-6), "gmacs": ("gmacs", 1.0)}


def metrics_path(metrics_root, method: str, test: str) -> Path:
    return Path(metrics_root) / method / f"{test}.csv"


def speed_path(speed_root, method: str) -> Path:
    return Path(speed_root) / f"{method}.csv"


def summarise(per_image: pd.DataFrame, groups, metrics, source="metrics") -> dict:
    """Mean of each metric per group (the DPDD convention: the plain mean of per-image values)."""
    out = {}
    for g in groups:
        sel = per_image if g in _ALL else per_image[per_image["label"] == g]
        if sel.empty:
            raise InputError(
                f"no image labelled {g!r} (labels: {sorted(set(per_image['label']))}); fix the table's groups or "
                "the manifest's labels",
                where=source,
            )
        for m in metrics:
            if m not in sel.columns:
                raise InputError(f"no column {m!r}; score it or drop it from the table's metrics", where=source)
            out[(g, m)] = float(pd.to_numeric(sel[m]).mean())
    return out


def _provenance(per_image: pd.DataFrame, columns, source) -> dict:
    missing = [c for c in columns if c != "n_images" and c not in per_image.columns]
    if missing:
        raise InputError(
            f"provenance column(s) {missing} missing; rerun the job that wrote it (`k3dn evaluate`, "
            "`k3dn report speed`)",
            where=source,
        )
    row = {"n_images": len(per_image)} if "n_images" in columns else {}
    for c in columns:
        if c != "n_images":
            vals = sorted(set(per_image[c].astype(str)))
            row[c] = vals[0] if len(vals) == 1 else "|".join(vals)
    return row


def _source(per_image: pd.DataFrame) -> dict:
    """``{"prediction_source", "prediction_note"}`` of a metrics file (see the module docstring)."""
    out = {}
    for c, default in zip(SOURCE, ("suite", "")):
        vals = sorted(set(per_image[c].astype(str))) if c in per_image.columns else [default]
        out[c] = "|".join(v for v in vals if v)
    return out


PUBLISHED_COLUMNS = ["row", "group", "metric", "value", "source", "status", "protocol"]


def read_published(path) -> pd.DataFrame:
    if not path:
        return pd.DataFrame(columns=PUBLISHED_COLUMNS)
    df = pd.read_csv(path, dtype={"row": str, "group": str, "value": float, "protocol": str}, keep_default_na=True)
    missing = set(PUBLISHED_COLUMNS) - set(df.columns)
    if missing:
        raise InputError(f"missing column(s) {sorted(missing)}; a published table has {PUBLISHED_COLUMNS}", where=path)
    return df


def _col(group: str, metric: str, groups) -> str:
    return metric if len(groups) == 1 else f"{group}_{metric}"


def reference_label(spec: dict) -> str | None:
    """The K3DN row every other row is compared with: ``spec["reference"]``, else the Lightweight model's row."""
    if spec.get("reference"):
        return spec["reference"]
    rows = [r for r in spec["rows"] if r.get("method")]
    for r in rows:
        if r["label"] == "Ours (Lightweight)":
            return r["label"]
    return next((r["label"] for r in rows if r["method"].startswith("k3dn_lightweight")), None)


def interval_group(groups) -> str:
    """The group whose images the intervals average: every image where the table has such a group (the mean
    it sits beside), else the table's last group."""
    return next((g for g in groups if g in _ALL), list(groups)[-1])


def _uncertainty(frames: dict, ref: str | None, source: str, group: str) -> dict:
    """Per row: the 95% bootstrap interval of its mean PSNR and the paired interval of its per-image PSNR
    difference from the reference row (images matched by id), over the images of ``group``."""
    frames = {k: df if group in _ALL else df[df["label"] == group] for k, df in frames.items()}
    out = {}
    base = frames.get(ref)
    for label, df in frames.items():
        psnr = pd.to_numeric(df["psnr"])
        u = {
            "ci_group": group,
            "psnr_ci95_low": math.nan,
            "psnr_ci95_high": math.nan,
            "vs_row": ref or "",
            "psnr_vs_ref": math.nan,
            "psnr_vs_ref_ci95_low": math.nan,
            "psnr_vs_ref_ci95_high": math.nan,
            "vs_ref_resolved": "",
        }
        if psnr.map(math.isfinite).all():
            u["psnr_ci95_low"], u["psnr_ci95_high"] = mean_ci(psnr, name=f"{source} ({label})")
        if base is not None and label != ref:
            pair = df[["id", "psnr"]].merge(base[["id", "psnr"]], on="id", suffixes=("", "_ref"))
            a, b = pd.to_numeric(pair["psnr"]), pd.to_numeric(pair["psnr_ref"])
            if len(pair) == len(df) == len(base) and (a.map(math.isfinite) & b.map(math.isfinite)).all():
                d = paired_diff_ci(a, b, name=f"{source} ({label} vs {ref})")
                u.update(
                    psnr_vs_ref=d["mean"],
                    psnr_vs_ref_ci95_low=d["low"],
                    psnr_vs_ref_ci95_high=d["high"],
                    vs_ref_resolved="yes" if d["excludes_zero"] else "no",
                )
        out[label] = u
    return out


def same_device_class(ours: str, published: str) -> bool:
    """Whether our timing device is the model a published time was measured on: ``NVIDIA A40`` is the group
    ``NVIDIA A40``; an H100, an A40 slice (``A40-8Q``) or a CPU is not."""
    model = re.sub(r"^nvidia\s+", "", str(published).strip(), flags=re.IGNORECASE)
    return bool(model) and re.search(rf"(?<![\w-]){re.escape(model)}(?![\w-])", str(ours), re.IGNORECASE) is not None


def build_table(spec: dict, metrics_root="results/metrics", speed_root="results/speed") -> pd.DataFrame:
    groups, metrics = list(spec["groups"]), list(spec["metrics"])
    published = read_published(spec.get("published"))
    speed = spec.get("kind") == "speed"
    lines, frames = [], {}
    for row in spec["rows"]:
        label, method = row["label"], row.get("method")
        line = {"row": label, "method": method or ""}
        ours, prov, source = {}, {}, {}
        if method:
            if speed:
                path = speed_path(speed_root, method)
                df = pd.read_csv(path)
                for m in metrics:
                    if m not in SPEED_METRICS or SPEED_METRICS[m][0] not in df.columns:
                        raise InputError(
                            f"no {m!r} (speed metrics: {sorted(SPEED_METRICS)}); rerun `k3dn report speed`", where=path
                        )
                    column, scale = SPEED_METRICS[m]
                    ours[(groups[0], m)] = float(df[column].iloc[0]) * scale
                prov = _provenance(df, SPEED_PROVENANCE, path)
            else:
                path = metrics_path(metrics_root, method, spec["test"])
                df = pd.read_csv(path, keep_default_na=False, dtype={"label": str, "id": str})
                ours = summarise(df, groups, metrics, source=path)
                prov = _provenance(df, PROVENANCE, path)
                source = _source(df)
                frames[label] = df
        # Our protocol under the table's name for it (the Pixel set's 16-bit files hold linear raw data).
        our_protocol = spec.get("protocol") or prov.get("protocol") or ("timing" if speed else "")
        our_device = prov.get("device", "")
        pub = published[published["row"] == label]
        sources, statuses, notes = [], [], []
        for g in groups:
            for m in metrics:
                c = _col(g, m, groups)
                ours_v = ours.get((g, m), math.nan)
                timed = speed and m == "seconds"
                any_group = speed and not timed
                hit = pub[((pub["group"] == g) | any_group) & (pub["metric"] == m)]
                paper = float(hit["value"].iloc[0]) if len(hit) else math.nan
                paper_protocol = str(hit["protocol"].iloc[0]) if len(hit) else ""
                line[c] = ours_v
                line[f"{c}_paper"] = paper
                # A difference only between numbers measured the same way (a speed table's group is the device
                # its published times come from); otherwise say why there is none.
                if timed:
                    same = same_device_class(our_device, g)
                elif speed:
                    counted = "count" if m == "params_m" else f"macs@{prov.get('size', '')}"
                    same = paper_protocol == counted
                else:
                    same = paper_protocol == our_protocol
                line[f"{c}_diff"] = ours_v - paper if same else math.nan
                if method and len(hit) and not same:
                    if timed:
                        why = f"published on {g}, ours on {our_device}: times of different devices are not compared"
                    elif speed:
                        why = f"{m} published as {paper_protocol}, ours as {counted}"
                    else:
                        why = f"published under {paper_protocol}, ours under {our_protocol}"
                    if why not in notes:
                        notes.append(why)
                for s, st in zip(hit["source"], hit["status"]):
                    if s not in sources:
                        sources.append(s)
                    if st not in statuses:
                        statuses.append(st)
        line["diff_note"] = "; ".join(notes)
        line["paper_status"] = "; ".join(statuses)
        line["paper_source"] = "; ".join(sources)
        line["paper_protocol"] = "; ".join(dict.fromkeys(str(p) for p in pub["protocol"]))
        line["note"] = "; ".join(n for n in (row.get("not_run", ""), source.get("prediction_note", "")) if n)
        if not speed:
            line["prediction_source"] = source.get("prediction_source", "")
        line.update(prov)
        if not speed:
            line["protocol"] = our_protocol if method else ""
        lines.append(line)
    out = pd.DataFrame(lines)
    if speed and "device" in out.columns:  # our device beside our time: the published group names theirs
        cols = list(out.columns)
        cols.remove("device")
        at = max(i for i, c in enumerate(cols) if c.endswith("seconds_diff")) + 1
        out = out[cols[:at] + ["device"] + cols[at:]]
    if not speed and frames:
        unc = _uncertainty(frames, reference_label(spec), spec["test"], interval_group(groups))
        extra = pd.DataFrame([unc.get(label, {}) for label in out["row"]])
        out = pd.concat([out, extra], axis=1)
    return out


def write_table(spec: dict, out, **roots) -> Path:
    from k3dn.io import write_csv

    return write_csv(build_table(spec, **roots), out, float_format="%.6g")


def check_table(path, spec: dict) -> list[str]:
    """Problems with a written table: missing rows, and non-finite values (means, PSNR intervals) of rows the
    suite ran."""
    try:
        df = pd.read_csv(path, dtype={"row": str}, keep_default_na=True)
    except (OSError, ValueError) as e:
        return [f"{path}: not a readable CSV ({e})"]
    if "row" not in df.columns:
        return [f"{path}: no 'row' column; not a table `k3dn report table` wrote"]
    problems = []
    want = [r["label"] for r in spec["rows"]]
    if list(df["row"]) != want:
        problems.append(f"{path}: rows {list(df['row'])} != expected {want}")
    speed = spec.get("kind") == "speed"
    metrics = spec["metrics"]
    cols = [_col(g, m, spec["groups"]) for g in spec["groups"] for m in metrics]
    if not speed:
        cols += ["psnr_ci95_low", "psnr_ci95_high"]
    for r in spec["rows"]:
        if not r.get("method"):
            continue
        got = df[df["row"] == r["label"]]
        for c in cols:
            if got.empty or c not in got.columns or not math.isfinite(float(got[c].iloc[0])):
                problems.append(f"{path}: row {r['label']!r} column {c!r} is not a finite number")
    return problems
