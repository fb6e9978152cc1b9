"""Figures that run a trained K3DN: reblurring (supplement Fig. 9), PSF kernels (Fig. 13), disparity clusters (Fig. 12).

torch is imported inside the functions that run a model, so that the numerical helpers here (asymmetry of a kernel
set, k-means, the first principal component, Spearman's rank correlation, per-window means) stay cheap to import
and test. Every model call is made under ``torch.no_grad`` with the model in eval mode: a figure must never move a
weight or a BatchNorm running statistic of the run it describes.

The disparity grid: K3DN cuts its 1/8-resolution bottleneck into (nh, nw) windows and gives each one disparity
vector (``out["disparity"]``, (B, 256, nh, nw)). K3DN fits inputs by resizing (``size_mode = "resize"``), so window
(i, j) covers rows ``[i·H/nh, (i+1)·H/nh)`` and columns ``[j·W/nw, (j+1)·W/nw)`` of the original image.
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
from k3dn.report.plotting import manifest_rows, save_figure, show
from k3dn.report.specs import require_keys

KERNEL_CMAP = "RdBu_r"  # kernels have both signs; a diverging map keeps zero white


# ----------------------------------------------------------------------------------------------------------
# Runs and batches
# ----------------------------------------------------------------------------------------------------------


def load_k3dn_run(run, device=None):
    """The trained network of a run folder, in eval mode; an InputError naming the file if it is not a K3DN run."""
    from k3dn.checkpoint import CheckpointMismatch
    from k3dn.infer import load_model, pick_device

    run = Path(run)
    if not run.is_dir():
        raise InputError("run folder not found; train it first (`k3dn train`) or fix the path", where=run)
    for name in ("model.json", "model.safetensors"):
        if not (run / name).is_file():
            raise InputError(f"missing, so {run} is not a finished training run; finish `k3dn train`", where=run / name)
    try:
        model = load_model(run=run)
    except (CheckpointMismatch, KeyError) as e:  # weights of another model, or a model name not registered
        raise InputError(
            f"cannot rebuild the run's model: {e}; train the run again with this code", where=run / "model.json"
        ) from e
    if not all(hasattr(model, a) for a in ("psf", "estimate_disparity", "_run", "size_multiple")):
        raise InputError(
            f"{type(model).__name__} is not a K3DN network (no PSF blocks or disparity estimator); "
            "this figure needs a K3DN training run",
            where=run / "model.json",
        )
    return model.to(pick_device(device)).eval()


def _fitted_batch(model, row: dict):
    """(original batch, batch fitted to the model's size multiple, undo, (H, W)) for one manifest row."""
    from k3dn.infer import _row_batch, fit_batch

    device = next(model.parameters()).device
    batch, size = _row_batch(row, device)
    fitted, undo = fit_batch(batch, model.size_multiple, model.size_mode)
    return batch, fitted, undo, size


def _grid(model, fitted) -> tuple[int, int]:
    """(nh, nw) disparity windows of a fitted batch."""
    h, w = fitted[model.input_views[0]].shape[-2:]
    return tuple(int(v) for v in model.grid(h, w))


def _to_image(t) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float array."""
    return t[0].detach().float().cpu().numpy().transpose(1, 2, 0)


def window_edges(size: int, n: int) -> np.ndarray:
    """n + 1 boundaries (in original pixels, floats) of n equal windows along an axis of ``size`` pixels."""
    return np.linspace(0.0, float(size), n + 1)


def window_index_map(shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """(H, W) int map: the row-major index of the disparity window each pixel lies in."""
    (h, w), (nh, nw) = shape, grid
    iy = np.minimum(np.arange(h) * nh // h, nh - 1)
    ix = np.minimum(np.arange(w) * nw // w, nw - 1)
    return iy[:, None] * nw + ix[None, :]


def window_means(values: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(nh, nw) mean of an (H, W) map over each disparity window (NaNs ignored)."""
    idx = window_index_map(values.shape[:2], grid).ravel()
    v = values.astype(np.float64).ravel()
    ok = np.isfinite(v)
    sums = np.bincount(idx[ok], weights=v[ok], minlength=grid[0] * grid[1])
    counts = np.bincount(idx[ok], minlength=grid[0] * grid[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).reshape(grid)


# ----------------------------------------------------------------------------------------------------------
# Reblurring (Fig. 9)
# ----------------------------------------------------------------------------------------------------------


def reblur_images(model, row: dict) -> dict[str, np.ndarray]:
    """Blurry centre view, deblurred output, its reblurring and the reblurring target of one row, at the row's size.

    ``K3DN.forward`` returns the reblurred image only in training (and never in stage 2, which every two-stage run
    ends in), so the reblurring path is called directly: the eval-mode forward pass gives the output and the
    disparity vectors of the blurry pair, and ``model._run(..., reverse=True)`` runs the reverse PSF path on the
    output duplicated as a DP pair, with plain-concatenation skips, as the training loss does. The output fed back
    is the one shown (clamped to [0, 1]); training feeds the unclamped one, which differs only where it saturates.
    """
    import torch

    was_training = model.training
    model.eval()
    try:
        batch, fitted, undo, _ = _fitted_batch(model, row)
        with torch.no_grad():
            out = model(fitted)
            sharp = out["output"] - 0.5
            pair = sharp.repeat(1, len(model.input_views), 1, 1)
            reblurred = model._run(pair, out["disparity"], reverse=True, use_srp=False) + 0.5
    finally:
        model.train(was_training)
    # the reblurring target of the training loss: the centre view (_row_batch makes it (L + R)/2 where absent)
    return {
        "center": _to_image(batch["center"]),
        "output": _to_image(undo(out["output"]).clamp(0, 1)),
        "reblurred": _to_image(undo(reblurred).clamp(0, 1)),
        "target": _to_image(batch["center"]),
    }


def reblur_figure(run, manifest, out, n: int = 2, device=None) -> Path:
    """Per row (the first n): blurry centre view, K3DN output, its reblurring, the real blurry view, |error|."""
    model = load_k3dn_run(run, device)
    rows = manifest_rows(manifest, n)
    fig, axes = plt.subplots(len(rows), 5, figsize=(13, 2.7 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        imgs = reblur_images(model, row)
        err = np.abs(imgs["reblurred"] - imgs["target"]).mean(axis=-1)
        show(ax_row[0], imgs["center"], f"{row['id']}: blurry centre view")
        show(ax_row[1], imgs["output"], "K3DN output")
        show(ax_row[2], imgs["reblurred"], "reblurred from the output")
        show(ax_row[3], imgs["target"], "real blurry view (reblur target)")
        im = ax_row[4].imshow(err, cmap="magma", vmin=0, vmax=max(float(err.max()), 1e-6))
        ax_row[4].set_title(f"|reblurred - real|, PSNR {psnr(imgs['reblurred'], imgs['target']):.2f} dB", fontsize=8)
        ax_row[4].axis("off")
        fig.colorbar(im, ax=ax_row[4], fraction=0.046, pad=0.02)
    fig.suptitle(f"reblurring path of {Path(run).name}", fontsize=9)
    return save_figure(fig, out)


# ----------------------------------------------------------------------------------------------------------
# PSF kernels (Fig. 13)
# ----------------------------------------------------------------------------------------------------------


def kernel_halves(kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, k, k) -> (left halves, right halves), each (C, k, (k+1)/2) and both holding the centre column."""
    k = kernels.shape[-1]
    return kernels[..., : (k + 1) // 2], kernels[..., k // 2 :]


def kernel_asymmetry(kernels: np.ndarray) -> float:
    """max |k_left - flip(k_right)| over a (C, k, k) kernel set: 0 for left-right mirror-symmetric kernels."""
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim < 2 or kernels.shape[-1] % 2 == 0:
        raise ValueError(f"kernel_asymmetry: expected (..., k, k) kernels with odd k, got shape {kernels.shape}")
    left, right = kernel_halves(kernels)
    return float(np.max(np.abs(left - right[..., ::-1])))


def psf_kernel_sets(model) -> list[np.ndarray]:
    """The (C, k, k) depthwise kernel set of each PSF block, as the forward pass uses it."""
    import torch

    with torch.no_grad():
        return [blk.kernel_set.kernels()[0].float().cpu().numpy() for blk in model.psf.blocks]


def kernel_mosaic(kernels: np.ndarray, per_row: int = 8) -> np.ndarray:
    """Tile a (C, k, k) set, each tile its left half | gap | right half, each kernel scaled to max |v| = 1; NaN
    separators (drawn as background) so that the mirror symmetry of every kernel is seen across its gap."""
    c, k, _ = kernels.shape
    left, right = kernel_halves(kernels)
    hw = left.shape[-1]
    tile_h, tile_w = k + 1, 2 * hw + 2
    rows = math.ceil(c / per_row)
    mosaic = np.full((rows * tile_h, min(c, per_row) * tile_w), np.nan)
    for i in range(c):
        scale = max(float(np.abs(kernels[i]).max()), 1e-12)
        y, x = (i // per_row) * tile_h, (i % per_row) * tile_w
        mosaic[y : y + k, x : x + hw] = left[i] / scale
        mosaic[y : y + k, x + hw + 1 : x + 2 * hw + 1] = right[i] / scale
    return mosaic


def region_kernel_choice(model, fitted) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per PSF block: (index (nwin,), weight (nwin,)) of the sub-kernel each window's disparity vector weighs most.

    The weight of kernel c in a window is the softmax modulation ``point.scales(r_j)`` of block j, r_j the window's
    disparity vector after the j-th kernel-disparity interaction, as in the forward pass."""
    import torch

    with torch.no_grad():
        r = model(fitted)["disparity"]
        rw = r.permute(0, 2, 3, 1).reshape(-1, r.shape[1])
        seq = model.psf.disparity_sequence(rw)
        out = []
        for blk, rj in zip(model.psf.blocks, seq):
            w, idx = blk.point.scales(rj).max(dim=-1)
            out.append((idx.cpu().numpy(), w.float().cpu().numpy()))
    return out


def spread_windows(n_windows: int, regions: int) -> np.ndarray:
    """``regions`` window indices evenly spaced over the row-major window order (fewer if there are fewer)."""
    return np.unique(np.round(np.linspace(0, n_windows - 1, max(1, min(regions, n_windows)))).astype(int))


def _draw_kernel(ax, kernel: np.ndarray, box: tuple[float, float, float, float], label: str) -> None:
    """Draw ``kernel`` as a square inset centred in ``box`` = (x0, y0, x1, y1), with the box outlined."""
    x0, y0, x1, y1 = box
    ax.add_patch(mpatches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", lw=1.2))
    side = 0.7 * min(x1 - x0, y1 - y0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    scale = max(float(np.abs(kernel).max()), 1e-12)
    ax.imshow(
        kernel / scale,
        cmap=KERNEL_CMAP,
        vmin=-1,
        vmax=1,
        interpolation="nearest",
        extent=(cx - side / 2, cx + side / 2, cy + side / 2, cy - side / 2),
        zorder=3,
    )
    ax.text(x0 + 1, y0 + 1, label, color="yellow", fontsize=6, va="top", zorder=4)


def psf_kernel_figure(run, manifest, out, regions: int = 4, device=None) -> Path:
    """Top: every PSF block's kernel set (left | right halves). Bottom: per block, over the first image, the
    sub-kernel that each of ``regions`` disparity windows weighs most."""
    model = load_k3dn_run(run, device)
    row = manifest_rows(manifest, 1)[0]
    batch, fitted, _, (h, w) = _fitted_batch(model, row)
    sets = psf_kernel_sets(model)
    asym = max(kernel_asymmetry(s) for s in sets)
    choices = region_kernel_choice(model, fitted)
    grid = _grid(model, fitted)
    picked = spread_windows(grid[0] * grid[1], regions)
    # window edges are pixel boundaries; imshow puts pixel centres on integers
    ys, xs = window_edges(h, grid[0]) - 0.5, window_edges(w, grid[1]) - 0.5
    view = _to_image(batch["left"] if "left" in batch else batch["center"])

    nb = len(sets)
    fig, axes = plt.subplots(2, nb, figsize=(3.4 * nb, 6.6), squeeze=False)
    cmap = plt.get_cmap(KERNEL_CMAP).with_extremes(bad="0.85")
    for j, (kset, (idx, weight)) in enumerate(zip(sets, choices)):
        ax = axes[0][j]
        ax.imshow(kernel_mosaic(kset), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(
            f"block {j + 1}: {kset.shape[0]} kernels {kset.shape[1]}x{kset.shape[2]}\n(left half | right half)",
            fontsize=8,
        )
        ax.axis("off")
        ax = axes[1][j]
        show(ax, view, f"block {j + 1}: most-weighted kernel per region")
        for win in picked:
            i, jj = divmod(int(win), grid[1])
            _draw_kernel(
                ax, kset[idx[win]], (xs[jj], ys[i], xs[jj + 1], ys[i + 1]), f"k{int(idx[win])} ({weight[win]:.2f})"
            )
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    fig.suptitle(
        f"PSF kernel sets of {Path(run).name}: max |k_left - flip(k_right)| = {asym:.2e}; "
        f"regions: {len(picked)} of {grid[0]}x{grid[1]} windows, evenly spaced in row-major order, "
        f"of {row['id']}",
        fontsize=9,
    )
    return save_figure(fig, out)


# ----------------------------------------------------------------------------------------------------------
# Disparity feature clusters (Fig. 12)
# ----------------------------------------------------------------------------------------------------------


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding from ``numpy.random.default_rng(seed)``: (labels (n,), centres (k, d)).

    Deterministic for a seed. ``k`` is capped at the number of points. Clusters are renumbered in order of first
    appearance, so colours follow the row-major window order rather than the random seeding."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"kmeans: expected a non-empty (n, d) array, got shape {x.shape}")
    n, k = len(x), max(1, min(int(k), len(x)))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(x[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(n)])
    centres = np.asarray(centres)
    labels = np.full(n, -1)
    for _ in range(iters):
        d2 = ((x[:, None] - centres[None]) ** 2).sum(-1)
        new = np.argmin(d2, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            members = x[labels == c]
            # an emptied cluster restarts at the point worst served by its centre, so k clusters survive
            centres[c] = members.mean(0) if len(members) else x[np.argmax(d2[np.arange(n), labels])]
    seen = list(dict.fromkeys(labels.tolist()))
    order = seen + [c for c in range(k) if c not in seen]
    remap = np.empty(k, dtype=int)
    remap[order] = np.arange(k)
    return remap[labels], centres[order]


def first_principal_component(x: np.ndarray) -> np.ndarray:
    """Scores (n,) of the rows of an (n, d) array on their first principal axis (sign arbitrary)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[0]


def spearman_abs(a, b) -> float:
    """|Spearman rank correlation| (average ranks for ties); NaN with under 3 finite pairs or a constant input."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    ra, rb = rankdata(a[ok]), rankdata(b[ok])
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(abs(np.corrcoef(ra, rb)[0, 1]))


def read_disparity(path, shape: tuple[int, int]) -> np.ndarray:
    """A per-pixel ground-truth disparity map (.npy, or a single-channel image such as .tif) of the image's size."""
    path = Path(path)
    if not path.is_file():
        raise InputError("disparity ground truth not found; fix the manifest's disparity column", where=path)
    if path.suffix == ".npy":
        try:
            d = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"not a readable .npy disparity map ({e}); write it again", where=path) from e
    else:
        import cv2

        d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if d is None:
            raise InputError("not a readable disparity map (a .npy or a single-channel image)", where=path)
    d = np.squeeze(np.asarray(d, dtype=np.float64))
    if d.shape != tuple(shape):
        raise InputError(f"disparity map is {d.shape}, the image is {tuple(shape)}; they must match", where=path)
    return d


def disparity_features(model, row: dict) -> tuple[np.ndarray, tuple[int, int], dict]:
    """(per-window disparity vectors (nh·nw, 256) row-major, (nh, nw), the row's unfitted batch)."""
    import torch

    batch, fitted, _, _ = _fitted_batch(model, row)
    with torch.no_grad():
        r = model(fitted)["disparity"][0]
    grid = (int(r.shape[-2]), int(r.shape[-1]))
    return r.float().cpu().numpy().reshape(r.shape[0], -1).T, grid, batch


def _write_csv(df: pd.DataFrame, path) -> Path:
    from k3dn.io import write_csv

    return write_csv(df, path, float_format="%.6g")


def _draw_window_grid(ax, shape: tuple[int, int], grid: tuple[int, int]) -> None:
    for y in window_edges(shape[0], grid[0])[1:-1]:
        ax.axhline(y - 0.5, color="white", lw=0.5, alpha=0.7)
    for x in window_edges(shape[1], grid[1])[1:-1]:
        ax.axvline(x - 0.5, color="white", lw=0.5, alpha=0.7)


def _cluster_panels(fig, axes, view, labels, grid, k, title, disparity=None, pc1=None, rho=math.nan) -> None:
    cmap = plt.get_cmap("tab10", max(k, 2))
    show(axes[0], view, title)
    label_map = labels[window_index_map(view.shape[:2], grid)]
    axes[0].imshow(label_map, cmap=cmap, vmin=-0.5, vmax=max(k, 2) - 0.5, alpha=0.45, interpolation="nearest")
    _draw_window_grid(axes[0], view.shape[:2], grid)
    if disparity is None:
        for ax in axes[1:]:
            ax.axis("off")
        return
    im = axes[1].imshow(disparity, cmap="viridis")
    _draw_window_grid(axes[1], disparity.shape, grid)
    axes[1].set_title("true disparity", fontsize=8)
    axes[1].axis("off")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02)
    means = window_means(disparity, grid).ravel()
    axes[2].scatter(means, pc1, c=labels, cmap=cmap, vmin=-0.5, vmax=max(k, 2) - 0.5, s=18)
    axes[2].set_xlabel("mean true disparity of the window", fontsize=8)
    axes[2].set_ylabel("PC1 of the disparity features", fontsize=8)
    axes[2].set_title(f"n_windows={len(labels)}, k={k}, |Spearman(PC1, disparity)|={rho:.3f}", fontsize=8)
    axes[2].grid(alpha=0.3)


def disparity_cluster_figure(runs: list[dict], out, k: int = 4, seed: int = 0, csv_out=None, device=None) -> Path:
    """Per run: k-means clusters of the first image's per-window disparity features over its left view; where the
    row has a ``disparity`` file, the true disparity and PC1 of the features against each window's mean true
    disparity, with |Spearman|. The numbers (run, image_id, n_windows, spearman_pc1, k) go to ``csv_out``."""
    if not runs:
        raise InputError("no runs given; 'runs' lists {run, manifest, title}", where="figure disparity_clusters")
    fig, axes = plt.subplots(len(runs), 3, figsize=(12, 3.4 * len(runs)), squeeze=False, layout="constrained")
    records, models = [], {}
    for ax_row, spec in zip(axes, runs):
        require_keys(spec, ["run", "manifest"], "figure disparity_clusters: an entry of 'runs'")
        key = str(Path(spec["run"]).resolve())
        if key not in models:  # several manifests of one run load it once
            models[key] = load_k3dn_run(spec["run"], device)
        model = models[key]
        row = manifest_rows(spec["manifest"], 1)[0]
        feats, grid, batch = disparity_features(model, row)
        labels, _ = kmeans(feats, k, seed)
        view = _to_image(batch["left"] if "left" in batch else batch["center"])
        name = spec.get("title") or Path(spec["run"]).name
        disparity, pc1, rho = None, None, math.nan
        if row.get("disparity"):
            disparity = read_disparity(row["disparity"], view.shape[:2])
            pc1 = first_principal_component(feats)
            rho = spearman_abs(pc1, window_means(disparity, grid).ravel())
        title = f"{name}: {row['id']}, k-means k={k} (seed {seed}) over {len(labels)} windows"
        _cluster_panels(fig, ax_row, view, labels, grid, k, title, disparity, pc1, rho)
        records.append(
            {"run": str(spec["run"]), "image_id": row["id"], "n_windows": len(labels), "spearman_pc1": rho, "k": k}
        )
    if csv_out:
        _write_csv(pd.DataFrame(records, columns=["run", "image_id", "n_windows", "spearman_pc1", "k"]), csv_out)
    fig.suptitle("disparity-estimator features, clustered per window", fontsize=9)
    return save_figure(fig, out)
