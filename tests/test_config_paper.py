"""The published numbers (``config/paper/*.csv``): their labels must say what each number is.

A protocol decides whether a table shows a difference between a published number and ours, and a status says
where the number was read; a wrong label puts a number beside ours that was measured another way, or calls a
reading of the paper a printed cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from baselines.published import get_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper"
FILES = sorted(PAPER.glob("table*.csv"))


def _documented(heading: str) -> set[str]:
    """The values of the first column of the README table that follows ``heading``'s line."""
    lines = (PAPER / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading} |"))
    values = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        values.add(line.split("|")[1].strip().strip("`"))
    return values


def _published_rows():
    """(table, row label, checkpoint) for every table row the config runs from a published checkpoint."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for table, spec in config["tables"].items():
        for row in spec["rows"]:
            entry = config["published"].get(row.get("method") or "", {})
            if "checkpoint" in entry:
                yield table, spec["published"], row["label"], entry["checkpoint"]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_status_and_protocol_is_one_the_readme_defines(path):
    df = pd.read_csv(path)
    assert set(df["status"]) <= _documented("status"), path
    assert set(df["protocol"]) <= _documented("protocol"), path


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_an_exact_value_is_printed_in_the_table_of_its_file(path):
    """``exact`` means a cell of this very table in the supplement; a value read from another table is not."""
    number = re.match(r"table(\d+)_", path.name).group(1)
    df = pd.read_csv(path)
    exact = df[df["status"] == "exact"]
    elsewhere = exact[~exact["source"].str.match(rf"K3DN supplement Table {number}\b(?!-)")]
    assert elsewhere.empty, f"{path.name}: exact rows sourced elsewhere: {list(elsewhere['row'])}"


def test_a_published_protocol_agrees_with_the_checkpoints_catalogue_protocol():
    """Where a published number and the checkpoint that made it both state how the authors read DPD-blur, they
    agree: the catalogue's ``input_protocol`` is how the suite feeds that checkpoint, the paper file's ``protocol``
    decides whether our number is compared with the published one."""
    checked, wrong = 0, []
    for table, csv, label, checkpoint in _published_rows():
        ours = get_checkpoint(checkpoint).input_protocol
        rows = pd.read_csv(ROOT / csv)
        for protocol in set(rows.loc[rows["row"] == label, "protocol"]):
            depth = re.match(r"(8bit|16bit)", protocol)
            if depth:  # unknown, timing-a40 and linear-raw say nothing about the bit depth
                checked += 1
                if depth.group(1) != ours:
                    wrong.append(f"{table} {label!r}: {protocol} in {csv}, {ours} for checkpoint {checkpoint}")
    assert not wrong, wrong
    assert checked >= 6  # DPDNet, RDPD, IFAN, DDDNet, Restormer (Table 1); Restormer, IFAN (single, Table 8)
