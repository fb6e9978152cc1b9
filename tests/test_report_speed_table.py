"""Table 12: a time difference only against a published time of the same device class, our device beside our time."""

import math

import pandas as pd
import pytest

from k3dn.errors import InputError
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


def _counts_table(tmp_path, published: list[dict], size: str = "1120x1680") -> pd.DataFrame:
    speed = tmp_path / "speed"
    speed.mkdir(exist_ok=True)
    row = {"method": "net", "seconds_mean": 0.5, "params": 2_500_000, "gmacs": 40.0, "device": "cpu:x86_64 x2"}
    row.update(git_commit="abc", size=size, warmup=5, runs=30, dtype="float32")
    pd.DataFrame([row]).to_csv(speed / "net.csv", index=False)
    path = tmp_path / "pub.csv"
    pd.DataFrame([{"row": "Net", "source": "README", "status": "exact", **p} for p in published]).to_csv(path)
    spec = {**SPEC, "metrics": ["seconds", "params_m", "gmacs"], "published": str(path)}
    return build_table(spec, speed_root=speed)


def test_counts_do_not_depend_on_the_device_and_macs_only_at_the_same_size(tmp_path):
    """A parameter count is compared whatever device we timed on (and whatever group it was published under);
    MACs only where they were counted at our input size."""
    published = [
        {"group": "any", "metric": "params_m", "value": 2.0, "protocol": "count"},
        {"group": "NVIDIA A40", "metric": "gmacs", "value": 3.0, "protocol": "macs@256x256"},
    ]
    t = _counts_table(tmp_path, published)
    assert t.loc[0, "params_m"] == pytest.approx(2.5) and t.loc[0, "params_m_diff"] == pytest.approx(0.5)
    assert t.loc[0, "gmacs"] == 40.0 and t.loc[0, "gmacs_paper"] == 3.0 and math.isnan(t.loc[0, "gmacs_diff"])
    assert "gmacs published as macs@256x256, ours as macs@1120x1680" in t.loc[0, "diff_note"]
    published[1]["protocol"] = "macs@1120x1680"
    assert _counts_table(tmp_path, published).loc[0, "gmacs_diff"] == pytest.approx(37.0)


def test_a_speed_file_without_counts_names_the_file(tmp_path):
    speed = tmp_path / "speed"
    speed.mkdir()
    row = {"method": "net", "seconds_mean": 0.5, "device": "cpu", "git_commit": "abc", "size": "8x8"}
    pd.DataFrame([{**row, "warmup": 5, "runs": 30, "dtype": "float32"}]).to_csv(speed / "net.csv", index=False)
    with pytest.raises(InputError, match=r"net\.csv.*no 'params_m'.*rerun `k3dn report speed`"):
        build_table({**SPEC, "metrics": ["seconds", "params_m"]}, speed_root=speed)


def test_speed_rows_count_parameters_and_the_macs_of_a_convolution():
    """Known answers: a 3x3 convolution 6 -> 4 channels at 16x24 does 16*24*4*6*9 MACs (through forward_fitted,
    which pads 16x24 to the size multiple first: 8x8 divides both, so nothing is added)."""
    import torch

    from k3dn.report.speed import time_model

    class Net(torch.nn.Module):
        input_views, size_multiple, size_mode = ("left", "right"), (8, 8), "pad"

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(6, 4, 3, padding=1, bias=True)

        def forward(self, batch):
            return {"output": self.conv(torch.cat([batch["left"], batch["right"]], 1))[:, :3]}

    r = time_model(Net(), size=(16, 24), warmup=0, runs=1)
    assert r["params"] == 6 * 4 * 9 + 4
    assert r["gmacs"] * 1e9 == pytest.approx(16 * 24 * 4 * 6 * 9)
    assert math.isnan(r["peak_gib"])


def test_a_module_states_the_macs_the_counter_cannot_see():
    """DiNAT-IR's neighbourhood attention is element-wise products: at 8x8 with 12 channels and a 7x7 window the
    counter sees the two linear layers (8*8*12*36 + 8*8*12*12 MACs); q.k and attention.v add 2*8*8*12*49."""
    import torch

    from baselines.dinat_ir import NeighborhoodAttention2D
    from k3dn.report.speed import count_macs

    class Net(torch.nn.Module):
        input_views, size_multiple, size_mode = ("left",), (1, 1), "pad"

        def __init__(self):
            super().__init__()
            self.na = NeighborhoodAttention2D(12, 2, 7, 1)

        def forward(self, batch):
            x = batch["left"].repeat(1, 4, 1, 1).permute(0, 2, 3, 1)
            return {"output": self.na(x).permute(0, 3, 1, 2)[:, :3]}

    macs = count_macs(Net(), {"left": torch.rand(1, 3, 8, 8)})
    assert macs == 64 * 12 * 36 + 64 * 12 * 12 + 2 * 64 * 12 * 49
