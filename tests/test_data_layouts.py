"""Layout adapters on tiny generated trees in each official layout, awkward parts included."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from k3dn.data import layouts
from k3dn.data.check import check_dataset
from k3dn.data.layouts import LayoutError, load_pixel_kernels, write_manifests
from k3dn.data.manifest import read_manifest
from k3dn.io import read_image


def _png(path: Path, h=6, w=8, c=3, dtype=np.uint16, value=None, rng=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if value is None:
        rng = rng or np.random.default_rng(abs(hash(path.name)) % 2**32)
        hi = 65535 if dtype == np.uint16 else 255
        img = rng.integers(0, hi, size=(h, w, c) if c > 1 else (h, w), dtype=dtype)
    else:
        img = np.asarray(value, dtype=dtype)
    assert cv2.imwrite(str(path), img)
    return path


# --------------------------------------------------------------------------------------------- DPDD
# Real test stems (source, target) from the official pairing lists: indices 0, 1 (outdoor), 8 (indoor).
DPDD_TEST = [("1P0A0917", "1P0A0916"), ("1P0A0933", "1P0A0932"), ("1P0A1046", "1P0A1045")]
DPDD_TRAIN = [("1P0A0100", "1P0A0101"), ("1P0A0200", "1P0A0198")]


def _dpdd_tree(root: Path, lr_suffix=True, portrait_id="1P0A0933"):
    for split, pairs in (("test", DPDD_TEST), ("train", DPDD_TRAIN)):
        for s, t in pairs:
            h, w = (8, 6) if s == portrait_id else (6, 8)
            _png(root / f"{split}_c/source/{s}.png", h, w)
            _png(root / f"{split}_c/target/{t}.png", h, w)
            _png(root / f"{split}_l/source/{s}{'_L' if lr_suffix else ''}.png", h, w)
            _png(root / f"{split}_r/source/{s}{'_R' if lr_suffix else ''}.png", h, w)
    return root


def test_dpdd_official_layout(tmp_path):
    root = _dpdd_tree(tmp_path / "dd_dp_dataset_canon" / "dd_dp_dataset_png")
    (root / "test_c/source/.DS_Store").write_bytes(b"\0")
    (root / "test_c/source/README.txt").write_text("stray")
    _png(root / "test_l/source/1P0A9999_L.png")  # a view without a source
    out = tmp_path / "manifests"
    paths = write_manifests("dpdd", tmp_path / "dd_dp_dataset_canon", out, expected_counts=None)
    assert sorted(p.name for p in paths) == ["dpdd_test.csv", "dpdd_train.csv"]
    m = read_manifest(out / "dpdd_test.csv")
    assert list(m["id"]) == ["1P0A0917", "1P0A0933", "1P0A1046"]
    assert [Path(p).name for p in m["target"]] == ["1P0A0916.png", "1P0A0932.png", "1P0A1045.png"]
    assert [Path(p).name for p in m["left"]] == ["1P0A0917_L.png", "1P0A0933_L.png", "1P0A1046_L.png"]
    assert list(m["label"]) == ["outdoor", "outdoor", "indoor"]
    assert set(m["label_source"]) == {"unverified-list"}
    assert set(m["protocol"]) == {"16bit"} and set(m["channels"]) == {3}
    # the portrait scene reads back at its own orientation
    assert read_image(m["center"][1]).shape == (8, 6, 3)
    tr = read_manifest(out / "dpdd_train.csv")
    assert list(tr["target"].map(lambda p: Path(p).stem)) == ["1P0A0101", "1P0A0198"]
    assert set(tr["label"]) == {""}
    sc = layouts.scan("dpdd", tmp_path, expected_counts=None)
    warned = "\n".join(sc.warnings)
    assert "README.txt" in warned and ".DS_Store" in warned and "1P0A9999_L.png" in warned


def test_dpdd_plain_view_names_and_8bit_protocol(tmp_path):
    root = _dpdd_tree(tmp_path, lr_suffix=False)
    paths = write_manifests("dpdd", root, tmp_path / "m", protocol="8bit", expected_counts=None)
    assert sorted(p.name for p in paths) == ["dpdd_test_8bit.csv", "dpdd_train_8bit.csv"]
    m = read_manifest(tmp_path / "m" / "dpdd_test_8bit.csv")
    assert set(m["protocol"]) == {"8bit"} and Path(m["left"][0]).name == "1P0A0917.png"


def test_dpdd_official_labels_override_list(tmp_path):
    root = _dpdd_tree(tmp_path)
    np.save(root / "indoor_labels.npy", np.array([1, 3]))  # 1-based positions in the sorted list
    np.save(root / "outdoor_labels.npy", np.array([2]))
    write_manifests("dpdd", root, tmp_path / "m", expected_counts=None)
    m = read_manifest(tmp_path / "m" / "dpdd_test.csv")
    assert list(m["label"]) == ["indoor", "outdoor", "indoor"] and set(m["label_source"]) == {"official"}
    np.save(root / "outdoor_labels.npy", np.array([3]))  # position 2 unlabelled, 3 twice
    with pytest.raises(LayoutError, match="exactly once"):
        write_manifests("dpdd", root, tmp_path / "m", expected_counts=None)


def test_dpdd_missing_target_is_named(tmp_path):
    root = _dpdd_tree(tmp_path)
    (root / "test_c/target/1P0A0932.png").unlink()
    with pytest.raises(LayoutError, match=r"3 source images .* but 2 targets.*missing target for 1P0A0933"):
        layouts.scan("dpdd", root, expected_counts=None)


def test_dpdd_counts_capture_numbers_and_sizes(tmp_path):
    root = _dpdd_tree(tmp_path)
    with pytest.raises(LayoutError, match="train_c.source: 2 images, expected 350"):
        layouts.scan("dpdd", root)
    (root / "test_c/target/1P0A0932.png").rename(root / "test_c/target/1P0A0940.png")
    with pytest.raises(LayoutError, match="differ by 7"):
        layouts.scan("dpdd", root, expected_counts=None)
    (root / "test_c/target/1P0A0940.png").rename(root / "test_c/target/1P0A0932.png")
    _png(root / "test_r/source/1P0A0917_R.png", 6, 10)
    with pytest.raises(LayoutError, match=r"1P0A0917.*differ in size.*right 1P0A0917_R.png 10x6"):
        layouts.scan("dpdd", root, expected_counts=None)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_dpdd_corrupt_png_is_named(tmp_path, damage):
    root = _dpdd_tree(tmp_path)
    bad = root / "test_l/source/1P0A0933_L.png"
    data = bad.read_bytes()
    bad.write_bytes(b"not a png at all" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(LayoutError, match="1P0A0933_L.png: (not a PNG|truncated PNG)"):
        write_manifests("dpdd", root, tmp_path / "m", expected_counts=None)


def test_dpdd_restormer_layout(tmp_path):
    base = tmp_path / "Datasets"
    for _split, pairs, d in (
        ("train", DPDD_TRAIN, base / "Downloads/DPDD/train"),
        ("test", DPDD_TEST, base / "test/DPDD"),
    ):
        for s, t in pairs:
            for sub, name in (("inputC", s), ("inputL", s + "_L"), ("inputR", s + "_R"), ("target", t)):
                _png(d / sub / f"{name}.png")
    np.save(base / "test/DPDD/indoor_labels.npy", np.array([3]))
    np.save(base / "test/DPDD/outdoor_labels.npy", np.array([1, 2]))
    write_manifests("dpdd", tmp_path, tmp_path / "m", expected_counts=None)
    m = read_manifest(tmp_path / "m" / "dpdd_test.csv")
    assert list(m["label"]) == ["outdoor", "outdoor", "indoor"] and set(m["label_source"]) == {"official"}
    assert Path(m["target"][2]).name == "1P0A1045.png"
    assert len(read_manifest(tmp_path / "m" / "dpdd_train.csv")) == 2


# --------------------------------------------------------------------------------------------- synth
def test_synth_layout_with_disparity(tmp_path):
    for s in ("0001", "0002"):
        for sub in ("test_c/source", "test_c/target", "test_l/source", "test_r/source"):
            _png(tmp_path / sub / f"{s}.png")
        (tmp_path / "test_disp").mkdir(exist_ok=True)
        np.save(tmp_path / "test_disp" / f"{s}.npy", np.zeros((6, 8), np.float32))
    write_manifests("synth", tmp_path, tmp_path / "m")
    m = read_manifest(tmp_path / "m" / "synth_test.csv")
    assert list(m["id"]) == ["0001", "0002"] and Path(m["disparity"][1]).name == "0002.npy"
    (tmp_path / "test_disp" / "0002.npy").unlink()
    with pytest.raises(LayoutError, match="0002.npy: disparity ground truth of 0002.png missing"):
        write_manifests("synth", tmp_path, tmp_path / "m")


# --------------------------------------------------------------------------------------------- Pixel
H, W, CROP = 110, 140, (20, 40)  # crop offset y=45, x=50 (the real set: 1512x2016 -> 252, 336)
PY, PX = 55, 70  # probe pixel: its 101x101 window lies inside the frame


def _pixel_tree(root: Path, n=2, wr_vary=False):
    base = root / "DP_data_pixel_4"
    x = np.arange(W)[None, :].repeat(H, 0)
    y = np.arange(H)[:, None].repeat(W, 1)
    wl = 1024 + 8000 + (x - PX) ** 2  # black level + quadratic ramp
    wr = 1024 + 4000 + (30 * (y - PY) if wr_vary else 0) + 0 * x
    _png(base / "calibration/white_sheet_left.png", c=1, value=wl)
    _png(base / "calibration/white_sheet_right.png", c=1, value=wr)
    for side in ("left", "right"):
        np.save(base / f"calibration/blur_kernels_{side}.npy", np.full((48, 5, 5), 1 / 25, np.float32))
    for i in range(1, n + 1):
        left = np.full((H, W), 1024 + 4096, np.uint16)
        right = np.full((H, W), 1024 + 2048, np.uint16)
        left[PY, PX + 1] = 1000  # below the black level -> 0
        _png(base / f"{i:03d}_left.png", c=1, value=left)
        _png(base / f"{i:03d}_right.png", c=1, value=right)
        _png(base / f"gt_all_in_focus_im/{i:03d}_gt.png", *CROP, c=1)
        _png(base / f"gt_defocus_map/{i:03d}_gt.png", *CROP, c=1, dtype=np.uint8)
    return base


def test_pixel_corrected_values_by_hand(tmp_path):
    _pixel_tree(tmp_path)
    (tmp_path / "DP_data_pixel_4/notes.md").write_text("stray")
    paths = write_manifests(
        "pixel",
        tmp_path,
        tmp_path / "m",
        processed=tmp_path / "proc",
        expected_count=None,
        pixel_crop=CROP,
        progress=False,
    )
    assert [p.name for p in paths] == ["pixel_test.csv"]
    m = read_manifest(tmp_path / "m" / "pixel_test.csv")
    assert list(m["id"]) == ["001", "002"] and set(m["channels"]) == {1}
    left = read_image(m["left"][0], channels=1)[..., 0]
    right = read_image(m["right"][0], channels=1)[..., 0]
    assert left.shape == CROP
    cy, cx = PY - 45, PX - 50
    # left: (5120 - 1024) / (2^14 - 1); the raw 1000 pixel clips to 0
    assert left[cy, cx] == pytest.approx(4096 / 16383, abs=0.5 / 65535)
    assert left[cy, cx + 1] == 0.0
    # right: (3072 - 1024) / 16383 x ratio; ratio = 101-box mean of (8000 + (x-70)^2) / 4000 at x=70
    #        = (8000 + 50*51/3) / 4000 = 8850 / 4000 (the window's mean of (x-70)^2 over -50..50 is 850)
    assert right[cy, cx] == pytest.approx(2048 / 16383 * 8850 / 4000, abs=0.5 / 65535)
    center = read_image(m["center"][0], channels=1)[..., 0]
    assert center[cy, cx] == pytest.approx((4096 + 2048 * 8850 / 4000) / 16383 / 2, abs=1 / 65535)
    assert Path(m["target"][0]).name == "001_gt.png" and Path(m["disparity"][0]).parent.name == "gt_defocus_map"
    npz = np.load(tmp_path / "proc" / "blur_kernels.npz")
    assert npz["left"].shape == (48, 5, 5) and set(npz.files) == {"left", "right"}


def test_pixel_vignetting_is_box_mean_of_the_ratio(tmp_path):
    base = _pixel_tree(tmp_path, n=1, wr_vary=True)
    ratio = layouts.pixel_vignetting_ratio(
        base / "calibration/white_sheet_left.png", base / "calibration/white_sheet_right.png"
    )
    x = np.arange(PX - 50, PX + 51)[None, :]
    y = np.arange(PY - 50, PY + 51)[:, None]
    per_pixel = (8000 + (x - PX) ** 2) / (4000 + 30 * (y - PY))
    assert ratio[PY, PX] == pytest.approx(per_pixel.mean(), rel=1e-12)
    ratio_of_means = (8000 + 850) / 4000
    assert abs(ratio[PY, PX] - ratio_of_means) > 1e-3  # a different (wrong) definition would be caught


def test_pixel_count_kernels_and_missing_gt(tmp_path):
    base = _pixel_tree(tmp_path)
    with pytest.raises(LayoutError, match="2 scenes .* expected 17"):
        layouts.scan("pixel", tmp_path)
    k = load_pixel_kernels(tmp_path)
    assert k["left"].shape == (48, 5, 5) and k["grid"] == (6, 8) and k["patch"] == 168
    np.save(base / "calibration/blur_kernels_right.npy", np.zeros((47, 5, 5), np.float32))
    with pytest.raises(LayoutError, match=r"blur_kernels_right.npy: kernel array of shape \(47, 5, 5\)"):
        load_pixel_kernels(tmp_path)
    (base / "gt_all_in_focus_im/002_gt.png").unlink()
    with pytest.raises(LayoutError, match="002_gt.png: all-in-focus ground truth of scene 002 missing"):
        layouts.scan("pixel", tmp_path, expected_count=None)


def test_pixel_rejects_rgb_raw(tmp_path):
    base = _pixel_tree(tmp_path)
    _png(base / "002_right.png", H, W, c=3)
    with pytest.raises(LayoutError, match="002_right.png: 3-channel 16-bit, expected single-channel"):
        layouts.scan("pixel", tmp_path, expected_count=None)


# --------------------------------------------------------------------------------------------- DPD-disp
def _jpg(path: Path, h=6, w=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))


def test_dpd_disp_layout(tmp_path):
    base = tmp_path / "ICCP2020_DP_dataset"
    for i in ("010", "040"):
        for k in "BLR":
            _jpg(base / f"{i}_{k}.jpg")
        _png(base / f"{i}_D.TIF", c=1, dtype=np.uint8).rename(base / f"{i}_D.TIF")
    (base / "readme.txt").write_text("x")
    write_manifests("dpd_disp", tmp_path, tmp_path / "m")
    m = read_manifest(tmp_path / "m" / "dpd_disp_test.csv")
    assert list(m["id"]) == ["010", "040"] and set(m["target"]) == {""}
    assert Path(m["depth"][0]).name == "010_D.TIF" and Path(m["center"][1]).name == "040_B.jpg"
    (base / "040_R.jpg").unlink()
    with pytest.raises(LayoutError, match="040_R.*right view of 040 missing"):
        layouts.scan("dpd_disp", tmp_path)


# --------------------------------------------------------------------------------------------- DDD-syn
def _write_pfm(path: Path, a: np.ndarray):
    # PFM: header, little-endian float32 (negative scale), rows stored bottom-up.
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = a.shape
    path.write_bytes(f"Pf\n{w} {h}\n-1.0\n".encode() + np.flipud(a).astype("<f4").tobytes())


def _ddd_tree(root: Path):
    lines = []
    for folder, ids, suf in (("testing", ["6001", "6002"], ""), ("testing1", ["6001"], "_h")):
        for i in ids:
            _png(root / folder / "dp" / f"{i}_l.png", 6, 8, dtype=np.uint8)
            _png(root / folder / "dp" / f"{i}_r.png", 6, 8, dtype=np.uint8)
            _png(root / folder / "gt" / f"{i}_m.png", 6, 8, dtype=np.uint8)
            _write_pfm(root / folder / "disp" / f"{i}_dm.pfm", np.arange(48, dtype=np.float32).reshape(6, 8))
            lines.append(
                f"{i}{suf} /{folder}/dp/{i}_l.png /{folder}/dp/{i}_r.png /{folder}/gt/{i}_m.png "
                f"/{folder}/disp/{i}_dl.pfm /{folder}/disp/{i}_dm.pfm"
            )
    (root / "nyu_test.txt").write_text("\n".join(lines) + "\n")


def test_ddd_syn_scan_from_official_list(tmp_path):
    _ddd_tree(tmp_path)
    sc = layouts.scan("ddd_syn", tmp_path)
    rows = sc.splits["test"]
    assert [r["id"] for r in rows] == ["6001", "6002", "6001_h"]
    assert set(r["protocol"] for r in rows) == {"8bit"} and rows[2]["disparity"].endswith("testing1/disp/6001_dm.pfm")
    (tmp_path / "nyu_test.txt").unlink()  # folder fallback gives the same samples
    assert [r["id"] for r in layouts.scan("ddd_syn", tmp_path).splits["test"]] == ["6001", "6002", "6001_h"]
    (tmp_path / "testing/gt/6002_m.png").unlink()
    with pytest.raises(LayoutError, match="6002_m.png: target of DDD-syn sample 6002 missing"):
        layouts.scan("ddd_syn", tmp_path)


def test_ddd_syn_manifest_converts_pfm(tmp_path):
    pytest.importorskip("k3dn.synth.ddd_syn", reason="PFM reader of the synth area not there yet")
    _ddd_tree(tmp_path)
    write_manifests("ddd_syn", tmp_path, tmp_path / "m", processed=tmp_path / "proc", progress=False)
    m = read_manifest(tmp_path / "m" / "ddd_syn_test.csv")
    d = np.load(m["disparity"][0])
    np.testing.assert_array_equal(d, np.arange(48, dtype=np.float32).reshape(6, 8))  # top row first


# --------------------------------------------------------------------------------------------- RDPD
def test_rdpd_layout(tmp_path):
    for split in ("train", "val"):
        for seq in ("seq_001", "seq_003"):
            for f in ("0000000", "0000001"):
                for sub in ("c/source", "c/target", "l/source", "r/source"):
                    a, b = sub.split("/")
                    _png(tmp_path / f"{split}_{a}" / b / seq / f"{f}.png", dtype=np.uint8)
    write_manifests("rdpd", tmp_path, tmp_path / "m")
    m = read_manifest(tmp_path / "m" / "rdpd_val.csv")
    assert list(m["id"]) == ["seq_001_0000000", "seq_001_0000001", "seq_003_0000000", "seq_003_0000001"]
    assert set(m["protocol"]) == {"8bit"}
    (tmp_path / "train_l/source/seq_003/0000001.png").unlink()
    with pytest.raises(LayoutError, match=r"seq_003/0000001.png: left view of .* missing"):
        layouts.scan("rdpd", tmp_path)


# --------------------------------------------------------------------------------------------- check
def test_check_reports_counts_and_corrupt_data(tmp_path):
    root = _dpdd_tree(tmp_path / "d")
    rep = check_dataset("dpdd", root, expected_counts=None, progress=False)
    assert rep.ok, rep.format()
    assert rep.counts == {"train": 2, "test": 3}
    assert rep.columns["left"].bit_depths == {16: 5} and rep.columns["left"].channels == {3: 5}
    assert rep.columns["center"].sizes[(6, 8)] == 1  # the portrait scene
    # valid header and IEND, corrupt compressed data: only a full decode finds it
    bad = root / "test_c/target/1P0A0916.png"
    data = bytearray(bad.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4 : idat + 20] = b"\x00" * 16
    bad.write_bytes(bytes(data))
    rep = check_dataset("dpdd", root, expected_counts=None, progress=False)
    assert not rep.ok and any("1P0A0916.png" in p for p in rep.problems)
    from k3dn.cli import main

    assert main(["data", "check", "dpdd", "--root", str(root), "--any-count"]) == 1
    assert main(["data", "check", "dpdd", "--root", str(tmp_path / "nowhere")]) == 1


def test_check_verifies_registry_checksums(tmp_path):
    base = _pixel_tree(tmp_path)
    rep = check_dataset("pixel", tmp_path, expected_count=None, progress=False)
    # the fixture's 001_left.png is not the authors' file: its published sha256 must not match
    assert rep.checksums["MISMATCH"] >= 1
    assert any(str(base / "001_left.png") in p and "sha256" in p for p in rep.problems)


def test_cli_manifest(tmp_path, capsys):
    from k3dn.cli import main

    root = _dpdd_tree(tmp_path / "d")
    assert main(["data", "manifest", "dpdd", "--root", str(root), "--out", str(tmp_path / "m")]) == 1
    assert "expected 350" in capsys.readouterr().err
    assert main(["data", "manifest", "dpdd", "--root", str(root), "--out", str(tmp_path / "m"), "--any-count"]) == 0
    assert len(read_manifest(tmp_path / "m" / "dpdd_test.csv")) == 3
