"""The checkpoint catalogue: every entry loads its random stand-in strictly; preflight stops on manual-only inputs."""

import pytest

from baselines.published import load_checkpoints
from k3dn.preflight import preflight


def test_every_entry_has_an_official_source_first():
    # models, manifests, parameter counts and strict loading: tests/test_models_contract.py
    for name, ck in load_checkpoints().items():
        assert ck.sources and ck.sources[0].role == "official", name


def test_weights_of_one_network_are_told_apart_by_a_tag(tmp_path):
    """Two entries naming one model would leave the protocol of its predictions to chance."""
    import yaml

    from baselines.published import DEFAULT
    from k3dn.data.catalog import CatalogError

    entries = yaml.safe_load(DEFAULT.read_text())["checkpoints"]
    assert entries["ifan_single_16bit"]["model"] == "ifan_single.16bit"
    entries["ifan_single_16bit"]["model"] = "ifan_single"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"checkpoints": entries}))
    with pytest.raises(CatalogError, match=r"\['ifan_single'\] name several checkpoints; .* tag"):
        load_checkpoints(tmp_path / "c.yaml")


def test_fake_checkpoint_round_trip(tmp_path):
    """`k3dn baselines fake` writes the published container with random weights; `verify` loads it strictly."""
    from k3dn.cli import main

    assert main(["baselines", "fake", "restormer_dual", "--dest", str(tmp_path)]) == 0
    assert (
        main(
            ["baselines", "verify", "restormer_dual", "--weights", str(tmp_path / "dual_pixel_defocus_deblurring.pth")]
        )
        == 0
    )


def test_preflight_lists_manual_inputs_with_their_place(tmp_path):
    # DPDD's only official source is a sync.com link, but mirrors are fetchable: no blocker.
    assert preflight(["dpdd"], [], raw_root=tmp_path, ckpt_root=tmp_path) == []
    # DPDNet's weights are only on sync.com: a blocker that says where the file goes ...
    problems = preflight([], ["dpdnet_dual"], raw_root=tmp_path, ckpt_root=tmp_path)
    assert len(problems) == 1 and "sync.com" in problems[0]
    assert str(tmp_path / "dpdnet_dual" / "defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5") in problems[0]
    # ... and disappears once the file is in place.
    (tmp_path / "dpdnet_dual").mkdir()
    (tmp_path / "dpdnet_dual" / "defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5").write_bytes(b"x")
    assert preflight([], ["dpdnet_dual"], raw_root=tmp_path, ckpt_root=tmp_path) == []


def test_unknown_checkpoint_is_a_clear_error():
    from baselines.published import get_checkpoint
    from k3dn.data.catalog import CatalogError

    with pytest.raises(CatalogError, match="unknown checkpoint 'nope'"):
        get_checkpoint("nope")
