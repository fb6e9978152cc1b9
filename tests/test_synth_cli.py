"""``k3dn synth ...`` end to end on tiny sizes."""

import json

import numpy as np

from k3dn.cli import main
from k3dn.io import read_image


def test_cli_dp_standins_and_regen(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("count_val: 0\nmax_coc_px: 5\nn_layers: 6\n")
    assert (
        main(
            [
                "synth",
                "dp",
                "--out",
                str(tmp_path / "dp"),
                "--config",
                str(cfg),
                "--size",
                "32",
                "40",
                "--count-train",
                "2",
                "--count-test",
                "1",
                "--seed",
                "9",
                "--crop",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rendered"] == 3
    assert read_image(tmp_path / "dp/test_l/source/syn00000_L.png").shape == (32, 40, 3)
    meta = json.loads((tmp_path / "dp/synth_meta.json").read_text())
    assert meta["config"]["max_coc_px"] == 5 and meta["config"]["seed"] == 9

    assert main(["synth", "standin-nyu", "--out", str(tmp_path / "nyu.mat"), "--count", "2", "--size", "50", "60"]) == 0
    assert (
        main(
            [
                "synth",
                "ddd-syn",
                "--nyu",
                str(tmp_path / "nyu.mat"),
                "--out",
                str(tmp_path / "ddd"),
                "--train-images",
                "1:1",
                "--test-images",
                "2:2",
                "--test1-images",
                "2:2",
                "--limit",
                "1",
                "--layers",
                "4",
                "--out-size",
                "24",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "ddd/training/dp/4001_r.png").exists()
    assert (
        main(
            [
                "synth",
                "standin-synthia",
                "--out",
                str(tmp_path / "syn"),
                "--sequences",
                "3",
                "--frames",
                "1",
                "--size",
                "20",
                "32",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "synth",
                "rdpd",
                "--synthia",
                str(tmp_path / "syn"),
                "--out",
                str(tmp_path / "rdpd"),
                "--sets",
                "1",
                "--layers",
                "100",
                "--barrel",
                "0",
                "0",
                "0.1",
                "--quiet",
            ]
        )
        == 0
    )
    img = read_image(tmp_path / "rdpd/test_c/source/seq_006/000000.png")
    assert img.shape == (20, 32, 3) and np.all(img[0, 0] == 0)  # barrel leaves black corners
