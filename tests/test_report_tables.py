"""Paper tables: group means, published values joined by label, differences, provenance, and the check."""

import math

import pandas as pd
import pytest

from k3dn.report.tables import build_table, check_table, write_table


def _metrics(root, method, test, rows):
    d = root / method
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / f"{test}.csv", index=False)


@pytest.fixture
def setup(tmp_path):
    m = tmp_path / "metrics"
    prov = {
        "protocol": "16bit",
        "git_commit": "abc",
        "predict_commit": "abd",
        "code_sha256": "e" * 64,
        "config_hash": "c1",
        "weights_sha256": "w" * 64,
        "data_sha256": "d" * 64,
        "device": "cpu",
        "dtype": "float32",
        "label_source": "official",
    }
    _metrics(
        m,
        "ours",
        "t_test",
        [
            {"id": "a", "label": "indoor", "psnr": 30.0, "ssim": 0.9, **prov},
            {"id": "b", "label": "indoor", "psnr": 28.0, "ssim": 0.8, **prov},
            {"id": "c", "label": "outdoor", "psnr": 20.0, "ssim": 0.5, **prov},
        ],
    )
    # the blurry input: every image exactly 2 dB below ours
    _metrics(
        m,
        "identity",
        "t_test",
        [
            {"id": i, "label": lab, "psnr": p - 2.0, "ssim": 0.4, **prov}
            for i, lab, p in (("c", "outdoor", 20.0), ("a", "indoor", 30.0), ("b", "indoor", 28.0))
        ],
    )
    pub = tmp_path / "pub.csv"
    pd.DataFrame(
        [
            {
                "row": "Ours (Lightweight)",
                "group": "combined",
                "metric": "psnr",
                "value": 27.0,
                "source": "paper T1",
                "status": "exact",
                "protocol": "16bit",
            },
            {
                "row": "Xin",
                "group": "combined",
                "metric": "psnr",
                "value": 26.0,
                "source": "paper T1",
                "status": "exact",
                "protocol": "16bit",
            },
            {
                "row": "Blurry input",
                "group": "combined",
                "metric": "psnr",
                "value": 23.0,
                "source": "other",
                "status": "sourced",
                "protocol": "8bit",
            },
        ]
    ).to_csv(pub, index=False)
    spec = {
        "title": "t",
        "test": "t_test",
        "groups": ["indoor", "outdoor", "combined"],
        "metrics": ["psnr", "ssim"],
        "published": str(pub),
        "rows": [
            {"label": "Blurry input", "method": "identity"},
            {"label": "Ours (Lightweight)", "method": "ours"},
            {"label": "Xin", "method": None},
        ],
    }
    return tmp_path, m, spec


def test_group_means_published_and_diff(setup):
    tmp, m, spec = setup
    df = build_table(spec, metrics_root=m)
    ours = df.iloc[1]
    assert ours["indoor_psnr"] == pytest.approx(29.0)
    assert ours["outdoor_psnr"] == pytest.approx(20.0)
    assert ours["combined_psnr"] == pytest.approx(26.0)  # mean of per-image values, not of groups
    assert ours["combined_psnr_paper"] == 27.0
    assert ours["combined_psnr_diff"] == pytest.approx(-1.0)
    assert math.isnan(ours["indoor_psnr_paper"])  # unknown published value stays empty
    assert ours["n_images"] == 3 and ours["git_commit"] == "abc" and ours["protocol"] == "16bit"
    assert ours["dtype"] == "float32" and ours["weights_sha256"] == "w" * 64 and ours["data_sha256"] == "d" * 64
    xin = df.iloc[2]
    assert math.isnan(xin["combined_psnr"]) and xin["combined_psnr_paper"] == 26.0


def test_a_difference_only_under_the_same_protocol(setup):
    tmp, m, spec = setup
    blurry = build_table(spec, metrics_root=m).iloc[0]
    assert blurry["combined_psnr"] == pytest.approx(24.0) and blurry["combined_psnr_paper"] == 23.0
    assert math.isnan(blurry["combined_psnr_diff"])
    assert blurry["diff_note"] == "published under 8bit, ours under 16bit" and blurry["paper_protocol"] == "8bit"


def test_intervals_of_the_mean_and_of_the_paired_difference(setup):
    tmp, m, spec = setup
    df = build_table(spec, metrics_root=m).set_index("row")
    ours, blurry = df.loc["Ours (Lightweight)"], df.loc["Blurry input"]
    assert ours["psnr_ci95_low"] < 26.0 < ours["psnr_ci95_high"]
    assert 20.0 <= ours["psnr_ci95_low"] and ours["psnr_ci95_high"] <= 30.0
    # images are paired by id (the identity file lists them in another order): a constant -2 dB gap, resolved
    assert blurry["vs_row"] == "Ours (Lightweight)" and blurry["psnr_vs_ref"] == pytest.approx(-2.0)
    assert blurry["psnr_vs_ref_ci95_low"] == pytest.approx(-2.0) == blurry["psnr_vs_ref_ci95_high"]
    assert blurry["vs_ref_resolved"] == "yes"
    # the reference row is not compared with itself: no difference, no interval, no verdict
    assert math.isnan(ours["psnr_vs_ref"])
    assert math.isnan(ours["psnr_vs_ref_ci95_low"]) and math.isnan(ours["psnr_vs_ref_ci95_high"])
    assert ours["vs_ref_resolved"] == ""
    again = build_table(spec, metrics_root=m).set_index("row")
    assert again.loc["Ours (Lightweight)", "psnr_ci95_low"] == ours["psnr_ci95_low"]  # fixed seed
    assert set(df["ci_group"].dropna()) == {"combined"}


@pytest.mark.parametrize("groups", [["indoor"], ["outdoor", "indoor"]])
def test_without_an_every_image_group_the_intervals_are_over_the_last_groups_images(setup, groups):
    """The interval sits beside the last group's mean (the one a report shows), so it averages those images:
    indoor, 28 and 30 dB, never the outdoor 20 dB image."""
    tmp, m, spec = setup
    df = build_table(dict(spec, groups=groups, published=None), metrics_root=m).set_index("row")
    ours = df.loc["Ours (Lightweight)"]
    mean = ours["psnr"] if len(groups) == 1 else ours["indoor_psnr"]
    assert mean == pytest.approx(29.0) and ours["ci_group"] == "indoor"
    assert 28.0 <= ours["psnr_ci95_low"] < 29.0 < ours["psnr_ci95_high"] <= 30.0
    assert df.loc["Blurry input", "psnr_vs_ref"] == pytest.approx(-2.0)


def test_check_flags_missing_rows_and_nan(setup):
    tmp, m, spec = setup
    out = write_table(spec, tmp / "t.csv", metrics_root=m)
    assert check_table(out, spec) == []
    spec2 = dict(spec, rows=spec["rows"] + [{"label": "Other", "method": "ours"}])
    problems = check_table(out, spec2)
    assert any("rows" in p for p in problems)
    df = pd.read_csv(out)
    df.loc[0, "combined_ssim"] = float("nan")
    df.to_csv(out, index=False)
    assert any("combined_ssim" in p for p in check_table(out, spec))


def test_a_number_without_provenance_is_refused(setup):
    tmp, m, spec = setup
    path = m / "ours" / "t_test.csv"
    pd.read_csv(path).drop(columns=["dtype"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"t_test.csv: provenance column\(s\) \['dtype'\] missing"):
        build_table(spec, metrics_root=m)


def test_a_row_left_out_says_why(setup):
    tmp, m, spec = setup
    spec = dict(
        spec, rows=[{"label": "Ours (Lightweight)", "method": None, "not_run": "not run: SYNTHIA-SF is manual"}]
    )
    out = write_table(spec, tmp / "t.csv", metrics_root=m)
    df = pd.read_csv(out)
    assert df.loc[0, "note"] == "not run: SYNTHIA-SF is manual" and math.isnan(df.loc[0, "combined_psnr"])
    assert check_table(out, spec) == []


def test_missing_group_is_an_error(setup):
    tmp, m, spec = setup
    spec = dict(spec, groups=["night"])
    with pytest.raises(ValueError, match="night"):
        build_table(spec, metrics_root=m)


def test_published_files_are_well_formed():
    """Every published number names its source and one of the documented statuses."""
    from pathlib import Path

    from k3dn.report.tables import read_published

    files = sorted(Path(__file__).resolve().parent.parent.joinpath("config", "paper").glob("*.csv"))
    assert len(files) == 9  # Tables 1-3 (main paper) and 7-12 (supplement)
    for f in files:
        df = read_published(f)
        assert set(df["status"]) <= {"exact", "inferred", "sourced", "approximate", "unverified", "not-found"}, f
        assert df["source"].notna().all(), f
        assert (df["value"].isna() == (df["status"] == "not-found")).all(), f
    t7 = read_published(files[[f.name for f in files].index("table7_pixel.csv")])
    assert t7[(t7.row == "Ours (Tiny)") & (t7.metric == "psnr")]["value"].item() == 31.59
    t11 = read_published(files[[f.name for f in files].index("table11_psf_blocks.csv")])
    assert t11[t11.row == "4"]["value"].item() == 26.84  # numeric labels stay strings, so they join
