"""LaKDNet dual port: the channel LayerNorm, the block's shortcuts, the view conventions (cat(L, R, C), residual on
C), padding like run.py and clamping in eval only.

Loading the published containers, parameter counts and the forward contract are checked for every model by
tests/test_models_contract.py, the outputs against the official network by tests/test_golden_lakdnet.py.
"""

import pytest
import torch
import torch.nn.functional as F

import baselines.lakdnet as lak
from k3dn.checkpoint import load_published
from k3dn.registry import create_model
from tests.conftest import make_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_channel_layernorm_is_layernorm_over_channels():
    norm = lak.ChannelLayerNorm(16)
    with torch.no_grad():
        norm.body.weight.normal_()
        norm.body.bias.normal_()
    x = torch.randn(2, 16, 5, 7) * 3 + 1
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (16,), norm.body.weight, norm.body.bias, eps=1e-5).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), ref, atol=1e-5, rtol=1e-5)


def test_block_adds_the_ffn_to_its_input_not_to_the_mixed_features():
    """With the feed-forward's last conv at zero the block is the identity, whatever the mixer computes."""
    block = lak.LaKDBlock(8, 9, 2.3).eval()
    with torch.no_grad():
        block.ffn.project_out.weight.zero_()
        x = torch.randn(1, 8, 12, 12)
        assert block.mixer(block.norm1(x)).abs().max() > 0.1
        torch.testing.assert_close(block(x), x, atol=0, rtol=0)


def test_mixer_shortcuts_come_from_its_input():
    """Step 2 sees ``dw2(y) + x`` with x the mixer's input: with dw2 at zero, step 1 cannot reach the output."""
    mixer = lak.Mixer(8, 9).eval()
    x = torch.randn(1, 8, 12, 12)
    with torch.no_grad():
        mixer.dense_depth_2.weight.zero_()
        base = mixer(x)
        mixer.dense_point_1.weight.normal_()
        mixer.dense_depth_1.weight.normal_()
        torch.testing.assert_close(mixer(x), base, atol=0, rtol=0)
        # and the last shortcut is x too: with the last 1x1 conv at zero (GELU(0) = 0) the mixer returns x
        mixer.dense_point_2.weight.zero_()
        mixer.dense_point_2.bias.zero_()
        torch.testing.assert_close(mixer(x), x, atol=0, rtol=0)


@pytest.fixture(scope="module")
def small():
    return lak.lakdnet_dual_s().eval()


def test_embedding_sees_left_right_center_in_that_order(small):
    """Channels 0:3 of the embedding read L, 3:6 R, 6:9 C: silencing one group makes that view, and only it,
    irrelevant to the network's residual (C also reaches the output through the residual itself, so the residual,
    the output conv's result, is what is compared)."""
    b = make_batch(16, 24, seed=100)
    saved = small.embed.weight.clone()
    seen = {}
    hook = small.output.register_forward_hook(lambda mod, args, out: seen.__setitem__("residual", out))

    def residual(batch):
        small(batch)
        return seen["residual"]

    try:
        for group, view in enumerate(("left", "right", "center")):
            with torch.no_grad():
                small.embed.weight.copy_(saved)
                small.embed.weight[:, 3 * group : 3 * group + 3] = 0
                base = residual(b)
                for other in ("left", "right", "center"):
                    moved = (residual({**b, other: torch.rand(1, 3, 16, 24)}) - base).abs().max()
                    assert (moved == 0) == (other == view), (view, other, float(moved))
    finally:
        hook.remove()
        with torch.no_grad():
            small.embed.weight.copy_(saved)


def test_swapping_left_and_right_changes_the_output(small):
    b = make_batch(16, 24, seed=101)
    with torch.no_grad():
        assert not torch.allclose(small(b)["output"], small({**b, "left": b["right"], "right": b["left"]})["output"])


def test_output_is_center_plus_residual_and_clamped_in_eval_only():
    model = lak.lakdnet_dual_s().eval()
    with torch.no_grad():
        model.output.weight.zero_()
        b = make_batch(16, 16, seed=102)
        torch.testing.assert_close(model(b)["output"], b["center"], atol=0, rtol=0)
        hot = {**b, "center": b["center"] + 1.0}
        assert model(hot)["output"].max() == 1.0
        model.train()  # training sees the raw output (the suite's L1 on it), not the official in-network clip
        torch.testing.assert_close(model(hot)["output"], hot["center"], atol=0, rtol=0)


def test_other_sizes_are_reflect_padded_to_8_and_cropped_like_run_py(small):
    """run.py's crop_image reflect-pads bottom/right to the next multiple of 8; the wrapper does the same."""
    b = make_batch(20, 30, seed=103)
    x = torch.cat([b["left"], b["right"], b["center"]], 1)
    with torch.no_grad():
        ours = small(b)["output"]
        official = lak.LaKDNet.forward(small, F.pad(x, (0, 2, 0, 4), mode="reflect"))[..., :20, :30].clamp(0, 1)
        replicate = lak.LaKDNet.forward(small, F.pad(x, (0, 2, 0, 4), mode="replicate"))[..., :20, :30].clamp(0, 1)
    assert ours.shape == (1, 3, 20, 30)
    torch.testing.assert_close(ours, official, atol=0, rtol=0)
    assert not torch.allclose(ours, replicate)


def test_filter_drops_a_dataparallel_prefix(tmp_path):
    """The published file has plain keys (strict official load); a ``module.`` save of a retrained model loads too."""
    model = create_model("lakdnet_dual_s")
    sd = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "w.pth")
    load_published(model, tmp_path / "w.pth")
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
