"""``results/tables/table7b_pixel_defocus.csv``: defocus maps scored against the Pixel set's ground truth.

Xin et al. score a defocus map with the affine-invariant metrics of Garg et al. (ICCV 2019), since a DP
defocus estimate is known only up to an affine map of the true one:

* ``aiwe1``: the weighted L1 error after the best affine fit ``gt ~ a pred + b`` (iteratively reweighted
  least squares, 5 rounds, weights ``W / max(|r|, 1e-3)``, ridge 1e-5);
* ``aiwe2``: the weighted RMS error after the weighted least-squares affine fit;
* ``one_minus_spearman``: ``1 - |rho_s|``, the weighted Spearman rank correlation.

``W`` is 1 where the ground truth is labelled (value > 0) and 0 elsewhere. CHOSEN: no crop before scoring
(the reference does not give the one Garg et al.'s code applies). Rows:

* a method whose predictions include ``<id>_defocus.npy`` (Xin et al.): that map;
* a K3DN training run: the first principal component of its disparity estimator's per-window features,
  spread over each window's pixels (an unsupervised, coarse disparity; comparable because the metrics are
  affine invariant);
* ``method: null``: a constant map, the floor (its affine fit is the weighted mean; Spearman is 0).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from k3dn.errors import InputError
from k3dn.report.specs import require_keys, require_list

RIDGE = 1e-5
IRLS_ROUNDS = 5


def _fit(pred: np.ndarray, gt: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Residual ``gt - (a pred + b)`` of the weighted least-squares affine fit."""
    A = np.stack([pred, np.ones_like(pred)], axis=1)
    Aw = A * w[:, None]
    coef = np.linalg.solve(A.T @ Aw + RIDGE * np.eye(2), Aw.T @ gt)
    return gt - A @ coef


def aiwe2(pred, gt, w) -> float:
    r = _fit(pred, gt, w)
    return float(math.sqrt((w * r**2).sum() / w.sum()))


def aiwe1(pred, gt, w) -> float:
    r = _fit(pred, gt, w)
    for _ in range(IRLS_ROUNDS):
        r = _fit(pred, gt, w / np.maximum(np.abs(r), 1e-3))
    return float((w * np.abs(r)).sum() / w.sum())


def one_minus_spearman(pred, gt, w) -> float:
    from scipy.stats import rankdata

    keep = w > 0
    p, g = rankdata(pred[keep]), rankdata(gt[keep])
    if p.std() == 0 or g.std() == 0:
        return 1.0
    return float(1.0 - abs(np.corrcoef(p, g)[0, 1]))


def score_map(pred: np.ndarray, gt: np.ndarray, source: str = "defocus map") -> dict:
    """The three metrics of ``pred`` against ``gt``; ``source`` (the files) names them in an error."""
    if pred.shape != gt.shape:
        raise InputError(
            f"defocus map {pred.shape} and ground truth {gt.shape} differ in size; make the map at the image's size",
            where=source,
        )
    w = (gt > 0).astype(np.float64).ravel()
    if w.sum() == 0:
        raise InputError("ground truth has no labelled pixel (all 0); leave this image out", where=source)
    p, g = pred.astype(np.float64).ravel(), gt.astype(np.float64).ravel()
    return {"aiwe1": aiwe1(p, g, w), "aiwe2": aiwe2(p, g, w), "one_minus_spearman": one_minus_spearman(p, g, w)}


def read_truth(path) -> np.ndarray:
    import cv2

    if not Path(path).is_file():
        raise InputError("ground-truth defocus map not found; fix the manifest's disparity column", where=path)
    gt = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if gt is None:
        raise InputError("not a readable ground-truth defocus map (an image file)", where=path)
    return (gt if gt.ndim == 2 else gt[..., 0]).astype(np.float64)


def _k3dn_map(model, row: dict, shape) -> np.ndarray:
    import cv2

    from k3dn.report.model_figures import disparity_features, first_principal_component

    feats, grid, _ = disparity_features(model, row)
    pc1 = first_principal_component(feats).reshape(grid).astype(np.float32)
    return cv2.resize(pc1, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def defocus_table(rows: list[dict], manifest, device: str = "cpu") -> pd.DataFrame:
    """``rows``: ``[{"label", "kind": "maps"|"k3dn"|"constant", "pred" | "run"}]``; one line per row with the
    mean of each metric over the labelled test images."""
    from k3dn.data.manifest import read_manifest
    from k3dn.provenance import git_commit, sha256_files

    hint = "each row is {label, kind: maps|k3dn|constant, pred (maps) | run (k3dn)}"
    for spec in require_list(rows, "--rows", hint):
        require_keys(spec, ["label", "kind"], "--rows: a row", hint)
        need = {"maps": ["pred"], "k3dn": ["run"], "constant": []}.get(spec["kind"])
        if need is None:
            raise InputError(
                f"unknown kind {spec['kind']!r}; expected maps, k3dn or constant",
                where=f"--rows: row {spec['label']!r}",
            )
        require_keys(spec, need, f"--rows: row {spec['label']!r} (kind {spec['kind']})", hint)
    images = read_manifest(manifest).to_dict("records")
    if not images:
        raise InputError("manifest has no rows; give the Pixel test set's manifest", where=manifest)
    missing = [r["id"] for r in images if not r.get("disparity")]
    if missing:
        raise InputError(
            f"rows {missing[:3]} have no ground-truth defocus map (column disparity); give a manifest with one",
            where=manifest,
        )
    truths = {r["id"]: read_truth(r["disparity"]) for r in images}
    lines = []
    for spec in rows:
        kind, scores = spec["kind"], []
        model = None
        if kind == "k3dn":
            from k3dn.report.model_figures import load_k3dn_run

            model = load_k3dn_run(spec["run"], device=device)
        for r in images:
            gt = truths[r["id"]]
            made = f"row {spec['label']!r}, image {r['id']}"
            if kind == "maps":
                path = Path(spec["pred"]) / f"{r['id']}_defocus.npy"
                if not path.is_file():
                    raise InputError(
                        "missing; the method's predictions carry no defocus map (predict it again)", where=path
                    )
                try:
                    pred = np.load(path, allow_pickle=False)
                except (OSError, ValueError) as e:
                    raise InputError(f"not a readable .npy defocus map ({e}); predict it again", where=path) from e
                made = str(path)
            elif kind == "k3dn":
                pred = _k3dn_map(model, r, gt.shape)
            elif kind == "constant":
                pred = np.zeros_like(gt)
            scores.append(score_map(pred, gt, source=f"{made} against {r['disparity']}"))
        df = pd.DataFrame(scores)
        lines.append(
            {
                "row": spec["label"],
                "method": spec.get("method") or "",
                "kind": kind,
                **{k: float(df[k].mean()) for k in df.columns},
                "n_images": len(df),
                "data_sha256": sha256_files([r["disparity"] for r in images]),
                "git_commit": git_commit(),
                "note": "Xin et al. report these metrics; their values were not available to this project"
                if kind == "maps"
                else "",
            }
        )
    return pd.DataFrame(lines)


def write_defocus_table(rows, manifest, out, device: str = "cpu") -> Path:
    from k3dn.io import write_csv

    return write_csv(defocus_table(rows, manifest, device), out, float_format="%.6g")
