"""K3DN's inference cache serves a derived weight only for the exact inputs and precision it was computed for."""

from __future__ import annotations

import copy

import torch

from k3dn.models.psf import InvertiblePointConv, SymmetricKernelSet
from k3dn.registry import create_model


def _bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _lu_weight(m: InvertiblePointConv) -> torch.Tensor:
    """The weight from its factors, computed afresh (no cache)."""
    lower, upper = m._factors()
    return m.w_p @ lower @ upper


@torch.no_grad()
def test_a_weight_computed_under_bf16_autocast_is_not_served_to_a_float32_forward():
    torch.manual_seed(0)
    m = InvertiblePointConv(16)
    with _bf16():
        assert m.weight().dtype == torch.bfloat16  # autocast really computes it in bf16
    w = m.weight()
    assert w.dtype == torch.float32 and torch.equal(w, _lu_weight(m))
    inv = m.inverse_weight()
    assert inv.dtype == torch.float32 and torch.allclose(inv @ w, torch.eye(16), atol=1e-5)


@torch.no_grad()
def test_an_in_place_change_of_the_sign_buffer_is_seen():
    torch.manual_seed(0)
    m = InvertiblePointConv(8)
    before = m.weight().clone()
    m.s_sign[0].mul_(-1)  # a buffer the LU factors read, not a parameter
    assert not torch.equal(m.weight(), before) and torch.equal(m.weight(), _lu_weight(m))


@torch.no_grad()
def test_kernels_are_keyed_on_the_autocast_state():
    ks = SymmetricKernelSet(4, 5)
    ks.kernels()
    assert ks._cache._store["kernels"][0][1] is None
    with _bf16():
        ks.kernels()
    assert ks._cache._store["kernels"][0][1] == torch.bfloat16


@torch.no_grad()
def test_k3dn_float32_output_is_unchanged_by_an_earlier_bf16_forward():
    torch.manual_seed(0)
    model = create_model("k3dn_tiny").eval()
    fresh = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(1, 3, 288, 224, generator=g) for k in ("left", "right")}
    with _bf16():
        model(batch)
    assert torch.equal(model(batch)["output"], fresh(batch)["output"])
