"""k3dn.evaluate on a tiny generated manifest (images written with k3dn.io, manifest with write_manifest)."""

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest

from k3dn.data.manifest import write_manifest
from k3dn.evaluate import EvaluationError, add_commands, evaluate_predictions, summary
from k3dn.io import read_image, write_png16
from k3dn.metrics import image_metrics
from k3dn.provenance import sha256_files


def _make(tmp_path, rng, channels=3, n=3, h=24, w=32):
    data, pred = tmp_path / "data", tmp_path / "pred"
    rows = []
    for i in range(n):
        shape = (h, w, 3) if channels == 3 else (h, w)
        tgt = rng.random(shape)
        write_png16(data / f"s{i}_target.png", tgt)
        write_png16(data / f"s{i}_left.png", tgt)
        write_png16(data / f"s{i}_right.png", tgt)
        noise = 0.0 if i == 0 else 0.02 * i
        write_png16(pred / f"s{i}.png", np.clip(tgt + noise * rng.standard_normal(shape), 0, 1))
        rows.append(
            {
                "id": f"s{i}",
                "dataset": "synth",
                "split": "test",
                "left": str(data / f"s{i}_left.png"),
                "right": str(data / f"s{i}_right.png"),
                "target": str(data / f"s{i}_target.png"),
                "label": ["indoor", "outdoor"][i % 2],
                "label_source": "test",
                "protocol": "16bit",
                "channels": channels,
            }
        )
    man = write_manifest(rows, tmp_path / "manifests" / "synth_test.csv")
    (pred / "predictions.json").write_text(json.dumps(RECORD))
    return pred, man, rows


# What `k3dn predict` writes beside finished predictions (see k3dn.infer).
RECORD = {"config_hash": "c0ffee", "weights_sha256": "w" * 64, "device": "cpu", "dtype": "float32"}


def test_rows_match_reference_metrics(tmp_path, rng):
    pred, man, rows = _make(tmp_path, rng)
    df = evaluate_predictions(pred, man, progress=False)
    assert list(df.columns[:10]) == [
        "id",
        "label",
        "psnr",
        "ssim",
        "rmse",
        "mae",
        "lpips",
        "lpips_note",
        "protocol",
        "channels",
    ]
    assert {"git_commit", "torch", "device", "data_sha256", "backend"} <= set(df.columns)
    assert df["id"].tolist() == ["s0", "s1", "s2"] and df["label"].tolist() == ["indoor", "outdoor", "indoor"]
    assert (df["protocol"] == "16bit").all() and df["lpips"].isna().all()
    assert (df["lpips_note"] == "not requested").all()
    assert df.loc[0, "psnr"] == math.inf  # prediction == target
    for i in (1, 2):
        ref = image_metrics(read_image(pred / f"s{i}.png"), read_image(rows[i]["target"]))
        for k in ("psnr", "ssim", "rmse", "mae"):
            assert df.loc[i, k] == pytest.approx(ref[k], abs=1e-12)
    assert df.loc[0, "data_sha256"] == sha256_files([r["target"] for r in rows])
    # the predictions' provenance travels into every row
    assert (df["weights_sha256"] == RECORD["weights_sha256"]).all() and (df["dtype"] == "float32").all()
    assert (df["config_hash"] == "c0ffee").all() and (df["label_source"] == "test").all()
    t = evaluate_predictions(pred, man, backend="torch", progress=False)
    assert np.allclose(t["psnr"][1:], df["psnr"][1:], atol=1e-6) and np.allclose(t["ssim"], df["ssim"], atol=1e-5)
    s = summary(df.iloc[1:])
    assert s.loc["all", "n"] == 2 and s.loc["outdoor", "psnr"] == pytest.approx(df.loc[1, "psnr"])


def test_8bit_protocol_reads_target_truncated(tmp_path, rng):
    pred, man, rows = _make(tmp_path, rng, n=2)
    df = evaluate_predictions(pred, man, protocol="8bit", progress=False)
    assert (df["protocol"] == "8bit").all()
    ref = image_metrics(read_image(pred / "s1.png", "16bit"), read_image(rows[1]["target"], "8bit"))
    assert df.loc[1, "psnr"] == pytest.approx(ref["psnr"], abs=1e-12)
    assert np.isfinite(df.loc[0, "psnr"])  # the 8-bit target now differs from the full-precision prediction


def test_single_channel_manifest(tmp_path, rng):
    pred, man, rows = _make(tmp_path, rng, channels=1, n=2)
    df = evaluate_predictions(pred, man, progress=False)
    assert (df["channels"] == 1).all()
    ref = image_metrics(read_image(pred / "s1.png"), read_image(rows[1]["target"]))
    assert df.loc[1, "ssim"] == pytest.approx(ref["ssim"], abs=1e-12)
    write_png16(pred / "s1.png", rng.random((24, 32, 3)))  # RGB prediction for a grey target
    with pytest.raises(Exception, match="s1.png.*single-channel target"):
        evaluate_predictions(pred, man, progress=False)


def test_missing_and_mismatched_predictions(tmp_path, rng):
    pred, man, rows = _make(tmp_path, rng)
    (pred / "s2.png").unlink()
    with pytest.raises(EvaluationError, match="s2.png"):
        evaluate_predictions(pred, man, progress=False)
    write_png16(pred / "s2.png", rng.random((24, 30, 3)))
    with pytest.raises(Exception, match="size mismatch.*s2.png.*s2_target.png"):
        evaluate_predictions(pred, man, progress=False)


def test_unfinished_predictions_are_not_scored(tmp_path, rng):
    pred, man, rows = _make(tmp_path, rng)
    (pred / "predictions.json").unlink()  # predict was interrupted before the last image
    with pytest.raises(EvaluationError, match="predictions.json: missing"):
        evaluate_predictions(pred, man, progress=False)


def test_lpips_without_weights_is_nan_with_reason(tmp_path, rng, monkeypatch):
    monkeypatch.setenv("K3DN_LPIPS_ALEXNET", str(tmp_path / "absent.pth"))
    monkeypatch.setenv("K3DN_LPIPS_LIN", str(tmp_path / "absent_lin.pth"))
    pred, man, rows = _make(tmp_path, rng, n=2)
    df = evaluate_predictions(pred, man, lpips=True, progress=False)
    assert df["lpips"].isna().all()
    assert df["lpips_note"].str.contains("not found").all()


def main(argv):
    """``k3dn <argv>`` with only this area's subcommand (isolated from the other areas' modules)."""
    parser = argparse.ArgumentParser(prog="k3dn")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_csv_atomically(tmp_path, rng, capsys):
    pred, man, rows = _make(tmp_path, rng)
    out = tmp_path / "results" / "metrics" / "m" / "synth.csv"
    assert main(["evaluate", "--pred", str(pred), "--manifest", str(man), "--out", str(out), "--quiet"]) == 0
    df = pd.read_csv(out)
    assert len(df) == 3 and df.loc[0, "psnr"] == np.inf and (df["protocol"] == "16bit").all()
    assert sorted(p.name for p in out.parent.iterdir()) == ["synth.csv"]
    assert "wrote" in capsys.readouterr().out
    (pred / "s1.png").unlink()
    from k3dn.cli import main as k3dn_main

    assert (
        k3dn_main(
            ["evaluate", "--pred", str(pred), "--manifest", str(man), "--out", str(tmp_path / "x.csv"), "--quiet"]
        )
        == 1
    )
    assert "s1.png" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
