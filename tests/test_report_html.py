"""The HTML report: a results section a person reads at 1400 px, every number of the CSVs one click away.

The realistic run here is Table 1 as ``k3dn report table`` writes it (the paper config's spec and published
numbers, 76 synthetic images per method, an external row with the provenance ``k3dn evaluate`` writes for an
import, a published-only row and one the workflow left out), Table 12 from synthetic speed files, a
protocol-sensitivity table (a plain table: many columns, an external method, a very long method name) and a
pairwise matrix with the external method among 25. The page's width is measured in headless Chromium (skipped only
where no ``chromium`` is installed).
"""

import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from k3dn.errors import InputError
from k3dn.evaluate import PROVENANCE as METRICS_PROVENANCE
from k3dn.report.compare import pairwise_matrix, read_per_image
from k3dn.report.html import (
    TOLERANCE_DB,
    build_report,
    headline,
    pairwise_view,
    provenance_summary,
    provenance_values,
    psnr_points,
    render_table,
    table_title,
)
from k3dn.report.html.plots import psnr_plot
from k3dn.report.html.provenance import provenance_html
from k3dn.report.tables import SPEED_PROVENANCE, build_table, write_table

N_INDOOR, N_OUTDOOR = 37, 39  # DPD-blur's test split
PROVENANCE = {
    "git_commit": "abc",
    "device": "cpu",
    "dtype": "float32",
    "protocol": "16bit",
    "config_hash": "c1",
    "data_sha256": "d" * 8,
}


# ----------------------------------------------------------------------------------------------------------
# A small table (known answers) and a realistic run
# ----------------------------------------------------------------------------------------------------------


def _table(tmp_path):
    df = pd.DataFrame(
        [
            {
                "row": "Blurry input",
                "psnr": 24.0,
                "psnr_paper": math.nan,
                "psnr_diff": math.nan,
                "psnr_ci95_low": 23.0,
                "psnr_ci95_high": 25.0,
                "diff_note": "",
                **PROVENANCE,
            },
            {
                "row": "Ours",
                "psnr": 26.0,
                "psnr_paper": 26.84,
                "psnr_diff": -0.84,
                "psnr_ci95_low": 25.5,
                "psnr_ci95_high": 26.5,
                "diff_note": "",
                **PROVENANCE,
            },
            {
                "row": "IFAN",
                "psnr": 25.0,
                "psnr_paper": 25.99,
                "psnr_diff": math.nan,
                "psnr_ci95_low": 23.0,
                "psnr_ci95_high": 27.0,
                "diff_note": "published under 8bit, ours under 16bit",
                **PROVENANCE,
            },
        ]
    )
    path = tmp_path / "table1_dpdd.csv"
    df.to_csv(path, index=False)
    return df, path


def _per_image(method_offset: float, rng, source="suite", note=""):
    """76 images: a per-image PSNR shared by every method (scene difficulty) plus the method's offset and noise."""
    n = N_INDOOR + N_OUTDOOR
    scene = np.random.default_rng(0).normal(25.0, 2.0, n)
    psnr = scene + method_offset + rng.normal(0, 0.3, n)
    df = pd.DataFrame(
        {
            "id": [f"img{i:03d}" for i in range(n)],
            "label": ["indoor"] * N_INDOOR + ["outdoor"] * N_OUTDOOR,
            "psnr": psnr,
            "ssim": np.clip(0.5 + psnr / 100, 0, 1),
            "rmse": 10 ** (-psnr / 20),
            "mae": 0.8 * 10 ** (-psnr / 20),
            "lpips": np.clip(0.6 - psnr / 60, 0, 1),
            "protocol": "16bit",
        }
    )
    for c in METRICS_PROVENANCE:
        df[c] = {"git_commit": "5cafc5226356", "data_sha256": "4ae9" * 16, "device": "NVIDIA H100 80GB HBM3"}.get(
            c, "f" * 64 if c.endswith("sha256") else "x"
        )
    df["config_hash"] = f"cfg{method_offset:+.2f}"
    df["prediction_source"], df["prediction_note"] = source, note
    return df


EXTERNAL_NOTE = "external predictions (8-bit PNGs): result images released by the authors"
#: What ``k3dn evaluate`` writes for imported result images: nothing of the suite made them.
EXTERNAL_PROVENANCE = dict.fromkeys(("predict_commit", "code_sha256", "weights_sha256", "device", "dtype"), "external")
#: A method name with no space to break at, longer than a column of the page can hold.
LONG_NAME = "k3dn_lightweight_dpdd_retrained_with_every_ablation_switched_on_at_once_" * 3


def _sensitivity() -> pd.DataFrame:
    """``protocol_sensitivity.csv`` as ``k3dn report sensitivity`` writes it: each method under each protocol,
    a bfloat16 prediction of one, and an imported method (``prediction_source`` external)."""
    rows = []
    for method, source in (("k3dn_tiny_dpdd", "suite"), (LONG_NAME, "suite"), ("theirs", "external")):
        variants = [("default", "float32")] + [("bf16", "bfloat16")] * (method == "k3dn_tiny_dpdd")
        for (prediction, dtype), (protocol, psnr) in (
            (v, p) for v in variants for p in (("16bit", 25.1), ("8bit", 24.3), ("8bit-pred", 24.9))
        ):
            rows.append(
                {"method": method, "test": "dpdd_test", "prediction": prediction, "protocol": protocol}
                | {"psnr": psnr, "ssim": 0.8, "n_images": 76, "n_exact": 0, "psnr_change": psnr - 25.1}
                | {"ssim_change": 0.0, "prediction_source": source, "dtype": "external" if source != "suite" else dtype}
                | {"size_mode": "pad", "weights_sha256": "external" if source != "suite" else "e" * 64}
                | {"manifest_sha256": "a" * 64, "git_commit": "5cafc5226356", "backend": "skimage"}
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Table 1 (config spec, published numbers, ~20 rows), Table 12, a 25-method pairwise matrix and figures."""
    root = tmp_path_factory.mktemp("run")
    config = yaml.safe_load(open("config/config.yaml"))
    spec1 = json.loads(json.dumps(config["tables"]["table1_dpdd"]))
    spec1["rows"] += [
        {"label": "My method (authors' images)", "method": "my_external"},
        {"label": "Xin et al.", "method": None},
    ]
    left_out = next(r for r in spec1["rows"] if r["label"] == "DeepRFT")  # as the workflow leaves a row out
    left_out["method"], left_out["not_run"] = None, "not run: its checkpoint is fetched by hand"
    rng = np.random.default_rng(1)
    for i, r in enumerate(r for r in spec1["rows"] if r.get("method")):
        m = r["method"]
        ext = m == "my_external"
        df = _per_image(-3.0 if m == "identity" else 0.1 * i, rng, "external" if ext else "suite", EXTERNAL_NOTE * ext)
        if ext:
            df = df.assign(**EXTERNAL_PROVENANCE)
        (root / "metrics" / m).mkdir(parents=True)
        df.to_csv(root / "metrics" / m / "dpdd_test.csv", index=False)
    t1 = write_table(spec1, root / "tables" / "table1_dpdd.csv", metrics_root=root / "metrics")

    spec12 = json.loads(json.dumps(config["tables"]["table12_speed"]))
    (root / "speed").mkdir()
    for i, r in enumerate(spec12["rows"]):
        prov = {c: "x" for c in SPEED_PROVENANCE} | {"device": "NVIDIA H100 80GB HBM3", "size": "1120x1680"}
        prov["git_commit"] = "5cafc5226356"
        row = {"seconds_mean": 0.1 + 0.05 * i, "params": 2e6 + 1e5 * i, "gmacs": 300.0 + i, **prov}
        pd.DataFrame([row]).to_csv(root / "speed" / f"{r['method']}.csv", index=False)
    t12 = write_table(spec12, root / "tables" / "table12_speed.csv", speed_root=root / "speed")

    sensitivity = root / "tables" / "protocol_sensitivity.csv"
    _sensitivity().to_csv(sensitivity, index=False)

    # 25 methods: as many as a test set with every baseline and ablation has, the external one among them
    names = [f"method_{i:02d}_with_a_long_name" for i in range(24)]
    names.insert(3, "my_external")
    rows = []
    for a in names:
        for b in names:
            d = (names.index(a) - names.index(b)) * 0.13
            rows.append(
                {"test": "dpdd_test", "a": a, "b": b, "metric": "psnr", "n_images": 76, "mean_diff": d}
                | {"ci95_low": d - 0.2, "ci95_high": d + 0.2, "excludes_zero": abs(d) > 0.2 and a != b}
                | {"win_rate": 0.5, "tie_rate": 0.0, "loss_rate": 0.5, "note": ""}
            )
    pw = root / "pairwise_dpdd_test.csv"
    pd.DataFrame(rows).to_csv(pw, index=False)

    figures = {}
    for name, width in (("ablations", 600), ("qualitative_dpdd", 2400)):  # one wider than the page
        figures[name] = str(root / f"{name}.png")
        cv2.imwrite(figures[name], np.full((300, width, 3), 200, np.uint8))
    specs = {"table1_dpdd": spec1, "table12_speed": spec12}
    return {
        "root": root,
        "tables": {"table1_dpdd": str(t1), "table12_speed": str(t12), "protocol_sensitivity": str(sensitivity)},
        "specs": specs,
        "pairwise": {"dpdd_test": str(pw)},
        "figures": figures,
    }


class _Tables(HTMLParser):
    """Column headers (``thead``) of each <table> and whether it sits inside a <details>."""

    def __init__(self):
        super().__init__()
        self.tables, self.depth, self.in_th, self.in_head = [], 0, False, False

    def handle_starttag(self, tag, attrs):
        if tag == "details":
            self.depth += 1
        elif tag == "table":
            self.tables.append({"class": dict(attrs).get("class", ""), "headers": [], "details": self.depth > 0})
        elif tag == "thead":
            self.in_head = True
        elif tag == "th" and self.tables and self.in_head:
            self.in_th = True
            self.tables[-1]["headers"].append("")

    def handle_endtag(self, tag):
        if tag == "details":
            self.depth -= 1
        elif tag == "th":
            self.in_th = False
        elif tag == "thead":
            self.in_head = False

    def handle_data(self, data):
        if self.in_th and self.tables[-1]["headers"]:
            self.tables[-1]["headers"][-1] += data


def _tables(html: str) -> list[dict]:
    p = _Tables()
    p.feed(html)
    return p.tables


# ----------------------------------------------------------------------------------------------------------
# The headline view
# ----------------------------------------------------------------------------------------------------------


def test_table1_headline_is_the_combined_group_with_its_interval_published_value_and_difference(run):
    df = pd.read_csv(run["tables"]["table1_dpdd"], dtype={"row": str})
    view = headline(df, run["specs"]["table1_dpdd"])
    assert view.labels() == [
        "Method",
        "PSNR (dB) [95% CI]",
        "Published PSNR",
        "Δ PSNR",
        "SSIM",
        "MAE",
        "LPIPS",
        "Δ vs Ours (Lightweight) [95% CI]",
    ]
    assert [r[0].text for r in view.rows] == list(df["row"])
    ours = df.set_index("row").loc["DPDNet"]
    cells = dict(zip(view.labels(), view.rows[list(df["row"]).index("DPDNet")]))
    assert cells["PSNR (dB) [95% CI]"].text == f"{ours['combined_psnr']:.2f}"
    assert cells["PSNR (dB) [95% CI]"].sub == f"[{ours['psnr_ci95_low']:.2f}, {ours['psnr_ci95_high']:.2f}]"
    assert cells["Published PSNR"].text == "25.13"  # config/paper/table1_dpdd.csv, combined
    assert cells["Δ PSNR"].text == f"{ours['combined_psnr'] - 25.13:+.2f}"
    assert cells["SSIM"].text == f"{ours['combined_ssim']:.3f}" and "published 0.786" in cells["SSIM"].title
    # indoor/outdoor are in the full table only
    html = render_table(df, "table1_dpdd", run["specs"]["table1_dpdd"])
    head, full = html.split("<details", 1)
    assert f"{ours['indoor_psnr']:.2f}" not in head and f"{ours['indoor_psnr']:.4g}" in full


def test_a_difference_under_another_protocol_is_empty_and_says_why(run):
    df = pd.read_csv(run["tables"]["table1_dpdd"], dtype={"row": str})
    view = headline(df)
    i = list(df["row"]).index("IFAN")  # published under 8bit (config/paper), ours under 16bit
    cell = dict(zip(view.labels(), view.rows[i]))["Δ PSNR"]
    assert cell.text == "" and "published under 8bit, ours under 16bit" in cell.title
    assert view.notes[cell.notes[0] - 1] == "No difference: published under 8bit, ours under 16bit."
    # the same reason is one footnote, however many rows share it
    assert sum("published under 8bit" in n for n in view.notes) == 1


def test_rows_that_are_not_ours_say_what_they_are(run):
    df = pd.read_csv(run["tables"]["table1_dpdd"], dtype={"row": str})
    view = headline(df)
    rows = {r[0].text: r for r in view.rows}
    ext = rows["My method (authors' images)"][0]
    assert ext.badge == "external" and "not the suite's port" in ext.title
    assert any("released by the authors" in view.notes[n - 1] for n in ext.notes)
    assert rows["Xin et al."][1].text == "–" and "published only" in rows["Xin et al."][1].title
    left_out = next(r for r in view.rows if r[1].text == "not run")
    assert "fetched by hand" in view.notes[left_out[0].notes[0] - 1]


def test_a_published_gap_is_marked_against_the_stated_tolerance_not_our_interval(tmp_path):
    """Our unpaired interval measures image-to-image spread, which the published mean shares: a 0.5 dB gap inside
    a 1.4 dB-wide interval is still a gap beyond the 0.1 dB this project aims for, and 0.05 dB is not one."""
    df, _ = _table(tmp_path)
    html = render_table(df)
    assert 'class="disagree"' in html and html.count('class="disagree"') == 1
    assert re.search(r'class="disagree"[^>]*>-0\.84<', html)
    near = df.assign(psnr_diff=[math.nan, -0.5, math.nan], psnr_ci95_low=25.3, psnr_ci95_high=26.7)
    assert re.search(r'class="disagree"[^>]*>-0\.50<', render_table(near))
    assert 'class="disagree"' not in render_table(df.assign(psnr_diff=[math.nan, 0.05, math.nan]))
    assert TOLERANCE_DB == 0.1


def test_an_our_vs_our_difference_is_marked_by_its_paired_interval(tmp_path):
    df, _ = _table(tmp_path)
    paired = df.assign(
        psnr_vs_ref=[-2.0, math.nan, -0.04],
        psnr_vs_ref_ci95_low=[-2.5, math.nan, -0.3],
        psnr_vs_ref_ci95_high=[-1.5, math.nan, 0.2],
        vs_ref_resolved=["yes", "", "no"],
        vs_row="Ours",
        psnr_diff=math.nan,
    )
    view = headline(paired)
    assert view.labels()[-1] == "Δ vs Ours [95% CI]"
    last = [r[-1] for r in view.rows]
    assert [(c.text, c.css) for c in last] == [("-2.00", "resolved"), ("reference", "muted"), ("-0.04", "")]
    assert last[0].sub == "[-2.50, -1.50]"
    html = render_table(paired)
    assert html.count('class="resolved"') == 1 and "disagree" not in html


def test_the_interval_is_shown_only_beside_the_mean_it_belongs_to(tmp_path):
    """``psnr_ci95_*`` is the interval of the mean over every image: a headline of one group of several (no
    combined group) shows that group's mean with no interval."""
    df, _ = _table(tmp_path)
    indoor = pd.DataFrame({"indoor_psnr": 1.0, "indoor_psnr_paper": 2.0, "indoor_psnr_diff": -1.0}, index=df.index)
    split = pd.concat(
        [indoor, df.rename(columns={c: f"outdoor_{c}" for c in ("psnr", "psnr_paper", "psnr_diff")})], axis=1
    )
    view = headline(split)
    assert [r[1].text for r in view.rows] == ["24.00", "26.00", "25.00"] and all(r[1].sub == "" for r in view.rows)
    assert [r[1].sub for r in headline(df).rows][0] == "[23.00, 25.00]"


def _group_run(tmp_path, groups):
    """A table of ``groups`` built by ``k3dn report table`` from per-image files whose outdoor images are 5 dB
    easier: a mean or an interval of the wrong images is plainly off."""
    rng = np.random.default_rng(0)
    for m, offset in (("identity", -3.0), ("a", 0.0), ("b", 0.5)):
        df = _per_image(offset, rng)
        df.loc[df["label"] == "outdoor", "psnr"] += 5
        (tmp_path / m).mkdir(exist_ok=True)
        df.to_csv(tmp_path / m / "dpdd_test.csv", index=False)
    rows = [("Blurry input", "identity"), ("Ours (Lightweight)", "a"), ("B", "b")]
    spec = {"title": "Table 5: outdoor scenes", "test": "dpdd_test", "groups": groups, "metrics": ["psnr"]}
    spec["rows"] = [{"label": label, "method": m} for label, m in rows]
    return build_table(spec, metrics_root=tmp_path), spec


@pytest.mark.parametrize("groups", [["outdoor"], ["indoor", "outdoor"]])
def test_a_table_without_a_group_of_every_image_names_its_group_beside_its_interval(tmp_path, groups):
    """Its headline is the last group's (the one group's): the interval and the paired difference average the same
    images (``ci_group``), and the column, the title, the page note and the plot say which images they are."""
    df, spec = _group_run(tmp_path, groups)
    assert set(df["ci_group"]) == {"outdoor"}
    view = headline(df, spec)
    assert view.labels() == [
        "Method",
        "PSNR (dB), outdoor [95% CI]",
        "Published PSNR",
        "Δ PSNR",
        "Δ vs Ours (Lightweight) [95% CI]",
    ]
    b = dict(zip(view.labels(), view.rows[2]))
    mean = df["psnr" if groups == ["outdoor"] else "outdoor_psnr"].iloc[2]
    low, high = df["psnr_ci95_low"].iloc[2], df["psnr_ci95_high"].iloc[2]
    assert low < mean < high and b["PSNR (dB), outdoor [95% CI]"].sub == f"[{low:.2f}, {high:.2f}]"
    assert b["Δ vs Ours (Lightweight) [95% CI]"].text == f"{df['psnr_vs_ref'].iloc[2]:+.2f}"
    assert table_title("table5_outdoor", df, spec).endswith("76 images, 16-bit, headline over the outdoor images")
    points, _ = psnr_points([("table5_outdoor", df, spec)])
    assert [(p.label, p.low) for p in points][1] == ("B (outdoor)", pytest.approx(low))
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    html = " ".join(
        build_report({"table5_outdoor": str(path)}, {}, tmp_path / "r.html", table_specs={"table5_outdoor": spec})
        .read_text()
        .split()
    )
    assert "no such group, over the images of its last group, named in its PSNR column (Table 5: outdoor)" in html
    assert "A label naming a group (Table 5: outdoor) is that group's mean" in html


def test_the_plot_draws_each_method_at_its_mean_over_every_image_where_a_table_has_one(tmp_path):
    """A test set's first table may cover one group only: a later table over every image gives the plot its
    points and the blurry line, so no method is drawn at another's images."""
    part, part_spec = _group_run(tmp_path, ["outdoor"])
    whole, whole_spec = _group_run(tmp_path, ["outdoor", "combined"])
    points, blurry = psnr_points([("table5_outdoor", part, part_spec), ("table6_all", whole, whole_spec)])
    means = dict(zip(whole["method"], whole["combined_psnr"]))
    assert blurry.ours == pytest.approx(means["identity"]) and "(" not in blurry.label
    assert {p.method: p.ours for p in points} == pytest.approx({m: means[m] for m in ("a", "b")})


def test_an_interval_of_other_images_is_never_shown_beside_the_mean(tmp_path):
    """A table whose intervals average other images than its headline's group (``ci_group``), or one written
    before ``ci_group`` whose spec names a group that is not every image: no interval, no paired column, no bar."""
    df, spec = _group_run(tmp_path, ["outdoor"])
    for other, given in ((df.assign(ci_group="combined"), spec), (df.drop(columns="ci_group"), spec)):
        view = headline(other, given)
        assert view.labels() == ["Method", "PSNR (dB), outdoor", "Published PSNR", "Δ PSNR"]
        assert all(r[1].sub == "" for r in view.rows)
        points, blurry = psnr_points([("t", other, given)])
        assert all(math.isnan(p.low) and math.isnan(p.high) for p in [*points, blurry])
    # written before ``ci_group``, with no spec to say otherwise: its one group is taken to be every image, as then
    older = df.drop(columns="ci_group")
    assert headline(older).labels()[1] == "PSNR (dB) [95% CI]" and headline(older).rows[2][1].sub


def test_a_speed_table_shows_our_device_beside_our_time(run):
    df = pd.read_csv(run["tables"]["table12_speed"], dtype={"row": str})
    view = headline(df, run["specs"]["table12_speed"])
    assert view.labels() == [
        "Method",
        "Time (s)",
        "Device",
        "Published time (s), NVIDIA A40",
        "Δ time (s)",
        "Params (M)",
        "GMACs",
    ]
    first = dict(zip(view.labels(), view.rows[0]))
    assert (first["Time (s)"].text, first["Device"].text) == ("0.100", "NVIDIA H100 80GB HBM3")
    assert first["Published time (s), NVIDIA A40"].text == "2.380"  # Restormer, config/paper/table12_speed.csv
    assert first["Δ time (s)"].text == ""  # an H100 is not an A40: no difference, and a footnote says why
    assert any("different devices" in n for n in view.notes)
    assert (first["Params (M)"].text, first["GMACs"].text) == ("2.00", "300.0")
    small = pd.DataFrame(
        [{"row": "Net", "seconds": 0.5, "seconds_paper": 0.8, "seconds_diff": math.nan, "device": "X"}]
    )
    assert [c.text for c in headline(small).rows[0]][:3] == ["Net", "0.500", "X"]


def test_the_title_is_in_words_with_the_image_count_and_protocol(run):
    df = pd.read_csv(run["tables"]["table1_dpdd"], dtype={"row": str})
    spec = run["specs"]["table1_dpdd"]
    assert table_title("table1_dpdd", df, spec) == " ".join(spec["title"].split()) + ", 76 images, 16-bit"
    assert table_title("table1_dpdd", df) == "Table 1: dpdd, 76 images, 16-bit"  # without the spec
    speed = pd.read_csv(run["tables"]["table12_speed"], dtype={"row": str})
    assert table_title("table12_speed", speed, {"title": "Table 12: speed"}) == "Table 12: speed, input 1120x1680, x"
    assert table_title("protocol_sensitivity", pd.DataFrame({"a": [1]})).startswith("Protocol sensitivity: ")


def test_every_csv_column_is_one_click_away_and_nothing_else_is_in_the_way(run):
    df = pd.read_csv(run["tables"]["table1_dpdd"], dtype={"row": str})
    tables = _tables(render_table(df, "table1_dpdd"))
    head = [t for t in tables if not t["details"]]
    assert len(head) == 1 and "headline" in head[0]["class"]
    full = [h for t in tables if t["details"] for h in t["headers"]]
    assert set(full) == set(df.columns)
    assert all(len(t["headers"]) <= 13 for t in tables)  # the row name and at most 12 columns per table
    # long text is never beside the numbers: the sources are footnotes of the headline
    source = df.set_index("row").loc["DPDNet", "paper_source"]
    assert len(source) > 40 and ("Source: " + source).replace("'", "&#x27;") in render_table(df)


def test_a_plain_table_headline_keeps_the_columns_that_tell_its_rows_apart():
    """Protocol sensitivity: each method under each protocol, prediction and dtype. Its headline shows those
    columns, drops a provenance column of one value and the hashes (in the full table still), and badges the
    imported method's rows external."""
    df = _sensitivity()
    html = render_table(df, "protocol_sensitivity")
    head, full = html.split("<details", 1)
    tables = _tables(html)
    headers = [h.replace("_", "") for h in tables[0]["headers"]]
    assert headers[0] == "method" and {"test", "prediction", "protocol", "dtype", "psnr"} <= set(headers)
    assert not {"gitcommit", "weightssha256", "manifestsha256", "predictionsource"} & set(headers)
    assert {"git_commit", "weights_sha256", "prediction_source"} <= {h for t in tables[1:] for h in t["headers"]}
    rows = re.findall(r"<tr><th[^>]*>(.*?)</th>", head.split("<tbody>", 1)[1])
    assert len(rows) == len(df) and LONG_NAME in rows[6]  # the name is kept, however long
    assert [("badge" in r) for r in rows] == list(df["prediction_source"] == "external")
    # a dtype of one value across the table tells no rows apart: it is in the full table only
    one = df[df["prediction"] == "default"].assign(dtype="float32")
    assert "<th>dtype</th>" not in render_table(one).split("<details", 1)[0]
    # a table written before it had ``prediction_source`` marks an import by its weights checksum
    assert render_table(df.drop(columns="prediction_source")).split("<details", 1)[0].count('class="badge"') == 3


# ----------------------------------------------------------------------------------------------------------
# Per test set: the plot and the pairwise matrix
# ----------------------------------------------------------------------------------------------------------


def test_the_psnr_plot_takes_each_method_once_and_the_blurry_input_apart(run):
    df = pd.read_csv(run["tables"]["table1_dpdd"], dtype={"row": str})
    ablation = pd.DataFrame(
        {
            "row": ["Blurry input", "9x9", "18x14"],
            "method": ["identity", "abl_window_9x9", "k3dn_lightweight_dpdd"],
            "psnr": [22.0, 24.0, 25.0],
            "psnr_paper": [math.nan, 26.2, 26.84],
            "psnr_diff": [math.nan, -2.2, -1.84],
        }
    )
    points, blurry = psnr_points([("table1_dpdd", df, {}), ("table9_window", ablation, {"title": "Supp. Table 9: w"})])
    assert blurry.label == "Blurry input" and blurry.ours == pytest.approx(df["combined_psnr"].iloc[0])
    labels = [p.label for p in points]
    assert "Blurry input" not in labels and labels[-1] == "9x9 (Table 9)"  # 18x14 is Ours (Lightweight) already
    assert labels.count("Ours (Lightweight)") == 1 and "18x14 (Table 9)" not in labels
    dpdnet, ifan = (next(p for p in points if p.label == n) for n in ("DPDNet", "IFAN"))
    assert (dpdnet.paper, dpdnet.same_protocol, ifan.same_protocol) == (25.13, True, False)
    assert dpdnet.low < dpdnet.ours < dpdnet.high


def _matrix(cells):
    rows = [
        {"test": "t", "a": a, "b": b, "metric": "psnr", "n_images": 10, "mean_diff": d}
        | {"ci95_low": lo, "ci95_high": hi, "excludes_zero": ex, "win_rate": 0.6, "tie_rate": 0.1, "loss_rate": 0.3}
        for (a, b), (d, lo, hi, ex) in cells.items()
    ]
    return pd.DataFrame(rows)


def test_the_pairwise_matrix_marks_cells_whose_paired_interval_excludes_zero():
    m = _matrix(
        {
            ("A", "A"): (0.0, 0.0, 0.0, False),
            ("A", "B"): (1.0, 0.5, 1.5, True),
            ("B", "A"): (-1.0, -1.5, -0.5, True),
            ("A", "C"): (0.2, -0.1, 0.5, False),
            ("C", "A"): (-0.2, -0.5, 0.1, False),
            ("B", "B"): (0.0, 0.0, 0.0, False),
            ("B", "C"): (math.nan, math.nan, math.nan, None),
            ("C", "B"): (math.nan, math.nan, math.nan, None),
            ("C", "C"): (0.0, 0.0, 0.0, False),
        }
    )
    view = pairwise_view(m, {"A": "Method A"})
    assert view.labels() == ["row − column", "1", "2", "3"] and view.columns[1].title == "Method A"
    grid = [[(c.text, c.css) for c in r[1:]] for r in view.rows]
    assert grid == [
        [("·", "diag"), ("+1.00", "resolved pos"), ("+0.20", "unresolved")],
        [("-1.00", "resolved neg"), ("·", "diag"), ("n/a", "muted")],
        [("-0.20", "unresolved"), ("n/a", "muted"), ("·", "diag")],
    ]
    assert [r[0].lead + r[0].text for r in view.rows] == ["1. Method A", "2. B", "3. C"]
    assert "95% CI [+0.50, +1.50]" in view.rows[0][2].title and "wins 60%" in view.rows[0][2].title


def test_the_pairwise_matrix_marks_an_external_method_where_a_cut_name_cannot_hide_it(run, tmp_path):
    """A row name is cut to one line (an ellipsis), so the mark stands before it, and beside its column's number."""
    m = _matrix({(a, b): (0.0, -0.1, 0.1, False) for a in "AB" for b in "AB"})
    view = pairwise_view(m, {"A": "Method A", "B": "Their method with a name longer than the row has room for"}, {"B"})
    assert [(c.label, c.mark) for c in view.columns[1:]] == [("1", ""), ("2", "ext.")]
    assert [(r[0].lead, r[0].mark) for r in view.rows] == [("1. ", ""), ("2. ", "ext.")]
    assert "external" in view.columns[2].title and "external" in view.rows[1][0].title
    page = build_report(
        run["tables"], {}, tmp_path / "r.html", table_specs=run["specs"], pairwise=run["pairwise"]
    ).read_text()
    matrix = page.split('id="pairwise-dpdd_test"', 1)[1]
    assert re.search(r"<th[^>]*>4 <span class=\"badge\">ext\.</span></th>", matrix)
    assert re.search(r"<th[^>]*>4\. <span class=\"badge\">ext\.</span> My method \(authors&#x27;", matrix)
    assert matrix.count('class="badge"') == 2 and "(external)" not in matrix


def test_the_pairwise_matrix_reads_what_k3dn_report_pairwise_writes(tmp_path):
    rng = np.random.default_rng(3)
    base = _per_image(0.0, rng)
    frames = {"same": base, "copy": base.copy(), "better": base.assign(psnr=base["psnr"] + 0.5)}
    paths = {}
    for name, df in frames.items():
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    matrix = pairwise_matrix({n: read_per_image(p) for n, p in paths.items()}, "dpdd_test")
    matrix.to_csv(tmp_path / "pw.csv", index=False)
    _, t = _table(tmp_path)
    html = build_report({"t": str(t)}, {}, tmp_path / "r.html", pairwise={"dpdd_test": str(tmp_path / "pw.csv")})
    section = html.read_text().split('id="pairwise-dpdd_test"', 1)[1]
    # "better" is 0.5 dB above the two identical methods on every image: resolved both ways; the twins are not
    assert section.count('class="resolved pos"') == 2 and section.count('class="resolved neg"') == 2
    assert section.count('class="unresolved"') == 2 and ">+0.00<" in section
    assert "over the same 76 images" in section


def test_a_pairwise_input_that_is_not_a_matrix_is_named(tmp_path):
    _, t = _table(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"absent\.csv: pairwise matrix of 'dpdd_test' not found"):
        build_report({"t": str(t)}, {}, tmp_path / "r.html", pairwise={"dpdd_test": str(tmp_path / "absent.csv")})
    pd.DataFrame({"a": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad\.csv: no column\(s\) \['b', 'mean_diff'"):
        build_report({"t": str(t)}, {}, tmp_path / "r.html", pairwise={"dpdd_test": str(tmp_path / "bad.csv")})
    assert not (tmp_path / "r.html").exists()


# ----------------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------------


def test_provenance_is_summarised_with_every_value_behind_a_toggle(tmp_path):
    frames = {
        "a": pd.DataFrame(
            {"git_commit": ["c0ffee"] * 3, "data_sha256": ["1" * 64, "2" * 64, "2" * 64], "device": ["cpu"] * 3}
        ),
        "b": pd.DataFrame(
            {
                "git_commit": ["c0ffee", "c0ffee"],
                "data_sha256": ["3" * 64, "1" * 64],
                "config_hash": ["h1", "h2"],
                "weights_sha256": ["none", "9" * 64],
                "device": ["cpu", "NVIDIA H100|cpu"],
            }
        ),
    }
    lines = dict(provenance_summary(provenance_values(frames)))
    assert lines["code commit (scoring and timing)"] == "one: c0ffee (in 5 of 5 rows)"
    assert lines["data checksum"].startswith("3 data checksums recorded")
    assert lines["config hash"].startswith("2 config hashes")
    assert lines["weights checksum"] == "one: 999999999999… (in 1 of 2 rows); none: 1 row"
    assert lines["device"] == "2: cpu (in 5 of 5 rows), NVIDIA H100 (in 1 of 5 rows)"
    # every value, and the tables that carry it, is in the footer's toggle
    page = build_report({}, {}, tmp_path / "r.html").read_text()
    assert '<details class="provenance">' in page
    html = provenance_html(provenance_values(frames))
    assert "<td class='text'>NVIDIA H100</td><td class='text'>b (1)</td>" in html
    assert f"<td class='text'>{'1' * 64}</td><td class='text'>a (1), b (1)</td>" in html


def test_external_and_unknown_provenance_is_counted_apart_in_every_line():
    """``k3dn evaluate`` writes ``external`` for an import's commit, code, weights, device and dtype, and ``unknown``
    where a prediction recorded no commit: neither is a commit, a device or a dtype of the suite's."""
    suite = {"git_commit": "5cafc52", "predict_commit": "5cafc52", "code_sha256": "c" * 64, "config_hash": "h"}
    suite |= {"weights_sha256": "9" * 64, "data_sha256": "d" * 64, "device": "NVIDIA H100", "dtype": "float32"}
    imported = suite | dict.fromkeys(("predict_commit", "code_sha256", "weights_sha256", "device", "dtype"), "external")
    old = suite | {"predict_commit": "unknown", "code_sha256": "unknown"}
    published_only = dict.fromkeys(suite, math.nan)
    df = pd.DataFrame([suite] * 3 + [imported, old] + [published_only] * 2)
    lines = dict(provenance_summary(provenance_values({"t": df})))
    assert lines["code commit (predictions)"] == "one: 5cafc52 (in 3 of 7 rows); external: 1 row; unknown: 1 row"
    assert (
        lines["code checksum (predictions)"] == "one: cccccccccccc… (in 3 of 7 rows); external: 1 row; unknown: 1 row"
    )
    assert lines["device"] == "one: NVIDIA H100 (in 4 of 7 rows); external: 1 row"
    assert lines["dtype"] == "one: float32 (in 4 of 7 rows); external: 1 row"
    assert lines["weights checksum"] == "one: 999999999999… (in 4 of 7 rows); external: 1 row"
    assert lines["code commit (scoring and timing)"] == "one: 5cafc52 (in 5 of 7 rows)"
    # many values: counted, with a plural of their own words; the absent ones still apart
    many = pd.DataFrame(
        {"git_commit": [c * 12 for c in "abcde"], "code_sha256": [c * 64 for c in "abc"] + ["external"] * 2}
    )
    lines = dict(provenance_summary(provenance_values({"t": many})))
    assert lines["code commit (scoring and timing)"] == "5 code commits (scoring and timing)"
    assert (
        lines["code checksum (predictions)"]
        == "3 code checksums (predictions) (one per model's code); external: 2 rows"
    )
    assert not any(")s" in line for line in lines.values())


def test_the_protocol_line_counts_the_paper_tables_not_the_protocols_of_protocol_sensitivity(run):
    frames = {name: pd.read_csv(path, dtype={"row": str}) for name, path in run["tables"].items()}
    assert set(frames["protocol_sensitivity"]["protocol"]) == {"16bit", "8bit", "8bit-pred"}
    n = int(frames["table1_dpdd"]["protocol"].notna().sum())
    lines = dict(provenance_summary(provenance_values(frames)))
    assert lines["protocol (paper tables)"] == f"one: 16bit (in {n} of {len(frames['table1_dpdd'])} rows)"


def test_the_page_says_which_yardstick_marks_what(tmp_path):
    _, t = _table(tmp_path)
    html = build_report({"table1_dpdd": str(t)}, {}, tmp_path / "report.html").read_text()
    assert "Published tables give means only, so a gap between a published number and ours has no paired" in (
        " ".join(html.split())
    )
    assert "&plusmn;0.1 dB" in html and "half-width" not in html
    note = " ".join(html.split())
    assert "for all of its images" not in note and "A speed table's headline shows our time beside the device" in note
    assert "over every image of the table (its combined group)" in note and "no such group" not in note


def test_report_holds_every_table_and_figure_offline(run, tmp_path):
    out = build_report(
        run["tables"],
        run["figures"],
        tmp_path / "r" / "report.html",
        note="MINIATURE RUN",
        table_specs=run["specs"],
        pairwise=run["pairwise"],
    )
    html = out.read_text()
    assert 'id="table-table1_dpdd"' in html and 'id="table-table12_speed"' in html
    assert html.count('<figure id="figure-') == 2 and 'id="psnr-dpdd_test"' in html  # and the PSNR plot
    assert html.count('id="table-') == 3  # `k3dn report check` and CI count the tables by this id
    assert html.count("data:image/png;base64,") == 3 and "MINIATURE RUN" in html
    assert "Main paper Table 1" in html and "76 images, 16-bit" in html
    assert 'src="http' not in html and "<link" not in html  # nothing fetched when it is opened
    commit = r"<dt>code commit \(scoring and timing\)</dt><dd>one: 5cafc5226356 \(in (\d+) of (\d+) rows\)</dd>"
    assert re.search(commit, html)
    assert "<dt>device</dt><dd>one: NVIDIA H100 80GB HBM3 (in " in html and "; external: 1 row</dd>" in html
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # written atomically


def test_the_cli_passes_titles_and_pairwise_from_its_spec(run, tmp_path):
    from k3dn.cli import main

    spec = {"tables": run["tables"], "figures": {}, "note": "", "table_specs": run["specs"]}
    spec["pairwise"] = run["pairwise"]
    assert main(["report", "html", "--spec", json.dumps(spec), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "Supplement Table 12: seconds per image" in html and 'id="pairwise-dpdd_test"' in html
    bad = json.dumps({**spec, "pairwise": []})
    assert main(["report", "html", "--spec", bad, "--out", str(tmp_path / "x.html")]) == 1
    assert not (tmp_path / "x.html").exists()


def test_odd_inputs_are_named_or_shown_as_they_are(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"empty\.csv: table 't' is empty") as e:
        build_report({"t": str(tmp_path / "empty.csv")}, {}, tmp_path / "r.html")
    assert "\n" not in str(e.value) and not (tmp_path / "r.html").exists()
    # a paired difference without an interval: the difference, no "[+nan, +nan]"
    df, _ = _table(tmp_path)
    paired = df.assign(vs_row="Ours", psnr_vs_ref=[0.3, math.nan, 0.1], vs_ref_resolved="")
    paired = paired.assign(psnr_vs_ref_ci95_low=math.nan, psnr_vs_ref_ci95_high=math.nan)
    assert [(c.text, c.sub) for c in (r[-1] for r in headline(paired).rows)] == [
        ("+0.30", ""),
        ("reference", ""),
        ("+0.10", ""),
    ]
    assert "nan" not in render_table(paired).lower().replace("provenance", "")
    # a row (or method) named NA, None or null is a name, not a missing value
    named = df.assign(row=["NA", "None", "null"], method=["NA", "None", "null"])
    named.to_csv(tmp_path / "named.csv", index=False)
    html = build_report({"t": str(tmp_path / "named.csv")}, {}, tmp_path / "r.html").read_text()
    head = html.split('id="table-t"', 1)[1].split("<details", 1)[0]
    assert re.findall(r"<tr><th[^>]*>([^<]*)", head.split("<tbody>", 1)[1]) == ["NA", "None", "null"]


def test_an_external_rows_gap_from_a_published_value_is_never_marked_as_a_reproductions(tmp_path):
    df, _ = _table(tmp_path)
    assert 'class="disagree"' in render_table(df)  # Ours: -0.84 dB
    imported = df.assign(prediction_source=["suite", "external", "suite"])
    cell = dict(zip(headline(imported).labels(), headline(imported).rows[1]))["Δ PSNR"]
    assert (cell.text, cell.css) == ("-0.84", "") and "not a reproduction" in cell.title
    assert 'class="disagree"' not in render_table(imported)


def test_a_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv: table 't' not found"):
        build_report({"t": str(tmp_path / "absent.csv")}, {}, tmp_path / "r.html")


# ----------------------------------------------------------------------------------------------------------
# In a browser
# ----------------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _measure(page) -> dict:
    """What the page's own script wrote into <body> once Chromium laid it out at 1400 px."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,3000"]
    cmd += ["--virtual-time-budget=2000", "--dump-dom", f"file://{page}"]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, f"no <body> in Chromium's DOM: {dom[:300]}"
    return {k: v for k, v in re.findall(r'data-([\w-]+)="([^"]*)"', body[1])}


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_no_horizontal_scrolling_at_1400px_in_chromium(run, tmp_path):
    """The run's page holds what its CSS must keep narrow: a 13-column plain table with a method name longer than a
    line (only ``overflow-wrap: anywhere`` breaks it), a figure wider than the page and a 25-method matrix."""
    page = build_report(
        run["tables"], run["figures"], tmp_path / "report.html", table_specs=run["specs"], pairwise=run["pairwise"]
    )
    opened = tmp_path / "opened.html"  # and with every toggle open
    opened.write_text(page.read_text().replace("<details", "<details open"))
    for p in (page, opened):
        got = _measure(p)
        assert got["viewport-width"] == "1400", got  # the window size took: the numbers below are at 1400 px
        # the visible width is the window's less the vertical scrollbar: a page 10 px wider than that scrolls
        assert 1300 < int(got["client-width"]) <= 1400, got
        assert int(got["scroll-width"]) <= int(got["client-width"]), f"{p.name}: it scrolls sideways at 1400 px: {got}"
        assert 0 < int(got["widest-table"]) <= int(got["client-width"]), got


def test_plot_points_mark_external_rows_and_the_published_protocol_of_rows_not_run():
    """A row the workflow left out still has its published value measured as ours are (same protocol); an
    imported row is labelled external in the plot, as in the headline."""
    df = pd.DataFrame(
        {
            "row": ["Blurry input", "Theirs", "Left out"],
            "method": ["identity", "theirs", ""],
            "psnr": [22.0, 24.0, math.nan],
            "psnr_paper": [math.nan, math.nan, 26.0],
            "psnr_diff": [math.nan, math.nan, math.nan],
            "paper_protocol": ["", "", "16bit"],
            "protocol": ["16bit", "16bit", ""],
            "prediction_source": ["suite", "external", ""],
        }
    )
    points, _ = psnr_points([("table1_dpdd", df, {})])
    theirs, left_out = points
    assert theirs.label == "Theirs (external)" and left_out.same_protocol and left_out.paper == 26.0


def test_a_not_run_row_is_drawn_apart_from_a_published_only_one_and_labels_are_literal(tmp_path):
    """A row the workflow left out says so in the plot; labels with ``$`` are text, not TeX (``$\\bad$`` would
    not even parse)."""
    df = pd.DataFrame(
        {
            "row": ["Blurry input", "Cost $5 and $6", r"My $\badcommand$ method", "Left out", "Xin et al."],
            "method": ["identity", "a", "b", "", ""],
            "psnr": [22.0, 24.0, 25.0, math.nan, math.nan],
            "psnr_ci95_low": [21.5, 23.0, 24.0, math.nan, math.nan],
            "psnr_ci95_high": [22.5, 25.0, 26.0, math.nan, math.nan],
            "psnr_paper": [math.nan, math.nan, math.nan, 26.0, 27.0],
            "psnr_diff": math.nan,
            "note": ["", "", "", "not run: its checkpoint is fetched by hand", ""],
            "protocol": "16bit",
        }
    )
    points, blurry = psnr_points([("table5_mine", df, {"test": "my_set"})])
    assert [(p.label, p.not_run) for p in points][2:] == [("Left out (not run)", True), ("Xin et al.", False)]
    assert psnr_plot(r"my $set$: mean PSNR per method", points, blurry).startswith(b"\x89PNG")
    df.to_csv(tmp_path / "t.csv", index=False)
    specs = {"table5_mine": {"test": "my_set", "title": "Table 5: my set"}}
    html = build_report({"table5_mine": str(tmp_path / "t.csv")}, {}, tmp_path / "r.html", table_specs=specs)
    caption = " ".join(html.read_text().split("<figcaption>", 1)[1].split("</figcaption>", 1)[0].split())
    assert caption.startswith("Mean PSNR of each method over the images of test set my_set, with its 95%")
    assert "the blurry input (dashed line) with its 95% bootstrap interval (grey band)" in caption
    assert "was left out by the workflow: only its published value is drawn, crossed out" in caption
