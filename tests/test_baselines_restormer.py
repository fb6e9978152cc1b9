"""Restormer port: the channel LayerNorm, the view conventions (cat(L, R); residual on C for the single model).

Loading the published containers, parameter counts and the forward contract are checked for every model by
tests/test_models_contract.py, the outputs against the official network by tests/test_golden_restormer.py.
"""

import pytest
import torch
import torch.nn.functional as F

import baselines.restormer as rst
from tests.conftest import make_batch


def test_channel_layernorm_is_layernorm_over_channels():
    norm = rst.ChannelLayerNorm(16)
    with torch.no_grad():
        norm.body.weight.normal_()
        norm.body.bias.normal_()
    x = torch.randn(2, 16, 5, 7) * 3 + 1
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (16,), norm.body.weight, norm.body.bias, eps=1e-5).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), ref, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def dual():
    return rst.restormer_dual().eval()


def test_dual_feeds_cat_left_right(dual):
    """Channels 0:3 of the patch embedding see L, 3:6 see R: silencing 3:6 makes R irrelevant, not L."""
    b = make_batch(16, 16, seed=100)
    with torch.no_grad():
        saved = dual.patch_embed.proj.weight[:, 3:].clone()
        dual.patch_embed.proj.weight[:, 3:] = 0
        try:
            base = dual(b)["output"]
            new_r = dual({**b, "right": torch.rand(1, 3, 16, 16)})["output"]
            new_l = dual({**b, "left": torch.rand(1, 3, 16, 16)})["output"]
        finally:
            dual.patch_embed.proj.weight[:, 3:] = saved
        swapped = dual({**b, "left": b["right"], "right": b["left"]})["output"]
        assert not torch.allclose(dual(b)["output"], swapped)
    torch.testing.assert_close(new_r, base)
    assert not torch.allclose(new_l, base)


def test_dual_is_direct_prediction_not_residual(dual):
    """With a zero output conv the DP model predicts 0 everywhere; it never adds an input view back."""
    b = make_batch(16, 24, seed=100)
    with torch.no_grad():
        saved = dual.output.weight.clone()
        dual.output.weight.zero_()
        try:
            out = dual(b)["output"]
        finally:
            dual.output.weight.copy_(saved)
    assert torch.count_nonzero(out) == 0


def test_single_is_residual_on_center_and_ignores_dp_views():
    model = rst.restormer_single().eval()
    with torch.no_grad():
        model.output.weight.zero_()
    b = make_batch(16, 16, seed=100)
    with torch.no_grad():
        out = model(b)["output"]
        other = model({**b, "left": b["right"], "right": b["left"]})["output"]
        torch.testing.assert_close(out, b["center"], atol=0, rtol=0)
        torch.testing.assert_close(other, out, atol=0, rtol=0)
        # training mode is unclamped (the official L1 sees the raw output), eval clamps to [0, 1]
        hot = {**b, "center": b["center"] + 1.0}
        assert model(hot)["output"].max() == 1.0
        model.train()
        torch.testing.assert_close(model(hot)["output"], hot["center"], atol=0, rtol=0)
