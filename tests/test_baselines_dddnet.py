"""DDDNet port: the two published files (Estd, Esti) through the wrapper's filter, the Estd -> Esti pipeline, quirks.

Strict loading of the folder, parameter counts and the forward contract are checked for every model by
tests/test_models_contract.py, the outputs against the official networks by tests/test_golden_dddnet.py.
"""

import pytest
import torch

import baselines.dddnet as ddd
from baselines.weight_manifests import load_manifest, random_torch_state_dict, write_fake_checkpoint
from k3dn.checkpoint import CheckpointMismatch, load_published, load_state_dict_strict, read_foreign
from tests.conftest import make_batch

ESTD, ESTI = "dddnet_dpd_Estd", "dddnet_dpd_Esti"
PARAMS = {ESTD: 4_561_338, ESTI: 6_403_476}  # baselines.md §9


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddd")
    return write_fake_checkpoint(ESTD, d / "Estd.pkl"), write_fake_checkpoint(ESTI, d / "Esti.pkl")


@pytest.fixture(scope="module")
def loaded(files):
    return ddd.dddnet().load_published_pair(*files).eval()


@pytest.fixture(scope="module")
def reference_out(loaded):
    with torch.no_grad():
        return loaded(make_batch(64, 64))


def test_wrapper_filter_takes_both_files_and_counts(files, loaded):
    model = ddd.dddnet()
    raw = {"Estd": read_foreign(files[0]), "Esti": read_foreign(files[1])}
    load_state_dict_strict(model, ddd.checkpoint_filter_fn(raw, model))
    for k, v in loaded.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert sum(p.numel() for p in model.parameters()) == sum(PARAMS.values()) == 10_964_814
    with pytest.raises(KeyError, match="estd"):
        ddd.checkpoint_filter_fn({"Estd": raw["Estd"]}, model)


def test_pre_041_file_without_num_batches_tracked_loads(tmp_path):
    sd = {k: v for k, v in random_torch_state_dict(load_manifest(ESTD)).items() if "num_batches_tracked" not in k}
    torch.save(sd, tmp_path / "Estd.pkl")
    model = load_published(ddd.DisparityNet(), tmp_path / "Estd.pkl", ddd.filter_estd)
    assert int(model.feature.start[0].bn.num_batches_tracked) == 0


def test_corrupted_checkpoint_names_missing_and_misshaped(tmp_path):
    sd = random_torch_state_dict(load_manifest(ESTD))
    del sd["module.features.end.1.bn.running_var"]  # even a tensor of the unused module is required
    sd["module.matching.end.0.conv.weight"] = torch.zeros(48, 24, 3, 3, 3)
    torch.save(sd, tmp_path / "Estd.pkl")
    with pytest.raises(CheckpointMismatch) as e:
        load_published(ddd.DisparityNet(), tmp_path / "Estd.pkl", ddd.filter_estd)
    assert e.value.missing == ["features.end.1.bn.running_var"]
    assert [k for k, *_ in e.value.misshaped] == ["matching.end.0.conv.weight"]
    assert "Estd.pkl" in str(e.value)


def test_forward_shapes_range_and_padding(loaded, reference_out):
    assert reference_out["output"].shape == (1, 3, 64, 64)
    out = reference_out["output"]
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0
    disp = reference_out["disparity"]
    assert disp.shape == (1, 64, 64) and disp.min() >= 0 and disp.max() <= ddd.MAX_DISP - 1
    with torch.no_grad():
        odd = loaded(make_batch(59, 62, seed=2))  # reflect-padded to 64x64 inside the wrapper
    assert odd["output"].shape == (1, 3, 59, 62) and odd["refined_disparity"].shape == (1, 59, 62)


def test_too_small_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="64"):
        ddd.DisparityNet()(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64))


def test_cost_volume_shifts_right_view_and_zero_fills():
    fl = torch.arange(2 * 3 * 5, dtype=torch.float32).view(1, 2, 3, 5) + 1
    fr = -fl
    cost = ddd.build_cost_volume(fl, fr, planes=4)
    assert cost.shape == (1, 4, 4, 3, 5)
    for i in range(4):
        torch.testing.assert_close(cost[:, :2, i, :, i:], fl[..., i:])
        torch.testing.assert_close(cost[:, 2:, i, :, i:], fr[..., : 5 - i])
        assert not cost[:, :, i, :, :i].any()


def _copy(loaded, part):
    """A fresh copy of ``loaded.estd`` / ``loaded.esti`` (same weights, same BN mode)."""
    net = ddd.dddnet().eval()
    net.load_state_dict(loaded.state_dict())
    return getattr(net, part)


@pytest.fixture(scope="module")
def parts_out(loaded, reference_out):
    b = make_batch(64, 64)
    with torch.no_grad():
        img, refined = loaded.esti(b["left"], b["right"], reference_out["disparity"])
    return b, reference_out["disparity"], img


def test_pipeline_is_estd_then_esti_on_the_views(reference_out, parts_out):
    _, _, img = parts_out
    torch.testing.assert_close(reference_out["output"], img.clamp(0, 1))


def test_flat_cost_gives_mean_disparity(loaded):
    net = _copy(loaded, "estd")
    with torch.no_grad():
        net.matching.end[1].conv.weight.zero_()  # cost identical on every plane
        disp = net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    torch.testing.assert_close(disp, torch.full_like(disp, (ddd.MAX_DISP - 1) / 2))


def test_batchnorm_uses_image_statistics_like_the_official_test(loaded, parts_out):
    """dual_pixel_test_MB.py never calls .eval(): Estd's BN normalises by the batch. Our eval default
    reproduces train-mode BN exactly, leaves the running buffers alone, and differs from running-stat BN."""
    b, official, _ = parts_out
    bn = loaded.estd.feature.start[0].bn
    assert not loaded.training and bn.use_batch_stats
    assert int(bn.num_batches_tracked) == int(
        random_torch_state_dict(load_manifest(ESTD))["module.feature.start.0.bn.num_batches_tracked"]
    )  # the forward passes did not count
    ref = ddd.DisparityNet()
    ref.load_state_dict(loaded.estd.state_dict())
    with torch.no_grad():
        for m in ref.modules():  # the fake file's random variances can be < 0
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_var.abs_().add_(0.1)
        train_mode = ref.train()(b["left"], b["right"])
        running = ref.eval()(b["left"], b["right"])
    torch.testing.assert_close(official, train_mode)
    assert torch.isfinite(running).all() and not torch.allclose(official, running, atol=1e-3)


def test_unused_modules_do_not_change_the_output(loaded, parts_out):
    b, disp, img = parts_out
    estd, esti = _copy(loaded, "estd"), _copy(loaded, "esti")
    with torch.no_grad():
        for p in list(estd.features.parameters()) + list(esti.conv.parameters()):
            p.add_(1.0)
        torch.testing.assert_close(estd(b["left"], b["right"]), disp)
        torch.testing.assert_close(esti(b["left"], b["right"], disp)[0], img)


def test_direct_output_no_residual(loaded, parts_out):
    b, disp, _ = parts_out
    esti = _copy(loaded, "esti")
    with torch.no_grad():
        esti.decoder1.layer24.weight.zero_()
        esti.decoder1.layer24.bias.fill_(0.25)
        out, _ = esti(b["left"], b["right"], disp)
    # no skip from any input view: the image is whatever decoder1 says
    torch.testing.assert_close(out, torch.full_like(out, 0.25))


def test_view_order_matters(loaded, parts_out):
    # the wrapper's order is pinned by test_pipeline_is_estd_then_esti_on_the_views; here: it matters
    b, disp, img = parts_out
    with torch.no_grad():
        swapped, _ = loaded.esti(b["right"], b["left"], disp)
    assert not torch.allclose(swapped, img, atol=1e-5)


def test_training_mode_unclamped_and_differentiable():
    model = ddd.dddnet().train()
    model.estd.requires_grad_(False)  # keep the test cheap: no 3-D conv backward
    with torch.no_grad():
        model.esti.decoder1.layer24.bias.fill_(3.0)  # push the output outside [0, 1]
    out = model(make_batch(64, 64))["output"]
    assert out.max() > 1
    out.mean().backward()
    assert model.esti.encoder1.layer1.weight.grad.abs().sum() > 0
    assert model.esti.down.conv.weight.grad.abs().sum() > 0
