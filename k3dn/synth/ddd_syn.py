"""Regenerate DDD-syn (Pan et al., CVPR 2021, DDDNet) from NYU Depth v2 with this package's DP renderer.

Input: ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5), read with h5py. MATLAB stores ``images`` as
480×640×3×1449 and ``depths`` as 480×640×1449 (column-major); h5py shows the reversed axes,
``images (1449, 3, 640, 480)`` uint8 and ``depths (1449, 640, 480)`` float32 metres, so image ``n`` is
``images[n].transpose(2, 1, 0)`` → (480, 640, 3) and its depth ``depths[n].T`` → (480, 640).

Recipe (datasets.md §3.2, DDDNet ``simulator_dp_*.m``): per image, depth ``/ scale`` → disparity via the
camera (``f`` m, ``f_pix``, aperture ``f_pix / N`` pixels, focus ``Fd`` m) → DP left/right → crop ``crop`` px
(MATLAB ``x(crop:end-crop)``: ``crop − 1`` rows/cols at the start, ``crop`` at the end) → resize back to
480×640 (bicubic) for L, R, GT and disparity.

* training: NYU images 1–1000 × 5 settings → ids ``setting * 1000 + n`` (0001–5000) in ``training/``;
* testing: images 1001–1350 → ids 6001–6350 in ``testing/``; images 1001–1150 → ids 6001–6150 in
  ``testing1/`` (list ids suffixed ``_h``); list ``nyu_test.txt`` (500 lines, official format, paths relative
  to the output root) and, our addition, ``nyu_train.txt`` in the same format.
* files: ``dp/XXXX_l.png``, ``dp/XXXX_r.png``, ``gt/XXXX_m.png`` (8-bit RGB), ``disp/XXXX_dm.pfm``.

DIFFERENCES from the original generator (its core, ``generatedpimage.p`` / ``scaledepth.p``, is obfuscated
MATLAB P-code, so the following are ours):

1. Disparity: ``scaledepth`` is replaced by the thin lens in pixels,
   ``c = (f_pix / N) · f / (Fd − f) · (1 − Fd / z)`` (signed CoC diameter), and the written ``_dm`` map is this
   package's signed DP disparity of the rendering PSF (≈ 0.424 c for half-disks; > 0 behind the focal plane).
   The original's disparity scale and sign convention are unknown.
2. DP simulation: ``generatedpimage`` is replaced by :func:`k3dn.synth.render.render_dp` (half-disk PSFs,
   ``n_layers`` CoC layers composited far → near with occlusion), in the images' 8-bit sRGB values as
   the scripts do (no gamma handling).
3. The ids of the five training settings (``setting * 1000 + n``) are inferred from "ids 0001–5000".
4. The disparity map is resized without rescaling its values (as the scripts' ``imresize``); the ``_dl.pfm``
   files named in ``nyu_test.txt`` are not written (the scripts do not write them either; DDDNet's loader
   reads only ``_dm``).
5. Resizing uses OpenCV bicubic, not MATLAB ``imresize`` (different kernel support and rounding).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from k3dn.io import write_png8
from k3dn.synth.optics import signed_coc_px
from k3dn.synth.psf import disparity_map
from k3dn.synth.render import render_dp


@dataclass(frozen=True)
class DDDSetting:
    name: str
    focal_m: float
    f_pix: float
    aperture_px: float
    focus_m: float
    depth_scale: float
    crop: int


TRAIN_SETTINGS = (
    DDDSetting("train0", 6e-3, 3000, 3000 / 6, 10, 4.0, 15),
    DDDSetting("train1", 4e-3, 2000, 2000 / 2, 12, 4.0, 15),
    DDDSetting("train2", 8e-3, 3000, 3000 / 2, 6, 3.0, 20),
    DDDSetting("train3", 35e-3, 3000, 3000 / 5, 6, 0.5, 20),
    DDDSetting("train4", 35e-3, 3000, 3000 / 2, 7, 1.0, 20),
)
TEST_SETTING = DDDSetting("testing", 30e-3, 3000, 1500, 7, 0.2, 20)
TEST1_SETTING = DDDSetting("testing1", 30e-3, 3000, 1500, 11, 0.8, 20)
OUT_SIZE = (480, 640)


# ---------------------------------------------------------------------------------------------- PFM
def write_pfm(path, data: np.ndarray) -> Path:
    """Write a float32 PFM (``Pf`` grey or ``PF`` RGB), little endian (scale −1), rows bottom-up. Atomic."""
    path = Path(path)
    a = np.asarray(data, dtype=np.float32)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        magic = b"Pf"
    elif a.ndim == 3 and a.shape[2] == 3:
        magic = b"PF"
    else:
        raise ValueError(f"{path}: PFM holds (H, W) or (H, W, 3) data, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{path}: refusing to write NaN/inf into a PFM")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(magic + b"\n" + f"{a.shape[1]} {a.shape[0]}\n".encode() + b"-1\n")
        f.write(np.ascontiguousarray(a[::-1]).astype("<f4").tobytes())
    os.replace(tmp, path)
    return path


def read_pfm(path) -> np.ndarray:
    """Read a PFM into float32 ``(H, W)`` or ``(H, W, 3)``, top row first; errors name the file."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read PFM ({e})") from e
    parts, pos = [], 0
    while len(parts) < 4:  # magic, width, height, scale: whitespace-separated tokens
        while pos < len(buf) and buf[pos : pos + 1].isspace():
            pos += 1
        end = pos
        while end < len(buf) and not buf[end : end + 1].isspace():
            end += 1
        if end == pos:
            raise ValueError(f"{path}: truncated PFM header")
        parts.append(buf[pos:end].decode("ascii", "replace"))
        pos = end
    pos += 1  # exactly one whitespace byte ends the header
    magic, w, h, scale = parts
    if magic not in ("Pf", "PF"):
        raise ValueError(f"{path}: not a PFM file (magic {magic!r})")
    try:
        w, h, scale = int(w), int(h), float(scale)
    except ValueError as e:
        raise ValueError(f"{path}: bad PFM header {parts}") from e
    ch = 3 if magic == "PF" else 1
    dtype = "<f4" if scale < 0 else ">f4"
    n = w * h * ch
    if len(buf) - pos < 4 * n:
        raise ValueError(f"{path}: truncated PFM data ({len(buf) - pos} bytes, need {4 * n})")
    a = np.frombuffer(buf, dtype=dtype, count=n, offset=pos).astype(np.float32)
    a = a.reshape((h, w, ch) if ch == 3 else (h, w))
    return np.ascontiguousarray(a[::-1])


# ---------------------------------------------------------------------------------------------- NYU
def read_nyu(path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """NYU labelled image ``index`` (1-based, as in the MATLAB scripts): RGB uint8 (H, W, 3), depth (H, W) m."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "images" not in f or "depths" not in f:
                raise ValueError(f"{path}: NYU .mat lacks the 'images'/'depths' datasets (keys: {list(f)})")
            n = f["images"].shape[0]
            if not 1 <= index <= n:
                raise ValueError(f"{path}: image {index} out of range 1..{n}")
            img = np.asarray(f["images"][index - 1]).transpose(2, 1, 0)
            depth = np.asarray(f["depths"][index - 1]).T.astype(np.float64)
    except OSError as e:
        raise ValueError(f"{path}: not a readable MATLAB v7.3 / HDF5 file ({e})") from e
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[:2] != depth.shape:
        raise ValueError(f"{path}: unexpected shapes image {img.shape}, depth {depth.shape}")
    return img, depth


def nyu_count(path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f["images"].shape[0])


def write_standin_nyu(path, n: int = 4, size: tuple[int, int] = (60, 80), seed: int = 0) -> Path:
    """A tiny stand-in for ``nyu_depth_v2_labeled.mat`` (same HDF5 names, dtypes and axis order).

    Colour from scikit-image samples, depth a slanted room-like plane plus a near box, 0.7–9 m.
    """
    import h5py

    from k3dn.synth.scenes import make_scene

    rng = np.random.default_rng(seed)
    H, W = size
    images = np.zeros((n, 3, W, H), np.uint8)
    depths = np.zeros((n, W, H), np.float32)
    for i in range(n):
        s = make_scene(
            rng, (H, W), layout="layers", sources=("astronaut", "coffee", "chelsea", "rocket"), depth_range=(0.7, 9.0)
        )
        images[i] = np.round(s.image * 255).astype(np.uint8).transpose(2, 1, 0)
        depths[i] = s.depth.astype(np.float32).T
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("depths", data=depths)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------- generator
def simulate(rgb_u8: np.ndarray, depth_m: np.ndarray, st: DDDSetting, out_size=OUT_SIZE, n_layers: int = 32):
    """One DDD-syn sample: ``(left, right, gt)`` float [0, 1] RGB and the signed disparity map, resized."""
    import cv2

    if min(depth_m.shape) <= 2 * st.crop:
        raise ValueError(f"image of {depth_m.shape} px is too small for the {st.crop}-px crop of {st.name}")
    z = np.maximum(depth_m, 1e-3) / st.depth_scale
    coc = signed_coc_px(z, st.focus_m, st.focal_m * 1e3, st.f_pix / st.aperture_px, f_pix=st.f_pix)
    img = rgb_u8.astype(np.float64) / 255.0
    views = render_dp(img, coc, n_layers=n_layers, kind="disk", dtype=np.float32)
    disp = disparity_map(coc)
    H, W = depth_m.shape
    c = st.crop
    cut = (slice(c - 1, H - c), slice(c - 1, W - c))
    oh, ow = out_size

    def rs(a):
        return cv2.resize(np.ascontiguousarray(a[cut]), (ow, oh), interpolation=cv2.INTER_CUBIC)

    return (
        np.clip(rs(views.left), 0, 1),
        np.clip(rs(views.right), 0, 1),
        np.clip(rs(img), 0, 1),
        rs(disp.astype(np.float32)),
    )


def _line(group: str, sid: str, fid: str) -> str:
    return (
        f"{sid} /{group}/dp/{fid}_l.png /{group}/dp/{fid}_r.png /{group}/gt/{fid}_m.png "
        f"/{group}/disp/{fid}_dl.pfm /{group}/disp/{fid}_dm.pfm \n"
    )


def plan(
    train_images=range(1, 1001), test_images=range(1001, 1351), test1_images=range(1001, 1151), limit: int | None = None
):
    """Jobs ``(group, id, nyu_index, setting)`` of the recipe; ``limit`` keeps the first N NYU images per group."""
    cap = (lambda r: list(r)[:limit]) if limit is not None else list
    jobs = []
    for s, st in enumerate(TRAIN_SETTINGS):
        jobs += [("training", f"{s * 1000 + n:04d}", n, st) for n in cap(train_images)]
    jobs += [("testing", f"{5000 + n:04d}", n, TEST_SETTING) for n in cap(test_images)]
    jobs += [("testing1", f"{5000 + n:04d}", n, TEST1_SETTING) for n in cap(test1_images)]
    return jobs


def generate_ddd_syn(
    nyu,
    out,
    *,
    train_images=range(1, 1001),
    test_images=range(1001, 1351),
    test1_images=range(1001, 1151),
    limit: int | None = None,
    out_size=OUT_SIZE,
    n_layers: int = 32,
    progress: bool = True,
) -> dict:
    """Write the DDD-syn tree under ``out``; existing complete samples are skipped (resumable)."""
    from tqdm import tqdm

    nyu, out = Path(nyu), Path(out)
    if not nyu.is_file():
        raise ValueError(f"{nyu}: NYU labelled .mat not found")
    n_avail = nyu_count(nyu)
    jobs = plan(train_images, test_images, test1_images, limit)
    missing = sorted({n for _, _, n, _ in jobs if n > n_avail})
    if missing:
        raise ValueError(f"{nyu}: has {n_avail} images, the plan needs up to image {missing[-1]}")
    written = 0
    for group, fid, n, st in tqdm(jobs, desc=f"DDD-syn -> {out}", disable=not progress, unit="img"):
        paths = [
            out / group / "dp" / f"{fid}_l.png",
            out / group / "dp" / f"{fid}_r.png",
            out / group / "gt" / f"{fid}_m.png",
            out / group / "disp" / f"{fid}_dm.pfm",
        ]
        if all(p.exists() for p in paths):
            continue
        rgb, depth = read_nyu(nyu, n)
        try:
            left, right, gt, disp = simulate(rgb, depth, st, out_size, n_layers)
        except ValueError as e:
            raise ValueError(f"{nyu}: image {n}: {e}") from e
        for p, im in zip(paths[:3], (left, right, gt)):
            p.parent.mkdir(parents=True, exist_ok=True)
            write_png8(p, im)
        write_pfm(paths[3], disp)
        written += 1
    lists = {
        "nyu_test.txt": [
            _line(g, fid + ("_h" if g == "testing1" else ""), fid) for g, fid, _, _ in jobs if g != "training"
        ],
        "nyu_train.txt": [_line(g, fid, fid) for g, fid, _, _ in jobs if g == "training"],
    }
    for name, lines in lists.items():
        tmp = out / (name + ".tmp")
        out.mkdir(parents=True, exist_ok=True)
        tmp.write_text("".join(lines))
        os.replace(tmp, out / name)
    return {"written": written, "samples": len(jobs), "test_lines": len(lists["nyu_test.txt"])}
