"""The embedded synthetic DP data set: DPDD layout, 16-bit files, determinism, resumption, scenes."""

import json

import cv2
import numpy as np
import pytest

from k3dn.io import read_image
from k3dn.synth.dataset import META, SynthConfig, write_synth_dataset
from k3dn.synth.scenes import MOTORCYCLE, load_source, make_scene

CFG = dict(size=(48, 64), count_train=3, count_val=1, count_test=2, crop=8, max_coc_px=6, n_layers=8, seed=3)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    meta = write_synth_dataset(root, SynthConfig(**CFG), progress=False)
    return root, meta


def test_tree_matches_dpdd_layout_16bit(tree):
    root, meta = tree
    assert meta["complete"] and meta["rendered_this_run"] == 6
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        src = sorted(p.name for p in (root / f"{split}_c" / "source").iterdir())
        trg = sorted(p.name for p in (root / f"{split}_c" / "target").iterdir())
        left = sorted(p.name for p in (root / f"{split}_l" / "source").iterdir())
        right = sorted(p.name for p in (root / f"{split}_r" / "source").iterdir())
        assert len(src) == len(trg) == len(left) == len(right) == n
        assert [s[:-4] for s in src] == [t[:-4] for t in trg]
        assert left == [s.replace(".png", "_L.png") for s in src]
        assert right == [s.replace(".png", "_R.png") for s in src]
        for name in src:
            raw = cv2.imread(str(root / f"{split}_c" / "source" / name), cv2.IMREAD_UNCHANGED)
            assert raw.dtype == np.uint16 and raw.shape == (48, 64, 3)
            d = np.load(root / f"{split}_disp" / name.replace(".png", ".npy"))
            c = np.load(root / f"{split}_coc" / name.replace(".png", ".npy"))
            assert d.dtype == np.float32 and d.shape == (48, 64) and np.abs(c).max() <= 6 + 1e-6
            np.testing.assert_array_equal(np.sign(d[np.abs(c) > 1.5]), np.sign(c[np.abs(c) > 1.5]))
    saved = json.loads((root / META).read_text())
    assert saved["config"]["seed"] == 3 and saved["images"]["train"][0]["stem"] == "syn00000"


def test_views_consistent_with_physics(tree):
    root, _ = tree
    for s in sorted((root / "train_c" / "source").iterdir()):
        c = read_image(s)
        t = read_image(root / "train_c" / "target" / s.name)
        coc = np.load(root / "train_coc" / s.name.replace(".png", ".npy"))
        sharp = np.abs(coc) < 1e-9
        if sharp.all():
            np.testing.assert_allclose(c, t, atol=2 / 65535)
        # mean intensity is preserved by the blur up to edge/clip effects
        assert abs(c.mean() - t.mean()) < 0.03


def test_resume_skips_and_is_deterministic(tree, tmp_path):
    root, meta = tree
    again = write_synth_dataset(root, SynthConfig(**CFG), progress=False)
    assert again["rendered_this_run"] == 0
    victim = root / "train_l" / "source" / "syn00001_L.png"
    before = victim.read_bytes()
    victim.unlink()
    again = write_synth_dataset(root, SynthConfig(**CFG), progress=False)
    assert again["rendered_this_run"] == 1 and victim.read_bytes() == before
    other = write_synth_dataset(tmp_path / "b", SynthConfig(**CFG), progress=False)
    for name in ("train_c/source/syn00002.png", "test_r/source/syn00001_R.png", "val_disp/syn00000.npy"):
        assert (root / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert other["images"] == again["images"]


def test_config_change_rerenders_and_removes_stale(tmp_path):
    write_synth_dataset(tmp_path, SynthConfig(**CFG), progress=False)
    old = (tmp_path / "train_c/source/syn00000.png").read_bytes()
    cfg = SynthConfig(**{**CFG, "seed": 4, "count_train": 1})
    meta = write_synth_dataset(tmp_path, cfg, progress=False)
    assert meta["rendered_this_run"] == 4
    assert not (tmp_path / "train_c/source/syn00002.png").exists()
    assert (tmp_path / "train_c/source/syn00000.png").read_bytes() != old


def test_scenes_deterministic_and_motorcycle_depth():
    a = make_scene(np.random.default_rng(7), (40, 56))
    b = make_scene(np.random.default_rng(7), (40, 56))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.depth, b.depth)
    img, disp = load_source(MOTORCYCLE)
    assert np.all(np.isfinite(disp)) and disp.min() > 0 and disp.shape == img.shape[:2]
    m = make_scene(np.random.default_rng(1), (64, 64), source=MOTORCYCLE)
    assert m.layout == "measured" and np.all(m.depth > 0) and m.depth.max() > 1.5 * m.depth.min()
    lay = make_scene(np.random.default_rng(2), (64, 64), source="astronaut", layout="layers")
    assert len(np.unique(lay.depth)) > 10
    with pytest.raises(ValueError):
        make_scene(np.random.default_rng(0), (64, 64), source="nope")
