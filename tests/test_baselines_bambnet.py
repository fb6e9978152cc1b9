"""BaMBNet port: the published container's variants (training checkpoint, ``module.`` prefix), conventions (BGR,
cat(L, R, R), iter_num).

Strict loading, parameter counts and the forward contract are checked for every model by
tests/test_models_contract.py, the output against the official network by tests/test_golden_bambnet.py.
"""

import pytest
import torch

import baselines.bambnet as bam
from baselines.weight_manifests import load_manifest, random_torch_state_dict, write_fake_checkpoint
from k3dn.checkpoint import load_published
from tests.conftest import make_batch

MANIFEST = "bambnet"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = write_fake_checkpoint(MANIFEST, tmp_path_factory.mktemp("bam") / "200_models.pth")
    return load_published(bam.bambnet(), path).eval()


def test_full_training_container_and_module_prefix(tmp_path):
    sd = random_torch_state_dict(load_manifest(MANIFEST), seed=3)
    raw = {
        "state_dict": {f"module.{k}": v for k, v in sd.items()},
        "epoch": 200,
        "optimizers": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
        "schedulers": [{"last_epoch": 3}],
    }
    torch.save(raw, tmp_path / "ckpt.pth")
    model = load_published(bam.bambnet(), tmp_path / "ckpt.pth")
    assert torch.equal(model.net.head[0].weight, sd["head.0.weight"])


def _identity(conv, scale=1.0, src=None):
    """Set ``conv`` to copy input channel src[o] (default o) to output o, times ``scale``, at the centre tap;
    outputs beyond the inputs stay 0."""
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        c = conv.kernel_size[0] // 2
        for o in range(min(conv.out_channels, conv.in_channels) if src is None else conv.out_channels):
            conv.weight[o, o if src is None else src[o], c, c] = scale


def _silence_branches(net):
    """Make every branch output exactly 0: branch 0 convs -> 0 (ReLU(0) = 0); in the residual groups
    each RCAB becomes the identity and the closing conv the negative identity, so x + (-x) = 0."""
    for s in range(1, 9):
        for b, stage in enumerate(getattr(net, f"layer{s}")):
            if b == 0:
                _identity(stage[0], 0.0)
                continue
            group = stage[0]
            for rcab in list(group.body)[:-1]:
                _identity(rcab.body[2], 0.0)
            _identity(group.body[-1], -1.0)


def test_bgr_round_trip_known_answer():
    model = bam.bambnet().eval()
    _silence_branches(model.net)
    _identity(model.net.head[0])  # feature c = relu(input channel c), c < 6
    tail = model.net.tail_hard[0]
    _identity(tail, 0.0)
    with torch.no_grad():  # BGR out (+B, 0, -B) of the left view's blue (BGR 0)
        tail.weight[0, 0, 1, 1], tail.weight[2, 0, 1, 1] = 1.0, -1.0
    batch = make_batch(16, 32)
    with torch.no_grad():
        out = model(batch)["output"]
    blue = batch["left"][:, 2]
    # flipping in and out: RGB output = (-B, 0, +B); a missing flip on either side gives another answer
    expected = torch.sigmoid(torch.stack([-blue, torch.zeros_like(blue), blue], dim=1))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    with torch.no_grad():  # the same read from the right view (BGR channel 3)
        tail.weight[:, 0] = 0
        tail.weight[0, 3, 1, 1], tail.weight[2, 3, 1, 1] = 1.0, -1.0
        out = model(batch)["output"]
    blue = batch["right"][:, 2]
    expected = torch.sigmoid(torch.stack([-blue, torch.zeros_like(blue), blue], dim=1))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_view_order_matters(loaded):
    b = make_batch(32, 48, seed=1)
    swapped = dict(b, left=b["right"], right=b["left"])
    with torch.no_grad():
        assert not torch.allclose(loaded(b)["output"], loaded(swapped)["output"], atol=1e-6)


def test_iter_num_quirk_third_slot_ignored_only_after_curriculum(loaded):
    x = torch.cat([make_batch(32, 48)["left"], make_batch(32, 48)["right"], make_batch(32, 48)["right"]], dim=1)
    x_map = x.clone()
    x_map[:, 6:] = 5.0  # a CoC map in branch 2's range
    net = loaded.net
    assert net.iter_num >= bam.MASK_ITERS  # the wrapper's default is the official test setting
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x_map), rtol=0, atol=0)
        net.iter_num = 0
        try:
            masked_r, masked_map = net(x), net(x_map)
        finally:
            net.iter_num = 1e6
        assert not torch.allclose(masked_r, masked_map)
        assert not torch.allclose(masked_r, net(x))


def test_training_mode_is_differentiable():
    model = bam.bambnet().train()
    out = model(make_batch(16, 16))["output"]
    out.mean().backward()
    assert model.net.head[0].weight.grad is not None and model.net.head[0].weight.grad.abs().sum() > 0
