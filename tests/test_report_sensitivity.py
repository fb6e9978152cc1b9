"""Protocol sensitivity: the same predictions re-scored under 8-bit reading and gamma encoding, by hand."""

import json

import numpy as np
import pytest

from k3dn.data.manifest import write_manifest
from k3dn.io import read_image, write_png16
from k3dn.metrics import image_metrics
from k3dn.report.sensitivity import sensitivity_table

RECORD = {"config_hash": "c", "weights_sha256": "w", "device": "cpu", "dtype": "float32", "size_mode": "resize"}


def _set(tmp_path, rng, dataset, channels=3, n=2):
    shape = (12, 16, 3) if channels == 3 else (12, 16)
    rows = []
    for i in range(n):
        tgt = rng.random(shape)
        write_png16(tmp_path / f"t{i}.png", tgt)
        write_png16(tmp_path / "pred" / f"s{i}.png", np.clip(tgt + 0.05 * rng.standard_normal(shape), 0, 1))
        rows.append(
            {
                "id": f"s{i}",
                "dataset": dataset,
                "split": "test",
                "left": str(tmp_path / f"t{i}.png"),
                "right": str(tmp_path / f"t{i}.png"),
                "target": str(tmp_path / f"t{i}.png"),
                "label": "x",
                "label_source": "test",
                "protocol": "16bit",
                "channels": channels,
            }
        )
    (tmp_path / "pred" / "predictions.json").write_text(json.dumps(RECORD))
    return write_manifest(rows, tmp_path / f"{dataset}_test.csv")


def test_dpdd_predictions_rescored_in_8_bits_by_the_rule_of_evaluate(tmp_path, rng):
    """The 8-bit row truncates the target, not the prediction: the very numbers `k3dn evaluate --protocol 8bit`
    gives, image by image."""
    from k3dn.evaluate import evaluate_predictions

    man = _set(tmp_path, rng, "dpdd")
    df = sensitivity_table([{"method": "m", "test": "dpdd_test", "pred": str(tmp_path / "pred"), "manifest": str(man)}])
    assert list(df["protocol"]) == ["16bit", "8bit", "8bit-pred"] and (df["dtype"] == "float32").all()
    assert set(df["prediction_source"]) == {"suite"}  # made by `k3dn predict`
    want = np.mean(
        [
            image_metrics(
                read_image(tmp_path / "pred" / f"s{i}.png", "16bit"), read_image(tmp_path / f"t{i}.png", "8bit")
            )["psnr"]
            for i in range(2)
        ]
    )
    assert df.loc[1, "psnr"] == pytest.approx(want, abs=1e-9)
    evaluated = evaluate_predictions(tmp_path / "pred", man, protocol="8bit", progress=False)
    assert df.loc[1, "psnr"] == pytest.approx(evaluated["psnr"].mean(), abs=1e-9)
    assert df.loc[1, "ssim"] == pytest.approx(evaluated["ssim"].mean(), abs=1e-9)
    assert df.loc[1, "psnr_change"] == pytest.approx(want - df.loc[0, "psnr"]) and df.loc[0, "psnr_change"] == 0


def test_no_8bit_row_where_the_targets_are_8_bit_files(tmp_path, rng):
    """DDD-syn and RDPD: 8-bit targets read under 8bit are what 16bit reads, so the row would only repeat it."""
    import cv2

    man = _set(tmp_path, rng, "ddd_syn")
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"t{i}.png"), (rng.random((12, 16, 3)) * 255).astype(np.uint8))
    df = sensitivity_table(
        [{"method": "m", "test": "ddd_syn_test", "pred": str(tmp_path / "pred"), "manifest": str(man)}]
    )
    assert list(df["protocol"]) == ["16bit"]


def test_pixel_predictions_rescored_after_gamma(tmp_path, rng):
    man = _set(tmp_path, rng, "pixel", channels=1)
    df = sensitivity_table(
        [
            {
                "method": "m",
                "test": "pixel_test",
                "pred": str(tmp_path / "pred"),
                "manifest": str(man),
                "variants": {"bf16": str(tmp_path / "absent")},
            }
        ]
    )
    assert list(df["protocol"]) == ["linear-raw", "gamma2.2", "8bit-pred"]  # a variant not predicted is left out

    def g(x):
        return x ** (1 / 2.2)

    want = np.mean(
        [
            image_metrics(
                g(read_image(tmp_path / "pred" / f"s{i}.png", channels=1)),
                g(read_image(tmp_path / f"t{i}.png", channels=1)),
            )["psnr"]
            for i in range(2)
        ]
    )
    assert df.loc[1, "psnr"] == pytest.approx(want, abs=1e-9) and df.loc[1, "psnr"] != df.loc[0, "psnr"]


def test_a_variant_prediction_is_scored_under_the_default_protocol(tmp_path, rng):
    man = _set(tmp_path, rng, "dpdd")
    var = tmp_path / "var"
    var.mkdir()
    for i in range(2):
        (var / f"s{i}.png").write_bytes((tmp_path / f"t{i}.png").read_bytes())  # perfect: PSNR inf
    write_png16(var / "s1.png", np.clip(read_image(tmp_path / "t1.png") + 0.01, 0, 1))
    (var / "predictions.json").write_text(json.dumps(dict(RECORD, dtype="bfloat16")))
    df = sensitivity_table(
        [
            {
                "method": "m",
                "test": "dpdd_test",
                "pred": str(tmp_path / "pred"),
                "manifest": str(man),
                "variants": {"bf16": str(var)},
            }
        ]
    )
    row = df[df["prediction"] == "bf16"].iloc[0]
    assert row["protocol"] == "16bit" and row["dtype"] == "bfloat16" and row["psnr"] > df.loc[0, "psnr"]
    # s0 is exact in the variant: left out of every row, so each row and its change average s1 alone
    assert (df["n_exact"] == 1).all() and (df["n_images"] == 1).all()
    s1 = {
        p: image_metrics(read_image(d / "s1.png", "16bit"), read_image(tmp_path / "t1.png", prot))["psnr"]
        for p, d, prot in (
            ("default", tmp_path / "pred", "16bit"),
            ("8bit", tmp_path / "pred", "8bit"),
            ("bf16", var, "16bit"),
        )
    }
    assert df.loc[0, "psnr"] == pytest.approx(s1["default"], abs=1e-9)
    assert df.loc[1, "psnr"] == pytest.approx(s1["8bit"], abs=1e-9)
    assert row["psnr"] == pytest.approx(s1["bf16"], abs=1e-9)
    assert row["psnr_change"] == pytest.approx(row["psnr"] - df.loc[0, "psnr"], abs=1e-12)


def _psnr_of_8bit_quantisation(target_png) -> float:
    """PSNR of a 16-bit image against itself written at 8 bits, from the integers: ``u`` (of 65535) becomes
    ``r = round(u / 257)`` (of 255, i.e. ``257 r`` of 65535; no ties, 257 being odd)."""
    import cv2

    u = cv2.imread(str(target_png), cv2.IMREAD_UNCHANGED).astype(np.int64)
    r = (2 * u + 257) // 514
    err = (257 * r - u) / 65535.0
    return float(10 * np.log10(1.0 / np.mean(err**2)))


def test_a_perfect_prediction_written_at_8_bits_scores_the_quantisation_psnr(tmp_path, rng):
    """The 8bit-pred row's known answer: a prediction equal to its 16-bit target scores inf at full precision and,
    quantised to 8 bits, the PSNR of the quantisation error alone (about 58.9 dB for evenly spread values)."""
    from k3dn.report.sensitivity import protocols_for, score

    man = _set(tmp_path, rng, "dpdd")
    for i in range(2):
        (tmp_path / "pred" / f"s{i}.png").write_bytes((tmp_path / f"t{i}.png").read_bytes())
    reading, both, pred_only = protocols_for("dpdd_test", man)["8bit-pred"]
    full = score(tmp_path / "pred", man, "16bit")
    cut = score(tmp_path / "pred", man, reading, both, pred_transform=pred_only)
    assert np.isinf(full["psnr"]).all()
    want = [_psnr_of_8bit_quantisation(tmp_path / f"t{i}.png") for i in range(2)]
    assert list(cut["psnr"]) == pytest.approx(want, abs=1e-4)
    assert want == pytest.approx([10 * np.log10(12 * 255.0**2)] * 2, abs=0.5)


def test_the_8bit_pred_row_quantises_the_prediction_only(tmp_path, rng):
    """In the table: every method's predictions, quantised, against the 16-bit target, beside the full-precision
    row; 8-bit targets (DDD-syn, RDPD) get no such row (test_no_8bit_row_where_the_targets_are_8_bit_files)."""
    from k3dn.report.sensitivity import quantise_8bit

    man = _set(tmp_path, rng, "dpdd")
    df = sensitivity_table([{"method": "m", "test": "dpdd_test", "pred": str(tmp_path / "pred"), "manifest": str(man)}])
    row = df[df["protocol"] == "8bit-pred"].iloc[0]
    want = np.mean(
        [
            image_metrics(
                np.rint(read_image(tmp_path / "pred" / f"s{i}.png").astype(np.float64) * 255) / 255,
                read_image(tmp_path / f"t{i}.png", "16bit"),
            )["psnr"]
            for i in range(2)
        ]
    )
    assert row["prediction"] == "default" and row["psnr"] == pytest.approx(want, abs=1e-9)
    assert row["psnr_change"] == pytest.approx(want - df.loc[0, "psnr"], abs=1e-12) and row["n_images"] == 2
    x = np.array([0.0, 0.5 / 255 - 1e-9, 0.5 / 255 + 1e-9, 1.0, 1.5])
    assert list(quantise_8bit(x) * 255) == [0, 0, 1, 255, 255]
