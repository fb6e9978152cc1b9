"""Table 12: a time difference only against a published time of the same device class, our device beside our time."""

import math

import pandas as pd
import pytest

from k3dn.report.tables import build_table, same_device_class

SPEC = {
    "title": "speed",
    "kind": "speed",
    "groups": ["NVIDIA A40"],
    "metrics": ["seconds"],
    "rows": [{"label": "Net", "method": "net"}],
}


def _table(tmp_path, device: str) -> pd.DataFrame:
    speed = tmp_path / "speed"
    speed.mkdir(exist_ok=True)
    row = {"method": "net", "seconds_mean": 0.5, "device": device, "git_commit": "abc", "size": "1120x1680"}
    pd.DataFrame([{**row, "warmup": 5, "runs": 30, "dtype": "float32"}]).to_csv(speed / "net.csv", index=False)
    published = tmp_path / "pub.csv"
    pub = {"row": "Net", "group": "NVIDIA A40", "metric": "seconds", "value": 0.8, "source": "T12", "status": "exact"}
    pd.DataFrame([{**pub, "protocol": "timing-a40"}]).to_csv(published, index=False)
    return build_table({**SPEC, "published": str(published)}, speed_root=speed)


def test_a_time_on_the_published_device_is_compared(tmp_path):
    t = _table(tmp_path, "NVIDIA A40")
    assert t.loc[0, "seconds_diff"] == pytest.approx(0.5 - 0.8) and t.loc[0, "diff_note"] == ""


@pytest.mark.parametrize("device", ["NVIDIA H100 80GB HBM3", "cpu:x86_64 x2", "NVIDIA A40-8Q"])
def test_a_time_on_another_device_is_not_subtracted_and_says_why(tmp_path, device):
    t = _table(tmp_path, device)
    assert math.isnan(t.loc[0, "seconds_diff"]) and t.loc[0, "seconds"] == 0.5 and t.loc[0, "seconds_paper"] == 0.8
    assert (
        t.loc[0, "diff_note"]
        == f"published on NVIDIA A40, ours on {device}: times of different devices are not compared"
    )


def test_our_device_stands_beside_our_time(tmp_path):
    cols = list(_table(tmp_path, "NVIDIA H100 80GB HBM3").columns)
    assert cols[cols.index("seconds") : cols.index("seconds") + 4] == [
        "seconds",
        "seconds_paper",
        "seconds_diff",
        "device",
    ]


@pytest.mark.parametrize(
    "ours, published, same",
    [
        ("NVIDIA A40", "NVIDIA A40", True),
        ("nvidia a40", "NVIDIA A40", True),
        ("NVIDIA A40", "A40", True),
        ("NVIDIA A400", "NVIDIA A40", False),
        ("NVIDIA A40-8Q", "NVIDIA A40", False),
        ("NVIDIA H100 80GB HBM3", "NVIDIA A40", False),
        ("cpu:x86_64 x16", "NVIDIA A40", False),
        ("", "NVIDIA A40", False),
    ],
)
def test_same_device_class(ours, published, same):
    assert same_device_class(ours, published) is same
