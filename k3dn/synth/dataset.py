"""The suite's embedded synthetic DP data set: render scenes and write them in the DPDD folder layout.

Layout under ``root`` (identical to DPDD's, datasets.md §1.3, so the DPDD adapter reads it)::

    {split}_c/source/<stem>.png      combined (ordinary) defocused image, 16-bit RGB PNG
    {split}_l/source/<stem>_L.png    DP left view, 16-bit
    {split}_r/source/<stem>_R.png    DP right view, 16-bit
    {split}_c/target/<stem>.png      sharp (all-in-focus) target, 16-bit
    {split}_disp/<stem>.npy          ground-truth signed DP disparity, float32 (H, W), pixels,
                                     x̄(K_L) − x̄(K_R) of the rendering PSF (> 0 behind the focal plane)
    {split}_coc/<stem>.npy           ground-truth signed CoC diameter, float32 (H, W), pixels
    synth_meta.json                  configuration, seed, config hash, per-image camera and scene

``split`` ∈ {train, val, test}; stems are ``syn00000``, ``syn00001``, … (8 characters like DPDD's), the
target's stem equals the source's, so pairing by sorted order within a split (what the DPDD loaders do) and
pairing by stem agree. The disparity/CoC maps are the continuous values (before layer quantisation,
after the ``max_coc_px`` clip).

Camera defaults model DPDD's Canon EOS 5D Mark IV at DPDD resolution: 36 mm / 6720 px × 4 = 21.4 µm pixels,
a 50 mm lens at f/1.8–f/4, focused on a random scene point; |CoC| is clipped to ``max_coc_px``. Blur is
applied in linear light (sRGB decoded, blurred, re-encoded) by default.

Writing is atomic per file and resumable: a re-run with the same configuration skips images whose files
all exist; a different configuration first deletes the files the old ``synth_meta.json`` lists, then
renders everything again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from k3dn.io import write_png16
from k3dn.synth.optics import signed_coc_px
from k3dn.synth.psf import disparity_map
from k3dn.synth.render import render_dp
from k3dn.synth.scenes import LAYOUTS, SOURCES, linear_to_srgb, make_scene, srgb_to_linear

SPLITS = ("train", "val", "test")
META = "synth_meta.json"
RENDERER_VERSION = 1


@dataclass
class SynthConfig:
    size: tuple[int, int] = (256, 256)  # (H, W) of the written images
    count_train: int = 16
    count_val: int = 0
    count_test: int = 8
    seed: int = 0
    crop: int = 16  # px rendered beyond each side and cropped away (no border effects)
    n_layers: int = 16
    kernel: str = "disk"
    focal_mm: float = 50.0
    f_numbers: tuple[float, ...] = (1.8, 2.8, 4.0)
    pixel_pitch_um: float = 21.4
    max_coc_px: float = 32.0
    depth_range: tuple[float, float] = (0.8, 20.0)
    focus_quantile: tuple[float, float] = (0.05, 0.6)  # focus on the depth at a random quantile in this range
    linear_light: bool = True
    sources: tuple[str, ...] = SOURCES
    layouts: tuple[str, ...] = LAYOUTS
    extra: dict = field(default_factory=dict)  # free-form, recorded in the meta (e.g. a config file name)

    def counts(self) -> dict[str, int]:
        return {"train": self.count_train, "val": self.count_val, "test": self.count_test}

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        return json.loads(json.dumps(d))  # tuples -> lists, stable types

    def digest(self) -> str:
        d = self.to_json()
        d.pop("extra", None)
        d["renderer_version"] = RENDERER_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, d: dict) -> SynthConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown synth config keys: {sorted(unknown)}")
        d = dict(d)
        for k in ("size", "f_numbers", "depth_range", "focus_quantile", "sources", "layouts"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def validate(self) -> None:
        h, w = self.size
        if h < 16 or w < 16:
            raise ValueError(f"size must be at least 16x16, got {h}x{w}")
        if min(self.counts().values()) < 0:
            raise ValueError("image counts must be >= 0")
        if self.crop < 0 or self.n_layers < 1 or self.max_coc_px <= 0:
            raise ValueError("crop >= 0, n_layers >= 1 and max_coc_px > 0 required")
        bad = set(self.sources) - set(SOURCES)
        if bad:
            raise ValueError(f"unknown sources {sorted(bad)}; expected a subset of {SOURCES}")


def stem(i: int) -> str:
    return f"syn{i:05d}"


def image_paths(root: Path, split: str, s: str) -> dict[str, Path]:
    return {
        "c": root / f"{split}_c" / "source" / f"{s}.png",
        "l": root / f"{split}_l" / "source" / f"{s}_L.png",
        "r": root / f"{split}_r" / "source" / f"{s}_R.png",
        "target": root / f"{split}_c" / "target" / f"{s}.png",
        "disp": root / f"{split}_disp" / f"{s}.npy",
        "coc": root / f"{split}_coc" / f"{s}.npy",
    }


def save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def draw_sample(cfg: SynthConfig, split: str, index: int):
    """The scene and camera of one image (cheap; deterministic in (seed, split, index))."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    H, W = cfg.size
    scene = make_scene(
        rng, (H + 2 * cfg.crop, W + 2 * cfg.crop), sources=cfg.sources, layouts=cfg.layouts, depth_range=cfg.depth_range
    )
    q = rng.uniform(*cfg.focus_quantile)
    focus = float(np.quantile(scene.depth, q))
    if scene.depth.max() < 1.01 * scene.depth.min():  # a single plane: focus off it, or it is never blurred
        # at least ~35 % off the plane, so that a fronto-parallel scene is never (almost) in focus
        focus = focus * float(np.exp(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.7)))
    focus = max(focus, cfg.focal_mm * 1e-3 * 1.5)
    f_number = float(rng.choice(list(cfg.f_numbers)))
    coc = signed_coc_px(scene.depth, focus, cfg.focal_mm, f_number, pixel_pitch_um=cfg.pixel_pitch_um)
    coc = np.clip(coc, -cfg.max_coc_px, cfg.max_coc_px)
    info = {
        "source": scene.source,
        "layout": scene.layout,
        "focus_m": round(focus, 6),
        "f_number": f_number,
        "coc_min": round(float(coc.min()), 4),
        "coc_max": round(float(coc.max()), 4),
    }
    return scene, coc, info


def render_sample(cfg: SynthConfig, scene, coc: np.ndarray) -> dict[str, np.ndarray]:
    """Render one scene; returns the cropped ``c, l, r, target`` images (sRGB, float) and GT maps."""
    img = srgb_to_linear(scene.image) if cfg.linear_light else scene.image
    views = render_dp(img, coc, n_layers=cfg.n_layers, kind=cfg.kernel, dtype=np.float32)
    enc = linear_to_srgb if cfg.linear_light else (lambda x: np.clip(x, 0, 1))
    b = cfg.crop
    H, W = cfg.size
    cut = (slice(b, b + H), slice(b, b + W))
    return {
        "c": enc(views.center[cut]),
        "l": enc(views.left[cut]),
        "r": enc(views.right[cut]),
        "target": scene.image[cut],
        "disp": disparity_map(coc[cut], kind=cfg.kernel),
        "coc": coc[cut].astype(np.float32),
    }


def _remove_old(root: Path, meta: dict) -> None:
    for split, items in meta.get("images", {}).items():
        for item in items:
            for p in image_paths(root, split, item["stem"]).values():
                p.unlink(missing_ok=True)


def write_synth_dataset(root, cfg: SynthConfig, progress: bool = True) -> dict:
    """Render and write the data set; returns the meta dictionary (also written to ``synth_meta.json``)."""
    from tqdm import tqdm

    cfg.validate()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta_path = root / META
    digest = cfg.digest()
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{meta_path}: unreadable synth meta ({e}); delete it to start over") from e
        if old.get("config_hash") != digest:
            _remove_old(root, old)
    meta = {
        "dataset": "synth",
        "layout": "dpdd",
        "config": cfg.to_json(),
        "config_hash": digest,
        "renderer_version": RENDERER_VERSION,
        "complete": False,
        "images": {s: [{"stem": stem(i)} for i in range(n)] for s, n in cfg.counts().items()},
    }
    write_json_atomic(meta_path, meta)  # lists every stem first, so an interrupted run can be cleaned up

    jobs = [(s, i) for s, n in cfg.counts().items() for i in range(n)]
    rendered = 0
    for split, i in tqdm(jobs, desc=f"synth DP -> {root}", disable=not progress, unit="img"):
        scene, coc, info = draw_sample(cfg, split, i)
        paths = image_paths(root, split, stem(i))
        if not all(p.exists() for p in paths.values()):
            out = render_sample(cfg, scene, coc)
            for key in ("c", "l", "r", "target"):
                write_png16(paths[key], out[key])
            save_npy_atomic(paths["coc"], out["coc"])
            save_npy_atomic(paths["disp"], out["disp"])  # last: its presence marks the image complete
            rendered += 1
        meta["images"][split][i].update(info)
    meta["complete"] = True
    meta["rendered_this_run"] = rendered
    write_json_atomic(meta_path, meta)
    return meta
