"""The HTML report: every table and figure in one self-contained page, disagreements marked."""

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from k3dn.report.html import build_report, render_table

PROVENANCE = {
    "git_commit": "abc",
    "device": "cpu",
    "dtype": "float32",
    "protocol": "16bit",
    "config_hash": "c1",
    "data_sha256": "d" * 8,
}


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


def test_a_gap_beyond_the_interval_is_marked(tmp_path):
    df, _ = _table(tmp_path)
    html = render_table(df)
    assert 'disagree" >-0.8400<' in html and html.count("disagree") == 1
    # Ours: |-0.84| > half-width 0.5 -> marked; widen the interval and it is not
    wide = df.assign(psnr_ci95_low=20.0, psnr_ci95_high=32.0)
    assert "disagree" not in render_table(wide)


def test_report_holds_every_table_and_figure_offline(tmp_path):
    _, t = _table(tmp_path)
    png = tmp_path / "ablations.png"
    cv2.imwrite(str(png), np.full((8, 8, 3), 200, np.uint8))
    out = build_report(
        {"table1_dpdd": str(t)}, {"ablations": str(png)}, tmp_path / "r" / "report.html", note="MINIATURE RUN"
    )
    html = out.read_text()
    assert 'id="table-table1_dpdd"' in html and 'id="figure-ablations"' in html
    assert "data:image/png;base64," in html and "MINIATURE RUN" in html
    assert "published under 8bit, ours under 16bit" in html and "26.84" in html
    assert 'src="http' not in html and "<link" not in html  # nothing fetched when it is opened
    assert "<b>git_commit</b>: abc" in html and "<b>dtype</b>: float32" in html
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # written atomically


def test_a_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv: table 't' not found"):
        build_report({"t": str(tmp_path / "absent.csv")}, {}, tmp_path / "r.html")
