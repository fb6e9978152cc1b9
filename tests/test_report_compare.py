"""``k3dn compare`` and the pairwise matrix on synthetic per-image metrics with known answers.

A tie is an image whose two scores differ by at most the tolerance (0.01 dB PSNR by default), so two identical
methods tie on every image (tie rate 100%, win rate 0%) and a constant +0.5 dB offset wins every image.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from k3dn.cli import main
from k3dn.evaluate import PROVENANCE, RESULT_COLUMNS, SOURCE
from k3dn.report.compare import (
    compare_methods,
    matrix_grid,
    outcome,
    pairwise_for_test,
    pairwise_matrix,
    read_per_image,
)
from k3dn.report.stats import paired_diff_ci
from tests.conftest import one_error_line

TEST = "dpdd_test"
N = 76


def _scores(seed: int = 0, n: int = N):
    rng = np.random.default_rng(seed)
    return rng.normal(25.0, 3.0, n), rng.uniform(0.6, 0.95, n)


def _labels(n: int = N) -> list[str]:
    return ["indoor" if i < n // 2 else "outdoor" for i in range(n)]


def write_metrics(root, method, psnr, ssim, labels=None, ids=None, protocol="16bit", data="d" * 64, source=None):
    """A per-image metrics file as ``k3dn evaluate`` writes it; without ``source`` (one value, or one per image)
    as it wrote it before ``prediction_source`` existed."""
    n = len(psnr)
    df = pd.DataFrame(
        {
            "id": ids or [f"img{i:03d}" for i in range(n)],
            "label": labels if labels is not None else [""] * n,
            "psnr": psnr,
            "ssim": ssim,
            "rmse": 0.05,
            "mae": 0.03,
            "lpips": np.nan,
            "lpips_note": "not requested",
            "protocol": protocol,
            "channels": 3,
            **{c: "x" for c in PROVENANCE},
        }
    )
    df["data_sha256"] = data
    columns = RESULT_COLUMNS + PROVENANCE
    if source is not None:
        df["prediction_source"], df["prediction_note"] = source, ""
        columns += SOURCE
    path = root / method / f"{TEST}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df[columns].to_csv(path, index=False)
    return path


def _row(summary, group="combined", metric="psnr") -> pd.Series:
    hit = summary[(summary["group"] == group) & (summary["metric"] == metric)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_identical_methods_zero_interval_and_every_image_a_tie(tmp_path):
    psnr, ssim = _scores()
    for m in ("a", "b"):
        write_metrics(tmp_path, m, psnr, ssim, _labels())
    pairs, summary = compare_methods("a", "b", TEST, tmp_path)
    assert list(summary["group"].unique()) == ["combined", "indoor", "outdoor"]
    for _, r in summary.iterrows():
        assert r["mean_diff"] == r["ci95_low"] == r["ci95_high"] == 0.0
        assert not r["excludes_zero"]
        assert (r["tie_rate"], r["win_rate"], r["loss_rate"]) == (1.0, 0.0, 0.0)
        assert r["win_rate_ties_half"] == 0.5  # the "50%": a method is as good as itself
        assert r["ties"] == r["n_images"]
    assert set(pairs["psnr_outcome"]) == {"tie"}
    assert _row(summary)["tie_rule"].startswith("tie: |psnr_a - psnr_b| <= 0.01")


def test_constant_half_db_offset_wins_every_image_and_is_resolved(tmp_path):
    psnr, ssim = _scores(1)
    write_metrics(tmp_path, "base", psnr, ssim)
    write_metrics(tmp_path, "plus", psnr + 0.5, ssim)
    noise = np.random.default_rng(2).normal(0, 0.1, N)
    write_metrics(tmp_path, "noisy", psnr + 0.5 + noise, ssim)

    _, s = compare_methods("plus", "base", TEST, tmp_path)
    r = _row(s)
    assert r["ci95_low"] == pytest.approx(0.5) and r["ci95_high"] == pytest.approx(0.5) and r["excludes_zero"]
    assert (r["win_rate"], r["tie_rate"], r["loss_rate"], r["win_rate_ties_half"]) == (1.0, 0.0, 0.0, 1.0)
    # SSIM did not move: all ties there
    assert _row(s, metric="ssim")["tie_rate"] == 1.0

    r = _row(compare_methods("noisy", "base", TEST, tmp_path)[1])
    assert 0 < r["ci95_low"] < 0.5 < r["ci95_high"] and r["excludes_zero"] and r["win_rate"] == 1.0
    # the other way round: the interval mirrored, every image lost
    r = _row(compare_methods("base", "noisy", TEST, tmp_path)[1])
    assert r["ci95_high"] < 0 and r["mean_diff"] == pytest.approx(-0.5 - noise.mean()) and r["loss_rate"] == 1.0


def test_tie_tolerance_and_sign_convention():
    # A - B: +0.02 wins, -0.02 loses, 0.005 and 0 are within 0.01 dB
    assert list(outcome([0.02, -0.02, 0.005, 0.0, -0.009], 0.01)) == ["win", "loss", "tie", "tie", "tie"]
    assert list(outcome([0.0, 1e-9], 0.0)) == ["tie", "win"]


def test_a_difference_of_exactly_the_tolerance_is_a_tie(tmp_path):
    # in floating point 25.51 - 25.50 is 0.010000000000001563 and 0.787 - 0.786 is 0.0010000000000000009
    assert 25.51 - 25.50 > 0.01 and 0.787 - 0.786 > 0.001
    assert list(outcome([25.51 - 25.50, 25.50 - 25.51, 25.52 - 25.50], 0.01)) == ["tie", "tie", "win"]
    assert list(outcome([0.787 - 0.786, 0.786 - 0.787, 0.786 - 0.788], 0.001)) == ["tie", "tie", "loss"]
    # the same through the files: the scores survive the CSV as written
    write_metrics(tmp_path, "a", [25.51, 26.84, 25.52], [0.787, 0.801, 0.5])
    write_metrics(tmp_path, "b", [25.50, 26.83, 25.50], [0.786, 0.800, 0.5])
    pairs, s = compare_methods("a", "b", TEST, tmp_path)
    assert list(pairs["psnr_outcome"]) == ["tie", "tie", "win"]
    assert (_row(s)["ties"], _row(s)["wins"]) == (2, 1)
    assert (_row(s, metric="ssim")["ties"], _row(s, metric="ssim")["wins"]) == (3, 0)


def test_the_other_way_round_is_the_exact_mirror_whatever_the_file_order(tmp_path):
    psnr_a, ssim_a = _scores(12)
    psnr_b, ssim_b = _scores(13)
    labels = _labels()
    ids = [f"img{i:03d}" for i in range(N)]
    write_metrics(tmp_path, "a", psnr_a, ssim_a, labels, ids)
    order = np.random.default_rng(14).permutation(N)
    write_metrics(tmp_path, "b", psnr_b[order], ssim_b[order], [labels[i] for i in order], [ids[i] for i in order])
    pairs_ab, ab = compare_methods("a", "b", TEST, tmp_path)
    pairs_ba, ba = compare_methods("b", "a", TEST, tmp_path)
    assert list(pairs_ab["id"]) == list(pairs_ba["id"]) == ids  # the per-image rows in id order, both ways
    assert list(ab["group"]) == list(ba["group"]) and list(ab["metric"]) == list(ba["metric"])
    assert np.allclose(ab["mean_diff"], -ba["mean_diff"], rtol=0, atol=1e-12)
    assert np.allclose(ab["ci95_low"], -ba["ci95_high"], rtol=0, atol=1e-12)
    assert np.allclose(ab["ci95_high"], -ba["ci95_low"], rtol=0, atol=1e-12)
    assert list(ab["excludes_zero"]) == list(ba["excludes_zero"])
    assert list(ab["wins"]) == list(ba["losses"]) and list(ab["ties"]) == list(ba["ties"])
    # and the intervals are those of the images paired by id
    ci = paired_diff_ci(psnr_a, psnr_b)
    assert (_row(ab)["ci95_low"], _row(ab)["ci95_high"]) == pytest.approx((ci["low"], ci["high"]), abs=1e-12)


def test_the_summary_says_where_each_sides_predictions_come_from(tmp_path, capsys):
    psnr, ssim = _scores(15, 6)
    write_metrics(tmp_path, "theirs", psnr, ssim, source="external")
    write_metrics(tmp_path, "old", psnr + 1, ssim)  # written before prediction_source existed: the suite's
    write_metrics(tmp_path, "ours", psnr + 2, ssim, source="suite")
    s = compare_methods("theirs", "old", TEST, tmp_path)[1]
    assert set(s["a_source"]) == {"external"} and set(s["b_source"]) == {"suite"}
    s = compare_methods("old", "ours", TEST, tmp_path)[1]
    assert set(s["a_source"]) == set(s["b_source"]) == {"suite"}

    write_metrics(tmp_path, "mixed", psnr, ssim, source=["suite"] * 5 + ["external"])
    out = tmp_path / "out"
    rc = main(["compare", "ours", "mixed", "--test", TEST, "--metrics-root", str(tmp_path), "--out-dir", str(out)])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and line.startswith(f"error: {tmp_path / 'mixed' / f'{TEST}.csv'}: ")
    assert "prediction_source mixes ['external', 'suite']" in line
    assert not out.exists()

    rc = main(["compare", "theirs", "old", "--test", TEST, "--metrics-root", str(tmp_path), "--out-dir", str(out)])
    assert rc == 0
    written = pd.read_csv(out / TEST / "theirs_vs_old.csv")
    assert set(written["a_source"]) == {"external"} and set(written["b_source"]) == {"suite"}


def test_tolerance_changes_the_rates_not_the_interval(tmp_path):
    psnr, ssim = _scores(3, 4)
    write_metrics(tmp_path, "a", psnr + np.array([0.02, -0.02, 0.005, 0.0]), ssim)
    write_metrics(tmp_path, "b", psnr, ssim)
    r = _row(compare_methods("a", "b", TEST, tmp_path)[1])
    assert (r["wins"], r["ties"], r["losses"]) == (1, 2, 1)
    wide = _row(compare_methods("a", "b", TEST, tmp_path, tolerance={"psnr": 0.05})[1])
    assert (wide["wins"], wide["ties"], wide["losses"]) == (0, 4, 0)
    assert (wide["ci95_low"], wide["ci95_high"]) == (r["ci95_low"], r["ci95_high"])


def test_indoor_outdoor_split_equals_the_label_subsets(tmp_path):
    psnr_a, ssim_a = _scores(4)
    psnr_b, ssim_b = _scores(5)
    labels = list(np.random.default_rng(6).permutation(_labels()))
    write_metrics(tmp_path, "a", psnr_a, ssim_a, labels)
    write_metrics(tmp_path, "b", psnr_b, ssim_b, labels)
    _, s = compare_methods("a", "b", TEST, tmp_path)
    lab = np.array(labels)
    for group, sel in (("combined", np.ones(N, bool)), ("indoor", lab == "indoor"), ("outdoor", lab == "outdoor")):
        for metric, (a, b) in {"psnr": (psnr_a, psnr_b), "ssim": (ssim_a, ssim_b)}.items():
            r = _row(s, group, metric)
            assert r["n_images"] == sel.sum()
            assert r["mean_a"] == pytest.approx(a[sel].mean()) and r["mean_b"] == pytest.approx(b[sel].mean())
            ci = paired_diff_ci(a[sel], b[sel])
            assert r["mean_diff"] == pytest.approx(a[sel].mean() - b[sel].mean())
            assert (r["ci95_low"], r["ci95_high"]) == pytest.approx((ci["low"], ci["high"]))
            d = a[sel] - b[sel]
            assert r["wins"] == (d > 0.01 if metric == "psnr" else d > 0.001).sum()
    # an unlabelled set has the combined group only
    write_metrics(tmp_path, "c", psnr_a, ssim_a)
    write_metrics(tmp_path, "d", psnr_b, ssim_b)
    assert set(compare_methods("c", "d", TEST, tmp_path)[1]["group"]) == {"combined"}


def _fault(tmp_path, fault: str):
    psnr, ssim = _scores(7, 6)
    write_metrics(tmp_path, "a", psnr, ssim, _labels(6))
    kw = {"labels": _labels(6)}
    if fault == "ids":
        kw["ids"] = [f"img{i:03d}" for i in range(5)] + ["other"]
    elif fault == "fewer":
        psnr, ssim, kw = psnr[:5], ssim[:5], {"labels": _labels(6)[:5]}
    elif fault == "more":
        psnr, ssim, kw = np.append(psnr, 30.0), np.append(ssim, 0.9), {"labels": _labels(6) + ["outdoor"]}
    elif fault == "protocol":
        kw["protocol"] = "8bit"
    elif fault == "label":
        kw["labels"] = ["outdoor"] + _labels(6)[1:]
    elif fault == "data":
        kw["data"] = "e" * 64
    elif fault == "duplicate":
        kw["ids"] = [f"img{i:03d}" for i in range(5)] + ["img000"]
    elif fault == "inf":
        psnr = np.where(np.arange(6) == 2, np.inf, psnr)
    if fault != "missing":
        return write_metrics(tmp_path, "b", psnr, ssim, **kw)
    return tmp_path / "b" / f"{TEST}.csv"


@pytest.mark.parametrize(
    "fault, words",
    [
        ("ids", "different image set"),
        ("fewer", "1 id(s) only here (img005)"),
        ("more", "1 only there (img006)"),
        ("protocol", "protocol '16bit' here but '8bit'"),
        ("label", "label 'indoor' here but 'outdoor'"),
        ("data", "data_sha256 differs"),
        ("duplicate", "['img000'] appear more than once"),
        ("inf", "non-finite psnr (img002"),
        ("missing", "per-image metrics not found"),
    ],
)
def test_mismatched_files_are_refused_in_one_line_and_nothing_written(tmp_path, capsys, fault, words):
    b_file = _fault(tmp_path, fault)
    out = tmp_path / "out"
    rc = main(["compare", "a", "b", "--test", TEST, "--metrics-root", str(tmp_path), "--out-dir", str(out)])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 1 and words in line
    # the line starts with the file at fault: B's own faults name B, a mismatch names A and says B
    named = b_file if fault in ("duplicate", "inf", "missing") else tmp_path / "a" / f"{TEST}.csv"
    assert line.startswith(f"error: {named}: ")
    assert not out.exists()


def test_matrix_antisymmetric_with_a_zero_diagonal(tmp_path):
    psnr, ssim = _scores(8)
    rng = np.random.default_rng(9)
    frames = {}
    for name, shift in (("m0", 0.0), ("m1", 0.05), ("m2", 0.5), ("m3", -1.0)):
        p = write_metrics(tmp_path, name, psnr + shift + rng.normal(0, 0.3, N), ssim, _labels())
        frames[name] = read_per_image(p)
    mat = pairwise_matrix(frames, TEST)
    assert len(mat) == 16 and list(dict.fromkeys(mat["a"])) == ["m0", "m1", "m2", "m3"]
    cell = mat.set_index(["a", "b"])
    for a in frames:
        d = cell.loc[(a, a)]
        assert (d["mean_diff"], d["ci95_low"], d["ci95_high"]) == (0.0, 0.0, 0.0)
        assert not d["excludes_zero"] and d["tie_rate"] == 1.0
        for b in frames:
            ab, ba = cell.loc[(a, b)], cell.loc[(b, a)]
            assert ab["mean_diff"] == pytest.approx(-ba["mean_diff"])
            assert (ab["ci95_low"], ab["ci95_high"]) == pytest.approx((-ba["ci95_high"], -ba["ci95_low"]))
            assert ab["excludes_zero"] == ba["excludes_zero"]
            assert (ab["win_rate"], ab["tie_rate"]) == (ba["loss_rate"], ba["tie_rate"])
            # every cell, mirrored or not, is the paired bootstrap of a - b itself
            ci = paired_diff_ci(frames[a]["psnr"], frames[b]["psnr"])
            assert (ab["ci95_low"], ab["ci95_high"]) == pytest.approx((ci["low"], ci["high"]), abs=1e-9)
    assert cell.loc[("m2", "m0"), "excludes_zero"] and cell.loc[("m0", "m3"), "ci95_low"] > 0
    grid = matrix_grid(mat)
    assert np.allclose(grid.to_numpy(), -grid.to_numpy().T) and list(grid.index) == list(grid.columns)


def test_matrix_refuses_mismatched_sets_and_marks_non_finite_pairs(tmp_path):
    psnr, ssim = _scores(10, 6)
    write_metrics(tmp_path, "a", psnr, ssim)
    write_metrics(tmp_path, "b", psnr + 1, ssim)
    write_metrics(tmp_path, "perfect", np.where(np.arange(6) == 0, np.inf, psnr), ssim)
    mat = pairwise_for_test(TEST, ["a", "b", "perfect", "a"], tmp_path).set_index(["a", "b"])
    assert len(mat) == 9
    assert np.isnan(mat.loc[("a", "perfect"), "mean_diff"]) and "non-finite" in mat.loc[("perfect", "a"), "note"]
    assert mat.loc[("b", "a"), "mean_diff"] == pytest.approx(1.0) and mat.loc[("b", "a"), "note"] == ""
    write_metrics(tmp_path, "short", psnr[:5], ssim[:5])
    with pytest.raises(ValueError, match=r"a/dpdd_test.csv: scores a different image set from .*short"):
        pairwise_for_test(TEST, ["a", "short"], tmp_path)


def test_cli_writes_csvs_and_png_and_prints_one_line(tmp_path, capsys):
    psnr, ssim = _scores(11)
    write_metrics(tmp_path, "new", psnr + 0.5, ssim + 0.01, _labels())
    write_metrics(tmp_path, "old", psnr, ssim, _labels())
    out = tmp_path / "cmp"
    rc = main(["compare", "new", "old", "--test", TEST, "--metrics-root", str(tmp_path), "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert rc == 0 and captured.err == ""
    lines = captured.out.splitlines()
    assert len(lines) == 1 and "PSNR +0.500 dB" in lines[0] and "new wins 100%" in lines[0]
    files = sorted(p.name for p in (out / TEST).iterdir())
    assert files == ["new_vs_old.csv", "new_vs_old.png", "new_vs_old_images.csv"]
    assert (out / TEST / "new_vs_old.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    images = pd.read_csv(out / TEST / "new_vs_old_images.csv", dtype={"id": str})
    assert len(images) == N and np.allclose(images["psnr_diff"], 0.5) and set(images["psnr_outcome"]) == {"win"}
    summary = pd.read_csv(out / TEST / "new_vs_old.csv")
    assert len(summary) == 6 and set(summary["tie_rule"].str[:4]) == {"tie:"}
    assert _row(summary, "outdoor", "ssim")["mean_diff"] == pytest.approx(0.01)

    rc = main(["report", "pairwise", "--test", TEST, "--methods", "new", "old"]
              + ["--metrics-root", str(tmp_path), "--out", str(tmp_path / "pw.csv")])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0 and captured.out.count("\n") == 1 and "1 of 1 pairs resolved" in captured.out
    pw = pd.read_csv(tmp_path / "pw.csv")
    assert len(pw) == 4 and list(pw.columns[:3]) == ["test", "a", "b"]
    assert not list(tmp_path.rglob("*.tmp*"))


def test_building_the_report_parser_stays_light():
    """``k3dn report`` adds ``pairwise`` from this module; every table job builds that parser."""
    code = (
        "import sys; from k3dn.cli import build_parser\n"
        "build_parser(['report', '--help']); build_parser(['compare', '--help'])\n"
        "print(sorted(m for m in ('pandas', 'matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
