"""DiNAT-IR port: the view conventions (cat(L, R), direct prediction, clamping), padding to the size multiple, the
neighbourhood windows, the attention's padding and the test-time pooling boxes.

Loading the published container and the forward contract are checked for every model by
tests/test_models_contract.py, the outputs against the official network and NATTEN by tests/test_golden_dinat_ir.py.
"""

import pytest
import torch
import torch.nn.functional as F

import baselines.dinat_ir as dinat
from baselines.common import pad_to_multiple
from tests.conftest import make_batch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return dinat.dinat_ir_dual().eval()


def test_feeds_cat_left_right(model):
    """Channels 0:3 of the patch embedding see L, 3:6 see R: silencing 3:6 makes R irrelevant, not L."""
    b = make_batch(16, 16, seed=100)
    with torch.no_grad():
        saved = model.patch_embed.proj.weight[:, 3:].clone()
        model.patch_embed.proj.weight[:, 3:] = 0
        try:
            base = model(b)["output"]
            new_r = model({**b, "right": torch.rand(1, 3, 16, 16)})["output"]
            new_l = model({**b, "left": torch.rand(1, 3, 16, 16)})["output"]
        finally:
            model.patch_embed.proj.weight[:, 3:] = saved
    torch.testing.assert_close(new_r, base, atol=0, rtol=0)
    assert not torch.allclose(new_l, base)


def test_each_view_is_fed_in_bgr_order(model):
    """The official dataset hands the network cat(L_bgr, R_bgr): input channel 0 is the left view's blue, 3 the
    right view's blue. With every input channel but one silenced, only that view's colour moves the output."""
    b = make_batch(16, 16, seed=101)
    saved = model.patch_embed.proj.weight.detach().clone()
    try:
        for channel, view, colour in ((0, "left", 2), (2, "left", 0), (3, "right", 2), (5, "right", 0)):
            with torch.no_grad():
                model.patch_embed.proj.weight.zero_()
                model.patch_embed.proj.weight[:, channel] = saved[:, channel]
                base = model(b)["output"]
                for other in range(3):
                    moved = b[view].clone()
                    moved[:, other] = torch.rand(1, 16, 16)
                    out = model({**b, view: moved})["output"]
                    assert torch.equal(out, base) is (other != colour), (channel, view, other)
    finally:
        with torch.no_grad():
            model.patch_embed.proj.weight.copy_(saved)


def test_direct_prediction_clamped_in_eval_only(model):
    """With a zero output conv the prediction is 0 everywhere (no input view added back); with an output conv
    pushed to 2 the eval output is clamped to 1 and the training output is not."""
    b = make_batch(16, 24, seed=100)
    saved = model.output.weight.detach().clone()
    try:
        with torch.no_grad():
            model.output.weight.zero_()
            assert torch.count_nonzero(model(b)["output"]) == 0
            model.output.weight[:, :, 1, 1] = 0
            model.output.weight[:, 0, 1, 1] = 1e4  # any channel of d1 that is not zero everywhere
            hot = model(b)["output"]
            model.train()
            raw = model(b)["output"]
    finally:
        model.eval()
        with torch.no_grad():
            model.output.weight.copy_(saved)
    assert hot.min() >= 0 and hot.max() == 1
    assert raw.abs().max() > 1
    torch.testing.assert_close(hot, raw.clamp(0, 1), atol=0, rtol=0)


def test_pads_to_multiples_of_8_and_crops_back(model):
    b = make_batch(12, 21, seed=3)
    with torch.no_grad():
        out = model.train()(b)["output"]
        model.eval()
        x = pad_to_multiple(torch.cat([b["left"].flip(1), b["right"].flip(1)], 1), 8)
        ref = dinat.DiNATIR.forward(model, x)[..., :12, :21]
    assert out.shape == (1, 3, 12, 21) and x.shape[-2:] == (16, 24)
    torch.testing.assert_close(out, ref, atol=0, rtol=0)


@pytest.mark.parametrize("length,dilation", [(7, 1), (12, 1), (21, 3), (23, 3), (41, 5), (260, 36)])
def test_neighbours_stay_in_their_dilation_group_and_shift_inward(length, dilation):
    k, r = 7, 3
    idx, bias = dinat.axis_neighbours(length, k, dilation)
    for p in range(length):
        members = list(range(p % dilation, length, dilation))
        nb = idx[p].tolist()
        at = members.index(p)
        start = members.index(nb[0])
        assert nb == members[start : start + k], f"{p}: not {k} consecutive members of its group"
        # centred where the group allows it, otherwise the nearest window that fits (never past an end)
        assert start == min(max(at - r, 0), len(members) - k), p
        assert bias[p].tolist() == [(q - p) // dilation + k - 1 for q in nb]
    assert bias.min() >= 0 and bias.max() <= 2 * k - 2


def test_short_sides_are_zero_padded_before_the_projection():
    """A 5x9 map under a 7 x 2 window: the module equals attention over the explicitly zero-padded 14x14 map (whose
    padded pixels carry the qkv bias), cropped; computing only the unpadded queries changes nothing."""
    torch.manual_seed(1)
    na = dinat.NeighborhoodAttention2D(8, 2, 7, 2)
    with torch.no_grad():
        na.qkv.bias.normal_()
        na.rpb.normal_()
    x = torch.randn(1, 5, 9, 8)
    padded = F.pad(x, (0, 0, 0, 14 - 9, 0, 14 - 5))
    with torch.no_grad():
        q, k, v = na.qkv(padded).reshape(1, 14, 14, 3, 2, 4).permute(3, 0, 4, 1, 2, 5)
        full = dinat.neighborhood_attention_2d(q * na.scale, k, v, na.rpb, 7, 2)
        ref = na.proj(full.permute(0, 2, 3, 1, 4).reshape(1, 14, 14, 8)[:, :5, :9])
        torch.testing.assert_close(na(x), ref, atol=1e-6, rtol=1e-6)
        # the padding is not neutral: a zero qkv bias changes the result
        na.qkv.bias.zero_()
        assert not torch.allclose(na(x), ref, atol=1e-3)


@pytest.mark.parametrize("h,w,box", [(9, 13, 4), (9, 13, 5), (6, 13, 8), (8, 8, 8), (5, 7, 9)])
def test_pool_is_a_centred_box_mean_with_repeated_edges(h, w, box):
    x = torch.randn(2, 3, h, w)
    out = dinat.tlc_pool(x, box)
    if box >= h and box >= w:
        torch.testing.assert_close(out, x.mean((2, 3), keepdim=True))
        return
    k1, k2 = min(h, box), min(w, box)
    means = F.avg_pool2d(x, (k1, k2), stride=1)
    # pixel (i, j) takes the box starting at (i - (k1 - 1) // 2, j - (k2 - 1) // 2), clamped into the map
    rows = (torch.arange(h) - (k1 - 1) // 2).clamp(0, h - k1)
    cols = (torch.arange(w) - (k2 - 1) // 2).clamp(0, w - k2)
    torch.testing.assert_close(out, means[:, :, rows][:, :, :, cols], atol=1e-5, rtol=1e-5)
    assert dinat.tlc_pool(x, None).shape == (2, 3, 1, 1)


def test_pool_boxes_per_level(model):
    """1.5x the 256-px calibration input's side at each level; none (global pooling) with ``tlc=False``."""
    boxes = {
        name: {b.pool_kernel for b in getattr(model, name).modules() if isinstance(b, dinat.TransBlock)}
        for name in ("encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3",
                     "decoder_level2", "decoder_level1", "refinement")
    }  # fmt: skip
    assert boxes == {
        "encoder_level1": {384},
        "encoder_level2": {192},
        "encoder_level3": {96},
        "latent": {48},
        "decoder_level3": {96},
        "decoder_level2": {192},
        "decoder_level1": {384},
        "refinement": {384},
    }
    off = dinat.dinat_ir_dual(tlc=False)
    assert {b.pool_kernel for b in off.modules() if isinstance(b, dinat.TransBlock)} == {None}
