"""DDD-syn and RDPD regeneration on generated stand-ins; PFM round trip; SYNTHIA depth coding; barrel."""

import cv2
import numpy as np
import pytest

from k3dn.synth import ddd_syn, rdpd


def test_pfm_round_trip_and_layout(tmp_path, rng):
    a = rng.normal(size=(5, 7)).astype(np.float32)
    p = ddd_syn.write_pfm(tmp_path / "x.pfm", a)
    np.testing.assert_array_equal(ddd_syn.read_pfm(p), a)
    raw = p.read_bytes()
    assert raw.startswith(b"Pf\n7 5\n-1\n") and len(raw) == len(b"Pf\n7 5\n-1\n") + 4 * 35
    first_stored = np.frombuffer(raw[len(b"Pf\n7 5\n-1\n") :][:28], "<f4")
    np.testing.assert_array_equal(first_stored, a[-1])  # bottom row first, little endian
    rgb = rng.normal(size=(3, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(ddd_syn.read_pfm(ddd_syn.write_pfm(tmp_path / "y.pfm", rgb)), rgb)
    (tmp_path / "bad.pfm").write_bytes(b"Pf\n7 5\n-1\n" + b"\0" * 10)
    with pytest.raises(ValueError, match="bad.pfm"):
        ddd_syn.read_pfm(tmp_path / "bad.pfm")


def test_ddd_syn_standin(tmp_path):
    mat = ddd_syn.write_standin_nyu(tmp_path / "nyu.mat", n=3, size=(56, 72))
    rgb, depth = ddd_syn.read_nyu(mat, 2)
    assert rgb.shape == (56, 72, 3) and rgb.dtype == np.uint8 and depth.shape == (56, 72)
    res = ddd_syn.generate_ddd_syn(
        mat,
        tmp_path / "out",
        train_images=range(1, 2),
        test_images=range(2, 4),
        test1_images=range(2, 3),
        out_size=(32, 48),
        n_layers=8,
        progress=False,
    )
    assert res == {"written": 8, "samples": 8, "test_lines": 3}
    out = tmp_path / "out"
    for fid in ("0001", "1001", "4001"):
        for name in (f"dp/{fid}_l.png", f"dp/{fid}_r.png", f"gt/{fid}_m.png"):
            im = cv2.imread(str(out / "training" / name), cv2.IMREAD_UNCHANGED)
            assert im.dtype == np.uint8 and im.shape == (32, 48, 3)
        assert ddd_syn.read_pfm(out / "training" / "disp" / f"{fid}_dm.pfm").shape == (32, 48)
    lines = (out / "nyu_test.txt").read_text().splitlines(keepends=True)
    assert lines[0] == (
        "5002 /testing/dp/5002_l.png /testing/dp/5002_r.png /testing/gt/5002_m.png "
        "/testing/disp/5002_dl.pfm /testing/disp/5002_dm.pfm \n"
    )
    assert lines[2].startswith("5002_h /testing1/dp/5002_l.png ")
    # the official plan: 5000 training samples and the 500-line test list
    jobs = ddd_syn.plan()
    assert sum(g == "training" for g, *_ in jobs) == 5000
    test_ids = [fid for g, fid, *_ in jobs if g != "training"]
    assert len(test_ids) == 500 and test_ids[0] == "6001" and test_ids[349] == "6350" and test_ids[-1] == "6150"
    again = ddd_syn.generate_ddd_syn(
        mat,
        out,
        train_images=range(1, 2),
        test_images=range(2, 4),
        test1_images=range(2, 3),
        out_size=(32, 48),
        n_layers=8,
        progress=False,
    )
    assert again["written"] == 0
    with pytest.raises(ValueError, match="nyu.mat"):
        ddd_syn.generate_ddd_syn(mat, out, train_images=range(1, 10), progress=False)


def test_ddd_syn_disparity_sign_follows_depth():
    rgb = (np.random.default_rng(0).uniform(0, 1, (60, 80, 3)) * 255).astype(np.uint8)
    st = ddd_syn.TEST_SETTING  # focus 7 m after dividing depths by 0.2: 1.4 m in NYU metres
    depth = np.where(np.arange(80)[None, :] < 40, 0.8, 6.0) * np.ones((60, 1))
    _, _, gt, disp = ddd_syn.simulate(rgb, depth, st, out_size=(60, 80), n_layers=4)
    assert disp[:, :30].max() < 0 < disp[:, 50:].min()


def test_synthia_depth_coding_and_layer_table():
    d = np.array([[0.0, 1.5, 37.25, 249.0, 400.0]])
    back = rdpd.decode_depth(rdpd.encode_depth(d))
    np.testing.assert_allclose(back[:, :4], d[:, :4], atol=1000 / (256**3 - 1))
    assert back[0, 4] == 250.0
    px = np.array([[[10, 20, 3]]], np.uint8)  # R + 256 G + 65536 B
    assert rdpd.decode_depth(px)[0, 0] == pytest.approx(1000 * (10 + 256 * 20 + 65536 * 3) / (256**3 - 1))
    # set 0: scale = (4*5/(5-4)) * (4/6) / 5 = 2.6667 px
    assert rdpd.coc_scale(4, 6, 5) == pytest.approx(8 / 3)
    table = rdpd.layer_table(4, 6, 5)
    radii = [t[0] for t in table]
    assert radii[0] == -40 and radii == sorted(radii) and radii[-1] == round(8 / 3 * (1 - 5 / 249.9375))
    assert table[-1][2] == pytest.approx(250.1) and all(a[2] == b[1] for a, b in zip(table, table[1:]))


def test_barrel_identity_and_centre():
    img = np.random.default_rng(1).uniform(size=(21, 31, 3)).astype(np.float32)
    np.testing.assert_allclose(rdpd.barrel_distort(img, 0, 0, 0), img, atol=1e-6)
    out = rdpd.barrel_distort(img, 0.0, 0.0, 0.2)  # samples further out: corners leave the source -> black
    np.testing.assert_allclose(out[10, 15], img[10, 15], atol=1e-6)
    assert out[0, 0].sum() == 0


def test_rdpd_standin(tmp_path):
    src = rdpd.write_standin_synthia(tmp_path / "SYNTHIA-SF", n_seq=6, n_frames=1, size=(24, 40))
    res = rdpd.generate_rdpd(src, tmp_path / "out", sets=[0, 2], n_layers=200, progress=False)
    assert res["written"] == 12
    out = tmp_path / "out"
    for s, seqs in (
        (
            "train",
            {
                "seq_001",
                "seq_002",
                "seq_004",
                "seq_005",
                "seq_006",
                "seq_013",
                "seq_014",
                "seq_016",
                "seq_017",
                "seq_018",
            },
        ),
        ("val", {"seq_003", "seq_015"}),
        ("test", {"seq_003", "seq_015"}),
    ):
        for v in ("c", "l", "r"):
            assert {p.name for p in (out / f"{s}_{v}" / "source").iterdir()} == seqs
        assert {p.name for p in (out / f"{s}_c" / "target").iterdir()} == seqs
    a = (out / "val_l/source/seq_003/000000.png").read_bytes()
    assert a == (out / "test_l/source/seq_003/000000.png").read_bytes()
    im = cv2.imread(str(out / "train_c/source/seq_001/000000.png"), cv2.IMREAD_UNCHANGED)
    assert im.dtype == np.uint8 and im.shape == (24, 40, 3)
    tgt = cv2.imread(str(out / "train_c/target/seq_001/000000.png"), cv2.IMREAD_UNCHANGED)
    src_rgb = cv2.imread(str(src / "SEQ1/RGBLeft/000000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(tgt, src_rgb)  # target = the sharp SYNTHIA frame
    assert np.abs(im.astype(int) - tgt.astype(int)).max() > 10  # and the source is blurred
    assert rdpd.generate_rdpd(src, out, sets=[0, 2], n_layers=200, progress=False)["written"] == 0
