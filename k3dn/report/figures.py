"""Figures: the ablations against the paper, speed against accuracy, and the qualitative comparisons.

One figure per call of :func:`make_figure` (``k3dn report figure NAME --spec JSON --out PATH``), so each figure is
its own workflow rule. The figures that need a trained K3DN (reblurring, PSF kernels, disparity clusters) live in
:mod:`k3dn.report.model_figures`, which alone imports torch. Every figure is a PNG written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from k3dn.errors import InputError
from k3dn.metrics import psnr
from k3dn.report.plotting import manifest_rows, read_table, read_view, save_figure, show
from k3dn.report.specs import FIGURE_NAMES, int_key, require_keys, require_list, require_mapping

#: Where the published timings (supplement Tab. 12) were measured.
PUBLISHED_DEVICE = "A40"


def _label_psnr(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f} dB"


# ----------------------------------------------------------------------------------------------------------
# Tables as plots
# ----------------------------------------------------------------------------------------------------------


#: The method of a table's floor row (the blurry input, ``baselines/identity.py``): a reference, not a setting.
FLOOR_METHOD = "identity"


def _split_floor(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the settings, the floor row(s)) of an ablation table."""
    floor = df["method"].astype(str) == FLOOR_METHOD if "method" in df.columns else pd.Series(False, index=df.index)
    return df[~floor].reset_index(drop=True), df[floor]


def ablation_figure(tables: dict[str, str], out) -> Path:
    """One panel per ablation table: our PSNR and the paper's, per setting. The blurry input is the floor, not a
    setting: a dotted reference line where it falls inside the settings' range, else a note of its value, so the
    0.1 dB steps between settings are not flattened by a gap of several dB."""
    if not tables:
        raise InputError("no tables given; the spec's 'tables' maps a title to a table CSV", where="figure ablations")
    frames = {
        title: read_table(path, ["row", "psnr", "psnr_paper"], "ablation table") for title, path in tables.items()
    }
    fig, axes = plt.subplots(1, len(frames), figsize=(4.2 * len(frames), 3.2), squeeze=False)
    for ax, (title, df) in zip(axes[0], frames.items()):
        settings, floor = _split_floor(df)
        x = np.arange(len(settings))
        ax.plot(x, settings["psnr_paper"], "o--", label="paper")
        ax.plot(x, settings["psnr"], "s-", label="ours")
        ax.set_xticks(x, settings["row"], rotation=30)
        values = pd.to_numeric(pd.concat([settings["psnr"], settings["psnr_paper"]]), errors="coerce")
        values = values[np.isfinite(values)]
        if len(values):
            lo, hi = float(values.min()), float(values.max())
            pad = max(0.05, 0.15 * (hi - lo))
            ax.set_ylim(lo - pad, hi + pad)
        for _, row in floor.iterrows():
            level = float(row["psnr"])
            if not math.isfinite(level):
                continue
            if not len(values) or lo - pad <= level <= hi + pad:
                ax.axhline(level, color="0.4", ls=":", lw=1, label=f"{row['row']} (ours)")
            else:
                where = "below" if level < lo else "above"
                ax.text(
                    0.02,
                    0.03 if where == "below" else 0.93,
                    f"{row['row']} (ours): {level:.2f} dB, {where} the axis",
                    transform=ax.transAxes,
                    fontsize=7,
                    color="0.3",
                )
        ax.set_title(title)
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, out)


def _our_device(speed: pd.DataFrame) -> str:
    devices = [str(d) for d in speed.get("device", pd.Series(dtype=str)).dropna() if str(d).strip()]
    return " / ".join(dict.fromkeys(devices)) or "device unknown"


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float, np.floating)) and math.isfinite(v) for v in values)


def speed_accuracy_figure(accuracy_csv, speed_csv, out, psnr_col="combined_psnr") -> Path:
    """PSNR against seconds per image for the methods in both tables: our timing (on our device) and the published
    A40 timing, each beside the PSNR measured the same way (ours with ours, published with published)."""
    acc = read_table(accuracy_csv, ["row"], "accuracy table")
    if psnr_col not in acc.columns:
        psnr_col = "psnr"
    if psnr_col not in acc.columns:
        raise InputError(
            f"{accuracy_csv}: accuracy table has neither 'combined_psnr' nor 'psnr'; give a table with a PSNR column"
        )
    spd = read_table(speed_csv, ["row", "seconds", "seconds_paper"], "speed table")
    both = acc.merge(spd, on="row", suffixes=("", "_speed"))
    paper_psnr = f"{psnr_col}_paper"
    ours_label, pub_label = f"ours, {_our_device(spd)}", f"published, {PUBLISHED_DEVICE}"
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    labelled = set()
    for _, r in both.iterrows():
        ours = (r["seconds"], r[psnr_col])
        pub = (r["seconds_paper"], r[paper_psnr]) if paper_psnr in both.columns else (math.nan, math.nan)
        if _finite(*ours) and _finite(*pub):
            ax.plot([ours[0], pub[0]], [ours[1], pub[1]], color="0.8", lw=0.8, zorder=1)
        for point, marker, colour, label in ((ours, "o", "C0", ours_label), (pub, "^", "C3", pub_label)):
            if _finite(*point):
                ax.scatter(*point, marker=marker, color=colour, zorder=2, label=None if label in labelled else label)
                labelled.add(label)
        anchor = ours if _finite(*ours) else pub
        if _finite(*anchor):
            ax.annotate(r["row"], anchor, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per image")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    if labelled:
        ax.legend(fontsize=7)
    return save_figure(fig, out)


# ----------------------------------------------------------------------------------------------------------
# Qualitative comparison on a chosen crop
# ----------------------------------------------------------------------------------------------------------


def _per_image_psnr(path, label: str) -> pd.Series:
    df = read_table(path, ["id", "psnr"], f"per-image metrics of {label!r}")
    return pd.Series(pd.to_numeric(df["psnr"], errors="coerce").values, index=df["id"].astype(str), name=label)


def choose_images(metrics: dict[str, str], reference: str, blurry: str) -> list[tuple[str, str, float]]:
    """``[(rule, image id, gain)]``: the image with the largest PSNR gain of ``reference`` over ``blurry``, then the
    one with the median gain (the lower middle for an even count, so it is an actual image); one entry if they
    are the same image."""
    for label in (reference, blurry):
        if label not in metrics:
            raise InputError(
                f"no per-image metrics for {label!r} (have {sorted(metrics)}); add it to the spec's 'metrics'",
                where="figure qualitative",
            )
    ref, blur = _per_image_psnr(metrics[reference], reference), _per_image_psnr(metrics[blurry], blurry)
    gain = (ref - blur.reindex(ref.index)).dropna().sort_values(kind="stable")
    if gain.empty:
        raise InputError(
            f"{metrics[reference]}: no image id in common with {metrics[blurry]} with finite PSNR; "
            "give the per-image metrics of both methods on the same test set"
        )
    best_id, median_id = gain.index[-1], gain.index[(len(gain) - 1) // 2]
    chosen = [("largest gain", best_id, float(gain[best_id]))]
    if median_id == best_id:
        return [("largest and median gain", best_id, float(gain[best_id]))]
    return chosen + [("median gain", median_id, float(gain[median_id]))]


def best_crop(target: np.ndarray, blurry: np.ndarray, reference: np.ndarray, crop: int) -> tuple[int, int, int, int]:
    """``(y0, x0, ch, cw)``: the ``crop`` x ``crop`` window (clipped to the image) where the reference's absolute
    error improves most over the blurry input's, summed by a box filter (an integral image) over the error map."""
    if not (target.shape == blurry.shape == reference.shape):
        raise InputError(
            f"shapes differ: target {target.shape}, blurry {blurry.shape}, reference {reference.shape}; "
            "the blurry view, the reference's prediction and the target must be one size",
            where="figure qualitative",
        )
    gain = np.abs(blurry - target) - np.abs(reference - target)
    gain = gain.mean(axis=-1) if gain.ndim == 3 else gain
    h, w = gain.shape
    ch, cw = min(int(crop), h), min(int(crop), w)
    integral = np.pad(np.cumsum(np.cumsum(gain.astype(np.float64), 0), 1), ((1, 0), (1, 0)))
    sums = integral[ch:, cw:] - integral[:-ch, cw:] - integral[ch:, :-cw] + integral[:-ch, :-cw]
    y0, x0 = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y0), int(x0), ch, cw


def _prediction(folder, image_id: str, shape, label: str) -> np.ndarray:
    path = Path(folder) / f"{image_id}.png"
    img = read_view(path)
    if img.shape != shape:
        raise InputError(
            f"{path}: prediction of {label!r} is {img.shape[:2]}, the target is {shape[:2]}; "
            "predict the manifest's images again at their own size"
        )
    return img


def qualitative_figure(
    manifest, predictions: dict[str, str], metrics: dict[str, str], reference: str, blurry: str, out, crop: int = 128
) -> Path:
    """For the images :func:`choose_images` picks: the full target with the crop drawn, then that crop of the blurry
    input, of every method and of the target, each with its PSNR on the crop. The crop is :func:`best_crop`'s."""
    if reference not in predictions:
        raise InputError(
            f"reference {reference!r} has no predictions (have {sorted(predictions)}); add it to 'predictions'",
            where="figure qualitative",
        )
    rows = {r["id"]: r for r in manifest_rows(manifest, need=("target",))}
    chosen = choose_images(metrics, reference, blurry)
    methods = [m for m in predictions if m != blurry]
    ncol = 3 + len(methods)
    fig, axes = plt.subplots(len(chosen), ncol, figsize=(2.3 * ncol, 2.6 * len(chosen)), squeeze=False)
    for ax_row, (rule, image_id, gain) in zip(axes, chosen):
        if image_id not in rows:
            raise InputError(
                f"{manifest}: no row with id {image_id!r} (chosen from {metrics[reference]}); give the manifest "
                "the metrics were scored on"
            )
        row = rows[image_id]
        target = read_view(row["target"], row["protocol"])
        blur_img = (
            _prediction(predictions[blurry], image_id, target.shape, blurry)
            if blurry in predictions
            else read_view(row["center"] or row["left"], row["protocol"])
        )
        outs = {m: _prediction(predictions[m], image_id, target.shape, m) for m in methods}
        y0, x0, ch, cw = best_crop(target, blur_img, outs[reference], crop)

        def cut(img, y0=y0, x0=x0, ch=ch, cw=cw):
            return img[y0 : y0 + ch, x0 : x0 + cw]

        show(ax_row[0], target, f"{image_id}: {rule}\n({gain:+.2f} dB)")
        ax_row[0].add_patch(mpatches.Rectangle((x0 - 0.5, y0 - 0.5), cw, ch, fill=False, edgecolor="lime", lw=1.5))
        panels = [(f"{blurry} (blurry input)", blur_img)] + list(outs.items()) + [("ground truth", target)]
        for ax, (label, img) in zip(ax_row[1:], panels):
            show(ax, cut(img), f"{label}\n{_label_psnr(psnr(cut(img), cut(target)))}")
    fig.suptitle(
        f"images: largest and median PSNR gain of {reference} over {blurry}; crop: the {crop}x{crop} window "
        f"where {reference}'s absolute error improves most",
        fontsize=9,
    )
    return save_figure(fig, out)


def dpd_disp_figure(manifest, predictions: dict[str, str], out, n: int = 2) -> Path:
    """DPD-disp (no all-in-focus target): the left view and each method's output, side by side, for the first n."""
    if not predictions:
        raise InputError("no predictions given; 'predictions' maps a method to its folder", where="figure dpd_disp")
    rows = manifest_rows(manifest, n, need=("left",))
    ncol = 1 + len(predictions)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.8 * ncol, 2.4 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        left = read_view(row["left"], row["protocol"])
        show(ax_row[0], left, f"{row['id']}: left view")
        for ax, (label, folder) in zip(ax_row[1:], predictions.items()):
            show(ax, _prediction(folder, row["id"], left.shape, label), label)
    fig.suptitle("no ground truth: qualitative", fontsize=9)
    return save_figure(fig, out)


# ----------------------------------------------------------------------------------------------------------
# One figure by name (the CLI)
# ----------------------------------------------------------------------------------------------------------


def _spec_keys(spec, keys, name: str) -> None:
    require_keys(spec, keys, f"figure {name}", hint=f"see `k3dn report figure --help` for the {name} spec")


def make_figure(name: str, spec: dict, out, device: str | None = None) -> Path:
    """Build figure ``name`` from its JSON spec (formats in ``k3dn report figure --help``); returns ``out``."""
    if name not in FIGURE_NAMES:
        raise InputError(f"unknown figure {name!r}; expected one of {FIGURE_NAMES}")
    where = f"figure {name}"
    if name == "ablations":
        _spec_keys(spec, ["tables"], name)
        return ablation_figure(require_mapping(spec["tables"], f"{where}: key 'tables'"), out)
    if name == "speed_accuracy":
        _spec_keys(spec, ["accuracy", "speed"], name)
        return speed_accuracy_figure(spec["accuracy"], spec["speed"], out)
    if name == "qualitative":
        _spec_keys(spec, ["manifest", "predictions", "metrics", "reference", "blurry"], name)
        return qualitative_figure(
            spec["manifest"],
            require_mapping(spec["predictions"], f"{where}: key 'predictions'"),
            require_mapping(spec["metrics"], f"{where}: key 'metrics'"),
            spec["reference"],
            spec["blurry"],
            out,
            crop=int_key(spec, "crop", 128, where),
        )
    if name == "dpd_disp":
        _spec_keys(spec, ["manifest", "predictions"], name)
        predictions = require_mapping(spec["predictions"], f"{where}: key 'predictions'")
        return dpd_disp_figure(spec["manifest"], predictions, out, n=int_key(spec, "n", 2, where))

    from k3dn.report import model_figures  # torch only for the figures that run a model

    if name == "reblur":
        _spec_keys(spec, ["run", "manifest"], name)
        return model_figures.reblur_figure(
            spec["run"], spec["manifest"], out, n=int_key(spec, "n", 2, where), device=device
        )
    if name == "psf_kernels":
        _spec_keys(spec, ["run", "manifest"], name)
        return model_figures.psf_kernel_figure(
            spec["run"], spec["manifest"], out, regions=int_key(spec, "regions", 4, where), device=device
        )
    _spec_keys(spec, ["runs"], name)
    return model_figures.disparity_cluster_figure(
        require_list(spec["runs"], f"{where}: key 'runs'"),
        out,
        k=int_key(spec, "k", 4, where),
        seed=int_key(spec, "seed", 0, where),
        csv_out=spec.get("csv"),
        device=device,
    )
