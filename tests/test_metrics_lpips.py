"""k3dn.lpips: the in-repo AlexNet-LPIPS v0.1 (random weights here; real weights are files, never downloaded)."""

import functools
import math

import numpy as np
import pytest
import torch

from k3dn.checkpoint import CheckpointMismatch, load_state_dict_strict
from k3dn.lpips import CHANNELS, LPIPS, LPIPSScorer, find_weights, load_lpips, state_dict_from_files


def _det_state(model=None):
    """Deterministic weights (used to compute the reference values below with lpips 0.1.4 itself)."""
    return dict(_det_state_cached())


@functools.lru_cache(maxsize=1)
def _det_state_cached():
    g = torch.Generator().manual_seed(1234)
    sd = {}
    for k, v in sorted(LPIPS().state_dict().items()):
        w = torch.randn(v.shape, generator=g, dtype=torch.float32)
        sd[k] = w.abs() * 0.1 if k.startswith("lin") else w * (2.0 / max(1, v[0].numel())) ** 0.5
    return sd


def test_key_names_are_torchvision_and_lpips():
    keys = set(LPIPS().state_dict())
    want = {f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")}
    want |= {f"lin{i}.model.1.weight" for i in range(5)}
    assert keys == want
    shapes = {k: tuple(v.shape) for k, v in LPIPS().state_dict().items()}
    assert shapes["features.0.weight"] == (64, 3, 11, 11)
    assert [shapes[f"lin{i}.model.1.weight"] for i in range(5)] == [(1, c, 1, 1) for c in CHANNELS]


def test_strict_load_from_documented_names():
    m = LPIPS()
    sd = _det_state(m)
    load_state_dict_strict(m, sd)
    assert torch.equal(m.lin2.model[1].weight, sd["lin2.model.1.weight"])
    bad = dict(sd)
    bad["lins.0.model.1.weight"] = bad.pop("lin0.model.1.weight")
    with pytest.raises(CheckpointMismatch, match="lin0.model.1.weight"):
        load_state_dict_strict(LPIPS(), bad)


def test_identical_zero_symmetric_positive():
    m = LPIPS()
    m.load_state_dict(_det_state(m))
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 2, 3, 48, 64, generator=g)
    assert torch.all(m(x, x) == 0)
    d_xy, d_yx = m(x, y), m(y, x)
    assert torch.all(d_xy > 0)
    assert torch.allclose(d_xy, d_yx, rtol=1e-6, atol=0)
    # random initialisation (no weights loaded) has the same properties
    r = LPIPS()
    assert torch.all(r(x, x) == 0) and torch.all(r(x, y) > 0)


def test_matches_lpips_package_reference_values():
    # Values computed once with lpips 0.1.4's own LPIPS(net='alex', version='0.1') code (torchvision stubbed
    # by this module's AlexNet features) carrying the same _det_state weights: bit-identical on torch 2.13 CPU.
    m = LPIPS()
    m.load_state_dict(_det_state(m))
    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 64, 80, generator=g)
    y = torch.rand(2, 3, 64, 80, generator=g)
    y2 = (x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert m(x, y).tolist() == pytest.approx([0.09755837172269821, 0.1021839827299118], rel=1e-5)
    assert m(x, y2).tolist() == pytest.approx([0.0010445603402331471, 0.0011508980533108115], rel=1e-5)


def test_single_channel_replicated():
    m = LPIPS()
    x, y = torch.rand(2, 1, 1, 40, 40)
    assert torch.allclose(m(x, y), m(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)))


def test_missing_weights_nan_with_reason(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("K3DN_LPIPS_ALEXNET", str(tmp_path / "nope" / "alexnet-owt-7be5be79.pth"))
    monkeypatch.setenv("K3DN_LPIPS_LIN", str(tmp_path / "nope" / "alex.pth"))
    with pytest.raises(RuntimeError, match="not found"):
        find_weights()
    s = LPIPSScorer()
    assert not s.available and "not found" in s.reason and "alexnet-owt-7be5be79.pth" in s.reason
    a = np.zeros((16, 16, 3))
    assert math.isnan(s(a, a))
    assert torch.isnan(s(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16))).all()
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "LPIPS not computed" in caplog.text
    LPIPSScorer()
    assert len(caplog.records) == 1  # the same reason is logged once


def test_weights_from_files_checksum_and_filter(tmp_path):
    m = LPIPS()
    sd = _det_state(m)
    bb = {k: v for k, v in sd.items() if k.startswith("features.")}
    bb["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision's file also holds the classifier: ignored
    ln = {k: v for k, v in sd.items() if k.startswith("lin")}
    torch.save(bb, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(ln, tmp_path / "alex.pth")
    with pytest.raises(RuntimeError, match="sha256"):
        load_lpips(backbone=tmp_path / "alexnet-owt-7be5be79.pth", lin=tmp_path / "alex.pth")
    s = LPIPSScorer(backbone=tmp_path / "alexnet-owt-7be5be79.pth", lin=tmp_path / "alex.pth")
    assert math.isnan(s(np.zeros((8, 8, 3)), np.ones((8, 8, 3)))) and "sha256" in s.reason
    merged = state_dict_from_files(tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.pth", verify=False)
    load_state_dict_strict(LPIPS(), merged)
    scorer = LPIPSScorer(
        model=load_lpips(backbone=tmp_path / "alexnet-owt-7be5be79.pth", lin=tmp_path / "alex.pth", verify=False)
    )
    x = np.random.default_rng(0).random((32, 40, 3))
    assert scorer.available and scorer(x, x) == 0 and scorer(x, 1 - x) > 0
