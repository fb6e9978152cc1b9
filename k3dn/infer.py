"""Run any registered model over a manifest (``k3dn predict``) or one DP pair (``k3dn deblur``).

Size handling. A model's forward pass needs H and W to be multiples of ``model.size_multiple``. Other
sizes are fitted per ``size_mode`` and the output is brought back to the input size:

* ``"resize"`` (K3DN's paper mode: DPDD 1120x1680 -> 1152x1792): bicubic to the next multiple, bicubic back.
* ``"pad"``: reflect-pad at the bottom/right, crop back. Where a pad is at least as large as the image
  (reflection impossible) replicate padding is used instead.

Inputs are read under the published checkpoint's ``input_protocol`` (``baselines/checkpoints.yaml``) when the
model carries published weights (a checkpoint trained on 8-bit data gets 16-bit files truncated to 8 bits, as its
authors' code read them), else under the manifest's protocol (a training run reads what it was trained on).
Outputs are written as 16-bit PNGs (``<out>/<id>.png``) at the target's size; single-channel rows
(``channels == 1``) are replicated to RGB for the model and written back as the mean of the three output
channels. Every write is atomic.

Precision: float32 unless ``dtype="bfloat16"`` is asked for (bf16 autocast, CUDA only).

Predictions belong to the weights and the code that made them. The key holds what determines them (model name
and overrides, the sha256 of the weights and of files given as overrides, the run's training-config hash, the
manifest, input protocol, size mode, dtype, device, library versions, and the sha256 of the source files the
prediction runs: :func:`code_identity`, committed or not).
``<out>/.key.json`` holds it while a prediction is under way and goes when it is finished;
``<out>/predictions.json`` is that key plus provenance, written when every image is done (the workflow's output).
So only an interrupted prediction of the same key resumes (its finished images are kept). Anything else starts
over: another key (retrained weights, another ablation knob, edited model code), or a finished folder predicted
again (``snakemake --forcerun predict`` deletes ``predictions.json`` and runs it again: every image is redone).
"""

from __future__ import annotations

import json
import logging
import math
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

INPUT_KEYS = ("left", "right", "center")


# ----------------------------------------------------------------------------------------------------------
# Size fitting
# ----------------------------------------------------------------------------------------------------------


def fit_batch(batch: dict, size_multiple=(1, 1), size_mode: str = "pad"):
    """Fit the image tensors of ``batch`` to ``size_multiple``; returns ``(fitted, undo)``.

    ``undo(output)`` maps a model output back to the original ``H x W``.
    """
    from k3dn.models.blocks import fit_to_multiple, pad_to_multiple, restore_from_multiple

    ref = next(v for v in batch.values() if torch.is_tensor(v))
    h, w = ref.shape[-2:]
    mh, mw = (int(m) for m in size_multiple)
    th, tw = math.ceil(h / mh) * mh, math.ceil(w / mw) * mw
    if (th, tw) == (h, w):
        return batch, (lambda y: y)
    if size_mode == "resize":

        def fit(t):
            return fit_to_multiple(t, (mh, mw), "resize")[0]
    elif size_mode == "pad":

        def fit(t):
            return pad_to_multiple(t, (mh, mw), too_small="replicate")
    else:
        raise ValueError(f"unknown size_mode {size_mode!r}; expected 'pad' or 'resize'")
    return (
        {k: fit(v) if torch.is_tensor(v) else v for k, v in batch.items()},
        lambda y: restore_from_multiple(y, (h, w), size_mode),
    )


DTYPES = ("float32", "bfloat16")


def _autocast(device: torch.device, amp: bool):
    # bf16 on the CPU too: a prediction recorded as bfloat16 must have been made in it.
    if amp and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


#: How a linear single-channel set (the Pixel set) can be given to models trained on sRGB-like data: as it is,
#: or display-encoded (v ** (1/2.2)) with the output decoded back (v ** 2.2) before it is written.
INPUT_ENCODINGS = ("linear", "gamma2.2")


@torch.no_grad()
def forward_fitted(model, batch: dict, size_mode: str | None = None, amp: bool = False, extras: tuple = ()):
    """``model(batch)["output"]`` at the batch's own size, clamped to [0, 1], float32. With ``extras`` (names of
    other per-pixel outputs, e.g. Xin et al.'s ``defocus``), returns ``(output, {name: map at that size})``."""
    mode = size_mode or getattr(model, "size_mode", "pad")
    fitted, undo = fit_batch(batch, getattr(model, "size_multiple", (1, 1)), mode)
    device = next(v for v in batch.values() if torch.is_tensor(v)).device
    with _autocast(device, amp):
        out = model(fitted)
    y = undo(out["output"].float()).clamp(0, 1)
    if not extras:
        return y
    return y, {k: undo(out[k].float()) for k in extras}


def prepare_inference(model, device, fast: bool = True, compile: bool = False) -> dict:
    """Move ``model`` to ``device`` in eval mode and switch on the inference fast path; returns what was used
    (recorded in the provenance of predictions and speed rows).

    What lives inside the models is always on, with or without ``fast``: K3DN's PSF kernels and LU weights are
    computed once per set of weights and autocast state whenever autograd is off, and the SRP correlation runs in
    cache-sized bands. ``fast`` adds the device settings: on CUDA cuDNN benchmark mode (its fastest algorithms for
    the fixed input size) and channels-last convolution weights; with ``compile`` the forward is ``torch.compile``d
    (the first call compiles; where compilation fails the model runs eagerly and ``compile`` is recorded as off).
    tests/test_inference_fast.py holds the caches, the banded correlation, channels-last and the compiled forward
    (on a small network, not K3DN) within float rounding of the plain computation; cuDNN benchmark mode is
    untested.
    """
    device = torch.device(device)
    model.to(device).eval()
    used = {"fast": bool(fast), "compile": False}
    if fast and device.type == "cuda":
        from k3dn.models.blocks import to_channels_last

        torch.backends.cudnn.benchmark = True
        to_channels_last(model)
        used["channels_last"] = True
    if fast and compile:
        eager = model.forward
        compiled = torch.compile(eager, dynamic=False)
        used["compile"] = True

        def forward(batch):
            if not used["compile"]:
                return eager(batch)
            try:
                return compiled(batch)
            except Exception as e:  # no compiler toolchain, an unsupported op: eager is still correct
                log.warning("torch.compile failed (%s); running eagerly", type(e).__name__)
                used["compile"] = False
                return eager(batch)

        model.forward = forward
    return used


# ----------------------------------------------------------------------------------------------------------
# Model loading
# ----------------------------------------------------------------------------------------------------------


def load_model(
    run: str | os.PathLike | None = None, name: str | None = None, weights=None, overrides: dict | None = None
):
    """A model from a training run folder (``model.json`` + ``model.safetensors``) or a registered name
    (+ optional weights: our safetensors, or a published file through its ``checkpoint_filter_fn``)."""
    from k3dn.checkpoint import load_weights
    from k3dn.registry import create_model

    if run is not None:
        run = Path(run)
        spec_path = run / "model.json"
        if not spec_path.is_file():
            raise FileNotFoundError(f"{spec_path}: not a training run (no model.json)")
        try:
            spec = json.loads(spec_path.read_text())
            name, run_overrides = spec["model"], dict(spec.get("overrides", {}))
        except (ValueError, KeyError) as e:
            from k3dn.errors import InputError

            raise InputError(
                f"{spec_path}: malformed run description ({e}); rerun `k3dn train` into this folder "
                "or give --model and --weights"
            ) from e
        model = create_model(name, **{**run_overrides, **(overrides or {})})
        load_weights(model, weights or run / "model.safetensors")
        trained = spec.get("trained_stages")
        if trained and callable(getattr(model, "set_stage", None)):
            model.set_stage(max(trained))  # a run whose stage 2 never ran must not use its untrained SRP
    else:
        if name is None:
            raise ValueError("give a run folder or a model name")
        model = create_model(name, **(overrides or {}))
        if weights is not None:
            load_weights(model, weights)
            if Path(weights).suffix != ".safetensors":
                model.input_protocol = _published_protocol(name)
    return model.eval()


def _published_protocol(name: str) -> str | None:
    from baselines.published import checkpoint_for_model

    ck = checkpoint_for_model(name)
    return ck.input_protocol if ck is not None else None


def parse_overrides(items) -> dict:
    from k3dn.errors import InputError
    from k3dn.train.config import parse_value

    out = {}
    for it in items or ():
        if "=" not in it:
            raise InputError(f"not KEY=VALUE; write it as --override {it}=VALUE", where=f"--override {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ----------------------------------------------------------------------------------------------------------
# Prediction
# ----------------------------------------------------------------------------------------------------------


def _row_batch(row, device, protocol: str | None = None) -> tuple[dict, tuple[int, int]]:
    from k3dn.errors import InputError
    from k3dn.io import ImageError, read_image

    views = {}
    for k in INPUT_KEYS:
        if row.get(k):
            views[k] = read_image(row[k], protocol or row["protocol"], channels=3)
    if not views:
        raise InputError(f"row {row['id']!r}: no input view (left, right or center)")
    first = next(iter(views))
    size = views[first].shape[:2]
    for k, v in views.items():
        if v.shape[:2] != size:  # before (L + R) / 2, which would fail in a numpy broadcast naming no file
            raise ImageError(
                f"{row[k]}: the {k} view is {v.shape[1]}x{v.shape[0]} (WxH) but the {first} view "
                f"{row[first]} is {size[1]}x{size[0]}; the views of one DP pair must be the same size"
            )
    if "left" in views and "right" in views and "center" not in views:
        views["center"] = 0.5 * (views["left"] + views["right"])  # the physical DP sum, as in training
    if row.get("target"):
        from k3dn.io import read_raw

        th, tw = read_raw(row["target"]).shape[:2]
        if (th, tw) != size:
            raise ImageError(
                f"{row['target']}: the target is {tw}x{th} (WxH) but the inputs of row {row['id']!r} "
                f"are {size[1]}x{size[0]}"
            )
    batch = {k: torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))[None].to(device) for k, v in views.items()}
    return batch, size


def weights_identity(model, weights=None, run=None) -> dict:
    """What identifies a model's weights: its registered name and overrides, the weights' sha256 (a file, or every
    file of a checkpoint folder), and for a training run its training-config hash and trained stages."""
    from k3dn.provenance import sha256_file, sha256_files

    ident = {
        "model": getattr(model, "registry_name", type(model).__name__),
        "overrides": getattr(model, "registry_overrides", {}),
    }
    if run is not None:
        spec = json.loads((Path(run) / "model.json").read_text())
        weights = weights or Path(run) / "model.safetensors"
        ident.update(run_config_hash=spec.get("config_hash"), stages=spec.get("stages"))
    if weights is not None:
        w = Path(weights)
        ident["weights_sha256"] = (
            sha256_files(p for p in sorted(w.iterdir()) if p.is_file()) if w.is_dir() else sha256_file(w)
        )
    else:
        ident["weights_sha256"] = None  # a method without trained weights (Wiener)
    return ident


#: Modules every prediction runs besides the model's own: reading the manifest, size fitting, image I/O, weight
#: loading, and the catalogue that gives a published file its input protocol and tensor order.
PREDICTION_PATH = (
    "k3dn.infer",
    "k3dn.io",
    "k3dn.data.manifest",
    "k3dn.models.blocks",
    "k3dn.checkpoint",
    "baselines.published",
    "baselines.weight_manifests",
)


def code_identity(model) -> dict:
    """``{"code_sha256", "code_modules", "code_data"}`` of the code a prediction with ``model`` runs: the modules of
    its classes, factory and checkpoint filter (with every first-party module they import), :data:`PREDICTION_PATH`
    (:func:`k3dn.provenance.source_closure`), and the tensor manifests its published checkpoint is loaded by (the
    Keras and TensorLayer filters assign weights in their order). The libraries are keyed by their versions
    (:func:`library_versions`)."""
    from k3dn.provenance import code_identity as identity_of
    from k3dn.registry import model_modules

    roots = {type(m).__module__ for m in model.modules()}
    data = {}
    name = getattr(model, "registry_name", None)
    if name:
        from baselines.published import checkpoint_for_model
        from baselines.weight_manifests import MANIFEST_DIR

        roots |= model_modules(name)
        ck = checkpoint_for_model(name)
        data = {f"weight_manifests/{m}.json": MANIFEST_DIR / f"{m}.json" for m in (ck.manifests if ck else ())}
    return identity_of(sorted(r for r in roots if r.split(".", 1)[0] != "torch"), PREDICTION_PATH, data)


def library_versions() -> dict:
    """The versions of the libraries a prediction computes and writes with."""
    import cv2

    return {"torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__}


def _prediction_key(model, manifest, identity: dict, size_mode, dtype: str, input_encoding: str, device) -> dict:
    from k3dn.provenance import device_name, sha256_file

    overrides = identity.get("overrides") or {}
    return {
        **identity,
        **code_identity(model),
        # a file given as a factory override (Wiener's and Xin et al.'s calibrated kernels) is an input too
        "override_files_sha256": {
            k: sha256_file(v) for k, v in sorted(overrides.items()) if isinstance(v, str) and Path(v).is_file()
        },
        "libraries": library_versions(),
        "device": device_name(device),
        "manifest": str(Path(manifest).resolve()),
        "manifest_sha256": sha256_file(manifest),
        "input_protocol": getattr(model, "input_protocol", None),
        "size_mode": size_mode or getattr(model, "size_mode", "pad"),
        "dtype": dtype,
        "input_encoding": input_encoding,
    }


def _write_npy(path: Path, a: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    try:
        np.save(tmp, a.astype(np.float32))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def merge_predictions(parts, out_dir) -> Path:
    """Gather per-image prediction folders (one workflow job per image) into one folder with one
    ``predictions.json``: every part must be finished and of the same model, weights, code, manifest and dtype."""
    import shutil

    from k3dn.errors import InputError
    from k3dn.provenance import config_hash

    out_dir = Path(out_dir)
    records = []
    for part in parts:
        rec_path = Path(part) / "predictions.json"
        if not rec_path.is_file():
            raise InputError(
                "missing; that image's prediction is not finished (run its predict_image job)", where=rec_path
            )
        records.append(json.loads(rec_path.read_text()))
    shared = ("model", "weights_sha256", "code_sha256", "code_modules", "code_data", "libraries", "manifest_sha256")
    shared += ("dtype", "size_mode", "input_encoding")
    for k in shared:
        values = {json.dumps(r.get(k), sort_keys=True) for r in records}
        if len(values) > 1:
            by_value = {}
            for part, r in zip(parts, records):
                by_value.setdefault(json.dumps(r.get(k), sort_keys=True), []).append(str(part))
            groups = ", ".join(f"{len(v)} like {v[0]}" for v in sorted(by_value.values(), key=len, reverse=True))
            raise InputError(
                f"the parts differ in {k} ({groups}), so they are not one prediction; predict the odd ones again "
                "(snakemake --forcerun predict_image)",
                where=out_dir,
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    for part in parts:
        for f in sorted(Path(part).iterdir()):
            if f.suffix in (".png", ".npy") and not f.name.endswith(".tmp.npy"):
                tmp = out_dir / (f.name + ".tmp")
                shutil.copyfile(f, tmp)
                os.replace(tmp, out_dir / f.name)
    first = records[0]
    key = {
        **{k: first.get(k) for k in shared},
        "parts": [r.get("ids") for r in records],
        "overrides": [r.get("overrides") for r in records],
    }
    _write_json(
        out_dir / "predictions.json",
        {
            **key,
            "config_hash": config_hash(key),
            # parts may run on different machines and commits (same code): all are named
            "device": "|".join(sorted({str(r["device"]) for r in records})),
            "git_commit": "|".join(sorted({str(r["git_commit"]) for r in records})),
            "images": sum(int(r["images"]) for r in records),
        },
    )
    return out_dir


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_inputs(model, manifest, rows) -> None:
    """Every row's views, files and sizes from the file headers (:func:`k3dn.data.probe.probe_image`), before the
    output folder is touched: a missing, cut-off or mismatched file stops the job before it writes anything or
    deletes another key's images. Decoding can still fail later (corrupt data behind a valid header)."""
    from k3dn.data.probe import probe_image
    from k3dn.errors import InputError
    from k3dn.io import ImageError

    for row in rows:
        views = {k for k in INPUT_KEYS if row.get(k)}
        if {"left", "right"} <= views:
            views.add("center")  # formed as (L + R) / 2 by _row_batch
        missing = [k for k in getattr(model, "input_views", ()) if k not in views]
        if missing:
            raise InputError(f"{manifest}: row {row['id']!r} lacks the view(s) {missing} the model reads")
        first = None
        for k in (*INPUT_KEYS, "target"):
            if not row.get(k):
                continue
            size = probe_image(row[k]).size
            if first is None:
                first = k, size
            elif size != first[1]:
                raise ImageError(
                    f"{row[k]}: the {k} image is {size[0]}x{size[1]} (WxH) but the {first[0]} view "
                    f"{row[first[0]]} is {first[1][0]}x{first[1][1]}; the images of one row must be "
                    "the same size"
                )


def predict_manifest(
    model,
    manifest,
    out_dir,
    size_mode: str | None = None,
    device=None,
    dtype: str = "float32",
    identity: dict | None = None,
    progress: bool = True,
    input_encoding: str = "linear",
    ids: list[str] | None = None,
) -> list[Path]:
    """Write ``<out_dir>/<id>.png`` (16-bit) for every row of ``manifest``, then ``predictions.json``; returns
    the image paths. ``identity`` (:func:`weights_identity`) keys the predictions to the weights (see the module
    docstring); without it the model's name and overrides alone are the key."""
    from tqdm import tqdm

    from k3dn.data.manifest import read_manifest
    from k3dn.errors import InputError
    from k3dn.io import write_png16
    from k3dn.provenance import config_hash, git_commit

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if input_encoding not in INPUT_ENCODINGS:
        raise ValueError(f"unknown input encoding {input_encoding!r}; expected one of {INPUT_ENCODINGS}")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    rows = read_manifest(manifest).to_dict("records")
    if ids is not None:
        unknown = sorted(set(ids) - {str(r["id"]) for r in rows})
        if unknown:
            raise InputError(f"{manifest}: no row with id {unknown}")
        rows = [r for r in rows if str(r["id"]) in set(ids)]
    _check_inputs(model, manifest, rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = _prediction_key(
        model, manifest, identity or weights_identity(model), size_mode, dtype, input_encoding, device
    )
    if ids is not None:
        key["ids"] = sorted(ids)
    extras = tuple(getattr(model, "extra_outputs", ()))
    key_path, done_path = out_dir / ".key.json", out_dir / "predictions.json"
    old = json.loads(key_path.read_text()) if key_path.is_file() else None
    if old != key:
        # Only an interrupted prediction of this very key resumes. Images of other weights or code, of unknown
        # origin, or of a finished prediction run again (a forced rerun) must not be taken as these: start over.
        for p in [*out_dir.glob("*.png"), *out_dir.glob("*.npy")]:
            p.unlink()
        done_path.unlink(missing_ok=True)
        _write_json(key_path, key)
    inference = prepare_inference(model, device)
    paths = []
    for row in tqdm(rows, desc=f"predict {Path(manifest).name}", disable=not progress):
        path = out_dir / f"{row['id']}.png"
        paths.append(path)
        if path.exists():
            continue
        # A checkpoint trained on 8-bit data (IFAN, DRBNet, ...) gets its inputs as its authors read them.
        batch, _ = _row_batch(row, device, getattr(model, "input_protocol", None))
        if input_encoding == "gamma2.2":
            batch = {k: v.clamp(0, 1) ** (1 / 2.2) for k, v in batch.items()}
        y = forward_fitted(model, batch, size_mode, dtype == "bfloat16", extras=extras)
        if extras:
            # per-pixel by-products (Xin et al.'s defocus map), float32 .npy beside the image
            y, maps = y
            for name in extras:
                _write_npy(out_dir / f"{row['id']}_{name}.npy", maps[name][0, 0].cpu().numpy())
        if input_encoding == "gamma2.2":
            y = y**2.2
        y = y[0].permute(1, 2, 0).cpu().numpy()
        if int(row["channels"]) == 1:
            y = y.mean(axis=-1)
        write_png16(path, y)
    _write_json(
        done_path,
        {
            **key,
            "config_hash": config_hash(key),
            "git_commit": git_commit(),
            "images": len(paths),
            "inference": inference,
        },
    )
    key_path.unlink()  # finished: a later run into this folder is a new prediction, not a resume
    return paths


def deblur_files(model, left, right, out, center=None, size_mode=None, device=None, dtype: str = "float32") -> Path:
    """Deblur one DP pair from files and write a 16-bit PNG."""
    from k3dn.io import write_png16

    device = pick_device(device)
    row = {
        "id": Path(out).stem,
        "left": str(left),
        "right": str(right),
        "center": str(center or ""),
        "target": "",
        "protocol": "16bit",
    }
    batch, _ = _row_batch(row, device, getattr(model, "input_protocol", None))
    prepare_inference(model, device)
    y = forward_fitted(model, batch, size_mode, dtype == "bfloat16")[0].permute(1, 2, 0)
    return write_png16(out, y.cpu().numpy())


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------


def add_model_args(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run folder (model.json + model.safetensors)")
    src.add_argument("--model", help="registered model name")
    p.add_argument("--weights", help="weights file (our .safetensors or a published checkpoint)")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="factory override for create_model (repeatable)",
    )
    p.add_argument("--size-mode", choices=("pad", "resize"), help="default: the model's size_mode")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="float32 (default), or bfloat16 autocast (recorded with the predictions)",
    )


def model_from_args(args):
    return load_model(run=args.run, name=args.model, weights=args.weights, overrides=parse_overrides(args.override))


def _cmd_predict(args) -> int:
    model = model_from_args(args)
    identity = weights_identity(model, args.weights, args.run)
    paths = predict_manifest(
        model,
        args.manifest,
        args.out,
        size_mode=args.size_mode,
        device=args.device,
        dtype=args.dtype,
        identity=identity,
        input_encoding=args.input_encoding,
        ids=args.ids,
    )
    print(f"{len(paths)} predictions in {args.out}")
    return 0


def _cmd_gather(args) -> int:
    out = merge_predictions(args.parts, args.out)
    print(f"{len(args.parts)} part(s) gathered in {out}")
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run a model over a manifest, write <out>/<id>.png (16-bit)")
    add_model_args(p)
    p.add_argument(
        "--input-encoding",
        choices=INPUT_ENCODINGS,
        default="linear",
        help="gamma2.2: display-encode the inputs, decode the output (linear raw sets)",
    )
    p.add_argument("--manifest", required=True)
    p.add_argument("--ids", nargs="+", help="only these rows (one workflow job per image)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_predict)

    g = subparsers.add_parser("gather", help="gather per-image prediction folders into one")
    g.add_argument("--parts", nargs="+", required=True)
    g.add_argument("--out", required=True)
    g.set_defaults(func=_cmd_gather)
