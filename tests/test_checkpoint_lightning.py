"""A Lightning checkpoint as its trainer writes it: the weights beside the run's configuration, pickled as omegaconf
objects (GRL's published ``.ckpt`` files are such files). ``read_foreign`` reads the weights without importing or
running any configuration class, and still refuses a file that names anything else."""

import argparse

import pytest
import torch

from k3dn.checkpoint import ConfigPlaceholder, UnsafeCheckpoint, load_published, read_foreign

omegaconf = pytest.importorskip("omegaconf")


def lightning_ckpt(path, state_dict: dict, **extra):
    """The keys PyTorch Lightning 1.6 saves, with ``save_hyperparameters(hparams)`` of a hydra config."""
    hparams = omegaconf.OmegaConf.create(
        {"model": {"depths": [4, 4, 8], "window_size": 16, "stripe_groups": [None, None]}, "lr": 2e-4, "tag": "db"}
    )
    ckpt = {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "1.6.5",
        "state_dict": state_dict,
        "optimizer_states": [
            {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 2e-4, "params": [0]}]}
        ],
        "lr_schedulers": [{"last_epoch": 3}],
        "callbacks": {"ModelCheckpoint{'monitor': 'psnr'}": {"best_model_score": torch.tensor(27.0)}},
        "loops": {"fit_loop": {"state_dict": {}}},
        "hparams_name": "hparams",
        "hyper_parameters": hparams,
        **extra,
    }
    torch.save(ckpt, path)
    return path


def test_the_configuration_is_read_as_placeholders_and_never_run(tmp_path, monkeypatch):
    def run(*a, **k):
        raise AssertionError("omegaconf code ran while reading a checkpoint")

    path = lightning_ckpt(tmp_path / "run.ckpt", {"model.w": torch.arange(6.0).reshape(2, 3)})
    for cls in (omegaconf.DictConfig, omegaconf.ListConfig):
        monkeypatch.setattr(cls, "__setstate__", run)
        monkeypatch.setattr(cls, "__init__", run)
    got = read_foreign(path)
    assert torch.equal(got["state_dict"]["model.w"], torch.arange(6.0).reshape(2, 3))
    assert isinstance(got["hyper_parameters"], ConfigPlaceholder) and got["epoch"] == 3


def test_a_file_naming_anything_else_is_still_refused(tmp_path):
    """Beside the configuration, any other class is refused by name, even a harmless one."""
    path = lightning_ckpt(tmp_path / "other.ckpt", {"model.w": torch.ones(1)}, args=argparse.Namespace(lr=1))
    with pytest.raises(
        UnsafeCheckpoint, match=r"other\.ckpt: refuses to unpickle code .*it names argparse\.Namespace\)"
    ):
        read_foreign(path)


def test_grl_loads_strictly_from_a_lightning_file_with_its_configuration(tmp_path):
    """The published GRL container with the hyper_parameters its trainer saves: every tensor reaches the port."""
    from baselines.published import get_checkpoint
    from baselines.weight_manifests import load_manifest, random_torch_state_dict
    from k3dn.registry import create_model

    manifest = load_manifest(get_checkpoint("grl_b_dual").manifests[0])
    sd = random_torch_state_dict(manifest, seed=5)
    model = load_published(create_model("grl_b_dual"), lightning_ckpt(tmp_path / "grl.ckpt", sd))
    got = model.state_dict()
    for key in ("model.conv_first.weight", "model.conv_last.weight"):
        assert torch.equal(got[key.removeprefix("model.")], sd[key])


def test_a_torch_without_the_names_api_says_which_version_reads_it(tmp_path, monkeypatch):
    path = lightning_ckpt(tmp_path / "run.ckpt", {"model.w": torch.ones(1)})
    monkeypatch.delattr(torch.serialization, "get_unsafe_globals_in_checkpoint")
    with pytest.raises(UnsafeCheckpoint, match=r"run\.ckpt: holds more than plain tensors .*needs torch >= 2\.6"):
        read_foreign(path)
