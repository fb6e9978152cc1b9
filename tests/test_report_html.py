"""The HTML report: a results section a person reads at 1400 px, every number of the CSVs one click away.

The realistic run here is Table 1 as ``k3dn report table`` writes it (the paper config's spec and published
numbers, 76 synthetic images per method, an external row, a published-only row and one the workflow left out),
Table 12 from synthetic speed files, and a pairwise matrix. The page's width is measured in headless Chromium
at the end (skipped only where no ``chromium`` is installed).
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
from k3dn.report.tables import SPEED_PROVENANCE, write_table

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

    # 25 methods: as many as a test set with every baseline and ablation has
    names = [f"method_{i:02d}_with_a_long_name" for i in range(25)]
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
        "tables": {"table1_dpdd": str(t1), "table12_speed": str(t12)},
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
    assert [r[0].text for r in view.rows] == ["1. Method A", "2. B", "3. C"]
    assert "95% CI [+0.50, +1.50]" in view.rows[0][2].title and "wins 60%" in view.rows[0][2].title


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
    assert lines["code commit (tables and metrics)"] == "one: c0ffee (all 5 rows)"
    assert lines["data checksum"].startswith("3 data checksums recorded")
    assert lines["config hash"].startswith("2 config hashes")
    assert lines["weights checksum"].startswith("1 weights checksum") and lines["weights checksum"].endswith(
        "none: 1 rows"
    )
    assert lines["device"] == "2: cpu (5 rows), NVIDIA H100 (1 rows)"


def test_the_page_says_which_yardstick_marks_what(tmp_path):
    _, t = _table(tmp_path)
    html = build_report({"table1_dpdd": str(t)}, {}, tmp_path / "report.html").read_text()
    assert "Published tables give means only, so a gap between a published number and ours has no paired" in (
        " ".join(html.split())
    )
    assert "&plusmn;0.1 dB" in html and "half-width" not in html


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
    assert html.count('id="table-') == 2  # `k3dn report check` and CI count the tables by this id
    assert html.count("data:image/png;base64,") == 3 and "MINIATURE RUN" in html
    assert "Main paper Table 1" in html and "76 images, 16-bit" in html
    assert 'src="http' not in html and "<link" not in html  # nothing fetched when it is opened
    assert re.search(r"<dt>code commit \(tables and metrics\)</dt><dd>one: 5cafc5226356 \(all \d+ rows\)</dd>", html)
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
    page = build_report(
        run["tables"], run["figures"], tmp_path / "report.html", table_specs=run["specs"], pairwise=run["pairwise"]
    )
    opened = tmp_path / "opened.html"  # and with every toggle open
    opened.write_text(page.read_text().replace("<details", "<details open"))
    for p in (page, opened):
        got = _measure(p)
        assert got["viewport-width"] == "1400", got  # the window size took: the numbers below are at 1400 px
        assert int(got["scroll-width"]) <= 1400, f"{p.name}: the page scrolls sideways at 1400 px: {got}"
        assert 0 < int(got["widest-table"]) <= 1400, got


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
