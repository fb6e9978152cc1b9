"""RDPD+ port: ConvLSTM2D against a numpy transcription of the Keras equations, topological strict load of the
published HDF5 container (where each Keras tensor lands), radial mask and BGR conventions.

The forward contract, the total parameter count and damaged-file errors are checked for every model by
tests/test_models_contract.py."""

import numpy as np
import pytest
import torch

import baselines.rdpd as rd
from baselines.keras_weights import hard_sigmoid, tf_kernel_to_torch
from baselines.weight_manifests import load_manifest, random_tensors, write_fake_checkpoint
from k3dn.checkpoint import load_published
from tests.conftest import make_batch

MANIFEST = "rdpd_plus_keras"
LSTM_PARAMS = 18_876_416


# ----------------------------------------------------------------------------------------------------------
# ConvLSTM2D: Keras equations in numpy
# ----------------------------------------------------------------------------------------------------------


def np_conv_same(x, kernel):
    """Stride-1 'same' conv of an odd kernel, TF layouts: x (H, W, Cin), kernel [k, k, in, out]."""
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    h, w = x.shape[:2]
    return sum(xp[a : a + h, b : b + w] @ kernel[a, b] for a in range(k) for b in range(k))


def np_keras_convlstm(frames, kernel, recurrent_kernel, bias):
    """Keras ConvLSTM2DCell, gate order i, f, c, o on the last axis; hard_sigmoid = clip(0.2x + 0.5, 0, 1)."""
    hs = lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0)  # noqa: E731
    f_ = kernel.shape[-1] // 4
    h = np.zeros(frames.shape[1:3] + (f_,))
    c = np.zeros_like(h)
    outs = []
    for x in frames:
        zx = np_conv_same(x, kernel) + bias
        zh = np_conv_same(h, recurrent_kernel)
        gate = [zx[..., g * f_ : (g + 1) * f_] + zh[..., g * f_ : (g + 1) * f_] for g in range(4)]
        i, f, o = hs(gate[0]), hs(gate[1]), hs(gate[3])
        c = f * c + i * np.tanh(gate[2])
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs)


@pytest.mark.parametrize("steps", [1, 3])
def test_convlstm_matches_numpy_keras_equations(steps, rng):
    cin, filters, hw = 3, 4, (5, 6)
    kernel = (rng.standard_normal((3, 3, cin, 4 * filters)) * 0.7).astype(np.float32)
    rkernel = (rng.standard_normal((3, 3, filters, 4 * filters)) * 0.7).astype(np.float32)
    bias = rng.standard_normal(4 * filters).astype(np.float32)
    frames = rng.standard_normal((steps, *hw, cin)).astype(np.float32)
    lstm = rd.KerasConvLSTM2d(cin, filters, 3, dropout=0.4).eval()  # eval: Keras input dropout inactive
    with torch.no_grad():
        lstm.input_conv.weight.copy_(tf_kernel_to_torch(kernel))
        lstm.input_conv.bias.copy_(tf_kernel_to_torch(bias))
        lstm.recurrent_conv.weight.copy_(tf_kernel_to_torch(rkernel))
        got = lstm(torch.from_numpy(frames).permute(0, 3, 1, 2)[None])[0].permute(0, 2, 3, 1).numpy()
    ref = np_keras_convlstm(
        frames.astype(np.float64), kernel.astype(np.float64), rkernel.astype(np.float64), bias.astype(np.float64)
    )
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)
    # the hard_sigmoid saturates somewhere here, so the clip is exercised, not just the linear part
    assert (np.abs(0.2 * (np_conv_same(frames[0], kernel) + bias) + 0.5) > 1).any()


def test_hard_sigmoid_is_the_keras2_definition():
    x = torch.tensor([-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 4.0])
    torch.testing.assert_close(hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0]))


def test_convlstm_dropout_only_in_training():
    lstm = rd.KerasConvLSTM2d(2, 3, 3, dropout=0.5)
    x = torch.rand(1, 2, 2, 4, 4)
    with torch.no_grad():
        a, b = lstm(x), lstm(x)
        lstm.eval()
        c, d = lstm(x), lstm(x)
    assert not torch.equal(a, b) and torch.equal(c, d)


# ----------------------------------------------------------------------------------------------------------
# Published container
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    path = write_fake_checkpoint(MANIFEST, tmp_path_factory.mktemp("ckpt") / "RDPD+.hdf5")
    return load_published(rd.rdpd_plus(), path).eval(), load_manifest(MANIFEST), path


def test_published_container_loads_strictly_with_values(published):
    model, manifest, _ = published
    own = model.state_dict()
    src = random_tensors(manifest)  # file order = Keras' weighted-layer order
    keys = [k for _, ks in model.keras_targets() for k in ks]
    assert sorted(keys) == sorted(own) and len(src) == len(keys) == manifest["num_tensors"]
    for (_name, arr), key in zip(src, keys):
        torch.testing.assert_close(own[key], tf_kernel_to_torch(arr), atol=0, rtol=0)
    assert own["net.lstm.input_conv.weight"].shape == (2048, 512, 3, 3)
    assert own["net.up4.weight"].shape == (256, 512, 2, 2)


def test_convlstm_parameter_count(published):
    model, _, _ = published
    assert sum(p.numel() for p in model.net.lstm.parameters()) == LSTM_PARAMS


# ----------------------------------------------------------------------------------------------------------
# Conventions
# ----------------------------------------------------------------------------------------------------------


def test_radial_mask_shape_and_values():
    # official real_radial_mask.png / 255 (facts checked in test_golden_rdpd): distance from (h/2, w/2) over the
    # centre-corner distance, 8-bit
    m = rd.radial_mask(1120, 1680)
    assert m.shape == (1120, 1680) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0
    assert m[0, 0] == 1.0 and m[560, 840] == 0.0  # corner (0, 0) is at the full distance; the centre is a pixel
    np.testing.assert_array_equal(m[1:, 1:], m[1:, 1:][::-1, ::-1])  # symmetric about (560, 840)
    np.testing.assert_array_equal(m, (np.round(m.astype(np.float64) * 255) / 255).astype(np.float32))  # 8-bit levels
    r = np.hypot(560, 840)
    assert m[560, 0] == np.float32(np.round(840 / r * 255) / 255)
    assert m[0, 840] == np.float32(np.round(560 / r * 255) / 255)


def test_radial_mask_of_another_size_is_the_official_one_resized():
    import cv2

    full = np.round(rd.radial_mask(1120, 1680).astype(np.float64) * 255) / 255  # the PNG / 255, float64
    small = rd.radial_mask(48, 80)  # not an integer factor of 1120 x 1680, so bilinear weights are fractional
    assert small.shape == (48, 80) and small.dtype == np.float32
    np.testing.assert_array_equal(small, cv2.resize(full, (80, 48)).astype(np.float32))
    assert not np.allclose(small, np.round(small * 255) / 255)  # interpolated: not 8-bit levels any more


class _Recorder(torch.nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out, self.seen = out, None

    def forward(self, x):
        self.seen = x
        return self.out


def test_input_is_one_frame_of_left_right_bgr_and_radial_mask():
    model = rd.rdpd_plus().eval()
    b = make_batch(16, 32)
    bgr_out = torch.rand(1, 1, 3, 16, 32)
    model.net = _Recorder(bgr_out)
    out = model(b)["output"]
    seen = model.net.seen
    assert seen.shape == (1, 1, 7, 16, 32)  # (batch, frames, channels, H, W)
    torch.testing.assert_close(seen[:, 0, 0:3], b["left"][:, [2, 1, 0]], atol=0, rtol=0)
    torch.testing.assert_close(seen[:, 0, 3:6], b["right"][:, [2, 1, 0]], atol=0, rtol=0)
    torch.testing.assert_close(seen[0, 0, 6], torch.from_numpy(rd.radial_mask(16, 32)), atol=0, rtol=0)
    torch.testing.assert_close(out, bgr_out[:, 0, [2, 1, 0]], atol=0, rtol=0)


def test_given_mask_is_used_and_must_fit():
    mask = np.full((16, 16), 0.25, np.float32)
    model = rd.rdpd_plus(mask=mask).eval()
    model.net = _Recorder(torch.zeros(1, 1, 3, 16, 16))
    model(make_batch(16, 16))
    assert torch.all(model.net.seen[0, 0, 6] == 0.25)
    with pytest.raises(ValueError, match="radial mask"):
        model(make_batch(32, 16))


def test_linear_output_is_clipped_in_training_too_and_views_matter(published):
    model, _, _ = published
    b = make_batch(16, 16)
    with torch.no_grad():
        base = model(b)["output"]
        assert not torch.allclose(base, model({**b, "left": b["right"], "right": b["left"]})["output"])
        saved = model.net.out.bias.clone()
        model.net.out.bias.fill_(5.0)
        model.train()
        try:
            hot = model(b)["output"]
        finally:
            model.net.out.bias.copy_(saved)
            model.eval()
    assert torch.all(hot == 1.0)  # backend.clip is in the Keras graph
