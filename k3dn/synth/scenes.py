"""Scenes (sharp sRGB image + metric depth) for the embedded synthetic DP data set.

Colour comes from scikit-image's bundled sample images (no download). Depth:

* ``stereo_motorcycle`` ships a real disparity map (Middlebury 2014); depth ∝ 1 / disparity
  (``depth = z_near * max_disp / disp``). Its invalid pixels (inf / non-positive) take the value of the
  nearest valid pixel.
* every other source gets procedural depth: ``plane`` (fronto-parallel), ``slant`` (a tilted plane — inverse
  depth affine in x, y, which is what a plane projects to), or ``layers`` (a slanted background plus one to
  three near discs / ellipses / rectangles whose texture is pasted from another sample image, so colour and
  depth edges coincide as at real occlusion boundaries).

Crops are random in position and scale (between "just covers the crop" and native resolution), with a
random horizontal flip. Everything is drawn from the ``numpy.random.Generator`` passed in, so a seed fixes
the scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

SOURCES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
)
LAYOUTS = ("plane", "slant", "layers")
MOTORCYCLE = "stereo_motorcycle"


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) float64 sRGB in [0, 1]
    depth: np.ndarray  # (H, W) float64 metres, > 0
    source: str
    layout: str


def _cv2():
    import cv2

    return cv2


@cache
def load_source(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A sample image as float64 RGB in [0, 1], and its disparity map (motorcycle only)."""
    import skimage.data as skd

    if name not in SOURCES:
        raise ValueError(f"unknown scene source {name!r}; expected one of {SOURCES}")
    if name == MOTORCYCLE:
        left, _, disp = skd.stereo_motorcycle()
        return left.astype(np.float64) / 255.0, _fill_invalid(disp.astype(np.float64))
    img = getattr(skd, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3].astype(np.float64) / 255.0, None


def _fill_invalid(disp: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    bad = ~np.isfinite(disp) | (disp <= 0)
    if bad.all():
        raise ValueError("disparity map has no valid pixel")
    if bad.any():
        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        disp = disp[tuple(idx)]
    return disp


def _resize(a: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    cv2 = _cv2()
    h, w = hw
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if (h < a.shape[0] and w < a.shape[1]) else cv2.INTER_CUBIC
    out = cv2.resize(a, (w, h), interpolation=interp)
    return np.clip(out, 0.0, 1.0) if not nearest and a.ndim == 3 else out


def _random_crop(rng: np.random.Generator, img: np.ndarray, size: tuple[int, int], extra=None):
    H, W = size
    h, w = img.shape[:2]
    s_min = max(H / h, W / w)
    s_max = max(s_min, 1.0)
    s = float(np.exp(rng.uniform(np.log(s_min), np.log(s_max)))) if s_max > s_min else s_min
    nh, nw = max(H, int(round(h * s))), max(W, int(round(w * s)))
    y = int(rng.integers(0, nh - H + 1))
    x = int(rng.integers(0, nw - W + 1))
    flip = bool(rng.integers(0, 2))
    out = _resize(img, (nh, nw))[y : y + H, x : x + W]
    ext = None
    if extra is not None:
        ext = _resize(extra, (nh, nw), nearest=True)[y : y + H, x : x + W]
    if flip:
        out = out[:, ::-1]
        ext = ext[:, ::-1] if ext is not None else None
    return np.ascontiguousarray(out), (np.ascontiguousarray(ext) if ext is not None else None), s


def _slant_inverse_depth(rng, H, W, z_near, z_far):
    """Inverse depth of a random tilted plane spanning [1/z_far, 1/z_near] across the frame."""
    yy, xx = np.mgrid[0:H, 0:W]
    theta = rng.uniform(0, 2 * np.pi)
    t = np.cos(theta) * xx / max(W - 1, 1) + np.sin(theta) * yy / max(H - 1, 1)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    return 1.0 / z_far + t * (1.0 / z_near - 1.0 / z_far)


def make_scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    *,
    source: str | None = None,
    layout: str | None = None,
    sources=SOURCES,
    layouts=LAYOUTS,
    depth_range=(0.8, 20.0),
) -> Scene:
    """Draw a scene of ``size`` (H, W). Depths lie within ``depth_range`` metres (near, far)."""
    H, W = int(size[0]), int(size[1])
    if H < 8 or W < 8:
        raise ValueError(f"scene size must be at least 8x8, got {H}x{W}")
    z_lo, z_hi = depth_range
    if not 0 < z_lo < z_hi:
        raise ValueError(f"depth_range must satisfy 0 < near < far, got {depth_range}")
    source = source or str(rng.choice(list(sources)))
    img, disp = load_source(source)
    if source == MOTORCYCLE:
        image, d, _ = _random_crop(rng, img, (H, W), extra=disp)
        z_near = rng.uniform(z_lo, min(z_hi, 3 * z_lo))
        depth = z_near * float(disp.max()) / d
        return Scene(image, np.clip(depth, z_lo, z_hi), source, "measured")

    image, _, _ = _random_crop(rng, img, (H, W))
    layout = layout or str(rng.choice(list(layouts)))
    z_near = float(np.exp(rng.uniform(np.log(z_lo), np.log(z_lo * 3))))
    z_far = float(np.exp(rng.uniform(np.log(max(z_near * 1.5, z_hi / 4)), np.log(z_hi))))
    if layout == "plane":
        depth = np.full((H, W), float(np.exp(rng.uniform(np.log(z_lo), np.log(z_hi)))))
    elif layout == "slant":
        depth = 1.0 / _slant_inverse_depth(rng, H, W, z_near, z_far)
    elif layout == "layers":
        mid = np.sqrt(z_near * z_far)
        depth = 1.0 / _slant_inverse_depth(rng, H, W, mid, z_far)
        yy, xx = np.mgrid[0:H, 0:W]
        for _ in range(int(rng.integers(1, 4))):
            other = str(rng.choice([s for s in sources if s != MOTORCYCLE] or [source]))
            tex, _, _ = _random_crop(rng, load_source(other)[0], (H, W))
            cy, cx = rng.uniform(0.15, 0.85) * H, rng.uniform(0.15, 0.85) * W
            ry, rx = rng.uniform(0.1, 0.35) * H, rng.uniform(0.1, 0.35) * W
            if rng.random() < 0.6:
                m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
            else:
                m = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
            z = float(np.exp(rng.uniform(np.log(z_near), np.log(mid))))
            closer = m & (z < depth)
            depth[closer] = z
            image[closer] = tex[closer]
    else:
        raise ValueError(f"unknown depth layout {layout!r}; expected one of {LAYOUTS}")
    return Scene(image, depth, source, layout)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
