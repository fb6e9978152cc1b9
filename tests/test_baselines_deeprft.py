"""DeepRFT port: DO-Conv folding, strict loading of the published training-form file into both forms,
the official 512-window tiling, residual output.

The forward contract is checked for every model by tests/test_models_contract.py, the output against the official
network by tests/test_golden_deeprft.py."""

import pytest
import torch

import baselines.deeprft as rft
from baselines.weight_manifests import load_manifest, random_torch_state_dict, write_fake_checkpoint
from k3dn.checkpoint import CheckpointMismatch, load_published
from tests.conftest import make_batch

SAVED, INFER = "deeprft_defocus_saved", "deeprft_defocus_inference"
PARAMS_INFER, PARAMS_SAVED = 9_551_088, 10_827_810  # baselines.md §7


@pytest.fixture(scope="module")
def saved_file(tmp_path_factory):
    return write_fake_checkpoint(SAVED, tmp_path_factory.mktemp("rft") / "model_DPDD.pth")


@pytest.fixture(scope="module")
def folded(saved_file):
    return load_published(rft.deeprft(tile=None), saved_file).eval()


@pytest.fixture(scope="module")
def unfolded(saved_file):
    return load_published(rft.DeepRFT(doconv=True, tile=None), saved_file, rft.checkpoint_filter_fn).eval()


# ------------------------------------------------------------------------------------------- folding


def test_fold_matches_explicit_sum_and_identity_case():
    g = torch.Generator().manual_seed(1)
    W, D = torch.randn(4, 3, 9, generator=g), torch.randn(3, 9, 9, generator=g)
    diag = rft._identity_diag(3, 9, 9)
    K = rft.fold_doconv(W, D, diag)
    ref = torch.zeros(4, 3, 9)
    for o in range(4):
        for i in range(3):
            for m in range(9):
                ref[o, i, m] = sum((D[i, m, s] + diag[i, m, s]) * W[o, i, s] for s in range(9))
    torch.testing.assert_close(K, ref.view(4, 3, 3, 3))
    # D = 0 (DO-Conv's initial state): the kernel is W itself, taps in row-major order
    torch.testing.assert_close(rft.fold_doconv(W, torch.zeros_like(D), diag), W.view(4, 3, 3, 3))
    torch.testing.assert_close(rft.fold_doconv(W[..., :1]), W[..., :1].view(4, 3, 1, 1))


@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (1, 1)])
def test_folded_conv_equals_doconv_on_random_tensors(kernel, stride):
    do = rft.DOConv2d(5, 7, kernel, stride)
    with torch.no_grad():
        if do.D is not None:
            do.D.normal_()  # trained state: D far from 0
    plain = rft.FoldedConv2d(5, 7, kernel, stride)
    plain.load_state_dict(rft.fold_doconv_state_dict(do.state_dict()))
    x = torch.randn(2, 5, 12, 16)
    torch.testing.assert_close(plain(x), do(x), rtol=1e-5, atol=1e-5)
    assert not do.D_diag.requires_grad if do.D_diag is not None else True


# ------------------------------------------------------------------------------------------- loading


def test_saved_file_folds_into_inference_form(folded):
    m_inf, m_saved = load_manifest(INFER), load_manifest(SAVED)
    own = folded.net.state_dict()
    assert [(k, list(v.shape)) for k, v in own.items()] == [(k, s) for k, s, *_ in m_inf["tensors"]]
    assert sum(p.numel() for p in folded.parameters()) == m_inf["total_params"] == PARAMS_INFER
    src = random_torch_state_dict(m_saved)
    k3 = "Encoder.0.layers.0.main.0.main.0"
    torch.testing.assert_close(own[k3 + ".W"], rft.fold_doconv(src[k3 + ".W"], src[k3 + ".D"], src[k3 + ".D_diag"]))
    k1 = "SCM1.main.3.main.0.W"
    assert torch.equal(own[k1], src[k1].view(125, 64, 1, 1))
    assert torch.equal(own["feat_extract.3.main.0.weight"], src["feat_extract.3.main.0.weight"])


def test_saved_file_loads_as_is_into_training_form(unfolded):
    m = load_manifest(SAVED)
    src = random_torch_state_dict(m)
    own = unfolded.net.state_dict()
    assert len(own) == m["num_tensors"]
    for k, v in src.items():
        assert torch.equal(own[k], v), k
    assert sum(p.numel() for p in unfolded.parameters()) == m["total_params"] == PARAMS_SAVED
    trainable = sum(p.numel() for p in unfolded.parameters() if p.requires_grad)
    assert trainable == PARAMS_SAVED - 638_361  # frozen D_diag identities


def test_module_prefix_and_folded_file_variants(tmp_path, folded):
    sd = random_torch_state_dict(load_manifest(SAVED))
    torch.save(
        {"epoch": 3000, "state_dict": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}},
        tmp_path / "multi_gpu.pth",
    )
    model = load_published(rft.deeprft(), tmp_path / "multi_gpu.pth")
    for k, v in folded.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # an already folded (inference-form) file also loads into the inference form, not into DO-Conv
    torch.save({"state_dict": folded.net.state_dict()}, tmp_path / "folded.pth")
    load_published(rft.deeprft(), tmp_path / "folded.pth")
    with pytest.raises(ValueError, match="already folded"):
        load_published(rft.DeepRFT(doconv=True), tmp_path / "folded.pth", rft.checkpoint_filter_fn)


def test_corrupted_checkpoint_names_missing_and_misshaped(tmp_path):
    sd = random_torch_state_dict(load_manifest(SAVED))
    del sd["Convs.1.main.0.W"]
    sd["feat_extract.4.main.0.weight"] = torch.zeros(64, 32, 3, 3)
    torch.save({"epoch": 1, "state_dict": sd, "optimizer": {}}, tmp_path / "bad.pth")
    for model in (rft.deeprft(), rft.DeepRFT(doconv=True)):
        with pytest.raises(CheckpointMismatch) as e:
            load_published(model, tmp_path / "bad.pth", rft.checkpoint_filter_fn)
        assert e.value.missing == ["net.Convs.1.main.0.W"]
        assert [k for k, *_ in e.value.misshaped] == ["net.feat_extract.4.main.0.weight"]
        assert "bad.pth" in str(e.value)


# ------------------------------------------------------------------------------------------- forward


def test_folded_network_equals_doconv_network(folded, unfolded):
    b = make_batch(16, 16, seed=3, views=("center",))
    with torch.no_grad():
        torch.testing.assert_close(folded(b)["output"], unfolded(b)["output"], rtol=1e-4, atol=1e-4)


def test_residual_output_equals_input_when_last_conv_is_zero(folded):
    model = rft.deeprft_wholeimage().eval()
    model.load_state_dict(folded.state_dict())
    with torch.no_grad():
        model.net.feat_extract[5].main[0].W.zero_()
        b = make_batch(16, 20, views=("center",))
        torch.testing.assert_close(model(b)["output"], b["center"])


# -------------------------------------------------------------------------------------------- tiling


def test_tiling_grid_matches_the_official_protocol():
    calls = []
    x = torch.zeros(1, 1, 1120, 1680)
    rft.tiled_apply(lambda t: calls.append(t.shape) or t, x, 512)
    assert calls == [(12, 1, 512, 512)]  # 6 grid + 2 right + 3 bottom + 1 corner
    x = torch.randn(2, 3, 70, 45)
    torch.testing.assert_close(rft.tiled_apply(lambda t: t, x, 32), x)  # reassembly is exact


def test_edge_windows_only_fill_the_remainder():
    x = torch.arange(40 * 40, dtype=torch.float32).view(1, 1, 40, 40)
    out = rft.tiled_apply(lambda t: t.mean(dim=(2, 3), keepdim=True).expand_as(t), x, 32)
    assert torch.all(out[..., :32, :32] == x[..., :32, :32].mean())  # grid window kept
    assert torch.all(out[..., :32, 32:] == x[..., :32, 8:].mean())  # right window, last 8 cols
    assert torch.all(out[..., 32:, :32] == x[..., 8:, :32].mean())  # bottom window, last 8 rows
    assert torch.all(out[..., 32:, 32:] == x[..., 8:, 8:].mean())  # corner window


def test_wrapper_tiles_in_eval_and_results_depend_on_the_tile():
    # freshly initialised weights: the fake file's 0.02-scale weights leave the output ~= the input
    tiled, whole = rft.deeprft(tile=16).eval(), rft.deeprft_wholeimage().eval()
    whole.load_state_dict(tiled.state_dict())
    assert whole.tile is None and rft.deeprft().tile == 512
    b = make_batch(24, 24, seed=5, views=("center",))
    with torch.no_grad():
        got = tiled(b)["output"]
        torch.testing.assert_close(got, rft.tiled_apply(tiled.net, b["center"], 16).clamp(0, 1))
        full = whole(b)["output"]
    assert (got - full).abs().max() > 1e-3  # window borders and the FFT's period change the result


def test_training_mode_multiscale_unclamped_and_differentiable():
    model = rft.DeepRFT(doconv=True).train()
    with torch.no_grad():
        model.net.feat_extract[5].main[0].W.zero_()
    b = {"center": torch.full((1, 3, 16, 16), 0.5)}
    b["center"][..., :8, :] = 1.5  # out of range on purpose: no clamp in training
    out = model(b)
    assert out["output"].max() > 1
    assert [s.shape[-1] for s in out["side_outputs"]] == [8, 4]
    (out["output"].mean() + sum(s.mean() for s in out["side_outputs"])).backward()
    assert model.net.Encoder[0].layers[0].main[0].main[0].D.grad.abs().sum() > 0
    assert model.net.Encoder[0].layers[0].main[0].main[0].D_diag.grad is None
