"""Figures: every figure is a decodable PNG written atomically; the numbers behind them have known answers.

A tiny K3DN run (random weights, window 4x4 so a 64x64 image is 2x2 disparity windows) stands in for a trained one.
"""

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from k3dn.cli import build_parser, main
from k3dn.data.manifest import read_manifest, write_manifest
from k3dn.io import read_image, write_png16
from k3dn.metrics import psnr
from k3dn.report import figures
from k3dn.report import model_figures as mf

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from k3dn.checkpoint import save_weights
    from k3dn.registry import create_model

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    save_weights(create_model("k3dn_tiny", window=[4, 4]), run / "model.safetensors")
    (run / "model.json").write_text(
        json.dumps({"model": "k3dn_tiny", "overrides": {"window": [4, 4]}, "trained_stages": [1, 2]})
    )
    return run


@pytest.fixture(scope="module")
def model(run_dir):
    """The run's network, loaded once: the figures only read it (the reblurring test checks exactly that)."""
    return mf.load_k3dn_run(run_dir, "cpu")


@pytest.fixture
def manifest(probe, tmp_path):
    return probe.write_dp_set(tmp_path / "data", 2, 64, 64, split="test")


def _with_disparity(manifest, folder):
    """The manifest's rows with a ``disparity`` .npy each (a horizontal ramp), written as a new manifest."""
    rows = read_manifest(manifest).to_dict("records")
    for r in rows:
        h, w = read_image(r["target"]).shape[:2]
        p = folder / f"{r['id']}_disp.npy"
        np.save(p, np.tile(np.linspace(-2, 2, w, dtype=np.float32), (h, 1)))
        r["disparity"] = str(p)
    return write_manifest(rows, folder / "with_disp.csv")


def _png(path):
    """The written PNG decoded, after checking no temporary file was left beside it."""
    assert path.is_file()
    assert not list(path.parent.glob("*.tmp*")), "a temporary file was left behind"
    img = cv2.imread(str(path))
    assert img is not None, f"{path} does not decode"
    return img.shape[:2]


def _write_predictions(manifest, folder, make):
    folder.mkdir(parents=True)
    for r in read_manifest(manifest).to_dict("records"):
        write_png16(folder / f"{r['id']}.png", make(r))
    return folder


def _metrics_csv(path, ids, values):
    pd.DataFrame({"id": ids, "psnr": values}).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------------------------------------
# PSF kernels
# ----------------------------------------------------------------------------------------------------------


def test_kernel_asymmetry_is_zero_for_the_model_and_large_for_an_asymmetric_set(model, rng):
    sets = mf.psf_kernel_sets(model)
    assert len(sets) == 4 and sets[0].shape == (96, 9, 9)  # tiny: 2·bn blocks of 4·bc kernels
    assert max(mf.kernel_asymmetry(s) for s in sets) < 1e-5
    skewed = rng.standard_normal((3, 9, 9))
    assert mf.kernel_asymmetry(skewed) > 0.1
    mirrored = np.concatenate([skewed[..., :5], skewed[..., :4][..., ::-1]], axis=-1)
    assert mf.kernel_asymmetry(mirrored) == 0.0


def test_kernel_mosaic_puts_each_half_in_its_tile(rng):
    k = rng.standard_normal((10, 9, 9))
    mosaic = mf.kernel_mosaic(k, per_row=4)
    assert mosaic.shape == (3 * 10, 4 * 12)
    scale = np.abs(k[5]).max()
    np.testing.assert_allclose(mosaic[10:19, 12:17], k[5][:, :5] / scale)  # tile 5: row 1, column 1
    np.testing.assert_allclose(mosaic[10:19, 18:23], k[5][:, 4:] / scale)
    assert np.isnan(mosaic[10:19, 17]).all()  # the gap between the halves


def test_region_kernel_choice_is_one_kernel_per_window(model, manifest):
    row = read_manifest(manifest).to_dict("records")[0]
    _, fitted, _, _ = mf._fitted_batch(model, row)
    choices = mf.region_kernel_choice(model, fitted)
    assert len(choices) == 4
    for idx, weight in choices:
        assert idx.shape == (4,) and ((0 <= idx) & (idx < 96)).all()  # 2x2 windows, 96 kernels
        assert ((weight > 1 / 96 - 1e-6) & (weight <= 1)).all()  # the max of a softmax over 96
    assert list(mf.spread_windows(128, 4)) == [0, 42, 85, 127]
    assert list(mf.spread_windows(2, 4)) == [0, 1]


def test_psf_kernel_figure(run_dir, manifest, tmp_path):
    out = mf.psf_kernel_figure(run_dir, manifest, tmp_path / "fig" / "psf.png", regions=3, device="cpu")
    h, w = _png(out)
    assert 400 < h < 1500 and 800 < w < 3000 and w > h  # 2 rows x 4 blocks


# ----------------------------------------------------------------------------------------------------------
# reblurring
# ----------------------------------------------------------------------------------------------------------


def test_reblur_leaves_the_weights_and_batchnorm_statistics_bit_identical(model, manifest):
    from k3dn.infer import _row_batch, forward_fitted

    model.train()  # even a model handed over in training mode must come back untouched
    before = {k: v.clone() for k, v in model.state_dict().items()}
    row = read_manifest(manifest).to_dict("records")[0]
    imgs = mf.reblur_images(model, row)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training  # its mode is restored
    assert {k: v.shape for k, v in imgs.items()} == {
        k: (64, 64, 3) for k in ("center", "output", "reblurred", "target")
    }
    assert all(np.isfinite(v).all() and v.min() >= 0 and v.max() <= 1 for v in imgs.values())
    # the output shown is the model's own eval output
    batch, _ = _row_batch(row, "cpu")
    ref = forward_fitted(model.eval(), batch)[0].numpy().transpose(1, 2, 0)  # (eval again, as loaded)
    np.testing.assert_allclose(imgs["output"], ref, atol=1e-6)


def test_reblur_figure(run_dir, manifest, tmp_path):
    h, w = _png(mf.reblur_figure(run_dir, manifest, tmp_path / "reblur.png", n=1, device="cpu"))
    assert 150 < h < 600 and 900 < w < 2500  # 1 row x 5 panels


# ----------------------------------------------------------------------------------------------------------
# disparity clusters
# ----------------------------------------------------------------------------------------------------------


def test_kmeans_is_deterministic_and_separates_two_blobs(rng):
    x = np.concatenate([rng.normal(0, 0.1, (20, 5)), rng.normal(10, 0.1, (15, 5))])
    labels, centres = mf.kmeans(x, 2, seed=3)
    assert np.array_equal(labels, mf.kmeans(x, 2, seed=3)[0])
    assert set(labels[:20]) == {0} and set(labels[20:]) == {1}  # renumbered by first appearance
    np.testing.assert_allclose(centres, [x[:20].mean(0), x[20:].mean(0)])
    for seed in range(5):  # any seed finds the same partition
        assert np.array_equal(mf.kmeans(x, 2, seed=seed)[0], labels)
    assert mf.kmeans(x[:3], 5)[0].max() <= 2  # k capped at the number of points


def test_spearman_of_a_monotone_function_is_one(rng):
    d = rng.normal(size=50)
    assert mf.spearman_abs(np.exp(d), d) == pytest.approx(1.0)
    assert mf.spearman_abs(-(d**3), d) == pytest.approx(1.0)  # absolute value: decreasing is 1 too
    assert mf.spearman_abs(rng.normal(size=50), d) < 0.5
    assert math.isnan(mf.spearman_abs(np.ones(50), d))
    # the first principal component of points along a line orders them as the line does
    t = rng.uniform(0, 1, 40)
    pts = t[:, None] * rng.normal(size=(1, 8)) + rng.normal(0, 1e-3, (40, 8))
    assert mf.spearman_abs(mf.first_principal_component(pts), t) == pytest.approx(1.0)


def test_window_means():
    values = np.arange(24, dtype=float).reshape(4, 6)
    means = mf.window_means(values, (2, 3))
    assert means.shape == (2, 3)
    assert means[0, 0] == np.mean([0, 1, 6, 7]) and means[1, 2] == np.mean([16, 17, 22, 23])


def test_disparity_cluster_figure_and_csv(run_dir, manifest, tmp_path):
    # one manifest with ground-truth disparity, one without: both rows of the CSV, Spearman only where it exists
    with_gt = _with_disparity(manifest, tmp_path)
    csv = tmp_path / "out" / "clusters.csv"
    spec = {
        "runs": [
            {"run": str(run_dir), "manifest": str(with_gt), "title": "with ground truth"},
            {"run": str(run_dir), "manifest": str(manifest), "title": "without"},
        ],
        "k": 2,
        "seed": 0,
        "csv": str(csv),
    }
    h, w = _png(figures.make_figure("disparity_clusters", spec, tmp_path / "out" / "clusters.png", device="cpu"))
    assert 400 < h < 1500 and 700 < w < 2000  # 2 runs x 3 panels
    df = pd.read_csv(csv)
    assert list(df.columns) == ["run", "image_id", "n_windows", "spearman_pc1", "k"]
    assert list(df["image_id"]) == ["test000"] * 2 and list(df["n_windows"]) == [4, 4] and list(df["k"]) == [2, 2]
    assert 0.0 <= df.loc[0, "spearman_pc1"] <= 1.0 and math.isnan(df.loc[1, "spearman_pc1"])


def test_disparity_features_are_the_models_per_window_vectors(model, manifest):
    row = read_manifest(manifest).to_dict("records")[0]
    feats, grid, _ = mf.disparity_features(model, row)
    assert grid == (2, 2) and feats.shape == (4, 256)
    _, batch, _, _ = mf._fitted_batch(model, row)
    with torch.no_grad():
        r = model(batch)["disparity"][0]
    np.testing.assert_array_equal(feats[1], r[:, 0, 1].numpy())  # window (0, 1) is row-major index 1


# ----------------------------------------------------------------------------------------------------------
# qualitative, DPD-disp, speed, ablations
# ----------------------------------------------------------------------------------------------------------


def test_choose_images_picks_the_largest_and_the_median_gain(tmp_path):
    ids = ["a", "b", "c", "d", "e"]
    blur = _metrics_csv(tmp_path / "blur.csv", ids, [20.0] * 5)
    ref = _metrics_csv(tmp_path / "ref.csv", ids[::-1], [24.0, 22.0, 23.0, 25.0, 21.0])  # gains e4 d2 c3 b5 a1
    chosen = figures.choose_images({"K3DN": ref, "input": blur}, "K3DN", "input")
    assert [(rule, i) for rule, i, _ in chosen] == [("largest gain", "b"), ("median gain", "c")]
    assert chosen[0][2] == pytest.approx(5.0)
    # an even count: the lower middle, an actual image
    ref4 = _metrics_csv(tmp_path / "ref4.csv", ids[:4], [21.0, 24.0, 22.0, 23.0])
    assert [i for _, i, _ in figures.choose_images({"K3DN": ref4, "input": blur}, "K3DN", "input")] == ["b", "c"]


def test_best_crop_finds_the_most_improved_window():
    target = np.zeros((64, 80, 3))
    blurry = np.full_like(target, 0.5)
    reference = blurry.copy()
    reference[30:46, 40:56] = 0.0  # the reference fixes exactly this 16x16 patch
    assert figures.best_crop(target, blurry, reference, 16) == (30, 40, 16, 16)
    assert figures.best_crop(target, blurry, reference, 500) == (0, 0, 64, 80)  # clipped to the image


def test_qualitative_figure(manifest, tmp_path, rng):
    noisy = {}

    def k3dn_like(r):
        t = read_image(r["target"])
        noisy[r["id"]] = np.clip(t + rng.normal(0, 0.01, t.shape), 0, 1)
        return noisy[r["id"]]

    preds = {
        "input": _write_predictions(manifest, tmp_path / "p_in", lambda r: read_image(r["center"])),
        "K3DN": _write_predictions(manifest, tmp_path / "p_k3dn", k3dn_like),
        "other": _write_predictions(manifest, tmp_path / "p_other", lambda r: read_image(r["left"])),
    }
    rows = read_manifest(manifest).to_dict("records")
    metrics = {}
    for label, folder in preds.items():
        vals = [psnr(read_image(folder / f"{r['id']}.png"), read_image(r["target"])) for r in rows]
        metrics[label] = str(_metrics_csv(tmp_path / f"{label}.csv", [r["id"] for r in rows], vals))
    spec = {
        "manifest": str(manifest),
        "predictions": {k: str(v) for k, v in preds.items()},
        "metrics": metrics,
        "reference": "K3DN",
        "blurry": "input",
        "crop": 32,
    }
    h, w = _png(figures.make_figure("qualitative", spec, tmp_path / "q.png"))
    assert 300 < h < 1000 and 700 < w < 2000 and w > h  # 2 images x (full + input + 2 methods + truth)


def test_dpd_disp_figure(manifest, tmp_path):
    preds = {"K3DN": str(_write_predictions(manifest, tmp_path / "p", lambda r: read_image(r["target"])))}
    h, w = _png(
        figures.make_figure("dpd_disp", {"manifest": str(manifest), "predictions": preds, "n": 2}, tmp_path / "d.png")
    )
    assert 200 < h < 800 and 200 < w < 1000


def test_speed_accuracy_figure_plots_ours_and_published(tmp_path):
    acc = tmp_path / "acc.csv"
    pd.DataFrame({"row": ["A", "B"], "combined_psnr": [25.0, 26.0], "combined_psnr_paper": [25.5, math.nan]}).to_csv(
        acc, index=False
    )
    spd = tmp_path / "spd.csv"
    pd.DataFrame(
        {
            "row": ["A", "B"],
            "seconds": [0.5, 0.05],
            "seconds_paper": [0.3, 0.2],
            "device": ["NVIDIA H200", "NVIDIA H200"],
        }
    ).to_csv(spd, index=False)
    h, w = _png(figures.speed_accuracy_figure(acc, spd, tmp_path / "s.png"))
    assert 200 < h < 800 and 300 < w < 1000
    pd.DataFrame({"row": ["A"], "seconds": [0.5]}).to_csv(spd, index=False)
    with pytest.raises(ValueError, match=r"spd\.csv.*seconds_paper"):
        figures.speed_accuracy_figure(acc, spd, tmp_path / "s2.png")


def _ablation_panel(tmp_path, monkeypatch, floor_psnr):
    """The one panel of an ablation figure drawn from a Table 9-like CSV with the blurry input as its first row."""
    table = tmp_path / "t9.csv"
    pd.DataFrame(
        {
            "row": ["Blurry input", "9x9", "18x14", "27x27"],
            "method": ["identity", "abl_9", "k3dn_lightweight_dpdd", "abl_27"],
            "psnr": [floor_psnr, 26.70, 26.84, 26.75],
            "psnr_paper": [math.nan, 26.76, 26.84, 26.71],
        }
    ).to_csv(table, index=False)
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, out: drawn.append(fig) or out)
    figures.ablation_figure({"Table 9": str(table)}, tmp_path / "a.png")
    [ax] = drawn[0].axes
    return ax


def test_ablation_figure_shows_the_blurry_input_as_a_reference_not_a_setting(tmp_path, monkeypatch):
    """Far below the settings (the usual case): not on the settings' curve or axis, its value noted instead."""
    ax = _ablation_panel(tmp_path, monkeypatch, 23.9)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["9x9", "18x14", "27x27"]
    ours = next(line for line in ax.get_lines() if line.get_label() == "ours")
    assert list(ours.get_ydata()) == [26.70, 26.84, 26.75]
    low, high = ax.get_ylim()
    assert 26.5 < low < 26.70 and 26.84 < high < 27.0  # 0.1 dB steps fill the panel
    assert any("Blurry input (ours): 23.90 dB, below the axis" in t.get_text() for t in ax.texts)


def test_ablation_figure_draws_a_floor_inside_the_range_as_a_line(tmp_path, monkeypatch):
    ax = _ablation_panel(tmp_path, monkeypatch, 26.72)
    [floor] = [line for line in ax.get_lines() if line.get_label() == "Blurry input (ours)"]
    assert list(floor.get_ydata()) == [26.72, 26.72] and list(floor.get_xdata()) == [0, 1]  # axhline: full width
    assert len(next(line for line in ax.get_lines() if line.get_label() == "ours").get_ydata()) == 3


def test_cli_builds_one_figure(tmp_path):
    table = tmp_path / "t9.csv"
    pd.DataFrame({"row": ["9x9", "18x14"], "psnr": [25.0, 25.4], "psnr_paper": [25.2, 25.6]}).to_csv(table, index=False)
    out = tmp_path / "figs" / "ablations.png"
    spec = json.dumps({"tables": {"table9_window": str(table)}})
    assert main(["report", "figure", "ablations", "--spec", spec, "--out", str(out)]) == 0
    h, w = _png(out)
    assert 150 < h < 800 and 200 < w < 1000


def test_cli_names_are_the_figure_names():
    for name in figures.FIGURE_NAMES:
        args = build_parser(["report"]).parse_args(["report", "figure", name, "--spec", "{}", "--out", "x.png"])
        assert args.name == name
    with pytest.raises(SystemExit):
        build_parser(["report"]).parse_args(["report", "figure", "nope", "--spec", "{}", "--out", "x.png"])


# ----------------------------------------------------------------------------------------------------------
# bad input names the file
# ----------------------------------------------------------------------------------------------------------


def test_a_missing_or_unfinished_run_folder_is_named(tmp_path, manifest):
    with pytest.raises(ValueError, match="nowhere: run folder not found"):
        mf.reblur_figure(tmp_path / "nowhere", manifest, tmp_path / "x.png")
    half = tmp_path / "half"
    half.mkdir()
    (half / "model.json").write_text("{}")
    with pytest.raises(ValueError, match=r"half/model\.safetensors: missing"):
        figures.make_figure("psf_kernels", {"run": str(half), "manifest": str(manifest)}, tmp_path / "x.png")
    (half / "model.safetensors").write_bytes(b"")
    (half / "model.json").write_text(json.dumps({"model": "no_such_model"}))
    with pytest.raises(ValueError, match=r"half/model\.json: cannot rebuild"):
        mf.disparity_cluster_figure([{"run": half, "manifest": manifest}], tmp_path / "x.png")


def test_a_manifest_without_the_needed_column_is_named(tmp_path, manifest):
    rows = read_manifest(manifest).to_dict("records")
    no_target = write_manifest([{**r, "target": ""} for r in rows], tmp_path / "no_target.csv")
    spec = {
        "manifest": str(no_target),
        "predictions": {"K3DN": str(tmp_path)},
        "metrics": {},
        "reference": "K3DN",
        "blurry": "input",
    }
    with pytest.raises(ValueError, match=r"no_target\.csv: column 'target' is empty"):
        figures.make_figure("qualitative", spec, tmp_path / "q.png")
    not_a_manifest = tmp_path / "bare.csv"
    pd.DataFrame({"id": ["a"], "left": ["a.png"]}).to_csv(not_a_manifest, index=False)
    with pytest.raises(ValueError, match=r"bare\.csv: not a manifest, missing column"):
        figures.make_figure(
            "dpd_disp", {"manifest": str(not_a_manifest), "predictions": {"x": "y"}}, tmp_path / "d.png"
        )
    bad_metrics = tmp_path / "m.csv"
    pd.DataFrame({"id": ["a"], "ssim": [0.5]}).to_csv(bad_metrics, index=False)
    with pytest.raises(ValueError, match=r"m\.csv: per-image metrics of 'K3DN' has no column\(s\) \['psnr'\]"):
        figures.choose_images({"K3DN": bad_metrics, "input": bad_metrics}, "K3DN", "input")


def test_a_spec_without_a_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"figure reblur: the spec lacks key\(s\) \['manifest'\]"):
        figures.make_figure("reblur", {"run": "r"}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="unknown figure"):
        figures.make_figure("nope", {}, tmp_path / "x.png")
