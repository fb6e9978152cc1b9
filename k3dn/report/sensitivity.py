"""How much of a published gap the protocol alone explains: ``results/tables/protocol_sensitivity.csv``.

None of the paper's tables states all of its protocol, and the code bases it compares differ in how they read
and score images. For every method on every scored test set, the predictions the workflow already made are
re-scored under each protocol that applies, so no model runs again:

* ``16bit``: targets and predictions at full precision (the suite's protocol for DPD-blur);
* ``8bit``: the target read as the legacy code bases read it, ``(v >> 8) / 255``, against the prediction at full
  precision (they compared the float network output with the 8-bit target): the rule of ``k3dn evaluate
  --protocol 8bit``, :func:`k3dn.evaluate.read_scored_pair`. Only where the targets are 16-bit files: on a set
  whose targets are 8-bit (DDD-syn, RDPD) it would score exactly what ``16bit`` does;
* Pixel set only: ``linear-raw`` (its linear raw values, the suite's protocol for it) and ``gamma2.2``
  (both images display-encoded, ``v ** (1 / 2.2)``, before scoring);
* ``8bit-pred``: the prediction as an 8-bit PNG would hold it (``round(v * 255) / 255``) against the target at
  full precision (the default reading), where the targets are 16-bit files: the cap that publishing results as
  8-bit PNGs puts on what a 16-bit target can score (:mod:`k3dn.external` imports such files). On the identity
  method it is the blurry input written at 8 bits; on a perfect prediction it is the quantisation noise alone,
  about ``20 log10(255) + 10 log10(12) = 58.9`` dB for values spread evenly. On the Pixel set the prediction is
  display-encoded (``v ** (1 / 2.2)``) before it is rounded and decoded after, as an 8-bit image of linear raw
  data would be made, and scored in linear raw space.

Prediction variants that do need a model run (bf16 inference, native size instead of K3DN's resize and back)
are scored under the default protocol when their folders exist (``<test>~<variant>`` beside the default
predictions). Each row gives PSNR/SSIM and the change from the method's default row.

One image set per method and test set: an image whose PSNR is infinite in any of its rows (an exact prediction)
is left out of every row, so each row's means and their change from the default row average the same images
(``n_images`` averaged, ``n_exact`` left out). The paper tables average every image instead (an exact one makes
their mean infinite, which ``k3dn report check`` reports), so for such a method the two differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

GAMMA = 2.2


def _targets_are_8bit(manifest) -> bool:
    from k3dn.data.manifest import read_manifest
    from k3dn.data.probe import probe_image

    return all(probe_image(t).bit_depth == 8 for t in read_manifest(manifest)["target"])


def quantise_8bit(x: np.ndarray) -> np.ndarray:
    """``x`` as an 8-bit PNG holds it: ``round(x * 255) / 255`` (float64)."""
    return np.rint(np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0) * 255.0) / 255.0


def protocols_for(test: str, manifest) -> dict:
    """The protocols that apply to test set ``test`` (its ``manifest``): name -> (reading protocol, transform
    applied to both images after reading, transform applied to the prediction alone)."""
    from k3dn.workflow import dataset_of

    pred8 = ("16bit", None, quantise_8bit)
    if dataset_of(test) == "pixel":
        gamma = ("16bit", lambda x: np.power(x, 1.0 / GAMMA), None)
        # an 8-bit image of a linear raw set is display-encoded before it is rounded (as released images are)
        pred8 = ("16bit", None, lambda x: np.power(quantise_8bit(np.power(x, 1.0 / GAMMA)), GAMMA))
        return {"linear-raw": ("16bit", None, None), "gamma2.2": gamma, "8bit-pred": pred8}
    if _targets_are_8bit(manifest):
        return {"16bit": ("16bit", None, None)}
    return {"16bit": ("16bit", None, None), "8bit": ("8bit", None, None), "8bit-pred": pred8}


def score(
    pred_dir,
    manifest,
    protocol: str,
    transform=None,
    backend: str = "skimage",
    device: str = "cpu",
    pred_transform=None,
) -> pd.DataFrame:
    """Per-image PSNR/SSIM of ``pred_dir`` against ``manifest``'s targets under ``protocol``, read as ``k3dn
    evaluate`` reads them; ``pred_transform`` is then applied to the prediction, ``transform`` to both."""
    from k3dn.data.manifest import read_manifest
    from k3dn.evaluate import prediction_path, read_scored_pair
    from k3dn.metrics import batch_metrics, image_metrics, to_tensor

    rows = []
    for r in read_manifest(manifest).itertuples(index=False):
        pred, target = read_scored_pair(prediction_path(pred_dir, r.id), r.target, protocol, r.channels)
        if pred_transform is not None:
            pred = pred_transform(pred)
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
        found = []
        protocols = protocols_for(e["test"], e["manifest"])
        default = next(iter(protocols))
        for name, (reading, transform, pred_transform) in protocols.items():
            df = score(e["pred"], e["manifest"], reading, transform, backend, device, pred_transform)
            found.append(("default", e["pred"], name, df))
        for variant, pred in sorted((e.get("variants") or {}).items()):
            if (Path(pred) / "predictions.json").is_file():
                reading, transform, pred_transform = protocols[default]
                df = score(pred, e["manifest"], reading, transform, backend, device, pred_transform)
                found.append((variant, pred, default, df))
        frames = [df.set_index(df["id"].astype(str)) for *_, df in found]
        kept = frames[0].index
        for df in frames:
            kept = kept[np.isfinite(pd.to_numeric(df["psnr"]).reindex(kept).to_numpy())]
        base = frames[0].loc[kept]
        for (variant, pred, name, _), df in zip(found, frames):
            record = prediction_record(pred)
            df = df.loc[kept]
            psnr, ssim = pd.to_numeric(df["psnr"]).mean(), pd.to_numeric(df["ssim"]).mean()
            lines.append(
                {
                    "method": e["method"],
                    "test": e["test"],
                    "prediction": variant,
                    "protocol": name,
                    "psnr": float(psnr),  # NaN where no image is left
                    "ssim": float(ssim),
                    "n_images": len(kept),
                    "n_exact": len(frames[0]) - len(kept),
                    "psnr_change": float(psnr - pd.to_numeric(base["psnr"]).mean()),
                    "ssim_change": float(ssim - pd.to_numeric(base["ssim"]).mean()),
                    "prediction_source": record.get("provenance") or "suite",  # external: imported images
                    "dtype": record["dtype"],
                    "size_mode": record.get("size_mode", ""),
                    # an imported folder's weights are unknown to the suite, not absent
                    "weights_sha256": record.get("weights_sha256") or record.get("provenance") or "none",
                    "manifest_sha256": sha256_file(e["manifest"]),
                    "git_commit": git_commit(),
                    "backend": backend,
                }
            )
    return pd.DataFrame(lines)


def write_sensitivity(entries, out, **kw) -> Path:
    from k3dn.io import write_csv

    return write_csv(sensitivity_table(entries, **kw), out, float_format="%.6g")
