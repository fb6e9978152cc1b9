"""Adapters on trees written by the suite's own generators (k3dn.synth), at stand-in sizes: the contract
between the generators' output layout and the manifests, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from k3dn.data.check import check_dataset
from k3dn.data.layouts import write_manifests
from k3dn.data.manifest import read_manifest
from k3dn.io import read_image


def test_synth_renderer_tree(tmp_path):
    ds = pytest.importorskip("k3dn.synth.dataset")
    cfg = ds.SynthConfig(size=(32, 48), count_train=2, count_val=0, count_test=2, crop=4, n_layers=4)
    ds.write_synth_dataset(tmp_path / "synth", cfg, progress=False)
    paths = write_manifests("synth", tmp_path / "synth", tmp_path / "m", progress=False)
    assert sorted(p.name for p in paths) == ["synth_test.csv", "synth_train.csv"]
    m = read_manifest(tmp_path / "m" / "synth_test.csv")
    assert list(m["id"]) == ["syn00000", "syn00001"]
    assert [Path(p).stem for p in m["target"]] == list(m["id"])
    assert np.load(m["disparity"][0]).shape == (32, 48)
    assert read_image(m["left"][0]).shape == (32, 48, 3)
    rep = check_dataset("synth", tmp_path / "synth", progress=False)
    assert rep.ok, rep.format()
    assert rep.columns["target"].bit_depths == {16: 4}


def test_ddd_syn_generator_tree(tmp_path):
    dd = pytest.importorskip("k3dn.synth.ddd_syn")
    nyu = dd.write_standin_nyu(tmp_path / "nyu.mat", n=2, size=(60, 80))
    dd.generate_ddd_syn(
        nyu,
        tmp_path / "ddd",
        train_images=range(1, 2),
        test_images=range(1, 2),
        test1_images=range(2, 3),
        out_size=(24, 32),
        n_layers=4,
        progress=False,
    )
    write_manifests("ddd_syn", tmp_path / "ddd", tmp_path / "m", processed=tmp_path / "proc", progress=False)
    test = read_manifest(tmp_path / "m" / "ddd_syn_test.csv")
    train = read_manifest(tmp_path / "m" / "ddd_syn_train.csv")
    assert list(test["id"]) == ["5001", "5002_h"] and len(train) == 5  # 5 camera settings x 1 image
    assert set(test["protocol"]) == {"8bit"} and set(test["center"]) == {""}
    d = np.load(test["disparity"][1])
    ref = dd.read_pfm(tmp_path / "ddd" / "testing1" / "disp" / "5002_dm.pfm")
    np.testing.assert_array_equal(d, ref)
    assert d.shape == (24, 32)


def test_rdpd_generator_tree(tmp_path):
    rd = pytest.importorskip("k3dn.synth.rdpd")
    syn = rd.write_standin_synthia(tmp_path / "SYNTHIA-SF", n_seq=3, n_frames=1, size=(24, 32))
    rd.generate_rdpd(syn, tmp_path / "rdpd", sets=range(1), n_layers=8, progress=False)
    write_manifests("rdpd", tmp_path / "rdpd", tmp_path / "m", progress=False)
    val = read_manifest(tmp_path / "m" / "rdpd_val.csv")
    test = read_manifest(tmp_path / "m" / "rdpd_test.csv")
    train = read_manifest(tmp_path / "m" / "rdpd_train.csv")
    assert list(val["id"]) == list(test["id"]) == ["seq_003_000000"]  # the 3rd sequence, in val and test
    assert list(train["id"]) == ["seq_001_000000", "seq_002_000000"]
    assert set(train["protocol"]) == {"8bit"}
