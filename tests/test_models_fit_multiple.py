"""The one size-fitting implementation (k3dn.models.blocks) and its two behaviours where reflection runs out."""

import pytest
import torch

from k3dn.infer import fit_batch
from k3dn.models.blocks import fit_to_multiple, pad_to_multiple, restore_from_multiple


def _ramp(h, w):
    return torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)


def test_baselines_pad_with_the_blocks_function():
    from baselines.common import pad_to_multiple as baselines_pad

    assert baselines_pad is pad_to_multiple


def test_too_small_image_replicate_or_reflect_back_and_forth():
    x = _ramp(5, 5)
    rep = pad_to_multiple(x, 16, too_small="replicate")
    ref = pad_to_multiple(x, 16, too_small="reflect")
    assert rep.shape == ref.shape == (1, 1, 16, 16)
    assert torch.equal(rep[..., :5, :5], x) and torch.equal(ref[..., :5, :5], x)
    assert rep[0, 0, 0].tolist() == [0, 1, 2, 3, 4] + [4] * 11
    assert ref[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    # one side too small is enough for the replicate fallback to take both sides
    y = pad_to_multiple(_ramp(5, 30), (16, 32), too_small="replicate")
    assert y[0, 0, 0, 30:].tolist() == [29, 29]


@pytest.mark.parametrize("mult", [8, (8, 16)])
def test_both_behaviours_agree_where_one_reflection_suffices(mult):
    x = torch.rand(2, 3, 13, 21)
    a = pad_to_multiple(x, mult, too_small="replicate")
    b = pad_to_multiple(x, mult, too_small="reflect")
    mh, mw = (mult, mult) if isinstance(mult, int) else mult
    assert a.shape[-2:] == (16, -(-21 // mw) * mw) and a.shape[-2] % mh == 0
    assert torch.equal(a, b) and torch.equal(a[..., 13, :21], x[..., 11, :])  # reflected, edge row not repeated
    assert pad_to_multiple(a, mult) is a  # already a multiple: untouched
    with pytest.raises(ValueError, match="too_small"):
        pad_to_multiple(x, mult, too_small="zeros")


def test_k3dn_fit_reflects_and_infer_fit_replicates():
    x = _ramp(5, 5)
    fitted, size = fit_to_multiple(x, (16, 16), "pad")
    assert torch.equal(fitted, pad_to_multiple(x, 16, too_small="reflect"))
    assert torch.equal(restore_from_multiple(fitted, size, "pad"), x)
    batch, undo = fit_batch({"left": x}, (16, 16), "pad")
    assert torch.equal(batch["left"], pad_to_multiple(x, 16, too_small="replicate"))
    assert torch.equal(undo(batch["left"]), x)


def test_resize_runs_half_precision_in_float32():
    x = torch.rand(1, 3, 17, 23)
    full, _ = fit_to_multiple(x, (8, 8), "resize")
    half, _ = fit_to_multiple(x.bfloat16(), (8, 8), "resize")
    want, _ = fit_to_multiple(x.bfloat16().float(), (8, 8), "resize")
    assert half.dtype == torch.bfloat16 and torch.equal(half, want.bfloat16())
    assert full.shape[-2:] == (24, 24)
