"""GRL-B port: the view conventions (cat(L, R), direct prediction), clamping, the padding to 96, the test-time
tiling and its wrapper, and the checkpoint filter.

Loading the published container, parameter counts and the forward contract are checked for every model by
tests/test_models_contract.py, the outputs and the tiling against the official code by tests/test_golden_grl.py.
The networks here are the published layout cut down to one block of 36 channels; where the window sizes do not
matter they are shrunk too (window 8, stripes 16x32: inputs padded to 32 instead of 96).
"""

import pytest
import torch

import baselines.grl as grl
from tests.conftest import make_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw) -> grl.GRLDefocus:
    torch.manual_seed(0)
    return grl.grl_b_dual(**{"depths": (1,), "embed_dim": 36, **kw}).eval()


@pytest.fixture(scope="module")
def model():
    return tiny(tile=None)


@pytest.fixture(scope="module")
def cheap():
    return tiny(tile=None, window_size=8, stripe_size=(16, 32))


def test_feeds_cat_left_right(cheap):
    """Channels 0:3 of the first conv see L, 3:6 see R: silencing 3:6 makes R irrelevant, not L."""
    b = make_batch(24, 40, seed=100)
    with torch.no_grad():
        swapped = cheap({**b, "left": b["right"], "right": b["left"]})["output"]
        assert not torch.allclose(cheap(b)["output"], swapped)
        saved = cheap.conv_first.weight[:, 3:].clone()
        cheap.conv_first.weight[:, 3:] = 0
        try:
            base = cheap(b)["output"]
            new_r = cheap({**b, "right": torch.rand(1, 3, 24, 40)})["output"]
            new_l = cheap({**b, "left": torch.rand(1, 3, 24, 40)})["output"]
        finally:
            cheap.conv_first.weight[:, 3:] = saved
    torch.testing.assert_close(new_r, base, atol=0, rtol=0)
    assert not torch.allclose(new_l, base)


def test_direct_prediction_clamped_in_eval_only(cheap):
    """A zero last conv predicts its bias everywhere (no input view is added back); eval clamps, training not."""
    b = make_batch(24, 40, seed=100)
    with torch.no_grad():
        saved = cheap.conv_last.weight.clone(), cheap.conv_last.bias.clone()
        cheap.conv_last.weight.zero_()
        cheap.conv_last.bias.copy_(torch.tensor([-0.5, 0.25, 1.5]))
        try:
            out = cheap(b)["output"]
            cheap.train()
            raw = cheap(b)["output"]
        finally:
            cheap.eval()
            cheap.conv_last.weight.copy_(saved[0])
            cheap.conv_last.bias.copy_(saved[1])
    want = torch.tensor([0.0, 0.25, 1.0]).view(1, 3, 1, 1).expand(1, 3, 24, 40)
    torch.testing.assert_close(out, want, atol=0, rtol=0)
    torch.testing.assert_close(raw, torch.tensor([-0.5, 0.25, 1.5]).view(1, 3, 1, 1).expand_as(raw), atol=0, rtol=0)


def test_pads_to_96_by_reflection_or_zeros(model):
    x = torch.rand(1, 6, 50, 100)
    padded = model.pad(x)
    assert padded.shape[-2:] == (96, 192)
    torch.testing.assert_close(padded[..., 50, :100], x[..., 48, :])  # reflected, edge row not repeated
    small = model.pad(x[..., :40, :])  # a 56-row pad cannot reflect 40 rows: zeros (also for the columns)
    assert small.shape[-2:] == (96, 192) and not small[..., 40:, :].any() and not small[..., 100:].any()
    assert model.pad(torch.rand(1, 6, 96, 192)).shape[-2:] == (96, 192)
    with torch.no_grad():
        assert model(make_batch(50, 100))["output"].shape == (1, 3, 50, 100)


def test_geometry_is_kept_out_of_the_state_dict(model):
    """The published file's 480x480 tables and masks are not loaded: the port holds parameters only."""
    assert not list(model.buffers())
    with torch.no_grad():
        model(make_batch(24, 40))
    assert (96, 96, "cpu") in model._geometry and not list(model.buffers())
    geo = model._geometry[(96, 96, "cpu")]
    # 96x96: 36 windows of 16x16; two 48x96 stripes; anchors 12x24 per stripe
    assert geo["labels_w"].shape == (36, 256) and geo["labels_h_stripe"].shape == (2, 4608)
    assert geo["labels_h_anchor"].shape == (2, 288) and geo["index_h_w2a"].shape == (4608, 288)
    assert geo["index_v_a2w"].shape == (288, 4608)
    table = geo["table_h"]  # 48 + 12 - 1 rows, 96 + 24 - 1 columns of offsets
    assert table.shape == (1, 59, 119, 2) and int(geo["index_h_w2a"].max()) < 59 * 119
    assert int(geo["index_h_a2w"].min()) == 0 and int(geo["index_h_w2a"].min()) == 0


@pytest.mark.parametrize("h,w", [(72, 88), (40, 40), (40, 100), (10, 90), (5, 5)])
def test_tiling_covers_every_pixel_once_averaged(h, w):
    """The plain mean of identical tiles is the input: no pixel missing or counted with the wrong weight, also
    where a side is not longer than the overlap (whole image; the official grid would leave NaN there)."""
    x = torch.rand(2, 6, h, w)
    calls = []

    def fn(t):
        calls.append(t.shape[-2:])
        return t[:, :3] * 2

    out = grl.tiled_forward(fn, x, 40, 12)
    torch.testing.assert_close(out, x[:, :3] * 2, atol=1e-6, rtol=0)
    side = min(40, h, w)
    if side > 12:
        assert all(tuple(c) == (side, side) for c in calls)
    else:
        assert [tuple(c) for c in calls] == [(h, w)]


def test_tiling_grid_is_the_official_one():
    """72x88 with tile 40 / overlap 12: starts every 28 px and one flush with the far edge."""
    starts = []

    def fn(t):
        starts.append((int(t[0, 0, 0, 0]), int(t[0, 1, 0, 0])))
        return t[:, :3]

    rows, cols = torch.meshgrid(torch.arange(72.0), torch.arange(88.0), indexing="ij")
    grl.tiled_forward(fn, torch.stack([rows, cols, rows])[None], 40, 12)
    assert starts == [(r, c) for r in (0, 28, 32) for c in (0, 28, 48)]


def test_wrapper_tiles_in_eval_and_runs_whole_in_training():
    tiled = tiny(tile=48, tile_overlap=16, window_size=8, stripe_size=(16, 32))
    b = make_batch(48, 80, seed=3)  # two 48x48 tiles, at columns 0 and 32
    x = torch.cat([b["left"], b["right"]], 1)
    with torch.no_grad():
        out = tiled(b)["output"]
        torch.testing.assert_close(out, grl.tiled_forward(lambda t: grl.GRL.forward(tiled, t), x, 48, 16).clamp(0, 1))
        whole = grl.GRL.forward(tiled, x)
        assert not torch.allclose(out, whole.clamp(0, 1))
        tiled.train()
        torch.testing.assert_close(tiled(b)["output"], whole, atol=0, rtol=0)


def test_filter_takes_the_lightning_state_dict_and_drops_what_the_official_drops(model):
    own = model.state_dict()
    sd = {"current_val_metric": torch.zeros(4), "best_val_metric": torch.zeros(4), "best_iter": torch.zeros(4)}
    # size-derived buffers under both namings the official convert_checkpoint knows
    for name in ("table_w", "index_sh_a2w", "mask_sv_w2a"):
        sd[f"model.{name}"] = torch.zeros(1)
    sd["model.layers.0.blocks.0.attn.window_attn.attn_transform.relative_coords_table"] = torch.zeros(1)
    sd["model.layers.0.blocks.0.attn.window_attn.attn_transform.relative_position_index"] = torch.zeros(1)
    sd["model.layers.0.blocks.0.attn.window_attn.attn_transform.attn_mask"] = torch.zeros(1)
    sd.update({f"model.{k}": v for k, v in own.items()})
    out = grl.checkpoint_filter_fn({"epoch": 3, "global_step": 10, "state_dict": sd}, model)
    assert list(out) == list(own)
    assert list(grl.checkpoint_filter_fn(dict(own), model)) == list(own)  # an already converted state dict
