"""KPAC port: TF conv2d_transpose parity with a numpy reference, positional strict load of the TensorLayer
.npz container (which array lands where, what a short list reports), the KPAC block's attention layout and the
conventions.

The forward contract and parameter counts are checked for every model by tests/test_models_contract.py, the
outputs against the official graphs by tests/test_golden_kpac.py."""

import numpy as np
import pytest
import torch

import baselines.kpac as kp
from baselines.keras_weights import SameConvTranspose2d, tf_kernel_to_torch, tf_same_padding
from baselines.weight_manifests import load_manifest, random_tensors, write_fake_checkpoint
from k3dn.checkpoint import CheckpointMismatch, load_published, read_foreign
from tests.conftest import make_batch

VARIANTS = {
    # registry factory, manifest, parameter count in reference/baselines.md §6
    "kpac_single_2level": (kp.kpac_single_2level, "kpac_single_2level_npz", 1_578_277),
    "kpac_single_3level": (kp.kpac_single_3level, "kpac_single_3level_npz", 2_057_893),
    "kpac_dual": (kp.kpac_dual, "kpac_dual_npz", 2_061_493),
}


# ----------------------------------------------------------------------------------------------------------
# conv2d_transpose layout and 'SAME' semantics against numpy
# ----------------------------------------------------------------------------------------------------------


def np_conv_transpose_same(x, kernel, bias, stride):
    """tf.nn.conv2d_transpose(padding='SAME') written out: x (H, W, Cin), kernel [kh, kw, out, in];
    output (H*s, W*s, out) = the adjoint of a SAME stride-s conv from that size, i.e. the full scatter-add
    cropped by that conv's (before) padding."""
    h, w, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    full = np.zeros(((h - 1) * stride + kh, (w - 1) * stride + kw, cout))
    for i in range(h):
        for j in range(w):
            full[i * stride : i * stride + kh, j * stride : j * stride + kw] += kernel @ x[i, j]
    oh, ow = h * stride, w * stride
    top, left = tf_same_padding(oh, kh, stride)[0], tf_same_padding(ow, kw, stride)[0]
    return full[top : top + oh, left : left + ow] + bias


@pytest.mark.parametrize("k, size", [(4, (5, 6)), (3, (4, 5)), (2, (3, 3))])
def test_same_conv_transpose_matches_numpy_tf_reference(k, size, rng):
    cin, cout = 3, 2
    x = rng.standard_normal((*size, cin))
    kernel = rng.standard_normal((k, k, cout, cin)).astype(np.float32)  # TF deconv layout [kh, kw, out, in]
    bias = rng.standard_normal(cout).astype(np.float32)
    deconv = SameConvTranspose2d(cin, cout, k, stride=2)
    with torch.no_grad():
        deconv.weight.copy_(tf_kernel_to_torch(kernel))
        deconv.bias.copy_(tf_kernel_to_torch(bias))
        got = deconv(torch.from_numpy(x).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    ref = np_conv_transpose_same(x, kernel.astype(np.float64), bias, 2)
    assert got.shape == (size[0] * 2, size[1] * 2, cout)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    if k == 4:  # the documented shortcut: TF SAME k=4 s=2 == PyTorch ConvTranspose2d(k=4, s=2, p=1)
        t = torch.nn.functional.conv_transpose2d(
            torch.from_numpy(x).float().permute(2, 0, 1)[None], deconv.weight, deconv.bias, 2, 1
        )
        np.testing.assert_allclose(t[0].permute(1, 2, 0).detach().numpy(), ref, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------------------------------------
# Published container: positional strict load
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    out = {}
    for name, (factory, manifest_name, _) in VARIANTS.items():
        path = write_fake_checkpoint(manifest_name, tmp_path_factory.mktemp("ckpt") / f"{name}.npz")
        out[name] = (name, load_published(factory(), path).eval(), load_manifest(manifest_name), path)
    return out


@pytest.fixture(params=sorted(VARIANTS))
def loaded(request, published):
    return published[request.param]


def test_published_container_loads_strictly_with_values(loaded):
    name, model, manifest, path = loaded
    raw = read_foreign(path)
    assert list(raw) == ["params"] and len(raw["params"]) == manifest["num_tensors"]
    own = model.state_dict()
    # position i of the file is the TF variable the manifest names there, and it lands on the matching key
    assert list(own) == [kp.tf_name_to_key(n) for n, *_ in manifest["tensors"]]
    for (_tf_name, arr), key in zip(random_tensors(manifest), own):
        torch.testing.assert_close(own[key], tf_kernel_to_torch(arr), atol=0, rtol=0)
    # the deconv kernel [kh, kw, out, in] became ConvTranspose2d [in, out, kh, kw]
    assert own["net.d1.weight"].shape == (96, 48, 4, 4)


def test_corrupted_checkpoint_names_the_bad_tensors(tmp_path):
    manifest = load_manifest("kpac_dual_npz")
    arrays = [a for _, a in random_tensors(manifest)]
    arrays[-1] = np.zeros((7,), np.float32)  # d2_2 bias mis-shaped
    del arrays[20]  # sca_dc2/0/b removed: the positional list is now one short
    obj = np.empty(len(arrays), dtype=object)
    obj[:] = arrays
    np.savez(tmp_path / "bad.npz", params=obj)
    with pytest.raises(CheckpointMismatch) as err:
        load_published(kp.kpac_dual(), tmp_path / "bad.npz")
    msg = str(err.value)
    assert "net.blocks.0.sca_dc2.bias <- params[20] (deblur_net/sca_dc2/0/b)" in msg  # first shifted position
    assert any("net.d2_2.bias" in m for m in err.value.missing)  # the list is one array short
    assert str(tmp_path / "bad.npz") in msg


def test_wrong_container_is_named(tmp_path):
    np.savez(tmp_path / "named.npz", w=np.zeros(3))
    with pytest.raises(CheckpointMismatch, match="'params'"):
        load_published(kp.kpac_single_2level(), tmp_path / "named.npz")


# ----------------------------------------------------------------------------------------------------------
# The block and the conventions
# ----------------------------------------------------------------------------------------------------------


def test_kpac_block_shares_one_kernel_over_five_dilations_and_orders_attention(rng):
    """Block c of the 240 channels is the shared kernel at dilation c+1 scaled by attention channel c
    (repeat-interleaved) and by the 48 shape weights (tiled); checked with a hand-built forward."""
    torch.manual_seed(0)
    blk = kp.KPACBlock().eval()
    n = torch.randn(1, 96, 12, 16)
    captured = {}
    blk.cf.register_forward_hook(lambda m, i, o: captured.__setitem__("in", i[0]))
    with torch.no_grad():
        blk(n)
        lr = lambda t: torch.nn.functional.leaky_relu(t, 0.2)  # noqa: E731
        conv = torch.nn.functional.conv2d
        branches = [lr(conv(n, blk.dc1.weight, None, 1, 2 * r, r)) for r in range(1, 6)]
        a = n
        for layer in (blk.sca_dc1, blk.sca_dc2, blk.sca_dc3, blk.sca_dc4):
            a = lr(conv(a, layer.weight, layer.bias, 1, 4, 2))
        att = torch.sigmoid(conv(a, blk.sca_c2.weight, blk.sca_c2.bias, 1, 2))
        sh = torch.sigmoid(
            conv(
                lr(conv(n.mean((2, 3), keepdim=True), blk.sha_c1.weight, blk.sha_c1.bias)),
                blk.sha_c2.weight,
                blk.sha_c2.bias,
            )
        )
        expect = torch.cat([branches[c] * att[:, c : c + 1] * sh for c in range(5)], 1)
    torch.testing.assert_close(captured["in"], expect, atol=1e-5, rtol=1e-5)


def test_stride2_encoder_pads_bottom_right_only():
    """TF SAME on an even size puts the extra row/column at the end: the first output pixel's window starts
    at row/col 0 (no top/left padding) -- a symmetric-pad port would shift the whole encoder by one pixel."""
    net = kp.KPACNet(levels=2)
    x = torch.zeros(1, 48, 8, 8)
    x[:, 0, 0, 0] = 1.0  # only the top-left pixel of one channel is lit
    with torch.no_grad():
        net.c2.weight.zero_()
        net.c2.bias.zero_()
        net.c2.weight[:, :, 0, 0] = 1.0  # tap at kernel (0, 0)
        y = net.c2(x)
    assert y.shape[-2:] == (4, 4) and y[0, 0, 0, 0] == 1.0  # window of output (0, 0) starts at input (0, 0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_residual_on_center_and_range_mapping(name):
    """With the last conv zeroed the output is exactly C (through [-1, 1] and back), in every variant."""
    model = VARIANTS[name][0]().eval()
    with torch.no_grad():
        model.net.d2_2.weight.zero_()
        model.net.d2_2.bias.zero_()
        b = make_batch(16, 24)
        torch.testing.assert_close(model(b)["output"], b["center"], atol=1e-6, rtol=0)
        hot = {**b, "center": b["center"] + 1.0}
        assert model(hot)["output"].max() == 1.0  # eval clamps
        model.train()
        torch.testing.assert_close(model(hot)["output"], hot["center"], atol=1e-6, rtol=0)
        # a bias of +0.2 in [-1, 1] units is +0.1 in [0, 1] units
        model.eval()
        model.net.d2_2.bias.fill_(0.2)
        torch.testing.assert_close(model(b)["output"], (b["center"] + 0.1).clamp(0, 1), atol=1e-6, rtol=0)


def test_dual_reads_left_then_right_and_single_ignores_dp_views(published):
    _, dual, _, _ = published["kpac_dual"]
    b = make_batch(16, 16)
    with torch.no_grad():
        base = dual(b)["output"]
        swapped = dual({**b, "left": b["right"], "right": b["left"]})["output"]
        saved = dual.net.c0.weight[:, 3:].clone()
        dual.net.c0.weight[:, 3:] = 0  # silence the second view's input channels
        try:
            r_only = dual({**b, "right": torch.rand(1, 3, 16, 16)})["output"]
            r_base = dual(b)["output"]
            l_only = dual({**b, "left": torch.rand(1, 3, 16, 16)})["output"]
        finally:
            dual.net.c0.weight[:, 3:] = saved
        _, single, _, _ = published["kpac_single_3level"]
        s = single(b)["output"]
        s_other = single({**b, "left": b["right"], "right": b["left"]})["output"]
    assert not torch.allclose(base, swapped)
    torch.testing.assert_close(r_only, r_base)  # channels 3:6 are R
    assert not torch.allclose(l_only, r_base)
    torch.testing.assert_close(s, s_other, atol=0, rtol=0)
