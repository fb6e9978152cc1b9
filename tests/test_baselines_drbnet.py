"""DRBNet port: the filter-adaptive convolution, the image branch from C in [-1, 1], the dual model's view order,
reflect padding.

Loading the published files, parameter counts and the forward contract are checked for every model by
tests/test_models_contract.py, the outputs against the official network by tests/test_golden_drbnet.py.
"""

import pytest
import torch
import torch.nn.functional as F

import baselines.drbnet as drb
from tests.conftest import make_batch

VARIANTS = {
    # registry factory, manifest, parameter count in reference/baselines.md §0
    "drbnet_single": (drb.drbnet_single, "drbnet_single", 11_689_616),
    "drbnet_dual": (drb.drbnet_dual, "drbnet_dual", 11_690_480),
}


def _silence_heads(model, res_bias=0.0):
    """Zero every per-pixel-filter head and residual head; residual heads output LReLU(res_bias)."""
    with torch.no_grad():
        for s in "3210":
            kernel_out = getattr(model, f"upconv{s}_kernel")[2]
            res_out = getattr(model, f"upconv{s}_res")[2][0]
            kernel_out.weight.zero_()
            kernel_out.bias.zero_()
            res_out.weight.zero_()
            res_out.bias.fill_(res_bias if s == "3" else 0.0)


def test_filter_adaptive_conv_matches_shift_and_sum():
    g = torch.Generator().manual_seed(3)
    img = torch.rand(2, 3, 9, 11, generator=g)
    kernel = torch.randn(2, 49, 9, 11, generator=g)
    padded = F.pad(img, (3, 3, 3, 3), mode="replicate")
    ref = torch.zeros_like(img)
    for dy in range(7):
        for dx in range(7):
            ref += padded[:, :, dy : dy + 9, dx : dx + 11] * kernel[:, dy * 7 + dx : dy * 7 + dx + 1]
    torch.testing.assert_close(drb.filter_adaptive_conv(img, kernel), ref, atol=1e-5, rtol=1e-5)
    # a delta kernel at the centre is the identity
    delta = torch.zeros(2, 49, 9, 11)
    delta[:, 24] = 1
    torch.testing.assert_close(drb.filter_adaptive_conv(img, delta), img)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_image_branch_starts_from_center_in_minus1_1(name):
    """Heads silenced: output = C area-pooled to 1/8 and re-upsampled, i.e. 8x8 block means of C.

    A constant residual b at the coarsest scale lands as LReLU(b)/2 in [0,1] units: the network works in
    [-1,1] (factor 1/2) and keeps the LeakyReLU after its residual conv (factor 0.1 for negative b).
    """
    model = VARIANTS[name][0]().eval()
    b = make_batch(32, 48, seed=100)
    blocks = F.avg_pool2d(b["center"], 8).repeat_interleave(8, 2).repeat_interleave(8, 3)
    with torch.no_grad():
        _silence_heads(model)
        torch.testing.assert_close(model(b)["output"], blocks, atol=1e-6, rtol=0)
        # L and R never reach the image branch
        other = {**b, "left": torch.rand(1, 3, 32, 48), "right": torch.rand(1, 3, 32, 48)}
        torch.testing.assert_close(model(other)["output"], blocks, atol=1e-6, rtol=0)
        mid = {**b, "center": torch.full((1, 3, 32, 48), 0.5)}
        _silence_heads(model, res_bias=0.2)
        torch.testing.assert_close(model(mid)["output"], torch.full_like(mid["center"], 0.6), atol=1e-6, rtol=0)
        _silence_heads(model, res_bias=-0.2)
        torch.testing.assert_close(model(mid)["output"], torch.full_like(mid["center"], 0.49), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def dual():
    return drb.drbnet_dual().eval()


def test_dual_swapping_left_and_right_changes_output(dual):
    b = make_batch(32, 32, seed=100)
    with torch.no_grad():
        out = dual(b)["output"]
        swapped = dual({**b, "left": b["right"], "right": b["left"]})["output"]
    assert (out - swapped).abs().max() > 1e-4


def test_dual_encoder_gets_cat_right_left(dual):
    """Silencing input channels 3:6 of conv1_1 removes L (and only L): the encoder sees cat(R, L)."""
    b = make_batch(32, 32, seed=100)
    with torch.no_grad():
        saved = dual.conv1_1[0].weight[:, 3:].clone()
        dual.conv1_1[0].weight[:, 3:] = 0
        try:
            base = dual(b)["output"]
            new_l = dual({**b, "left": torch.rand(1, 3, 32, 32)})["output"]
            new_r = dual({**b, "right": torch.rand(1, 3, 32, 32)})["output"]
        finally:
            dual.conv1_1[0].weight[:, 3:] = saved
    torch.testing.assert_close(new_l, base)
    assert (new_r - base).abs().max() > 1e-4


def test_dual_network_needs_c_r_l():
    with pytest.raises(ValueError, match="forward\\(C, R, L\\)"):
        drb.DRBNet(dual=True)(torch.zeros(1, 3, 16, 16))


def test_odd_sizes_are_reflect_padded_to_the_multiple_and_cropped_back():
    """The network sees C mapped to [-1, 1] and reflect-padded bottom/right to 48x48; the output is 37x45."""
    model = drb.drbnet_single().eval()
    seen = []
    hook = model.conv1_1.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    b = make_batch(37, 45, seed=100)
    try:
        with torch.no_grad():
            out = model(b)["output"]
    finally:
        hook.remove()
    x = b["center"]
    expect = F.pad(x * 2 - 1, (0, 3, 0, 11), mode="reflect")
    assert seen[0].shape == (1, 3, 48, 48) and out.shape == (1, 3, 37, 45)
    torch.testing.assert_close(seen[0], expect, atol=1e-6, rtol=0)
