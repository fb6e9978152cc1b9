"""The blurry input as a method: its prediction is the centre view, or (L+R)/2 where a set has none, bit for bit."""

import cv2
import numpy as np

from k3dn.data.manifest import read_manifest, write_manifest
from k3dn.infer import load_model, predict_manifest
from k3dn.registry import list_models


def test_identity_predicts_the_centre_view(tmp_path, probe):
    assert "identity" in list_models()
    manifest = probe.write_dp_set(tmp_path / "d", 2, 12, 20, split="test")
    [p, _] = predict_manifest(load_model(name="identity"), manifest, tmp_path / "p", device="cpu", progress=False)
    got = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(got, cv2.imread(str(tmp_path / "d" / "test000_center.png"), cv2.IMREAD_UNCHANGED))


def test_without_a_centre_view_identity_is_the_dual_pixel_sum(tmp_path, probe):
    manifest = probe.write_dp_set(tmp_path / "d", 1, 12, 20, split="test", channels=1)
    df = read_manifest(manifest)
    df["center"] = ""  # as the Pixel set and DDD-syn: no combined view
    bare = write_manifest(df.to_dict("records"), tmp_path / "bare.csv")
    [p] = predict_manifest(load_model(name="identity"), bare, tmp_path / "p", device="cpu", progress=False)
    left = cv2.imread(str(df.loc[0, "left"]), cv2.IMREAD_UNCHANGED).astype(np.float64)
    right = cv2.imread(str(df.loc[0, "right"]), cv2.IMREAD_UNCHANGED).astype(np.float64)
    got = cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.float64)
    assert got.shape == left.shape and np.abs(got - (left + right) / 2).max() <= 1
