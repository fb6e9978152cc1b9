"""A config changed after preflight passed is checked at the start of the next run, and only recorded once
it passes (so a fixed config is checked again, and a bad one never becomes the recorded one)."""

import json
from pathlib import Path

import pytest
import yaml

from k3dn.preflight import recheck

ROOT = Path(__file__).resolve().parent.parent


def test_a_changed_config_is_rechecked_before_any_job(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = dict(yaml.safe_load((ROOT / "config/config.yaml").read_text()), require_all=True)
    wf, done = tmp_path / "workflow.json", tmp_path / "preflight.ok"
    recheck(cfg, wf, done)  # first run: the preflight job will check it
    assert json.loads(wf.read_text())["device"] == "auto"
    done.touch()
    bad = dict(cfg, device="gpu")
    with pytest.raises(SystemExit, match="device: unknown device 'gpu'"):
        recheck(bad, wf, done)
    assert json.loads(wf.read_text())["device"] == "auto" and done.is_file()  # not recorded, not rerun
    with pytest.raises(SystemExit):
        recheck(bad, wf, done)  # still bad next time: checked again
