"""Regenerate the RDPD synthetic DP video set (Abuolaim et al., ICCV 2021) from SYNTHIA-SF.

Input tree: ``<root>/SEQk/RGBLeft/<frame>.png`` and ``<root>/SEQk/DepthLeft/<frame>.png``; the depth PNG
encodes metres as ``1000 · (R + 256 G + 65536 B) / (256³ − 1)``, clipped to 250 m (datasets.md §4.2).

Recipe (facts of ``synthetic_dp_defocus_blur.py``): 2000 equal depth intervals over [0, 250] m; each
interval's centre depth ``z`` gets the CoC *radius* ``round(s · (z − F) / z)`` clipped to ±40 px, with the
generator's scale ``s = v · (f / N) / F``, ``v = f F / (F − f)`` (f in mm and F in m mixed as in the original,
which makes ``s`` a pixel count: 2.67, 3.13, 9.8, 3.85, 6.05 for the five sets); consecutive intervals with
the same radius merge into one layer. Camera sets ``[f mm, N, F m]``: [4,6,5], [5,8,6], [7,5,8], [10,13,12],
[22,10,30]. Butterworth DP kernels (order, cut-off factor, beta) cycle through the 12 combinations of
{3,6,9} × {2.5,2} × {0.1,0.2} with the sequence's position in the sorted SEQ list; κ = 1/7.
Output (8-bit PNG)::

    {train,val,test}_{c,l,r}/source/seq_NNN/<frame>.png    {split}_c/target/seq_NNN/<frame>.png

``seq_NNN`` counts sequences globally over sets × sorted SEQ dirs from 001; the 3rd sorted dir of every set
goes to both val and test, the others to train. Optional barrel distortion of L, R, C and target.

DIFFERENCES from the original generator:

1. Compositing: the original blurs the *whole* image with each layer's kernel and keeps the layer's pixels
   (a per-pixel kernel, no occlusion); we composite layers far → near with blurred coverage
   (:mod:`k3dn.synth.render`), so blurred near objects spill over sharp background and not the reverse.
2. In-focus layers (radius 0) are left sharp; the original forces radius 1 (a 3×3 disk) there.
3. The disk is our anti-aliased disk, not ``cv2.circle``; the Gaussian and ramp follow the original's rules.
4. Barrel distortion is our own implementation of ImageMagick's ``barrel`` mapping (below), bilinear,
   black outside; the original's per-set parameters (``set_k_rd.npy``) are binary files we do not have, so
   distortion is off unless parameters are given.
5. Colour is rendered on the 8-bit values as read (no gamma), like the original; we process RGB in float and
   round once at the end (the original rounds every layer to uint8).
6. ``--limit`` / ``n_layers`` / ``sets`` allow reduced runs (tests); the defaults reproduce the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from k3dn.io import read_image, write_png8
from k3dn.synth.render import render_layers

CAMERA_SETS = ((4, 6, 5), (5, 8, 6), (7, 5, 8), (10, 13, 12), (22, 10, 30))
BW_PARAMS = tuple((o, c, b) for o in (3, 6, 9) for c in (2.5, 2) for b in (0.1, 0.2))
MAX_DEPTH_M = 250.0
DEPTH_SCALE_M = 1000.0
COC_MAX = 40
NUM_DEPTH_LAYERS = 2000
SMOOTH = 7
_IMG_EXT = (".png", ".PNG", ".jpg", ".JPG", ".jpeg", ".JPEG")


def decode_depth(rgb_u8: np.ndarray, path="<array>") -> np.ndarray:
    """SYNTHIA depth PNG (RGB uint8, R least significant) → metres, clipped to 250 m."""
    if rgb_u8.ndim != 3 or rgb_u8.shape[2] < 3 or rgb_u8.dtype != np.uint8:
        raise ValueError(f"{path}: SYNTHIA depth must be an 8-bit RGB PNG, got {rgb_u8.dtype} {rgb_u8.shape}")
    v = rgb_u8[..., 0].astype(np.float64) + 256.0 * rgb_u8[..., 1] + 65536.0 * rgb_u8[..., 2]
    return np.minimum(DEPTH_SCALE_M * v / (256**3 - 1), MAX_DEPTH_M)


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decode_depth` (for stand-ins): metres → RGB uint8."""
    v = np.round(np.clip(depth_m, 0, DEPTH_SCALE_M) / DEPTH_SCALE_M * (256**3 - 1)).astype(np.int64)
    return np.stack([v % 256, (v // 256) % 256, v // 65536], axis=-1).astype(np.uint8)


def coc_scale(focal_mm: float, f_number: float, focus: float) -> float:
    lens_sensor = focal_mm * focus / (focus - focal_mm)
    return lens_sensor * (focal_mm / f_number) / focus


def layer_table(
    focal_mm: float, f_number: float, focus: float, n_layers: int = NUM_DEPTH_LAYERS, coc_max: int = COC_MAX
):
    """Depth layers ``[(radius, z_min, z_max), ...]`` (near → far), equal-radius intervals merged."""
    s = coc_scale(focal_mm, f_number, focus)
    table: list[list] = []
    for i in range(n_layers):
        z0, z1 = i / n_layers * MAX_DEPTH_M, (i + 1) / n_layers * MAX_DEPTH_M
        zc = z0 + (z1 - z0) / 2
        r = int(np.clip(round(s * (zc - focus) / zc), -coc_max, coc_max))
        if i == n_layers - 1:
            z1 += 0.1  # so that the clipped 250 m depth falls inside the last interval
        if table and table[-1][0] == r:
            table[-1][2] = z1
        else:
            table.append([r, z0, z1])
    return [tuple(t) for t in table]


def barrel_distort(img: np.ndarray, a: float, b: float, c: float, d: float | None = None) -> np.ndarray:
    """ImageMagick-style barrel distortion.

    For each output pixel at normalised radius ``r`` (distance from the image centre divided by half the
    smaller image side) the source is sampled at radius ``r · (a r³ + b r² + c r + d)`` along the same ray;
    ``d`` defaults to ``1 − a − b − c`` (no scaling at ``r = 1``). Positive ``c`` (or ``a``, ``b``) gives barrel
    distortion (the centre magnified, the periphery compressed; corners sample outside the frame and turn
    black), negative gives pincushion. Bilinear; source points outside the image give black.
    """
    import cv2

    if d is None:
        d = 1.0 - a - b - c
    H, W = img.shape[:2]
    cy, cx = (H - 1) / 2, (W - 1) / 2
    norm = min(H, W) / 2
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    dy, dx = (yy - cy) / norm, (xx - cx) / norm
    r = np.hypot(dx, dy)
    f = a * r**3 + b * r**2 + c * r + d
    mx = (cx + dx * f * norm).astype(np.float32)
    my = (cy + dy * f * norm).astype(np.float32)
    return cv2.remap(
        np.ascontiguousarray(img, dtype=np.float32),
        mx,
        my,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


@dataclass
class Frame:
    seq_dir: Path
    name: str


def sequences_root(root: Path, max_depth: int = 3) -> Path:
    """The folder holding ``SEQk/RGBLeft``: ``root`` itself, or the folder the SYNTHIA-SF zip unpacked into
    (``<dest>/SYNTHIA-SF/SYNTHIA-SF/``, as the download leaves it)."""
    level = [Path(root)]
    for _ in range(max_depth + 1):
        for d in level:
            if any((c / "RGBLeft").is_dir() for c in d.iterdir() if c.is_dir()):
                return d
        level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    return Path(root)


def list_sequences(root: Path) -> list[Path]:
    root = sequences_root(root)
    seqs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not seqs:
        raise ValueError(f"{root}: no sequence folders (expected SEQ1..SEQ6)")
    for s in seqs:
        for sub in ("RGBLeft", "DepthLeft"):
            if not (s / sub).is_dir():
                raise ValueError(f"{s}: missing {sub}/ (SYNTHIA-SF layout SEQk/RGBLeft, SEQk/DepthLeft)")
    return seqs


def _frames(seq: Path) -> list[str]:
    rgb = sorted(p.name for p in (seq / "RGBLeft").iterdir() if p.name.endswith(_IMG_EXT))
    depth = sorted(p.name for p in (seq / "DepthLeft").iterdir() if p.name.endswith(_IMG_EXT))
    if rgb != depth:
        raise ValueError(f"{seq}: RGBLeft and DepthLeft frame names differ ({sorted(set(rgb) ^ set(depth))[:3]} ...)")
    return rgb


def render_frame(rgb: np.ndarray, depth_m: np.ndarray, table, bw) -> dict[str, np.ndarray]:
    """DP views of one frame (float RGB in [0, 1]) for a layer table and Butterworth parameters."""
    edges = np.array([t[1] for t in table] + [table[-1][2]])
    labels = np.clip(np.searchsorted(edges, depth_m, side="right") - 1, 0, len(table) - 1)
    coc_diam = np.array([2.0 * t[0] for t in table])
    order = np.arange(len(table))[::-1]  # the table runs near -> far; composite far first
    o, cf, beta = bw
    v = render_layers(
        rgb,
        labels,
        coc_diam,
        kind="butterworth",
        order=order,
        dtype=np.float32,
        bw_order=o,
        cutoff_factor=cf,
        beta=beta,
        smooth=SMOOTH,
    )
    return {"l": v.left, "r": v.right, "c": v.center}


def generate_rdpd(
    synthia,
    out,
    *,
    sets=range(5),
    limit: int | None = None,
    n_layers: int = NUM_DEPTH_LAYERS,
    barrel: tuple[float, ...] | None = None,
    progress: bool = True,
) -> dict:
    """Write the RDPD tree under ``out``; frames whose four outputs exist are skipped (resumable)."""
    import cv2
    from tqdm import tqdm

    root, out = Path(synthia), Path(out)
    if not root.is_dir():
        raise ValueError(f"{root}: SYNTHIA-SF folder not found")
    seqs = list_sequences(root)
    jobs = []
    for set_num in sets:
        if not 0 <= set_num < len(CAMERA_SETS):
            raise ValueError(f"camera set {set_num} does not exist (0..{len(CAMERA_SETS) - 1})")
        f, n, F = CAMERA_SETS[set_num]
        table = layer_table(f, n, F, n_layers)
        for k, seq in enumerate(seqs):
            seq_no = set_num * len(seqs) + k + 1
            splits = ("val", "test") if k == 2 else ("train",)
            frames = _frames(seq)[:limit] if limit is not None else _frames(seq)
            jobs += [(seq, name, seq_no, splits, table, BW_PARAMS[k % len(BW_PARAMS)]) for name in frames]
    written = 0
    for seq, name, seq_no, splits, table, bw in tqdm(jobs, desc=f"RDPD -> {out}", disable=not progress, unit="frame"):
        sd = f"seq_{seq_no:03d}"
        targets = {
            s: {
                "l": out / f"{s}_l/source/{sd}/{name}",
                "r": out / f"{s}_r/source/{sd}/{name}",
                "c": out / f"{s}_c/source/{sd}/{name}",
                "t": out / f"{s}_c/target/{sd}/{name}",
            }
            for s in splits
        }
        if all(p.exists() for t in targets.values() for p in t.values()):
            continue
        rgb = read_image(seq / "RGBLeft" / name, protocol="8bit", channels=3).astype(np.float64)
        draw = cv2.imread(str(seq / "DepthLeft" / name), cv2.IMREAD_COLOR)
        if draw is None:
            raise ValueError(f"{seq / 'DepthLeft' / name}: cannot decode depth PNG")
        depth = decode_depth(draw[..., ::-1].copy(), seq / "DepthLeft" / name)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{seq}/{name}: RGB {rgb.shape[:2]} and depth {depth.shape} sizes differ")
        views = render_frame(rgb, depth, table, bw)
        views["t"] = rgb
        if barrel is not None:
            views = {k: barrel_distort(v, *barrel) for k, v in views.items()}
        for t in targets.values():
            for key, p in t.items():
                p.parent.mkdir(parents=True, exist_ok=True)
                write_png8(p, np.clip(views[key], 0, 1))
        written += 1
    return {"written": written, "frames": len(jobs), "sequences": len(seqs) * len(list(sets))}


def write_standin_synthia(
    root, n_seq: int = 6, n_frames: int = 2, size: tuple[int, int] = (36, 64), seed: int = 0
) -> Path:
    """A tiny SYNTHIA-SF-like tree ``SEQ1..SEQn/{RGBLeft,DepthLeft}/000000.png ...`` for tests."""
    from k3dn.synth.scenes import make_scene

    root = Path(root)
    rng = np.random.default_rng(seed)
    for k in range(1, n_seq + 1):
        for j in range(n_frames):
            s = make_scene(
                rng,
                size,
                layout="layers",
                sources=("astronaut", "coffee", "rocket", "chelsea"),
                depth_range=(1.0, 300.0),
            )
            name = f"{j:06d}.png"
            write_png8(root / f"SEQ{k}" / "RGBLeft" / name, s.image)
            write_png8(root / f"SEQ{k}" / "DepthLeft" / name, encode_depth(s.depth) / 255.0)
    return root
