"""Torch datasets over a manifest: random DP crops for training, full images (or centre crops) for validation.

Every sample is the suite's batch format: ``{"left", "right", "center", "target"}`` float32 ``(3, H, W)``
tensors in [0, 1] (16-bit files keep their 16 bits: images are read through :func:`k3dn.io.read_image`
with the manifest's ``protocol``), plus ``"id"``. Single-channel rows (``channels == 1``) are replicated to
RGB, as the models expect.

Augmentation respects dual-pixel physics:

* horizontal flip: the left view is the image through the left half of the aperture, and mirroring the
  scene mirrors both half-aperture PSFs, so the mirrored left view is what the *right* half-aperture would
  have seen of the mirrored scene. A flipped sample therefore swaps the views:
  ``left' = flip(right), right' = flip(left)``. Without the swap the sign of the disparity (front/behind
  the focal plane) would invert while the blur stays, teaching the network a non-physical pair.
* vertical flip: the aperture split is horizontal, so a vertical flip keeps left as left.
* no 90 degree rotations: they would turn the horizontal DP disparity into a vertical one, which a
  horizontally split sensor never produces.

Randomness (which crop, which flips) comes from a per-sample seed handed in by the sampler
(:class:`InfiniteDistributedSampler`), so a run is reproducible and resumable independently of the
DataLoader's worker count and iterator state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from k3dn.data.manifest import read_manifest

VIEWS = ("left", "right", "center", "target")


class DatasetError(ValueError):
    pass


def _read(path: str, protocol: str) -> np.ndarray:
    from k3dn.io import read_image

    return read_image(path, protocol=protocol, channels=3)


def _load_row(row, manifest_path) -> dict[str, np.ndarray]:
    """All views of one manifest row as float32 (H, W, 3); a missing centre view is (L + R) / 2."""
    imgs = {}
    for v in ("left", "right", "target"):
        if not row[v]:
            raise DatasetError(f"{manifest_path}: row {row['id']!r} has no {v} image (training needs L, R and target)")
        imgs[v] = _read(row[v], row["protocol"])
    # The centre (combined) DP image is the sum of the two half-aperture images; where a data set does not
    # ship it, their mean is the physical stand-in.
    imgs["center"] = _read(row["center"], row["protocol"]) if row["center"] else 0.5 * (imgs["left"] + imgs["right"])
    shapes = {v: a.shape for v, a in imgs.items()}
    if len(set(shapes.values())) != 1:
        raise DatasetError(f"{manifest_path}: row {row['id']!r} has views of different sizes {shapes}")
    return imgs


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def hflip_dp(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mirror a DP sample left-right; the views swap (see the module docstring)."""
    out = {k: v[:, ::-1] for k, v in sample.items()}
    out["left"], out["right"] = out["right"], out["left"]
    return out


def vflip_dp(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v[::-1] for k, v in sample.items()}


def check_crop(
    crop: Sequence[int], size_multiple: Sequence[int], where="crop", min_size: Sequence[int] = (1, 1)
) -> tuple[int, int]:
    h, w = (int(c) for c in crop)
    mh, mw = (int(m) for m in size_multiple)
    if h <= 0 or w <= 0 or h % mh or w % mw:
        raise DatasetError(
            f"{where} {h}x{w} (HxW) is not a positive multiple of the model's size_multiple "
            f"{mh}x{mw}; choose e.g. {max(1, round(h / mh)) * mh}x{max(1, round(w / mw)) * mw}"
        )
    if h < min_size[0] or w < min_size[1]:
        fix = fit_crop(crop, size_multiple, min_size)
        raise DatasetError(
            f"{where} {h}x{w} (HxW) is below the model's minimum input {min_size[0]}x{min_size[1]}; "
            f"choose e.g. {fix[0]}x{fix[1]}"
        )
    return h, w


def fit_crop(crop: Sequence[int], size_multiple: Sequence[int], min_size: Sequence[int] = (1, 1)) -> tuple[int, int]:
    """``crop``, at least ``min_size``, rounded up to the next multiple of ``size_multiple`` in each dimension."""
    return tuple(-(-max(int(c), int(lo)) // int(m)) * int(m) for c, m, lo in zip(crop, size_multiple, min_size))


class DPTrainDataset(Dataset):
    """Random ``crop`` (H, W) patches with DP-aware flips from the rows of ``manifest``.

    Index with ``(row, seed)`` (from :class:`InfiniteDistributedSampler`) for reproducible augmentation; a
    plain int draws from numpy's global generator. ``cache=True`` keeps decoded images in memory (small
    sets such as the synthetic one; full DPDD does not fit per worker).
    """

    def __init__(
        self,
        manifest,
        crop: Sequence[int],
        size_multiple: Sequence[int] = (1, 1),
        hflip: float = 0.5,
        vflip: float = 0.5,
        cache: bool = False,
        crop_fit: str = "exact",
        min_size: Sequence[int] = (1, 1),
    ):
        self.manifest_path = str(manifest)
        self.rows = read_manifest(manifest).to_dict("records")
        if crop_fit == "up":
            crop = fit_crop(crop, size_multiple, min_size)
        self.crop = check_crop(
            crop, size_multiple, where=f"training crop (data.crop, for {self.manifest_path})", min_size=min_size
        )
        self.hflip, self.vflip, self.cache = float(hflip), float(vflip), cache
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _images(self, i: int) -> dict[str, np.ndarray]:
        if i in self._cache:
            return self._cache[i]
        imgs = _load_row(self.rows[i], self.manifest_path)
        if self.cache:
            self._cache[i] = imgs
        return imgs

    def __getitem__(self, key):
        i, seed = key if isinstance(key, tuple) else (key, None)
        rng = np.random.default_rng(seed) if seed is not None else np.random
        imgs = self._images(i)
        h, w = imgs["target"].shape[:2]
        ch, cw = self.crop
        if h < ch or w < cw:
            raise DatasetError(
                f"{self.manifest_path}: row {self.rows[i]['id']!r} is {h}x{w}, smaller than the training crop {ch}x{cw}"
            )
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        s = {k: v[y : y + ch, x : x + cw] for k, v in imgs.items()}
        if rng.random() < self.hflip:
            s = hflip_dp(s)
        if rng.random() < self.vflip:
            s = vflip_dp(s)
        out = {k: _to_tensor(v) for k, v in s.items()}
        out["id"] = self.rows[i]["id"]
        return out


class DPEvalDataset(Dataset):
    """Whole images (``crop=None``) or centre crops of the rows of ``manifest``, first ``max_images`` rows.

    Sizes need not fit the model: validation and prediction fit them with :func:`k3dn.infer.fit_batch`.
    """

    def __init__(self, manifest, crop: Sequence[int] | None = None, max_images: int | None = None):
        self.manifest_path = str(manifest)
        rows = read_manifest(manifest).to_dict("records")
        self.rows = rows[:max_images] if max_images else rows
        self.crop = None if crop is None else tuple(int(c) for c in crop)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        imgs = _load_row(self.rows[i], self.manifest_path)
        if self.crop is not None:
            h, w = imgs["target"].shape[:2]
            ch, cw = min(self.crop[0], h), min(self.crop[1], w)
            y, x = (h - ch) // 2, (w - cw) // 2
            imgs = {k: v[y : y + ch, x : x + cw] for k, v in imgs.items()}
        out = {k: _to_tensor(v) for k, v in imgs.items()}
        out["id"] = self.rows[i]["id"]
        return out


class InfiniteDistributedSampler(Sampler):
    """An endless, resumable version of :class:`torch.utils.data.DistributedSampler`'s partitioning.

    Epoch ``e`` is a permutation of the rows drawn from ``seed + e`` (as DistributedSampler with
    ``set_epoch(e)``), padded by repetition to a multiple of ``world_size``; rank ``r`` takes every
    ``world_size``-th entry from ``r``. Each yielded item is ``(row, sample_seed)``, the seed derived from
    ``(seed, epoch, position)`` so augmentation does not depend on worker processes. ``start`` skips that
    many of this rank's samples (resume at iteration ``k`` with batch size ``b``: ``start = k * b``).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0):
        if n <= 0:
            raise ValueError("sampler over an empty data set")
        self.n, self.seed, self.rank, self.world, self.start = n, seed, rank, world_size, start
        self.per_rank = math.ceil(n / world_size)

    def __len__(self) -> int:  # endless; DataLoader only needs a length for progress bars
        return 2**62

    def _epoch(self, e: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + e)
        perm = torch.randperm(self.n, generator=g).tolist()
        total = self.per_rank * self.world
        perm = (perm * math.ceil(total / self.n))[:total]
        return perm[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        e, pos = divmod(self.start, self.per_rank)
        while True:
            idx = self._epoch(e)
            for p in range(pos, self.per_rank):
                ss = np.random.SeedSequence([self.seed, e, self.rank, p])
                yield idx[p], int(ss.generate_state(1, np.uint64)[0] >> 1)
            e, pos = e + 1, 0


def collate(samples: list[dict]) -> dict:
    out = {k: torch.stack([s[k] for s in samples]) for k in VIEWS}
    out["id"] = [s["id"] for s in samples]
    return out


def worker_count(requested: int | None) -> int:
    if requested is not None:
        return int(requested)
    return max(0, min(8, (os.cpu_count() or 1) - 1))
