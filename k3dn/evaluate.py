"""``k3dn evaluate``: per-image metrics of a prediction folder against a manifest's targets.

One row per manifest row: ``id, label, psnr, ssim, rmse, mae, lpips, lpips_note, protocol, channels``, then
provenance (:data:`PROVENANCE`): ``git_commit`` of the evaluation; from the predictions' ``predictions.json`` (see
:mod:`k3dn.infer`) the commit (``predict_commit``) and ``code_sha256`` of the code that made them, the
``config_hash`` of everything that made them, ``weights_sha256``, ``device`` and ``dtype`` of the inference;
``data_sha256`` = :func:`k3dn.provenance.sha256_files` of every target file; ``label_source`` of the
indoor/outdoor labels; and ``manifest``, ``pred_dir``, ``backend``, ``torch``.

Where the predictions come from (:data:`SOURCE`): ``prediction_source`` is ``suite`` for a folder ``k3dn predict``
made and ``external`` for one ``k3dn import-predictions`` made (:mod:`k3dn.external`: result images made
elsewhere). For those, ``prediction_note`` is ``external predictions (<bit depth>-bit PNGs): <the importer's
statement of how they were made>``, ``predict_commit``, ``code_sha256`` and ``weights_sha256`` say ``external``
(the suite knows none of them), and each file must still be the one imported (its sha256 in ``predictions.json``).

Reading. The protocol (``--protocol``, default: each row's manifest ``protocol``) decides how the **target**
is read (``16bit``: /65535; ``8bit``: the legacy ``v >> 8`` then /255, see :mod:`k3dn.io`). Predictions are
the model's float output stored as 16-bit PNG and are always read at full precision (/65535; an 8-bit
prediction file /255): truncating them to 8 bits would add a bias the legacy codes never had (they compared
the float network output to the 8-bit target).

Channels. ``channels == 3`` rows compare RGB (a grey target is replicated); ``channels == 1`` rows (Pixel)
compare one channel, and the prediction must then be single-channel (``k3dn predict`` writes it so).

Metrics follow :mod:`k3dn.metrics` (DPDD convention); ``backend="skimage"`` (default) is the reference,
``backend="torch"`` the batched torch path (float64, same numbers within 1e-6 dB / 1e-5 SSIM), useful on a GPU.
LPIPS (``--lpips``) uses :mod:`k3dn.lpips`; without its weight files the column is NaN and ``lpips_note``
says why. Identical images give ``psnr = inf``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from k3dn.io import PROTOCOLS, ImageError, read_image

RESULT_COLUMNS = ["id", "label", "psnr", "ssim", "rmse", "mae", "lpips", "lpips_note", "protocol", "channels"]
#: Provenance of every metrics row; the tables carry them on (k3dn.report.tables), and a missing one is an error.
PROVENANCE = [
    "git_commit",
    "predict_commit",
    "code_sha256",
    "config_hash",
    "weights_sha256",
    "data_sha256",
    "device",
    "dtype",
    "label_source",
]
#: Where the predictions come from. Not in PROVENANCE: metrics files written before imports existed lack them and
#: can only be of the suite's predictions, which is what a table assumes of a file without them.
SOURCE = ["prediction_source", "prediction_note"]
BACKENDS = ("skimage", "torch")


class EvaluationError(RuntimeError):
    pass


def prediction_path(pred_dir, row_id: str) -> Path:
    return Path(pred_dir) / f"{row_id}.png"


def _read_prediction(path: Path, target: np.ndarray, target_path: str) -> np.ndarray:
    pred = read_image(path, "16bit")  # full precision whatever the protocol (see module docstring)
    if target.shape[-1] == 3 and pred.shape[-1] == 1:
        raise ImageError(f"{path}: single-channel prediction for an RGB target ({target_path})")
    if target.shape[-1] == 1 and pred.shape[-1] != 1:
        raise ImageError(
            f"{path}: {pred.shape[-1]}-channel prediction for a single-channel target "
            f"({target_path}); predictions of channels=1 rows must be one channel"
        )
    if pred.shape != target.shape:
        raise ImageError(
            f"size mismatch: prediction {path} is {pred.shape[1]}x{pred.shape[0]} (WxH) but target "
            f"{target_path} is {target.shape[1]}x{target.shape[0]}"
        )
    return pred


def read_scored_pair(pred_path, target_path, protocol: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(prediction, target)`` as one image is scored under ``protocol``: the target read under it (``8bit``: the
    legacy ``(v >> 8) / 255``), the prediction at full precision (see the module docstring). The one rule of every
    score the suite gives, ``k3dn evaluate`` and the protocol-sensitivity table alike."""
    target = read_image(target_path, protocol, channels=1 if int(channels) == 1 else 3)
    return _read_prediction(Path(pred_path), target, str(target_path)), target


def prediction_record(pred_dir) -> dict:
    """``<pred_dir>/predictions.json`` (written by ``k3dn predict`` when every image is done)."""
    import json

    path = Path(pred_dir) / "predictions.json"
    if not path.is_file():
        raise EvaluationError(
            f"{path}: missing; the predictions are incomplete or were not made by `k3dn predict` "
            "(result images made elsewhere enter through `k3dn import-predictions`)"
        )
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise EvaluationError(f"{path}: not valid JSON ({e})") from e


def _external_note(record: dict) -> str:
    """What a table says of an imported row: its bit depth (8-bit files cap a 16-bit target's PSNR) and the
    importer's statement."""
    depth = record.get("bit_depth")
    return f"external predictions{f' ({depth}-bit PNGs)' if depth else ''}: {record.get('statement') or 'no statement'}"


def _check_imported(pred_dir: Path, ids, record: dict) -> None:
    """Every imported image is still the file that was checked and recorded (not replaced since)."""
    from k3dn.provenance import sha256_file

    files = record.get("files") or {}
    for i in ids:
        path = prediction_path(pred_dir, i)
        want = (files.get(str(i)) or {}).get("sha256")
        if want is None:
            raise EvaluationError(f"{path}: not among the files predictions.json records as imported")
        if sha256_file(path) != want:
            raise EvaluationError(f"{path}: changed since it was imported (sha256 differs); import the folder again")


def evaluate_predictions(
    pred_dir,
    manifest,
    protocol: str | None = None,
    lpips: bool = False,
    device: str = "cpu",
    backend: str = "skimage",
    progress: bool = True,
    lpips_files: tuple | None = None,
    lpips_standin: bool = False,
) -> pd.DataFrame:
    """Per-image metrics of ``<pred_dir>/<id>.png`` against each manifest row's target.

    ``manifest``: a manifest path (or a frame from :func:`k3dn.data.manifest.read_manifest`).
    ``protocol``: ``"16bit"`` / ``"8bit"`` for every row, or None for each row's own ``protocol``.
    ``lpips_files``: ``(backbone, heads)`` weight files (default: :func:`k3dn.lpips.find_weights`);
    ``lpips_standin``: they are the miniature's random stand-ins, loaded unverified and labelled so.
    """
    from tqdm import tqdm

    from k3dn.data.manifest import read_manifest
    from k3dn.metrics import batch_metrics, image_metrics, to_tensor
    from k3dn.provenance import git_commit, sha256_files

    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    manifest_path = "" if isinstance(manifest, pd.DataFrame) else str(Path(manifest).resolve())
    df = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest)
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationError(f"{pred_dir}: prediction folder not found")

    no_target = df["id"][df["target"] == ""].tolist()
    if no_target:
        raise EvaluationError(f"{manifest_path or 'manifest'}: row(s) without a target: {no_target[:5]}")
    missing = [str(prediction_path(pred_dir, i)) for i in df["id"] if not prediction_path(pred_dir, i).is_file()]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise EvaluationError(
            f"missing prediction file(s) for {manifest_path or 'manifest'}: {', '.join(missing[:3])}{more}"
        )
    for t in df["target"]:
        if not Path(t).is_file():
            raise EvaluationError(f"{t}: target file not found (manifest {manifest_path})")

    record = prediction_record(pred_dir)
    scorer = None
    lpips_note = "not requested"
    if lpips:
        from k3dn.lpips import LPIPSScorer

        backbone, lin = lpips_files or (None, None)
        scorer = LPIPSScorer(device=device, backbone=backbone, lin=lin, verify=not lpips_standin)
        lpips_note = scorer.reason or (
            f"RANDOM stand-in weights (miniature): not LPIPS ({scorer.weights})"
            if lpips_standin
            else f"alex v0.1 ({scorer.weights})"
        )

    from importlib.metadata import version

    source = record.get("provenance") or "suite"  # k3dn predict writes no such key
    if source == "external":
        from k3dn.provenance import sha256_file

        if record.get("manifest_sha256") != sha256_file(manifest):  # its sizes and ids were checked against that one
            raise EvaluationError(
                f"{Path(pred_dir) / 'predictions.json'}: imported against another manifest than {manifest}; "
                "import the folder again with this one"
            )
        _check_imported(pred_dir, df["id"], record)
    outside = "external" if source == "external" else None
    prov = {
        "git_commit": git_commit(),
        # what made the images, which may be older code than the evaluation's (Snakemake keeps finished predictions)
        "predict_commit": outside or record.get("git_commit") or "unknown",
        "code_sha256": outside or record.get("code_sha256") or "unknown",
        "config_hash": record["config_hash"],
        "weights_sha256": outside or record.get("weights_sha256") or "none",
        "prediction_source": source,
        "prediction_note": _external_note(record) if outside else "",
        "data_sha256": sha256_files(df["target"]),
        "device": record["device"],
        "dtype": record["dtype"],
        "torch": version("torch"),
        "backend": backend,
        "manifest": manifest_path,
        "pred_dir": str(pred_dir.resolve()),
    }
    rows = []
    it = tqdm(list(df.itertuples(index=False)), desc="evaluate", unit="img", disable=not progress)
    for r in it:
        prot = protocol or r.protocol
        ch = int(r.channels)
        pred, target = read_scored_pair(prediction_path(pred_dir, r.id), r.target, prot, ch)
        if backend == "skimage":
            m = image_metrics(pred, target)
        else:
            t = batch_metrics(to_tensor(pred, device), to_tensor(target, device))
            m = {k: float(v.item()) for k, v in t.items()}
        lp = math.nan
        if scorer is not None:
            lp = scorer(pred, target)
        rows.append(
            {
                "id": r.id,
                "label": r.label,
                **m,
                "lpips": lp,
                "lpips_note": lpips_note,
                "protocol": prot,
                "channels": ch,
                **prov,
                "label_source": r.label_source or "none",
            }
        )
    out = pd.DataFrame(rows)
    return out[RESULT_COLUMNS + [c for c in out.columns if c not in RESULT_COLUMNS]]


def write_results(df: pd.DataFrame, path) -> Path:
    """Write a results frame as CSV, atomically (``<name>.tmp`` + rename)."""
    from k3dn.io import write_csv

    return write_csv(df, path)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over all images and per non-empty label (the published tables' convention)."""
    cols = ["psnr", "ssim", "rmse", "mae", "lpips"]
    parts = {"all": df[cols].mean()}
    for label, g in df[df["label"].fillna("") != ""].groupby("label"):
        parts[label] = g[cols].mean()
    out = pd.DataFrame(parts).T
    out["n"] = [len(df)] + [int((df["label"] == k).sum()) for k in list(parts)[1:]]
    return out


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------


def _cmd_evaluate(args) -> int:
    df = evaluate_predictions(
        args.pred,
        args.manifest,
        protocol=args.protocol,
        lpips=args.lpips,
        device=args.device,
        backend=args.backend,
        progress=not args.quiet,
        lpips_files=(args.lpips_backbone, args.lpips_lin),
        lpips_standin=args.lpips_standin,
    )
    write_results(df, args.out)
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(summary(df).to_string())
    print(f"wrote {args.out} ({len(df)} rows)")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="per-image PSNR/SSIM/RMSE/MAE(/LPIPS) of a prediction folder",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--pred", required=True, help="folder with <id>.png predictions")
    p.add_argument("--manifest", required=True, help="manifest CSV whose targets are the ground truth")
    p.add_argument("--out", required=True, help="results CSV (one row per image)")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=None,
        help="how targets are read (default: each manifest row's protocol)",
    )
    p.add_argument("--lpips", action="store_true", help="also compute AlexNet-LPIPS v0.1 (needs its weight files)")
    p.add_argument("--lpips-backbone", help="torchvision's alexnet-owt-7be5be79.pth (default: k3dn.lpips's search)")
    p.add_argument("--lpips-lin", help="lpips' v0.1 alex.pth heads (default: k3dn.lpips's search)")
    p.add_argument(
        "--lpips-standin",
        action="store_true",
        help="the LPIPS files are the miniature's random stand-ins: load them unverified, label the column",
    )
    p.add_argument("--device", default="cpu", help="torch device for LPIPS and the torch backend")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="skimage",
        help="metric implementation: skimage (reference) or torch (batched; same numbers)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)
