"""DDD-syn (DDDNet, Pan et al., CVPR 2021): synthetic DP pairs from NYU-v2 with PFM disparity, which the
manifest step converts to ``.npy``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from k3dn.data.adapters import ADAPTERS, SPLITS
from k3dn.data.layouts.common import (
    LayoutError,
    Scan,
    find_dirs,
    natural_key,
    probe,
    same_size,
)

_PROTOCOL = ADAPTERS["ddd_syn"].protocol


_DDD_DIR_SPLIT = {"training": ("train", ""), "testing": ("test", ""), "testing1": ("test", "_h")}


def _read_pfm():
    try:
        from k3dn.synth.ddd_syn import read_pfm
    except ImportError as e:
        raise LayoutError(
            f"DDD-syn disparity needs the PFM reader k3dn.synth.ddd_syn.read_pfm, which is not available ({e})"
        ) from e
    return read_pfm


def _ddd_from_list(lst: Path, root: Path, split: str, scan: Scan) -> list[dict]:
    rows = []
    for n, line in enumerate(lst.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (5, 6):
            raise LayoutError(f"{lst}:{n}: expected '<id> <left> <right> <gt> [<disp_l>] <disp_m>', got {line!r}")
        sid, left, right, gt, dm = parts[0], parts[1], parts[2], parts[3], parts[-1]

        def res(rel):
            for b in (root, lst.parent):
                p = b / rel.lstrip("/")
                if p.exists():
                    return p
            return root / rel.lstrip("/")

        rows.append(
            {
                "id": sid,
                "split": split,
                "left": res(left),
                "right": res(right),
                "target": res(gt),
                "pfm": res(dm),
                "where": f"{lst}:{n}",
            }
        )
    return rows


def scan_ddd_syn(root) -> Scan:
    """DDD-syn as written by our generator (and DDDNet's simulator): ``dp/XXXX_l.png``, ``dp/XXXX_r.png``,
    ``gt/XXXX_m.png`` (8-bit), ``disp/XXXX_dm.pfm``. Splits come from the official-format list files
    (``<id> /testing/dp/6001_l.png ... /testing/disp/6001_dm.pfm``; a file name containing train/val/test gives
    the split) when present, else from the folders ``training`` (train), ``testing`` and ``testing1`` (test,
    ids suffixed ``_h`` as in ``nyu_test.txt``). Protocol 8bit. No combined image: ``center`` is empty."""
    root = Path(root)
    scan = Scan("ddd_syn", root)
    lists = []
    for p in sorted(root.glob("*.txt")) + sorted(root.glob("*/*.txt")):
        first = next((ln for ln in p.read_text(errors="replace").splitlines() if ln.strip()), "")
        if len(first.split()) in (5, 6) and first.split()[1].endswith("_l.png"):
            split = next((s for s in SPLITS if s in p.stem.lower()), None)
            if split is None:
                raise LayoutError(f"{p}: DDD-syn list whose split is not in its name (expected train/val/test in it)")
            lists.append((p, split))
    raw = []
    if lists:
        for p, split in lists:
            raw.extend(_ddd_from_list(p, root, split, scan))
    else:
        for d in find_dirs(root, lambda d: (d / "dp").is_dir(), max_depth=3):
            if d.name not in _DDD_DIR_SPLIT:
                raise LayoutError(
                    f"{d}: DDD-syn folder with dp/ whose split is unknown (expected training, "
                    "testing or testing1, or a list file nyu_test.txt)"
                )
            split, suf = _DDD_DIR_SPLIT[d.name]
            for left in sorted((d / "dp").glob("*_l.png"), key=lambda p: natural_key(p.name)):
                i = left.stem[:-2]
                raw.append(
                    {
                        "id": i + suf,
                        "split": split,
                        "left": left,
                        "right": d / "dp" / f"{i}_r.png",
                        "target": d / "gt" / f"{i}_m.png",
                        "pfm": d / "disp" / f"{i}_dm.pfm",
                        "where": str(d),
                    }
                )
            for sub in ("dp", "gt", "disp"):
                if (d / sub).is_dir():
                    for p in (d / sub).iterdir():
                        if not re.fullmatch(r".+_(l|r)\.png|.+_m\.png|.+_d[ml]\.pfm", p.name):
                            scan.warn(f"{p}: not part of the DDD-syn layout, ignored")
    if not raw:
        raise LayoutError(
            f"{root}: no DDD-syn layout found (expected a list file like nyu_test.txt, or "
            "training/ testing/ with dp/ gt/ disp/)"
        )
    seen = set()
    for r in raw:
        if (r["split"], r["id"]) in seen:
            raise LayoutError(f"{r['where']}: duplicate id {r['id']} in split {r['split']}")
        seen.add((r["split"], r["id"]))
        views = {k: r[k] for k in ("left", "right", "target")}
        for k, p in (*views.items(), ("disparity", r["pfm"])):
            if not p.is_file():
                raise LayoutError(f"{p}: {k} of DDD-syn sample {r['id']} missing ({r['where']})")
        infos = {k: probe(p) for k, p in views.items()}
        same_size(views, infos, f"ddd_syn {r['id']}")
        scan.splits.setdefault(r["split"], []).append(
            {
                "id": r["id"],
                "dataset": "ddd_syn",
                "split": r["split"],
                "left": str(r["left"]),
                "right": str(r["right"]),
                "target": str(r["target"]),
                "disparity": str(r["pfm"]),
                "protocol": _PROTOCOL,
                "channels": 3,
            }
        )
    return scan


def process_ddd_syn(scan: Scan, processed: Path, progress: bool = True) -> Scan:
    """PFM disparity -> ``processed/disp/<split>/<id>.npy`` float32 (H, W), top row first (the manifest's
    disparity column holds .npy or .tif)."""
    read_pfm = _read_pfm()
    processed = Path(processed)
    new = Scan(scan.dataset, scan.root, {}, list(scan.warnings), list(scan.extra_files))
    for split, rows in scan.splits.items():
        out_rows = []
        for r in tqdm(rows, desc=f"ddd_syn {split}: pfm -> npy", unit="file", disable=not progress):
            pfm = Path(r["disparity"])
            try:
                d = np.asarray(read_pfm(pfm), dtype=np.float32)
            except Exception as e:
                raise LayoutError(f"{pfm}: cannot read PFM ({e})") from e
            d = d[..., 0] if d.ndim == 3 and d.shape[-1] == 1 else d
            info = probe(Path(r["left"]))
            if d.shape[:2] != (info.height, info.width):
                raise LayoutError(
                    f"{pfm}: disparity {d.shape[1]}x{d.shape[0]} differs from the image {info.width}x{info.height}"
                )
            dst = processed / "disp" / split / f"{r['id']}.npy"
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.stem + ".tmp.npy")
            np.save(tmp, d)
            os.replace(tmp, dst)
            out_rows.append({**r, "disparity": str(dst)})
        new.splits[split] = out_rows
    return new
