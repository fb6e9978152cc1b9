"""How much of a published gap the protocol alone explains: ``results/tables/protocol_sensitivity.csv``.

None of the paper's tables states all of its protocol, and the code bases it compares differ in how they read
and score images. For every method on every scored test set, the predictions the workflow already made are
re-scored under each protocol that applies, so no model runs again:

* ``16bit``: targets and predictions at full precision (the suite's protocol for DPD-blur);
* ``8bit``: both read as the legacy code bases do, ``(v >> 8) / 255`` (their outputs are 8-bit files);
* Pixel set only: ``linear-raw`` (its linear raw values, the suite's protocol for it) and ``gamma2.2``
  (both images display-encoded, ``v ** (1 / 2.2)``, before scoring).

Prediction variants that do need a model run (bf16 inference, native size instead of K3DN's resize and back)
are scored under the default protocol when their folders exist (``<test>~<variant>`` beside the default
predictions). Each row gives PSNR/SSIM and the change from the method's default row.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

GAMMA = 2.2


def _protocols(dataset: str) -> dict:
    """name -> (reading protocol, transform applied to both images after reading)."""
    if dataset == "pixel":
        return {"linear-raw": ("16bit", None), "gamma2.2": ("16bit", lambda x: np.power(x, 1.0 / GAMMA))}
    return {"16bit": ("16bit", None), "8bit": ("8bit", None)}


def score(
    pred_dir, manifest, protocol: str, transform=None, backend: str = "skimage", device: str = "cpu"
) -> pd.DataFrame:
    """Per-image PSNR/SSIM of ``pred_dir`` against ``manifest``'s targets, both read under ``protocol``."""
    from k3dn.data.manifest import read_manifest
    from k3dn.evaluate import prediction_path
    from k3dn.io import read_image
    from k3dn.metrics import batch_metrics, image_metrics, to_tensor

    rows = []
    for r in read_manifest(manifest).itertuples(index=False):
        ch = 1 if int(r.channels) == 1 else 3
        target = read_image(r.target, protocol, channels=ch)
        pred = read_image(prediction_path(pred_dir, r.id), protocol, channels=ch)
        if pred.shape != target.shape:
            raise ValueError(
                f"{prediction_path(pred_dir, r.id)}: {pred.shape} differs from target {r.target} {target.shape}"
            )
        if transform is not None:
            pred, target = transform(pred), transform(target)
        if backend == "torch":
            m = {
                k: float(v.item()) for k, v in batch_metrics(to_tensor(pred, device), to_tensor(target, device)).items()
            }
        else:
            m = image_metrics(pred, target)
        rows.append({"id": r.id, "psnr": m["psnr"], "ssim": m["ssim"]})
    return pd.DataFrame(rows)


def sensitivity_table(entries, backend: str = "skimage", device: str = "cpu") -> pd.DataFrame:
    """``entries``: ``[{"method", "test", "pred", "manifest", "variants": {name: pred_dir}}]``."""
    from k3dn.evaluate import prediction_record
    from k3dn.provenance import git_commit, sha256_file

    lines = []
    for e in entries:
        dataset = e["test"].rsplit("_", 1)[0]
        found = []
        protocols = _protocols(dataset)
        default = next(iter(protocols))
        for name, (reading, transform) in protocols.items():
            found.append(
                ("default", e["pred"], name, score(e["pred"], e["manifest"], reading, transform, backend, device))
            )
        for variant, pred in sorted((e.get("variants") or {}).items()):
            if (Path(pred) / "predictions.json").is_file():
                reading, transform = protocols[default]
                found.append((variant, pred, default, score(pred, e["manifest"], reading, transform, backend, device)))
        base = found[0][3]
        for variant, pred, name, df in found:
            record = prediction_record(pred)
            psnr = pd.to_numeric(df["psnr"])
            finite = psnr[np.isfinite(psnr)]
            lines.append(
                {
                    "method": e["method"],
                    "test": e["test"],
                    "prediction": variant,
                    "protocol": name,
                    "psnr": float(finite.mean()) if len(finite) else math.nan,
                    "ssim": float(df["ssim"].mean()),
                    "n_images": len(df),
                    "n_exact": int((~np.isfinite(psnr)).sum()),  # identical images: left out of psnr
                    "psnr_change": float(finite.mean() - base["psnr"][np.isfinite(base["psnr"])].mean())
                    if len(finite)
                    else math.nan,
                    "ssim_change": float(df["ssim"].mean() - base["ssim"].mean()),
                    "dtype": record["dtype"],
                    "size_mode": record.get("size_mode", ""),
                    "weights_sha256": record.get("weights_sha256") or "none",
                    "manifest_sha256": sha256_file(e["manifest"]),
                    "git_commit": git_commit(),
                    "backend": backend,
                }
            )
    return pd.DataFrame(lines)


def write_sensitivity(entries, out, **kw) -> Path:
    from k3dn.io import write_csv

    return write_csv(sensitivity_table(entries, **kw), out, float_format="%.6g")
