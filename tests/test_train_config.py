"""Training configs: the shipped recipe equals the code defaults, inheritance, --set, errors that name the key."""

from pathlib import Path

import pytest
import yaml

from k3dn.train.config import DEFAULTS, ConfigError, load_config

CONFIGS = Path(__file__).resolve().parent.parent / "config" / "train"


def test_recipe_yaml_is_the_code_default():
    recipe = yaml.safe_load((CONFIGS / "recipe.yaml").read_text())
    recipe["model"]["name"] = DEFAULTS["model"]["name"]  # the recipe names Large; the code default is Tiny
    assert recipe == DEFAULTS


@pytest.mark.parametrize(
    "name, stages",
    [
        ("dpdd", [9800, 10200]),
        ("ddd_syn", [2000, 2000]),
        ("rdpd", [19600, 20400]),
        ("ddd_syn_baseline", [4000]),
        ("rdpd_baseline", [40000]),
        ("check_synth", [1000, 200]),
    ],
)
def test_shipped_configs_load_with_the_paper_iterations(name, stages):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg["stages"] == stages
    assert cfg["optim"] == {"lr": 3e-4, "betas": [0.9, 0.999], "weight_decay": 1e-6, "grad_clip": 0.01}
    assert cfg["schedule"] == {"cycle_steps": 200, "warmup_steps": 100, "min_lr": 6e-5}
    assert sum(stages) in (1200, 4000, 20000, 40000)


def test_sets_and_overrides(tmp_path):
    cfg = load_config(
        CONFIGS / "check_synth.yaml",
        [
            "stages=[3, 1]",
            "optim.lr=1e-4",
            "model.overrides={window: [9, 9]}",
            "model.overrides.kernel_size=5",
            "data.crop=[288, 288]",
        ],
    )
    assert cfg["stages"] == [3, 1] and cfg["optim"]["lr"] == 1e-4 and cfg["data"]["crop"] == [288, 288]
    assert cfg["model"]["overrides"] == {"window": [9, 9], "kernel_size": 5}
    # the workflow passes the run's overrides as a whole; an empty mapping means "none"
    assert load_config(CONFIGS / "check_synth.yaml", ["model.overrides={}"])["model"]["overrides"] == {}


def test_errors_name_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: " + str(CONFIGS / "recipe.yaml") + "\noptim:\n  weight_decy: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'optim.weight_decy'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="stages"):
        load_config(None, ["stages=[1, 2, 3]"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_a_quoted_value_stays_a_string():
    """``--override 'scene="001"'`` (Xin et al.'s per-scene settings) must not become the number 1."""
    from k3dn.train.config import parse_value

    assert parse_value('"001"') == "001" and parse_value("1e-4") == 1e-4 and parse_value("001") == 1
