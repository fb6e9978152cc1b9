"""Layout adapters: every data set's folder tree -> the suite's manifests (one CSV per data set and split).

Each adapter has a *scan* step (find and pair the files, probe every image header, no writing) and a *write*
step (:func:`write_manifests`: any processing the manifest needs, then one manifest per split). Problems
raise :class:`LayoutError` naming the file or folder and what is wrong.

Rules shared by all adapters:

* Image files are ``.png .jpg .jpeg .tif .tiff`` (any case). Everything else inside the data folders (README,
  ``.DS_Store``, ``Thumbs.db``, ...) is **ignored and reported** as a warning; so are image files in the
  left/right folders that no source image names. An extra or missing image among the sources or targets is
  an **error**, because it would silently shift a by-order pairing.
* Every image's header is probed (size, bit depth, channels, truncation); views of one sample must have
  the same size (portrait scenes are fine, mixed orientations inside one sample are not).
* Manifest files are ``<out>/<dataset>_<split>.csv``; a protocol other than the data set's default adds a
  suffix (``dpdd_test_8bit.csv``) so both can live side by side.

Data-set specifics are in the docstrings of the ``scan_*`` functions.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from k3dn.data.check import IMAGE_EXTS, ImageInfo, ProbeError, probe_image
from k3dn.data.manifest import write_manifest

log = logging.getLogger(__name__)

DPDD_COUNTS = {"train": 350, "val": 74, "test": 76}
PIXEL_COUNT = 17
#: The keyword of each adapter that checks an official sample count (None turns the check off).
COUNT_KEYWORD = {"dpdd": "expected_counts", "synth": "expected_counts", "pixel": "expected_count"}
SPLITS = ("train", "val", "test")
DEFAULT_PROTOCOL = {"dpdd": "16bit", "pixel": "16bit", "dpd_disp": "16bit", "ddd_syn": "8bit", "rdpd": "8bit",
                    "synth": "16bit"}


class LayoutError(ValueError):
    pass


@dataclass
class Scan:
    dataset: str
    root: Path
    splits: dict[str, list[dict]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra_files: list[tuple[str, str]] = field(default_factory=list)   # (role, path) outside the manifest

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning(msg)


# --------------------------------------------------------------------------------------------- helpers
def _natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTS


def _list_images(folder: Path, scan: Scan) -> list[Path]:
    """Image files of ``folder`` in natural order; other files are reported and ignored."""
    if not folder.is_dir():
        raise LayoutError(f"{folder}: folder not found")
    imgs = []
    for p in folder.iterdir():
        if p.is_dir():
            continue
        if _is_image(p) and not p.name.startswith("."):
            imgs.append(p)
        else:
            scan.warn(f"{p}: not an image file, ignored")
    return sorted(imgs, key=lambda p: _natural_key(p.name))


def _probe(p: Path) -> ImageInfo:
    try:
        return probe_image(p)
    except ProbeError as e:
        raise LayoutError(str(e)) from e


def _same_size(files: dict[str, Path], infos: dict[str, ImageInfo], what: str) -> None:
    sizes = {k: infos[k].size for k in files}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{k} {files[k].name} {w}x{h}" for k, (w, h) in sizes.items())
        raise LayoutError(f"{what}: views differ in size (WxH): {desc}")


def _find_dirs(root: Path, pred, max_depth: int = 4) -> list[Path]:
    """Folders under ``root`` (itself included) for which ``pred(folder)`` holds, shallowest first."""
    out, level = [], [root]
    for _ in range(max_depth + 1):
        nxt = []
        for d in level:
            if pred(d):
                out.append(d)
                continue
            try:
                nxt.extend(sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")))
            except OSError:
                pass
        level = nxt
    return out


def _capture_number(stem: str) -> int | None:
    m = re.search(r"(\d+)$", stem)
    return int(m.group(1)) if m else None


def _find_view(folder: Path, stem: str, suffix: str, ext: str) -> Path | None:
    """``<stem>_L.png`` (the official DPDD naming) or ``<stem>.png``; other image extensions accepted."""
    for name in (f"{stem}{suffix}", stem):
        for e in (ext, *IMAGE_EXTS):
            for cand in (folder / f"{name}{e}", folder / f"{name}{e.upper()}"):
                if cand.is_file():
                    return cand
    return None


# --------------------------------------------------------------------------------------------- DPDD
def _dpdd_dirs(root: Path) -> dict[str, dict[str, Path]]:
    """Split -> folders (c, t, l, r, disp) for the official layout or Restormer's re-packaged one."""
    official = _find_dirs(root, lambda d: any((d / f"{s}_c" / "source").is_dir() for s in SPLITS))
    if len(official) > 1:
        raise LayoutError(f"{root}: several DPDD trees found ({', '.join(map(str, official))}); "
                          "point --root at one of them")
    if official:
        base = official[0]
        return {s: {"c": base / f"{s}_c" / "source", "t": base / f"{s}_c" / "target",
                    "l": base / f"{s}_l" / "source", "r": base / f"{s}_r" / "source", "disp": base / f"{s}_disp"}
                for s in SPLITS if (base / f"{s}_c" / "source").is_dir()}
    # Restormer: .../{train,val}/{inputC,inputL,inputR,target}, test under .../test/DPDD/ (or test/)
    out = {}
    for d in _find_dirs(root, lambda d: (d / "inputC").is_dir() or (d / "inputL").is_dir(), max_depth=7):
        # The nearest folder named after a split, e.g. .../test/DPDD/inputC or .../train/inputC.
        chain = [d, *[p for p in d.parents if root in p.parents or p == root]]
        split = next((p.name for p in chain if p.name in SPLITS), None)
        if split is None:
            raise LayoutError(f"{d}: Restormer-style folder (inputC/inputL/...) whose split is not evident "
                              "from its path (expected .../train, .../val or .../test/...)")
        if split in out:
            raise LayoutError(f"{d}: second {split} folder (first: {out[split]['c'].parent})")
        out[split] = {"c": d / "inputC", "t": d / "target", "l": d / "inputL", "r": d / "inputR",
                      "disp": d / "disp"}
    if not out:
        raise LayoutError(f"{root}: no DPDD layout found (expected {{train,val,test}}_c/source, ... or "
                          "Restormer's {train,val,test}/inputC, ...)")
    return out


def _pairing_error(split: str, srcs: list[Path], tgts: list[Path], dirs) -> LayoutError:
    msg = (f"{split}: {len(srcs)} source images in {dirs['c']} but {len(tgts)} targets in {dirs['t']}; "
           "pairing by sorted order is undefined")
    for i in range(min(len(srcs), len(tgts))):
        a, b = _capture_number(srcs[i].stem), _capture_number(tgts[i].stem)
        if a is not None and b is not None and abs(a - b) > 3:
            who = "target" if len(srcs) > len(tgts) else "source"
            lone = srcs[i] if who == "target" else tgts[i]
            return LayoutError(f"{msg}; first break at {lone}: no {who} within 3 capture numbers "
                               f"(missing {who} for {lone.stem}?)")
    extra = srcs[len(tgts):] if len(srcs) > len(tgts) else tgts[len(srcs):]
    return LayoutError(f"{msg}; unmatched at the end: {', '.join(p.name for p in extra[:5])}")


def _load_label_file(p: Path) -> np.ndarray:
    try:
        a = np.load(p, allow_pickle=False) if p.suffix == ".npy" else np.loadtxt(p, ndmin=1)
    except (OSError, ValueError) as e:
        raise LayoutError(f"{p}: cannot read label file ({e})") from e
    a = np.asarray(a).ravel()
    if a.size == 0 or not np.all(np.equal(np.mod(a, 1), 0)):
        raise LayoutError(f"{p}: expected 1-based integer positions, got {a[:5]}...")
    return a.astype(int)


def _official_labels(root: Path, dirs: dict[str, Path], n: int) -> list[str] | None:
    """indoor/outdoor from ``indoor_labels.npy``/``outdoor_labels.npy`` (or .txt): 1-based positions in the
    name-sorted test list (DPDD issue #12; Restormer indexes ``metric[labels - 1]``)."""
    for ext in (".npy", ".txt"):
        cands = [dirs["c"].parent, dirs["c"].parent.parent, root]
        found = next((d for d in cands if (d / f"indoor_labels{ext}").is_file()), None)
        if found is None:
            hits = sorted(root.rglob(f"indoor_labels{ext}"))
            found = hits[0].parent if hits else None
        if found is None:
            continue
        ind = _load_label_file(found / f"indoor_labels{ext}")
        outp = found / f"outdoor_labels{ext}"
        if not outp.is_file():
            raise LayoutError(f"{found / ('indoor_labels' + ext)}: found without {outp.name}")
        out = _load_label_file(outp)
        allpos = np.concatenate([ind, out])
        if allpos.min() < 1 or allpos.max() > n or len(set(allpos.tolist())) != allpos.size or allpos.size != n:
            raise LayoutError(f"{found}: indoor/outdoor label files must together list each position 1..{n} "
                              f"exactly once (got {ind.size} + {out.size} positions, range "
                              f"{allpos.min()}..{allpos.max()})")
        labels = [""] * n
        for i in ind:
            labels[i - 1] = "indoor"
        for i in out:
            labels[i - 1] = "outdoor"
        return labels
    return None


def dpdd_label_list() -> dict[str, str]:
    """Source stem -> indoor/outdoor from the packaged, unverified 3rd-party list (dpdd_labels.csv)."""
    text = resources.files("k3dn.data").joinpath("dpdd_labels.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["source_stem"]: r["scene_class_unverified"] for r in rows}


def scan_dpdd(root, *, expected_counts: dict | None = DPDD_COUNTS, protocol: str = "16bit",
              dataset: str = "dpdd", same_stems: bool = False, need_disparity: bool = False) -> Scan:
    """DPD-blur / DPDD: ``{split}_c/source``, ``{split}_c/target``, ``{split}_{l,r}/source`` (or Restormer's
    ``{split}/{inputC,target,inputL,inputR}``).

    Targets pair with sources by sorted order within a split (the official pairing; stems differ, e.g.
    source 1P0A0917 / target 1P0A0916): both lists must have equal length and, where the names end in a
    capture number, the numbers must be within 3. Views are ``<stem>_L.png``/``<stem>_R.png`` or plain
    ``<stem>.png``. ``expected_counts`` (default 350/74/76) is checked for every split present; pass None for
    generated or miniature trees. Test labels: official label files when present (``label_source=official``),
    else the packaged list matched by source stem (``unverified-list``), else empty. A ``{split}_disp`` folder
    supplies ``<stem>.npy`` disparity ground truth (required with ``need_disparity``).
    """
    root = Path(root)
    scan = Scan(dataset, root)
    all_dirs = _dpdd_dirs(root)
    for split in SPLITS:
        if split not in all_dirs:
            if expected_counts and split in expected_counts:
                scan.warn(f"{root}: no {split} split")
            continue
        dirs = all_dirs[split]
        srcs = _list_images(dirs["c"], scan)
        if not dirs["t"].is_dir():
            raise LayoutError(f"{dirs['t']}: target folder missing for split {split}")
        tgts = _list_images(dirs["t"], scan)
        for key in ("l", "r"):
            if not dirs[key].is_dir():
                raise LayoutError(f"{dirs[key]}: {'left' if key == 'l' else 'right'} view folder missing")
        if len(srcs) != len(tgts):
            raise _pairing_error(split, srcs, tgts, dirs)
        if not srcs:
            raise LayoutError(f"{dirs['c']}: no images")
        if expected_counts and split in expected_counts and len(srcs) != expected_counts[split]:
            raise LayoutError(f"{dirs['c']}: {len(srcs)} images, expected {expected_counts[split]} for {dataset} "
                              f"{split} (use expected_counts=None / --any-count for generated or partial trees)")
        disp_dir = dirs["disp"] if dirs["disp"].is_dir() else None
        if need_disparity and disp_dir is None:
            raise LayoutError(f"{dirs['disp']}: disparity folder missing for split {split}")
        used = {"l": set(), "r": set()}
        rows = []
        for s, t in tqdm(list(zip(srcs, tgts)), desc=f"{dataset} {split}", unit="scene", leave=False,
                         disable=len(srcs) < 50):
            a, b = _capture_number(s.stem), _capture_number(t.stem)
            if same_stems and s.stem != t.stem:
                raise LayoutError(f"{s} pairs with {t} by sorted order, but {dataset} needs identical names")
            if a is not None and b is not None and abs(a - b) > 3:
                raise LayoutError(f"{s} pairs with {t} by sorted order, but their capture numbers differ by "
                                  f"{abs(a - b)} (> 3): a file is missing or misnamed in {s.parent} or {t.parent}")
            views = {"center": s, "target": t}
            for key, col, suf in (("l", "left", "_L"), ("r", "right", "_R")):
                v = _find_view(dirs[key], s.stem, suf, s.suffix)
                if v is None:
                    raise LayoutError(f"{dirs[key] / (s.stem + suf + s.suffix)}: {col} view of {s.name} missing "
                                      f"(looked for {s.stem}{suf}{s.suffix} and {s.name})")
                used[key].add(v.name)
                views[col] = v
            infos = {k: _probe(p) for k, p in views.items()}
            _same_size(views, infos, f"{dataset} {split} {s.stem}")
            for k, inf in infos.items():
                if inf.channels not in (3, 4):
                    raise LayoutError(f"{views[k]}: {inf.channels} channel(s), expected RGB")
            row = {"id": s.stem, "dataset": dataset, "split": split, "left": str(views["left"]),
                   "right": str(views["right"]), "center": str(s), "target": str(t), "protocol": protocol,
                   "channels": 3}
            if disp_dir is not None:
                d = disp_dir / f"{s.stem}.npy"
                if not d.is_file():
                    raise LayoutError(f"{d}: disparity ground truth of {s.name} missing")
                row["disparity"] = str(d)
            rows.append(row)
        for key in ("l", "r"):
            for p in _list_images(dirs[key], scan):
                if p.name not in used[key]:
                    scan.warn(f"{p}: no source image of this name in {dirs['c']}, ignored")
        if split == "test":
            _attach_labels(scan, root, dirs, rows)
        scan.splits[split] = rows
    if not scan.splits:
        raise LayoutError(f"{root}: no split found")
    return scan


def _attach_labels(scan: Scan, root: Path, dirs, rows: list[dict]) -> None:
    if scan.dataset != "dpdd":
        return
    official = _official_labels(root, dirs, len(rows))
    listed = dpdd_label_list()
    if official is not None:
        disagree = [r["id"] for r, lab in zip(rows, official) if r["id"] in listed and listed[r["id"]] != lab]
        if disagree:
            scan.warn(f"official indoor/outdoor labels disagree with the packaged unverified list for "
                      f"{len(disagree)} scene(s): {disagree[:8]}")
        for r, lab in zip(rows, official):
            r["label"], r["label_source"] = lab, "official"
        return
    hits = [r for r in rows if r["id"] in listed]
    if hits and len(hits) < len(rows):
        scan.warn(f"{len(rows) - len(hits)} test scene(s) not in the packaged indoor/outdoor list; left unlabelled")
    for r in hits:
        r["label"], r["label_source"] = listed[r["id"]], "unverified-list"
    if hits:
        scan.warn("indoor/outdoor labels from the unverified 3rd-party list (dpdd_labels.csv); put the official "
                  "indoor_labels.npy / outdoor_labels.npy next to the test folders to replace them")


# --------------------------------------------------------------------------------------------- Pixel (Xin)
PIXEL_BLACK = 1024
PIXEL_WHITE = 2 ** 14 - 1
PIXEL_CROP = (1008, 1344)      # 6 x 8 patches of 168 px
PIXEL_GRID = (6, 8)
PIXEL_PATCH = 168
PIXEL_WINDOW = 101


def _pixel_root(root: Path) -> Path:
    hits = _find_dirs(root, lambda d: (d / "calibration").is_dir() and any(d.glob("*_left.png")), max_depth=3)
    if not hits:
        raise LayoutError(f"{root}: no Pixel (Xin et al.) layout found (expected DP_data_pixel_4/NNN_left.png, "
                          "NNN_right.png, calibration/, gt_all_in_focus_im/)")
    return hits[0]


def scan_pixel(root, *, expected_count: int | None = PIXEL_COUNT) -> Scan:
    """Xin et al. Pixel 4 set, raw files (no processing): ``NNN_left.png``, ``NNN_right.png`` (single-channel
    16-bit raw green, black level 1024), ``gt_all_in_focus_im/NNN_gt.png`` (linear, /65535),
    ``gt_defocus_map/NNN_gt.png`` (8-bit, min-max normalised), ``calibration/``. Rows point at the raw
    views; :func:`write_manifests` replaces them with the corrected crops."""
    base = _pixel_root(Path(root))
    scan = Scan("pixel", Path(root))
    ids = []
    for p in sorted(base.iterdir(), key=lambda p: _natural_key(p.name)):
        m = re.fullmatch(r"(\d+)_left\.png", p.name)
        if m:
            ids.append(m.group(1))
        elif p.is_file() and not re.fullmatch(r"\d+_right\.png", p.name):
            scan.warn(f"{p}: not part of the Pixel layout, ignored")
    if expected_count is not None and len(ids) != expected_count:
        raise LayoutError(f"{base}: {len(ids)} scenes (NNN_left.png), expected {expected_count}")
    cal = base / "calibration"
    for name in ("white_sheet_left.png", "white_sheet_right.png", "blur_kernels_left.npy", "blur_kernels_right.npy"):
        if not (cal / name).is_file():
            raise LayoutError(f"{cal / name}: calibration file missing")
        scan.extra_files.append(("calibration", str(cal / name)))
    rows = []
    for i in ids:
        left, right = base / f"{i}_left.png", base / f"{i}_right.png"
        gt = base / "gt_all_in_focus_im" / f"{i}_gt.png"
        dmap = base / "gt_defocus_map" / f"{i}_gt.png"
        for p, what in ((right, "right view"), (gt, "all-in-focus ground truth")):
            if not p.is_file():
                raise LayoutError(f"{p}: {what} of scene {i} missing")
        infos = {"left": _probe(left), "right": _probe(right), "target": _probe(gt)}
        _same_size({"left": left, "right": right}, infos, f"pixel scene {i}")
        for k, p in (("left", left), ("right", right), ("target", gt)):
            if infos[k].channels != 1 or infos[k].bit_depth != 16:
                raise LayoutError(f"{p}: {infos[k].channels}-channel {infos[k].bit_depth}-bit, expected "
                                  "single-channel 16-bit")
        row = {"id": i, "dataset": "pixel", "split": "test", "left": str(left), "right": str(right),
               "target": str(gt), "protocol": "16bit", "channels": 1}
        if dmap.is_file():
            _probe(dmap)
            row["disparity"] = str(dmap)
        else:
            scan.warn(f"{dmap}: defocus-map ground truth missing; disparity left empty")
        rows.append(row)
    if not rows:
        raise LayoutError(f"{base}: no scenes")
    scan.splits["test"] = rows
    return scan


def _raw_linear(path: Path, black: int, white: int) -> np.ndarray:
    from k3dn.io import ImageError, read_raw

    try:
        raw = read_raw(path)
    except ImageError as e:
        raise LayoutError(str(e)) from e
    if raw.dtype != np.uint16 or raw.shape[-1] != 1:
        raise LayoutError(f"{path}: expected single-channel 16-bit raw, got {raw.shape[-1]} channel(s) {raw.dtype}")
    return np.clip(raw[..., 0].astype(np.float64) - black, 0, None) / white


def pixel_vignetting_ratio(white_left: Path, white_right: Path, *, black: int = PIXEL_BLACK,
                           white: int = PIXEL_WHITE, window: int = PIXEL_WINDOW) -> np.ndarray:
    """Per-pixel left/right white-sheet ratio (both black-level corrected), then a ``window``-square box average
    with zero padding and a fixed divisor (what a 'SAME' average pool does). The right view is multiplied by it.
    Pixels whose right white-sheet value is at the black level give NaN, which only matters if it reaches the crop."""
    from scipy.ndimage import uniform_filter

    wl = _raw_linear(white_left, black, white)
    wr = _raw_linear(white_right, black, white)
    if wl.shape != wr.shape:
        raise LayoutError(f"{white_left} and {white_right} differ in size ({wl.shape} vs {wr.shape})")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(wr > 0, wl / np.where(wr > 0, wr, 1.0), np.nan)
    return uniform_filter(ratio, size=window, mode="constant", cval=0.0)


def _center_crop(a: np.ndarray, crop: tuple[int, int], what: Path) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = a.shape[:2]
    ch, cw = crop
    if h < ch or w < cw:
        raise LayoutError(f"{what}: {w}x{h} is smaller than the {cw}x{ch} crop")
    oy, ox = (h - ch) // 2, (w - cw) // 2
    return a[oy:oy + ch, ox:ox + cw], (oy, ox)


def load_pixel_kernels(root, *, grid: tuple[int, int] = PIXEL_GRID, patch: int = PIXEL_PATCH) -> dict:
    """Calibrated per-patch DP blur kernels of the Pixel set, for the Wiener baseline.

    Returns ``dict(left=(48, 61, 61), right=(48, 61, 61), grid=(6, 8), patch=168)`` (float32; one kernel per
    168-px patch of the 6 x 8 grid of the centre crop, rows first)."""
    cal = _pixel_root(Path(root)) / "calibration"
    out = {"grid": tuple(grid), "patch": int(patch)}
    for side in ("left", "right"):
        p = cal / f"blur_kernels_{side}.npy"
        try:
            k = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise LayoutError(f"{p}: cannot read blur kernels ({e})") from e
        if k.ndim != 3 or k.shape[0] != grid[0] * grid[1] or k.shape[1] != k.shape[2] or k.shape[1] % 2 == 0:
            raise LayoutError(f"{p}: kernel array of shape {k.shape}, expected ({grid[0] * grid[1]}, F, F) with odd F")
        out[side] = k.astype(np.float32)
    if out["left"].shape != out["right"].shape:
        raise LayoutError(f"{cal}: left and right kernels differ in shape")
    return out


def process_pixel(scan: Scan, processed: Path, *, crop: tuple[int, int] = PIXEL_CROP, black: int = PIXEL_BLACK,
                  white: int = PIXEL_WHITE, window: int = PIXEL_WINDOW, grid=PIXEL_GRID, patch=PIXEL_PATCH,
                  progress: bool = True) -> Scan:
    """Write the corrected, cropped views as 16-bit single-channel PNGs (value x 65535) and point the rows at them.

    left = clip(raw - 1024, 0) / (2^14 - 1); right = the same x :func:`pixel_vignetting_ratio`; both centre-cropped
    to ``crop`` (1008 x 1344 at offset y=252, x=336 for the 1512 x 2016 frames). The all-in-focus GT is already
    on that linear scale (GT / 65535) and is used as is. ``center`` = (left + right) / 2 of the corrected
    views: derived here (the set has no combined image) so single-image models can run; not an official
    view. Values above 1 after the vignetting gain are clipped (counted in a warning). The calibrated kernels go
    to ``processed/blur_kernels.npz`` (keys left, right).
    """
    from k3dn.io import write_png16

    base = _pixel_root(scan.root)
    cal = base / "calibration"
    ratio_full = pixel_vignetting_ratio(cal / "white_sheet_left.png", cal / "white_sheet_right.png",
                                        black=black, white=white, window=window)
    ratio, _ = _center_crop(ratio_full, crop, cal / "white_sheet_right.png")
    if not np.all(np.isfinite(ratio)) or np.any(ratio <= 0):
        raise LayoutError(f"{cal / 'white_sheet_right.png'}: vignetting ratio undefined inside the crop "
                          "(white-sheet pixels at or below the black level)")
    processed = Path(processed)
    rows = []
    for r in tqdm(scan.splits["test"], desc="pixel: correct + crop", unit="scene", disable=not progress):
        left_p, right_p = Path(r["left"]), Path(r["right"])
        left = _raw_linear(left_p, black, white)
        right = _raw_linear(right_p, black, white)
        if left.shape != ratio_full.shape:
            raise LayoutError(f"{left_p}: {left.shape[1]}x{left.shape[0]} differs from the white sheets "
                              f"{ratio_full.shape[1]}x{ratio_full.shape[0]}")
        left, _ = _center_crop(left, crop, left_p)
        right, _ = _center_crop(right, crop, right_p)
        right = right * ratio
        clipped = int(np.count_nonzero(right > 1.0))
        if clipped:
            scan.warn(f"{right_p}: {clipped} pixel(s) above 1 after the vignetting gain, clipped")
        gt_info = _probe(Path(r["target"]))
        if (gt_info.height, gt_info.width) != tuple(crop):
            raise LayoutError(f"{r['target']}: ground truth is {gt_info.width}x{gt_info.height}, expected the "
                              f"{crop[1]}x{crop[0]} crop")
        out = {}
        for col, img in (("left", left), ("right", right), ("center", 0.5 * (left + np.clip(right, 0, 1)))):
            out[col] = str(write_png16(processed / col / f"{r['id']}.png", np.clip(img, 0.0, 1.0).astype(np.float32)))
        rows.append({**r, **out})
    kernels = load_pixel_kernels(scan.root, grid=grid, patch=patch)
    processed.mkdir(parents=True, exist_ok=True)
    tmp = processed / "blur_kernels.tmp.npz"
    np.savez(tmp, left=kernels["left"], right=kernels["right"])
    os.replace(tmp, processed / "blur_kernels.npz")
    new = Scan(scan.dataset, scan.root, {"test": rows}, list(scan.warnings), list(scan.extra_files))
    return new


# --------------------------------------------------------------------------------------------- DPD-disp
def scan_dpd_disp(root) -> Scan:
    """DPD-disp (ICCP 2020), either published layout:

    * the git repository's ``Qualitative/`` and ``Quantitative/`` folders of ``<id>_B.png`` (combined),
      ``<id>_L.png``, ``<id>_R.png``, without depth ground truth;
    * the Drive archive's flat folder of ``<id>_B.jpg``, ``<id>_L.jpg``, ``<id>_R.jpg`` and ``<id>_D.TIF``
      ((inverse-)depth GT, affine-ambiguous).

    Every folder below ``root`` holding ``*_B.*`` files is read; ids must be unique across them. No all-in-focus
    target: ``target`` is empty, GT (where present) goes to the ``depth`` column. Qualitative and disparity
    figures only."""
    root = Path(root)
    pat = re.compile(r"(.+)_([BLRD])$", re.IGNORECASE)
    hits = _find_dirs(root, lambda d: any(pat.match(p.stem) and _is_image(p) for p in d.glob("*_[Bb].*")),
                      max_depth=3)
    if not hits:
        raise LayoutError(f"{root}: no DPD-disp layout found (expected <id>_B/_L/_R images: the repository's "
                          "Qualitative/ and Quantitative/ folders, or the archive's flat folder with <id>_D.TIF)")
    scan = Scan("dpd_disp", root)
    groups: dict[str, dict[str, Path]] = {}
    for base in hits:
        for p in sorted(base.iterdir()):
            m = pat.match(p.stem)
            if p.is_file() and m and _is_image(p):
                kind = m.group(2).upper()
                if kind in groups.setdefault(m.group(1), {}):
                    raise LayoutError(f"{p}: second {kind} file for id {m.group(1)} ({groups[m.group(1)][kind]})")
                groups[m.group(1)][kind] = p
            elif p.is_file():
                scan.warn(f"{p}: not part of the DPD-disp layout, ignored")
    rows = []
    for i in sorted(groups, key=_natural_key):
        g = groups[i]
        for k, what in (("B", "combined image"), ("L", "left view"), ("R", "right view")):
            if k not in g:
                raise LayoutError(f"{next(iter(g.values())).parent / (i + '_' + k)}.*: {what} of {i} missing")
        views = {"center": g["B"], "left": g["L"], "right": g["R"]}
        infos = {k: _probe(p) for k, p in views.items()}
        _same_size(views, infos, f"dpd_disp {i}")
        if "D" in g:
            _probe(g["D"])
        rows.append({"id": i, "dataset": "dpd_disp", "split": "test", "left": str(g["L"]), "right": str(g["R"]),
                     "center": str(g["B"]), "target": "", "depth": str(g.get("D", "")), "protocol": "16bit",
                     "channels": 3})
    with_depth = sum(1 for r in rows if r["depth"])
    if 0 < with_depth < len(rows):
        scan.warn(f"{root}: {len(rows) - with_depth} of {len(rows)} DPD-disp scenes have no depth ground truth")
    scan.splits["test"] = rows
    return scan


# --------------------------------------------------------------------------------------------- DDD-syn
_DDD_DIR_SPLIT = {"training": ("train", ""), "testing": ("test", ""), "testing1": ("test", "_h")}


def _read_pfm():
    try:
        from k3dn.synth.ddd_syn import read_pfm
    except ImportError as e:
        raise LayoutError("DDD-syn disparity needs the PFM reader k3dn.synth.ddd_syn.read_pfm, which is not "
                          f"available ({e})") from e
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
        rows.append({"id": sid, "split": split, "left": res(left), "right": res(right), "target": res(gt),
                     "pfm": res(dm), "where": f"{lst}:{n}"})
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
        for d in _find_dirs(root, lambda d: (d / "dp").is_dir(), max_depth=3):
            if d.name not in _DDD_DIR_SPLIT:
                raise LayoutError(f"{d}: DDD-syn folder with dp/ whose split is unknown (expected training, "
                                  "testing or testing1, or a list file nyu_test.txt)")
            split, suf = _DDD_DIR_SPLIT[d.name]
            for left in sorted((d / "dp").glob("*_l.png"), key=lambda p: _natural_key(p.name)):
                i = left.stem[:-2]
                raw.append({"id": i + suf, "split": split, "left": left, "right": d / "dp" / f"{i}_r.png",
                            "target": d / "gt" / f"{i}_m.png", "pfm": d / "disp" / f"{i}_dm.pfm",
                            "where": str(d)})
            for sub in ("dp", "gt", "disp"):
                if (d / sub).is_dir():
                    for p in (d / sub).iterdir():
                        if not re.fullmatch(r".+_(l|r)\.png|.+_m\.png|.+_d[ml]\.pfm", p.name):
                            scan.warn(f"{p}: not part of the DDD-syn layout, ignored")
    if not raw:
        raise LayoutError(f"{root}: no DDD-syn layout found (expected a list file like nyu_test.txt, or "
                          "training/ testing/ with dp/ gt/ disp/)")
    seen = set()
    for r in raw:
        if (r["split"], r["id"]) in seen:
            raise LayoutError(f"{r['where']}: duplicate id {r['id']} in split {r['split']}")
        seen.add((r["split"], r["id"]))
        views = {k: r[k] for k in ("left", "right", "target")}
        for k, p in (*views.items(), ("disparity", r["pfm"])):
            if not p.is_file():
                raise LayoutError(f"{p}: {k} of DDD-syn sample {r['id']} missing ({r['where']})")
        infos = {k: _probe(p) for k, p in views.items()}
        _same_size(views, infos, f"ddd_syn {r['id']}")
        scan.splits.setdefault(r["split"], []).append(
            {"id": r["id"], "dataset": "ddd_syn", "split": r["split"], "left": str(r["left"]),
             "right": str(r["right"]), "target": str(r["target"]), "disparity": str(r["pfm"]),
             "protocol": "8bit", "channels": 3})
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
            info = _probe(Path(r["left"]))
            if d.shape[:2] != (info.height, info.width):
                raise LayoutError(f"{pfm}: disparity {d.shape[1]}x{d.shape[0]} differs from the image "
                                  f"{info.width}x{info.height}")
            dst = processed / "disp" / split / f"{r['id']}.npy"
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.stem + ".tmp.npy")
            np.save(tmp, d)
            os.replace(tmp, dst)
            out_rows.append({**r, "disparity": str(dst)})
        new.splits[split] = out_rows
    return new


# --------------------------------------------------------------------------------------------- RDPD
def scan_rdpd(root) -> Scan:
    """RDPD synthetic video set: ``{split}_{c,l,r}/source/seq_NNN/<frame>.png`` and
    ``{split}_c/target/seq_NNN/<frame>.png`` (same frame names as the sources), 8-bit. Ids ``seq_NNN_<frame>``.
    As in the official generator, val and test hold the same sequences."""
    root = Path(root)
    hits = _find_dirs(root, lambda d: any((d / f"{s}_c" / "source").is_dir() for s in SPLITS), max_depth=3)
    if not hits:
        raise LayoutError(f"{root}: no RDPD layout found (expected {{train,val,test}}_c/source/seq_NNN/...)")
    base = hits[0]
    scan = Scan("rdpd", root)
    for split in SPLITS:
        csrc = base / f"{split}_c" / "source"
        if not csrc.is_dir():
            continue
        rows = []
        seqs = sorted((d for d in csrc.iterdir() if d.is_dir()), key=lambda d: _natural_key(d.name))
        for p in csrc.iterdir():
            if p.is_file():
                scan.warn(f"{p}: file outside a seq_NNN folder, ignored")
        if not seqs:
            raise LayoutError(f"{csrc}: no sequence folders")
        for seq in seqs:
            for s in _list_images(seq, scan):
                views = {"center": s}
                t = base / f"{split}_c" / "target" / seq.name / s.name
                if not t.is_file():
                    raise LayoutError(f"{t}: target of {s} missing")
                views["target"] = t
                for key, col, suf in (("l", "left", "_L"), ("r", "right", "_R")):
                    folder = base / f"{split}_{key}" / "source" / seq.name
                    v = _find_view(folder, s.stem, suf, s.suffix)
                    if v is None:
                        raise LayoutError(f"{folder / s.name}: {col} view of {s} missing")
                    views[col] = v
                infos = {k: _probe(p) for k, p in views.items()}
                _same_size(views, infos, f"rdpd {seq.name}/{s.name}")
                rows.append({"id": f"{seq.name}_{s.stem}", "dataset": "rdpd", "split": split,
                             "left": str(views["left"]), "right": str(views["right"]), "center": str(s),
                             "target": str(t), "protocol": "8bit", "channels": 3})
        if not rows:
            raise LayoutError(f"{csrc}: no frames")
        scan.splits[split] = rows
    return scan


# --------------------------------------------------------------------------------------------- registry
def scan(dataset: str, root, **kw) -> Scan:
    """Scan ``root`` with the adapter of ``dataset`` (no files written)."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: folder not found")
    if dataset == "dpdd":
        return scan_dpdd(root, **kw)
    if dataset == "synth":
        kw.setdefault("expected_counts", None)
        return scan_dpdd(root, dataset="synth", same_stems=True, need_disparity=True, **kw)
    if dataset == "pixel":
        return scan_pixel(root, **kw)
    if dataset == "dpd_disp":
        return scan_dpd_disp(root, **kw)
    if dataset == "ddd_syn":
        return scan_ddd_syn(root, **kw)
    if dataset == "rdpd":
        return scan_rdpd(root, **kw)
    raise LayoutError(f"no layout adapter for data set {dataset!r}; known: {sorted(DEFAULT_PROTOCOL)}")


def write_manifests(dataset: str, root, out_dir, *, processed=None, protocol: str | None = None,
                    progress: bool = True, pixel_crop: tuple[int, int] = PIXEL_CROP, **scan_kw) -> list[Path]:
    """Scan ``root``, do the processing the data set needs, write ``<out_dir>/<dataset>_<split>[_<protocol>].csv``.

    ``processed`` (default ``<root>/k3dn_processed``) receives derived files: the Pixel set's corrected crops and
    kernel ``.npz``, DDD-syn's disparity ``.npy``. ``protocol`` overrides the data set's default reading protocol
    (e.g. ``8bit`` for the legacy DPDD baselines). Returns the manifest paths.
    """
    root = Path(root)
    default = DEFAULT_PROTOCOL.get(dataset)
    if dataset == "dpdd" and protocol is not None:
        scan_kw["protocol"] = protocol
    sc = scan(dataset, root, **scan_kw)
    processed = Path(processed) if processed is not None else root / "k3dn_processed"
    if dataset == "pixel":
        # The calibration grid (6 x 8 cells) covers the crop, whatever its size.
        sc = process_pixel(sc, processed, crop=pixel_crop, patch=pixel_crop[0] // PIXEL_GRID[0], progress=progress)
    elif dataset == "ddd_syn":
        sc = process_ddd_syn(sc, processed, progress=progress)
    out_dir = Path(out_dir)
    paths = []
    for split, rows in sc.splits.items():
        if protocol is not None:
            for r in rows:
                r["protocol"] = protocol
        suffix = f"_{protocol}" if protocol not in (None, default) else ""
        paths.append(write_manifest(rows, out_dir / f"{dataset}_{split}{suffix}.csv"))
    return paths
