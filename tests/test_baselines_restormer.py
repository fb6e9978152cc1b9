"""Restormer port: strict load of the published containers, parameter counts, forward contract, conventions."""

import pytest
import torch
import torch.nn.functional as F

from baselines.published import checkpoint_for_model
import baselines.restormer as rst
from baselines.weight_manifests import load_manifest, random_torch_state_dict, write_fake_checkpoint
from k3dn.checkpoint import CheckpointMismatch, load_published

VARIANTS = {
    # registry factory, manifest, parameter count in reference/baselines.md §0
    "restormer_dual": (rst.restormer_dual, "restormer_dual_pixel", 26_132_548),
    "restormer_single": (rst.restormer_single, "restormer_single_image", 26_126_644),
}


def _batch(h, w, seed=100, b=1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 3, h, w, generator=g) for k in ("left", "right", "center", "target")}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def loaded(request, tmp_path_factory):
    """(name, model loaded from a fake file in the published container, manifest)."""
    factory, manifest_name, _ = VARIANTS[request.param]
    path = write_fake_checkpoint(manifest_name, tmp_path_factory.mktemp("ckpt") / "published.pth")
    model = load_published(factory(), path).eval()
    return request.param, model, load_manifest(manifest_name)


def test_published_container_loads_strictly_with_values(loaded):
    name, model, manifest = loaded
    assert checkpoint_for_model(name).manifests == (VARIANTS[name][1],)
    expected = random_torch_state_dict(manifest)  # the same seed write_fake_checkpoint used
    own = model.state_dict()
    assert list(own) == [t[0] for t in manifest["tensors"]]
    for k, v in expected.items():
        assert torch.equal(own[k], v), k


def test_parameter_count_matches_manifest_and_reference(loaded):
    name, model, manifest = loaded
    n = sum(p.numel() for p in model.parameters())
    assert n == manifest["total_params"] == VARIANTS[name][2]


def test_forward_shape_range_and_odd_size(loaded):
    _, model, _ = loaded
    with torch.no_grad():
        out = model(_batch(32, 32))["output"]
        assert out.shape == (1, 3, 32, 32)
        assert out.min() >= 0 and out.max() <= 1
        odd = model(_batch(21, 27, seed=101))["output"]  # padded to 24x32 inside, cropped back
    assert odd.shape == (1, 3, 21, 27)
    assert torch.isfinite(odd).all()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_corrupted_checkpoint_names_the_bad_tensors(name, tmp_path):
    factory, manifest_name, _ = VARIANTS[name]
    sd = random_torch_state_dict(load_manifest(manifest_name))
    del sd["encoder_level2.3.ffn.dwconv.weight"]
    sd["output.weight"] = torch.zeros(3, 96, 5, 5)
    torch.save({"params": sd}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatch) as err:
        load_published(factory(), tmp_path / "bad.pth")
    assert err.value.missing == ["encoder_level2.3.ffn.dwconv.weight"]
    assert [m[0] for m in err.value.misshaped] == ["output.weight"]
    assert "encoder_level2.3.ffn.dwconv.weight" in str(err.value) and "output.weight" in str(err.value)


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
    b = _batch(16, 16)
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
    b = _batch(16, 24)
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
    b = _batch(16, 16)
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


def test_interface_attributes():
    d, s = rst.restormer_dual(), rst.restormer_single()
    assert d.input_views == ("left", "right") and s.input_views == ("center",)
    assert checkpoint_for_model("restormer_dual").input_protocol == "16bit"
    assert checkpoint_for_model("restormer_single").input_protocol == "8bit"
    assert d.size_multiple == s.size_multiple == (8, 8) and d.size_mode == s.size_mode == "pad"
    assert checkpoint_for_model("restormer_dual").manifests == ("restormer_dual_pixel",)
    assert checkpoint_for_model("restormer_single").manifests == ("restormer_single_image",)
