"""Integration: the real K3DN Tiny through both training stages, checkpoint, predict (its paper resize mode)."""

import json

import cv2
import numpy as np
import torch
import yaml
from safetensors.torch import load_file

from k3dn.infer import load_model, predict_manifest
from k3dn.registry import list_models
from k3dn.train.config import load_config
from k3dn.train.loop import train
from tests.conftest import load_probe


def test_k3dn_tiny_two_stages_and_predict(tmp_path):
    assert "k3dn_tiny" in list_models()
    P = load_probe()
    # window (4, 4) shrinks the size multiple to 32x32 so a CPU test can use 32x32 crops (batch 2: the
    # disparity branch's BatchNorm3d needs more than one value per channel at 1/32 resolution).
    train_m = P.write_dp_set(tmp_path / "train", 2, 40, 40)
    test_m = P.write_dp_set(tmp_path / "test", 1, 40, 50, split="test")  # not a multiple: resized and back
    cfg = {
        "model": {"name": "k3dn_tiny", "overrides": {"window": [4, 4]}},
        "stages": [1, 1],
        "data": {"train": str(train_m), "crop": [32, 32], "batch_size": 2, "workers": 0},
        "engine": {"device": "cpu", "progress": False, "ckpt_every": 1},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    s = train(load_config(tmp_path / "c.yaml"), tmp_path / "run")
    assert s["iteration"] == 2
    after1 = load_file(str(tmp_path / "run/state/ckpt_00000001/weights.safetensors"))
    final = load_file(str(tmp_path / "run/model.safetensors"))
    srp = [k for k in final if k.startswith("srp.")]
    # Stage 2 "freezes all model weights" but SRP's: parameters and buffers alike (BatchNorm running statistics of
    # the disparity estimator included) are bit-identical after it.
    rest = [k for k in final if not k.startswith("srp.")]
    assert srp and [k for k in rest if not torch.equal(final[k], after1[k])] == []
    assert any(not torch.equal(final[k], after1[k]) for k in srp)
    spec = json.loads((tmp_path / "run/model.json").read_text())
    assert spec["overrides"] == {"window": [4, 4]} and spec["trained_stages"] == [1, 2]
    assert spec["precision"] == "float32"
    model = load_model(run=tmp_path / "run")
    assert model.srp_active
    assert model.size_mode == "resize"
    [out] = predict_manifest(model, test_m, tmp_path / "pred", device="cpu", progress=False)
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.shape == (40, 50, 3)


def test_a_one_stage_run_does_not_use_its_untrained_srp(tmp_path):
    """Stage 2 given no iterations: the SRP blocks keep their initial weights, so inference must bypass them."""
    P = load_probe()
    train_m = P.write_dp_set(tmp_path / "train", 2, 32, 32)
    cfg = {
        "model": {"name": "k3dn_tiny", "overrides": {"window": [4, 4]}},
        "stages": [1, 0],
        "data": {"train": str(train_m), "crop": [32, 32], "batch_size": 2, "workers": 0},
        "engine": {"device": "cpu", "progress": False},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp_path / "c.yaml"), tmp_path / "run")
    assert json.loads((tmp_path / "run/model.json").read_text())["trained_stages"] == [1]
    model = load_model(run=tmp_path / "run")
    assert not model.srp_active
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        y = model({"left": x, "right": x})["output"]
        model.srp_active = True
        assert not torch.equal(model({"left": x, "right": x})["output"], y)  # SRP would have changed it
