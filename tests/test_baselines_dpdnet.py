"""DPDNet port: Keras layout/padding parity with a numpy reference, topological strict load of the published
HDF5 container (where each Keras tensor lands), and the BGR / view-order conventions.

The forward contract, parameter counts and damaged-file errors are checked for every model by
tests/test_models_contract.py."""

import h5py
import numpy as np
import pytest
import torch

import baselines.dpdnet as dpd
from baselines.keras_weights import SameConv2d, tf_kernel_to_torch, tf_same_padding
from baselines.published import checkpoint_for_model
from baselines.weight_manifests import keras_layer_names, load_manifest, random_tensors, write_fake_checkpoint
from k3dn.checkpoint import CheckpointMismatch, load_published, read_foreign
from tests.conftest import make_batch

VARIANTS = {
    # registry factory, manifest, parameter count in reference/baselines.md §4 / §4b
    "dpdnet_dual": (dpd.dpdnet_dual, "dpdnet_dual_keras", 31_035_151),
    "dpdnet_single_retrained": (dpd.dpdnet_single_retrained, "dpdnet_retrained_single_keras", 31_033_423),
}


# ----------------------------------------------------------------------------------------------------------
# Layout and padding against a numpy reference of TF's conv
# ----------------------------------------------------------------------------------------------------------


def np_conv_nhwc(x, kernel, bias, stride, dilation, pads):
    """TF conv2d written out: x (H, W, Cin), kernel [kh, kw, in, out]; pads = ((top, bottom), (left, right))."""
    kh, kw = kernel.shape[:2]
    xp = np.pad(x, (pads[0], pads[1], (0, 0)))
    oh = (xp.shape[0] - (kh - 1) * dilation - 1) // stride + 1
    ow = (xp.shape[1] - (kw - 1) * dilation - 1) // stride + 1
    out = np.zeros((oh, ow, kernel.shape[3]), np.float64) + bias
    for a in range(kh):
        for b in range(kw):
            patch = xp[
                a * dilation : a * dilation + (oh - 1) * stride + 1 : stride,
                b * dilation : b * dilation + (ow - 1) * stride + 1 : stride,
            ]
            out += patch @ kernel[a, b]
    return out


@pytest.mark.parametrize(
    "k, stride, dilation, size, pads",
    [
        (3, 1, 1, (9, 8), ((1, 1), (1, 1))),
        (2, 1, 1, (8, 7), ((0, 1), (0, 1))),  # Keras 'same' with an even kernel: the extra row/col at the end
        (1, 1, 1, (5, 6), ((0, 0), (0, 0))),
        (3, 2, 1, (8, 10), ((0, 1), (0, 1))),  # TF stride-2 'SAME' on even sizes: asymmetric too
        (3, 2, 1, (7, 9), ((1, 1), (1, 1))),
        (5, 1, 3, (16, 15), ((6, 6), (6, 6))),  # atrous 5x5 rate 3
    ],
)
def test_same_conv_matches_numpy_tf_reference(k, stride, dilation, size, pads, rng):
    cin, cout = 3, 4
    assert (tf_same_padding(size[0], k, stride, dilation), tf_same_padding(size[1], k, stride, dilation)) == pads
    x = rng.standard_normal((*size, cin))
    kernel = rng.standard_normal((k, k, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    conv = SameConv2d(cin, cout, k, stride=stride, dilation=dilation)
    with torch.no_grad():
        conv.weight.copy_(tf_kernel_to_torch(kernel))
        conv.bias.copy_(tf_kernel_to_torch(bias))
        got = conv(torch.from_numpy(x).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    ref = np_conv_nhwc(x, kernel.astype(np.float64), bias, stride, dilation, pads)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_unet_up_path_is_nearest_upsampling_then_asymmetric_2x2_conv(rng):
    up = dpd.UpConv(2, 3)
    kernel = rng.standard_normal((2, 2, 2, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    with torch.no_grad():
        up.weight.copy_(tf_kernel_to_torch(kernel))
        up.bias.copy_(tf_kernel_to_torch(bias))
    x = rng.standard_normal((3, 4, 2))
    ref = np.maximum(
        np_conv_nhwc(x.repeat(2, 0).repeat(2, 1), kernel.astype(np.float64), bias, 1, 1, ((0, 1), (0, 1))), 0
    )
    got = up(torch.from_numpy(x).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0).detach().numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# Published container: topological strict load
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Both variants, each loaded from a fake file in the published container (built once per module)."""
    out = {}
    for name, (factory, manifest_name, _) in VARIANTS.items():
        path = write_fake_checkpoint(manifest_name, tmp_path_factory.mktemp("ckpt") / "published.hdf5")
        out[name] = (name, load_published(factory(), path).eval(), load_manifest(manifest_name), path)
    return out


@pytest.fixture(params=sorted(VARIANTS))
def loaded(request, published):
    return published[request.param]


@pytest.fixture
def loaded_single(published):
    """The retrained file: its Keras version (hence its layer names) is the unknown one."""
    return published["dpdnet_single_retrained"]


@pytest.fixture
def loaded_dual(published):
    return published["dpdnet_dual"]


def _expected_values(manifest, model):
    """(our key, converted array) pairs: conv2d_i's kernel/bias -> the i-th conv of Keras' creation order."""
    src = dict(random_tensors(manifest))  # same seed as write_fake_checkpoint
    out = []
    for i, layer in enumerate(dpd.DPDNet.KERAS_ORDER, start=1):
        for w, ours in (("kernel", "weight"), ("bias", "bias")):
            out.append((f"net.{layer}.{ours}", src[f"model_weights/conv2d_{i}/conv2d_{i}/{w}:0"]))
    return out


def test_published_container_loads_strictly_with_values(loaded):
    name, model, manifest, _ = loaded
    assert checkpoint_for_model(name).manifests == (VARIANTS[name][1],)
    own = model.state_dict()
    pairs = _expected_values(manifest, model)
    assert sorted(k for k, _ in pairs) == sorted(own)
    for k, arr in pairs:
        torch.testing.assert_close(own[k], tf_kernel_to_torch(arr), atol=0, rtol=0)
    # the 2x2 up-convs sit where the manifest's [2, 2, ...] kernels are (conv2d_11/14/17/20)
    assert own["net.up4.weight"].shape == (512, 1024, 2, 2) and own["net.out.weight"].shape == (3, 3, 1, 1)


def test_reader_keeps_keras_attributes_and_skips_optimizer_state(loaded_dual):
    _, _, manifest, path = loaded_dual
    raw = read_foreign(path)
    assert raw.attrs["model_weights"]["layer_names"] == keras_layer_names(manifest)
    assert raw.attrs["model_weights/max_pooling2d_1"]["weight_names"] == []
    assert raw.attrs["model_weights/conv2d_10"]["weight_names"] == ["conv2d_10/kernel:0", "conv2d_10/bias:0"]
    assert not any(k.startswith("optimizer_weights") for k in raw)
    with h5py.File(path) as f:
        assert "optimizer_weights" in f  # present in the file, as in a compiled model.save


def _rename_layers(src, dst, rename):
    """Copy a Keras file with every layer renamed (and layer_names / weight_names rewritten to match)."""
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        names = [n.decode() for n in f["model_weights"].attrs["layer_names"]]
        mw = g.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([rename(n).encode() for n in names])
        for n in names:
            lg = mw.create_group(rename(n))
            wn = [w.decode() for w in f["model_weights"][n].attrs["weight_names"]]
            new_wn = [rename(w.split("/")[0]) + "/" + w.split("/", 1)[1] for w in wn]
            lg.attrs["weight_names"] = np.array([w.encode() for w in new_wn]) if wn else np.asarray([])
            for w, nw in zip(wn, new_wn):
                lg.create_dataset(nw, data=f["model_weights"][n][w][()])


def test_loading_is_topological_not_by_name(loaded_single, tmp_path):
    """tf.keras names layers zero-based (conv2d, conv2d_1, ...): the same weights under other names load to
    the same place, because the order comes from layer_names, not from the (alphabetical) group names."""
    name, model, _, path = loaded_single

    def zero_based(n):
        base, _, idx = n.rpartition("_")
        return (base if idx == "1" else f"{base}_{int(idx) - 1}") if idx.isdigit() else n

    _rename_layers(path, tmp_path / "tfkeras.hdf5", zero_based)
    other = load_published(VARIANTS[name][0](), tmp_path / "tfkeras.hdf5")
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k


def test_file_without_keras_attributes_falls_back_to_manifest_order(loaded_single, tmp_path):
    name, model, manifest, _ = loaded_single
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        for k, v in random_tensors(manifest):
            f.create_dataset(k, data=v)
    other = load_published(VARIANTS[name][0](), tmp_path / "bare.h5")
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k


def test_missing_layer_is_reported_not_shifted(tmp_path):
    """Removing a whole layer from layer_names must not silently shift every later layer by one."""
    path = write_fake_checkpoint("dpdnet_retrained_single_keras", tmp_path / "short.hdf5")
    with h5py.File(path, "a") as f:
        names = [n for n in f["model_weights"].attrs["layer_names"] if n != b"conv2d_24"]
        f["model_weights"].attrs["layer_names"] = np.array(names)
    with pytest.raises(CheckpointMismatch) as err:
        load_published(dpd.dpdnet_single_retrained(), path)
    assert any("net.out.weight" in m for m in err.value.missing)


# ----------------------------------------------------------------------------------------------------------
# Conventions
# ----------------------------------------------------------------------------------------------------------


class _Recorder(torch.nn.Module):
    """Stands in for the network: remembers its input, returns a fixed 'BGR' image."""

    def __init__(self, out):
        super().__init__()
        self.out, self.seen = out, None

    def forward(self, x):
        self.seen = x
        return self.out


def test_dual_feeds_cat_left_right_in_bgr_and_returns_rgb():
    model = dpd.dpdnet_dual().eval()
    b = make_batch(16, 32)
    bgr_out = torch.rand(1, 3, 16, 32)
    model.net = _Recorder(bgr_out)
    out = model(b)["output"]
    seen = model.net.seen
    torch.testing.assert_close(seen[:, 0:3], b["left"][:, [2, 1, 0]], atol=0, rtol=0)
    torch.testing.assert_close(seen[:, 3:6], b["right"][:, [2, 1, 0]], atol=0, rtol=0)
    torch.testing.assert_close(out, bgr_out[:, [2, 1, 0]], atol=0, rtol=0)


def test_single_reads_center_only_in_bgr():
    model = dpd.dpdnet_single_retrained().eval()
    b = make_batch(16, 16)
    model.net = _Recorder(torch.zeros(1, 3, 16, 16))
    model(b)
    torch.testing.assert_close(model.net.seen, b["center"][:, [2, 1, 0]], atol=0, rtol=0)


def test_swapping_views_changes_dual_output_and_dropout_only_in_training(loaded_dual):
    _, model, _, _ = loaded_dual
    b = make_batch(16, 16)
    with torch.no_grad():
        base = model(b)["output"]
        assert torch.equal(base, model(b)["output"])  # eval: Dropout inactive, deterministic
        assert not torch.allclose(base, model({**b, "left": b["right"], "right": b["left"]})["output"])
        model.train()
        try:
            a, c = model(b)["output"], model(b)["output"]
        finally:
            model.eval()
    assert not torch.equal(a, c)
