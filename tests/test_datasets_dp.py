"""DP-aware datasets: the flip/swap physics, crop validation, 16-bit reading, resumable sampling."""

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from k3dn.data.datasets import (
    DatasetError,
    DPEvalDataset,
    DPTrainDataset,
    InfiniteDistributedSampler,
    hflip_dp,
    vflip_dp,
)
from k3dn.data.manifest import write_manifest


def _half_aperture_psfs(r=3):
    """Left/right half-disc PSFs of a defocused point: mirror images of each other (DP image formation)."""
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    disc = (x * x + y * y <= r * r).astype(np.float64)
    left = disc * (x <= 0)
    left /= left.sum()
    return left, left[:, ::-1].copy()


def _render(scene, psf):
    return np.stack([ndimage.convolve(scene[..., c], psf, mode="wrap") for c in range(scene.shape[-1])], -1)


def _write(folder, name, img):
    p = folder / f"{name}.png"
    cv2.imwrite(str(p), np.rint(np.clip(img, 0, 1) * 65535).astype(np.uint16)[..., ::-1])
    return str(p)


@pytest.fixture
def dp_scene(tmp_path, rng):
    scene = ndimage.gaussian_filter(rng.random((24, 32, 3)), (1, 1, 0))
    kl, kr = _half_aperture_psfs()
    views = {"left": _render(scene, kl), "right": _render(scene, kr), "target": scene}
    views["center"] = 0.5 * (views["left"] + views["right"])
    row = {"id": "s0", "dataset": "synth", "split": "train", "protocol": "16bit", "channels": 3}
    row.update({k: _write(tmp_path, k, v) for k, v in views.items()})
    return scene, (kl, kr), write_manifest([row], tmp_path / "m.csv")


def test_hflip_swaps_views_like_rendering_the_mirrored_scene(dp_scene, tmp_path):
    scene, (kl, kr), manifest = dp_scene
    ds = DPTrainDataset(manifest, crop=(24, 32), hflip=1.0, vflip=0.0)
    s = ds[(0, 123)]
    mirrored = scene[:, ::-1]
    want_left, want_right = _render(mirrored, kl), _render(mirrored, kr)  # what the camera would record
    tol = 1.5 / 65535
    np.testing.assert_allclose(s["left"].permute(1, 2, 0).numpy(), want_left, atol=tol)
    np.testing.assert_allclose(s["right"].permute(1, 2, 0).numpy(), want_right, atol=tol)
    np.testing.assert_allclose(s["target"].permute(1, 2, 0).numpy(), mirrored, atol=tol)
    # Without the swap the pair would be the opposite-disparity one: clearly different.
    assert np.abs(s["left"].permute(1, 2, 0).numpy() - want_right).max() > 100 * tol


def test_disparity_sign_is_preserved_by_the_flip():
    """A pair shifted by +d / -d stays a +d / -d pair after the augmentation (cross-correlation peak)."""
    rng = np.random.default_rng(1)
    scene = ndimage.gaussian_filter(rng.random((16, 64)), 1.0)[..., None]
    d = 3
    s = {"left": np.roll(scene, d, axis=1), "right": np.roll(scene, -d, axis=1), "center": scene, "target": scene}

    def shift_left_vs_right(sample):
        a, b = sample["left"][..., 0], sample["right"][..., 0]
        corr = [np.sum(a * np.roll(b, k, axis=1)) for k in range(-8, 9)]
        return int(np.argmax(corr)) - 8

    assert shift_left_vs_right(s) == 2 * d
    assert shift_left_vs_right(hflip_dp(s)) == 2 * d
    naive = {k: v[:, ::-1] for k, v in s.items()}
    assert shift_left_vs_right(naive) == -2 * d
    assert shift_left_vs_right(vflip_dp(s)) == 2 * d


def test_vflip_keeps_left_left(dp_scene):
    scene, _, manifest = dp_scene
    plain = DPTrainDataset(manifest, crop=(24, 32), hflip=0.0, vflip=0.0)[(0, 5)]
    flipped = DPTrainDataset(manifest, crop=(24, 32), hflip=0.0, vflip=1.0)[(0, 5)]
    for k in ("left", "right", "center", "target"):
        assert torch.equal(flipped[k], plain[k].flip(-2))


def test_crop_must_fit_the_model_and_the_image(dp_scene):
    _, _, manifest = dp_scene
    with pytest.raises(DatasetError, match="multiple of the model's size_multiple 8x8"):
        DPTrainDataset(manifest, crop=(20, 32), size_multiple=(8, 8))
    ds = DPTrainDataset(manifest, crop=(32, 32), size_multiple=(8, 8))
    with pytest.raises(DatasetError, match="smaller than the training crop"):
        ds[(0, 1)]


def test_crops_are_aligned_across_views_and_seeded(dp_scene):
    _, _, manifest = dp_scene
    ds = DPTrainDataset(manifest, crop=(8, 8), hflip=0.0, vflip=0.0)
    full = DPEvalDataset(manifest)[0]
    a, b = ds[(0, 7)], ds[(0, 7)]
    assert all(torch.equal(a[k], b[k]) for k in ("left", "right", "target"))
    # locate the crop in the full target and check every view comes from the same window
    t = full["target"]
    hits = [(y, x) for y in range(17) for x in range(25) if torch.equal(t[:, y : y + 8, x : x + 8], a["target"])]
    assert len(hits) == 1
    y, x = hits[0]
    for k in ("left", "right", "center"):
        assert torch.equal(full[k][:, y : y + 8, x : x + 8], a[k])


def test_16bit_precision_survives(tmp_path):
    img = np.full((8, 8, 3), 12345, np.uint16)
    for k in ("left", "right", "target"):
        cv2.imwrite(str(tmp_path / f"{k}.png"), img)
    m = write_manifest(
        [
            {
                "id": "a",
                "dataset": "synth",
                "split": "val",
                "protocol": "16bit",
                "channels": 3,
                **{k: str(tmp_path / f"{k}.png") for k in ("left", "right", "target")},
            }
        ],
        tmp_path / "m.csv",
    )
    s = DPEvalDataset(m, crop=(4, 4))[0]
    assert s["left"].shape == (3, 4, 4) and s["left"].dtype == torch.float32
    assert s["left"][0, 0, 0].item() == pytest.approx(12345 / 65535, abs=1e-7)
    assert torch.equal(s["center"], s["left"])  # no centre view: (L + R) / 2


def test_sampler_partitions_ranks_and_resumes():
    n = 10
    take = lambda s, k: [next(it) for it in [iter(s)] for _ in range(k)]  # noqa: E731
    r0 = take(InfiniteDistributedSampler(n, seed=3, rank=0, world_size=2), 5)
    r1 = take(InfiniteDistributedSampler(n, seed=3, rank=1, world_size=2), 5)
    assert sorted(i for i, _ in r0 + r1) == list(range(n))  # one epoch split across ranks
    full = take(InfiniteDistributedSampler(n, seed=3), 23)
    assert take(InfiniteDistributedSampler(n, seed=3, start=11), 12) == full[11:]
    assert sorted(i for i, _ in full[10:20]) == list(range(n))  # the second epoch is a permutation too
    assert [i for i, _ in full[:10]] != [i for i, _ in full[10:20]]
