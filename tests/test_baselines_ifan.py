"""IFAN port: the published DataParallel files (reblurNet dropped, other modules not), the separable adaptive
convolution and its kernel-1 bug, the residual output, the dual model's view order, reflect padding.

The forward contract, parameter counts and damaged-file errors are checked for every model by
tests/test_models_contract.py, the outputs against the official network by tests/test_golden_ifan.py.
"""

import pytest
import torch
import torch.nn.functional as F

import baselines.ifan as ifan
from baselines.published import checkpoint_for_model
from baselines.weight_manifests import load_manifest, random_torch_state_dict, write_fake_checkpoint
from k3dn.checkpoint import CheckpointMismatch, load_published
from tests.conftest import make_batch

VARIANTS = {
    # registry factory, manifest, parameter count in reference/baselines.md §0
    "ifan_single": (ifan.ifan_single, "ifan_single", 10_476_996),
    "ifan_dual": (ifan.ifan_dual, "ifan_dual", 10_477_860),
}
PREFIX = "module.Network."


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def loaded(request, tmp_path_factory):
    """Model loaded from a fake file holding module.Network.* AND the training-only module.reblurNet.*."""
    factory, manifest_name, _ = VARIANTS[request.param]
    manifest = load_manifest(manifest_name)
    assert manifest["training_only_tensors"], "the fake file must carry reblurNet tensors for this test to bite"
    path = write_fake_checkpoint(manifest_name, tmp_path_factory.mktemp("ckpt") / "IFAN.pytorch")
    return request.param, load_published(factory(), path).eval(), manifest


def test_published_file_loads_strictly_dropping_reblurnet(loaded):
    name, model, manifest = loaded
    assert checkpoint_for_model(name).manifests == (VARIANTS[name][1],)
    own = model.state_dict()
    assert list(own) == [t[0][len(PREFIX) :] for t in manifest["tensors"]]
    for k, v in random_torch_state_dict(manifest).items():
        assert torch.equal(own[k[len(PREFIX) :]], v), k


def test_filter_accepts_file_without_reblurnet_and_without_dataparallel(tmp_path):
    manifest = load_manifest("ifan_single")
    write_fake_checkpoint("ifan_single", tmp_path / "a.pytorch", seed=5, include_training_only=False)
    a = load_published(ifan.ifan_single(), tmp_path / "a.pytorch")
    sd = {k.replace(PREFIX, "Network."): v for k, v in random_torch_state_dict(manifest, seed=5).items()}
    torch.save(sd, tmp_path / "b.pytorch")
    b = load_published(ifan.ifan_single(), tmp_path / "b.pytorch")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_corrupted_checkpoint_names_the_bad_tensors(name, tmp_path):
    factory, manifest_name, _ = VARIANTS[name]
    sd = random_torch_state_dict(load_manifest(manifest_name))
    del sd[PREFIX + "DME.2.stem.1.0.bias"]
    sd[PREFIX + "F.3.weight"] = torch.zeros(15232, 64, 1, 1)
    sd["module.someOtherNet.conv.weight"] = torch.zeros(1)  # not training-only: must not be silently dropped
    torch.save(sd, tmp_path / "bad.pytorch")
    with pytest.raises(CheckpointMismatch) as err:
        load_published(factory(), tmp_path / "bad.pytorch")
    assert err.value.missing == ["DME.2.stem.1.0.bias"]
    assert [m[0] for m in err.value.misshaped] == ["F.3.weight"]
    assert err.value.unexpected == ["module.someOtherNet.conv.weight"]
    assert "DME.2.stem.1.0.bias" in str(err.value) and "F.3.weight" in str(err.value)


def test_separable_adaptive_conv_known_answers():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 4, 6, 5, generator=g)
    centre = torch.zeros(2, 12, 6, 5)
    centre[:, 1::3] = 1  # channel c*3 + 1 = offset 0
    torch.testing.assert_close(ifan.separable_adaptive_conv(x, centre, centre), x)
    up = torch.zeros(2, 12, 6, 5)
    up[:, 0::3] = 1  # offset -1: out[y] = in[y-1], replicate at the top
    expect = torch.cat([x[:, :, :1], x[:, :, :-1]], 2)
    torch.testing.assert_close(ifan.separable_adaptive_conv(x, up, centre), expect)
    expect = torch.cat([x[..., :1], x[..., :-1]], 3)
    torch.testing.assert_close(ifan.separable_adaptive_conv(x, centre, up), expect)
    # general case against an explicit shift-and-sum
    kv, kh = torch.randn(2, 12, 6, 5, generator=g), torch.randn(2, 12, 6, 5, generator=g)
    pv = F.pad(x, (0, 0, 1, 1), mode="replicate")
    mid = sum(pv[:, :, j : j + 6] * kv.view(2, 4, 3, 6, 5)[:, :, j] for j in range(3))
    ph = F.pad(mid, (1, 1, 0, 0), mode="replicate")
    ref = sum(ph[..., j : j + 5] * kh.view(2, 4, 3, 6, 5)[:, :, j] for j in range(3))
    torch.testing.assert_close(ifan.separable_adaptive_conv(x, kv, kh), ref)


def test_iac_reproduces_the_kernel1_bug_and_iterates():
    """Horizontal filters are ignored (published bug); vertical ones and biases act in every iteration."""
    c, n, taps = 4, 3, 3
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, c, 5, 6, generator=g)
    filters = torch.zeros(1, n * (2 * c * taps + c), 5, 6)
    for i in range(n):
        filters[:, i * 2 * c * taps + 1 : i * 2 * c * taps + c * taps : taps] = 1  # vertical: centre taps
    # identity filters, zero bias, positive input: lrelu leaves it unchanged through all iterations
    torch.testing.assert_close(ifan.iac(x, filters, n, taps), x)
    noisy = filters.clone()
    for i in range(n):  # scramble every horizontal filter: no effect because of the bug
        noisy[:, i * 2 * c * taps + c * taps : (i + 1) * 2 * c * taps] = torch.randn(1, c * taps, 5, 6, generator=g)
    torch.testing.assert_close(ifan.iac(x, noisy, n, taps), x)
    biased = filters.clone()
    biased[:, n * 2 * c * taps :] = -1.0  # each iteration adds -1 then LeakyReLU(0.1)
    expect = x.clone()
    for _ in range(n):
        expect = F.leaky_relu(expect - 1.0, 0.1)
    torch.testing.assert_close(ifan.iac(x, biased, n, taps), expect)
    with pytest.raises(ValueError, match="filter channels"):
        ifan.iac(x, filters[:, :-1], n, taps)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_residual_on_center_with_leaky_output_conv(name):
    """out_res zeroed -> output == C; a bias b lands as LeakyReLU(b) (kept quirk); training is unclamped."""
    model = VARIANTS[name][0]().eval()
    b = make_batch(16, 24, seed=100)
    with torch.no_grad():
        model.out_res[0].weight.zero_()
        model.out_res[0].bias.zero_()
        torch.testing.assert_close(model(b)["output"], b["center"], atol=0, rtol=0)
        model.out_res[0].bias.fill_(-0.2)
        model.train()
        torch.testing.assert_close(model(b)["output"], b["center"] - 0.02, atol=1e-6, rtol=0)
        model.out_res[0].bias.fill_(0.5)
        hot = model(b)["output"]
        assert hot.max() > 1.0  # raw in training
        model.eval()
        torch.testing.assert_close(model(b)["output"], (b["center"] + 0.5).clamp(0, 1), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def dual():
    """Dual model with variance-preserving weights and a near-identity IAC, so L and R visibly matter.

    With PyTorch's default initialisation every conv shrinks its input, and after the 17 filtering
    iterations and the decoder the filter branch (the only path of L and R) changes the output by ~1e-8:
    a swap test would prove nothing. He-initialised convs, IAC filters = centre tap 1 + a small
    feature-dependent part, and a scaled-down residual conv keep the output unsaturated (residual ~0.1)
    while R/L move it by a few percent of that.
    """
    torch.manual_seed(0)
    model = ifan.ifan_dual().eval()
    c, t = model.ch4, model.taps
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                torch.nn.init.kaiming_normal_(mod.weight, a=0.1)
                mod.bias.zero_()
        model.F[3].weight.normal_(std=1e-4)
        for i in range(model.n_iter):
            model.F[3].bias[i * 2 * c * t + 1 : i * 2 * c * t + c * t : t] = 1.0
        model.out_res[0].weight.mul_(0.02)
    return model


def test_dual_swapping_left_and_right_changes_output(dual):
    b = make_batch(32, 32, seed=100)
    with torch.no_grad():
        out = dual(b)["output"]
        swapped = dual({**b, "left": b["right"], "right": b["left"]})["output"]
    assert 0.01 < out.mean() < 0.99  # not saturated by the clamp
    assert (out - swapped).abs().mean() > 1e-3


def test_dual_filter_encoder_gets_cat_right_left_and_features_get_center(dual):
    seen = {}
    hooks = [
        getattr(dual, n).register_forward_pre_hook(lambda m, a, n=n: seen.__setitem__(n, a[0].clone()))
        for n in ("kconv1_1", "conv1_1")
    ]
    b = make_batch(24, 16, seed=100)
    try:
        with torch.no_grad():
            dual(b)
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(seen["kconv1_1"], torch.cat([b["right"], b["left"]], 1))
    assert torch.equal(seen["conv1_1"], b["center"])


def test_dual_network_needs_c_r_l():
    with pytest.raises(ValueError, match="forward\\(C, R, L\\)"):
        ifan.IFAN(dual=True)(torch.zeros(1, 3, 16, 16))


def test_odd_sizes_are_reflect_padded_to_the_multiple_and_cropped_back():
    """The network sees C mapped to [0, 1] and reflect-padded bottom/right to 32x24; the output is 29x21."""
    model = ifan.ifan_single().eval()
    seen = []
    hook = model.conv1_1.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    b = make_batch(29, 21, seed=100)
    try:
        with torch.no_grad():
            out = model(b)["output"]
    finally:
        hook.remove()
    x = b["center"]
    expect = F.pad(x, (0, 3, 0, 3), mode="reflect")
    assert seen[0].shape == (1, 3, 32, 24) and out.shape == (1, 3, 29, 21)
    torch.testing.assert_close(seen[0], expect, atol=1e-6, rtol=0)
