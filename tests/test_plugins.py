"""A researcher's own model without forking the suite: plugin models found through the ``k3dn.models`` entry-point
group (k3dn.registry), user checkpoint catalogues merged over the package's (baselines.published), and a user
config that adds the method to a paper table without restating the paper's rows (k3dn.workflow), checked with
the example plugin of ``examples/plugin`` in a Snakemake dry run."""

import importlib.metadata
import json
import logging
import os
import re
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from baselines import published
from baselines.weight_manifests import load_manifest
from k3dn import registry
from k3dn.data.catalog import CatalogError
from k3dn.workflow import Plan, WorkflowConfigError, merged
from tests.conftest import shell_commands, snakemake_dry_run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugin"
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
MINI = yaml.safe_load((ROOT / "config" / "miniature.yaml").read_text())
BUILTIN = yaml.safe_load(published.DEFAULT.read_text())["checkpoints"]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")

PLUGIN_SOURCE = """
import torch.nn as nn
from k3dn.registry import register_model


class Net(nn.Module):
    input_views = ("center",)
    size_multiple = (1, 1)
    size_mode = "pad"

    def forward(self, batch):
        return {"output": batch["center"]}


def checkpoint_filter_fn(state_dict, model):
    return state_dict


@register_model(checkpoint_filter_fn=checkpoint_filter_fn)
def NAME(**kw):
    return Net()
"""


@pytest.fixture
def entry_points(tmp_path, monkeypatch):
    """``entry_points(**{name: source})``: plugin modules written under ``tmp_path``, each offered as one
    ``k3dn.models`` entry point; the registry is restored afterwards."""
    registry.list_models()  # the suite's own models in place, so only the plugins register below
    for attr in ("_REGISTRY", "_FILTERS", "_PLUGIN_FAILURES"):
        monkeypatch.setattr(registry, attr, dict(getattr(registry, attr)))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps, modules = [], []
    real = importlib.metadata.entry_points

    def fake(**params):
        return eps if params.get("group") == registry.ENTRY_POINT_GROUP else real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)

    def offer(**plugins):
        for name, source in plugins.items():
            module = f"k3dn_test_plugin_{uuid.uuid4().hex[:8]}"
            (tmp_path / f"{module}.py").write_text(source)
            eps.append(importlib.metadata.EntryPoint(name=name, value=module, group=registry.ENTRY_POINT_GROUP))
            modules.append(module)
        monkeypatch.setattr(registry, "_loaded", False)
        return modules

    yield offer
    for m in modules:
        sys.modules.pop(m, None)


# ---- plugin models ------------------------------------------------------------------------------------------


def test_a_plugin_model_is_listed_created_and_loads_through_its_filter(entry_points):
    [module] = entry_points(mine=PLUGIN_SOURCE.replace("NAME", "plugin_net"))
    assert "plugin_net" in registry.list_models() and "identity" in registry.list_models()
    model = registry.create_model("plugin_net")
    assert model.registry_name == "plugin_net" and model.input_views == ("center",)
    assert registry.checkpoint_filter("plugin_net").__module__ == module
    assert registry.model_modules("plugin_net") == {module}  # its code is part of the prediction's identity
    # the module imported again (a failed plugin import retried) registers its own factory again, no clash
    importlib.reload(sys.modules[module])
    assert registry.create_model("plugin_net").registry_name == "plugin_net"


def test_a_plugin_model_named_like_a_builtin_is_an_error_naming_both(entry_points):
    [module] = entry_points(clash=PLUGIN_SOURCE.replace("NAME", "identity"))
    with pytest.raises(registry.ModelNameClash) as err:
        registry.list_models()
    msg = str(err.value)
    assert f"entry point 'clash = {module}'" in msg
    assert "baselines.identity.identity" in msg and f"{module}.identity" in msg
    assert "\n" not in msg


def test_a_plugin_that_fails_to_import_is_one_line_and_the_rest_loads(entry_points, caplog):
    entry_points(
        broken="import k3dn_no_such_dependency\n",
        exits="raise SystemExit('no GPU found')\n",  # as a script would, at import
        fine=PLUGIN_SOURCE.replace("NAME", "plugin_fine"),
    )
    with caplog.at_level(logging.WARNING, logger="k3dn.registry"):
        models = registry.list_models()
    assert "plugin_fine" in models and "identity" in models
    broken, exits = [r.getMessage() for r in caplog.records if r.name == "k3dn.registry"]
    assert "\n" not in broken and "entry point 'broken = k3dn_test_plugin_" in broken
    assert "ModuleNotFoundError" in broken and "k3dn_no_such_dependency" in broken
    assert "entry point 'exits = k3dn_test_plugin_" in exits and "SystemExit: no GPU found" in exits
    # asking for a model then says which plugin did not load
    with pytest.raises(registry.UnknownModelError, match="not loaded: k3dn.models entry point 'broken"):
        registry.create_model("plugin_broken_net")


# ---- user catalogues ----------------------------------------------------------------------------------------


def user_catalogue(folder: Path, name: str = "my_weights", model: str = "my_net", manifest="manifests/my_net.json"):
    """A user catalogue in ``folder`` with one entry (a manual source) and its tensor manifest beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifests").mkdir(exist_ok=True)
    (folder / "manifests" / "my_net.json").write_text(
        json.dumps({"framework": "pytorch", "total_params": 6, "tensors": [["w", [2, 3], "float32"]]})
    )
    entry = {
        "model": model,
        "manifest": manifest,
        "params": 6,
        "file": "w.pth",
        "container": "torch.save sd",
        "licence": "MIT",
        "citation": "me",
        "input_protocol": "16bit",
        "sources": [
            {
                "name": "mine",
                "role": "official",
                "method": "manual",
                "files": [{"path": "w.pth", "sha256": None, "url": "https://example.org/w.pth"}],
            }
        ],
    }
    path = folder / "checkpoints.yaml"
    path.write_text(yaml.safe_dump({"checkpoints": {name: entry}}))
    return path


def test_a_user_catalogue_is_merged_over_the_package_one(tmp_path, monkeypatch):
    user = user_catalogue(tmp_path / "mine")
    monkeypatch.setenv(published.USER_ENV, str(user))
    cks = published.load_checkpoints()
    assert set(cks) == set(BUILTIN) | {"my_weights"}
    ck = published.checkpoint_for_model("my_net")
    assert ck.name == "my_weights" and ck.input_protocol == "16bit"
    # the manifest is found relative to the catalogue, wherever the command runs
    monkeypatch.chdir(tmp_path)
    assert load_manifest(ck.manifests[0])["tensors"] == [["w", [2, 3], "float32"]]
    # the merged catalogue written to one file (the miniature derives its registry from it) reads back the same
    merged_file = published.write_catalogue(tmp_path / "elsewhere" / "merged.yaml")
    assert published.load_checkpoints(merged_file) == cks
    assert published.checkpoint_entries(merged_file) == published.checkpoint_entries()
    monkeypatch.delenv(published.USER_ENV)
    assert "my_weights" not in published.load_checkpoints()


def test_a_name_in_two_catalogues_is_an_error_naming_both_files(tmp_path, monkeypatch):
    user = user_catalogue(tmp_path / "a", name="restormer_dual")
    monkeypatch.setenv(published.USER_ENV, str(user))
    with pytest.raises(CatalogError) as err:
        published.load_checkpoints()
    assert str(user) in str(err.value) and str(published.DEFAULT) in str(err.value)
    assert "checkpoints.restormer_dual" in str(err.value)
    first, second = user_catalogue(tmp_path / "b"), user_catalogue(tmp_path / "c")
    monkeypatch.setenv(published.USER_ENV, os.pathsep.join([str(first), str(second)]))
    with pytest.raises(CatalogError, match=rf"{re.escape(str(second))}: .*already defined in {re.escape(str(first))}"):
        published.load_checkpoints()


def test_weights_of_a_builtin_network_need_a_tag_and_a_missing_manifest_is_named(tmp_path, monkeypatch):
    # new weights of Restormer's network: a tagged model, with the package's manifest by name
    tagged = user_catalogue(tmp_path / "t", model="restormer_dual.mine", manifest="restormer_dual_pixel")
    monkeypatch.setenv(published.USER_ENV, str(tagged))
    assert published.checkpoint_for_model("restormer_dual.mine").manifests == ("restormer_dual_pixel",)
    untagged = user_catalogue(tmp_path / "u", model="restormer_dual")
    monkeypatch.setenv(published.USER_ENV, str(untagged))
    with pytest.raises(CatalogError, match=r"model 'restormer_dual' also loads checkpoints.restormer_dual of .*tag"):
        published.load_checkpoints()
    missing = user_catalogue(tmp_path / "m", manifest="nowhere/my_net.json")
    monkeypatch.setenv(published.USER_ENV, str(missing))
    with pytest.raises(CatalogError, match=rf"{re.escape(str(missing))}: checkpoints.my_weights.manifest: .*nowhere"):
        published.load_checkpoints()


# ---- the user config --------------------------------------------------------------------------------------


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The example plugin published into a working directory ``tmp_path / "work"`` (as its README says), with
    ``$K3DN_CHECKPOINTS`` restored afterwards."""
    monkeypatch.setenv(published.USER_ENV, "")  # recorded (delenv of an unset one is not): the plan's export is undone
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from k3dn_plugin_example.publish import publish

    work = tmp_path / "work"
    publish(work / "resources" / "plugin_example", work / "resources" / "checkpoints")
    (work / "config").symlink_to(ROOT / "config")
    return work


def test_the_user_config_adds_a_row_without_restating_the_papers(example, monkeypatch):
    monkeypatch.chdir(example)  # the config's catalogue path is relative to the working directory
    user = yaml.safe_load((EXAMPLE / "my_method.yaml").read_text())
    plan = Plan(merged(merged(PAPER, MINI), user), BUILTIN)
    paper = Plan(merged(PAPER, MINI), BUILTIN)
    rows = plan.tables["table1_dpdd"]["rows"]
    assert rows[:-1] == paper.tables["table1_dpdd"]["rows"]
    assert rows[-1] == {"label": "Example plugin (TinyDP)", "method": "example_tiny_dp"}
    assert "extra_rows" not in plan.tables["table1_dpdd"]  # `k3dn report table` gets a plain spec
    assert {t: s["rows"] for t, s in plan.tables.items() if t != "table1_dpdd"} == {
        t: s["rows"] for t, s in paper.tables.items() if t != "table1_dpdd"
    }
    assert plan.needed_checkpoints() == sorted([*paper.needed_checkpoints(), "example_tiny_dp"])
    assert plan.checkpoints["example_tiny_dp"]["model"] == "example_tiny_dp"
    # the jobs the workflow starts read the same catalogue
    catalogue = example / "resources" / "plugin_example" / "checkpoints.yaml"
    assert os.environ[published.USER_ENV] == str(catalogue)
    assert published.get_checkpoint("example_tiny_dp").params == 18275
    # a second plan in the same process (preflight, report check) reads the catalogue once, not twice
    assert Plan(merged(merged(PAPER, MINI), user), published.checkpoint_entries()).checkpoints == plan.checkpoints


def test_user_config_mistakes_name_the_key(example, monkeypatch):
    monkeypatch.chdir(example)
    user = yaml.safe_load((EXAMPLE / "my_method.yaml").read_text())
    taken = merged(user, {"tables": {"table1_dpdd": {"extra_rows": {"example_tiny_dp": "Restormer"}}}})
    with pytest.raises(WorkflowConfigError, match=r"tables.table1_dpdd.extra_rows.example_tiny_dp: label 'Restormer'"):
        Plan(merged(PAPER, taken), BUILTIN)
    untested = merged(user, {"tables": {"table2_ddd_syn": {"extra_rows": {"example_tiny_dp": "Mine"}}}})
    with pytest.raises(WorkflowConfigError, match=r"tables.table2_ddd_syn: row 'Mine'.*not tested on ddd_syn_test"):
        Plan(merged(PAPER, untested), BUILTIN)
    gone = merged(user, {"checkpoint_catalogues": {"k3dn_plugin_example": "no/such.yaml"}})
    with pytest.raises(WorkflowConfigError, match=r"checkpoint_catalogues.k3dn_plugin_example: no/such.yaml: no such"):
        Plan(merged(PAPER, gone), BUILTIN)
    clash = user_catalogue(example / "clash", name="bambnet", model="my_net")
    twice = merged(user, {"checkpoint_catalogues": {"other": str(clash)}})
    with pytest.raises(
        WorkflowConfigError, match=r"checkpoint_catalogues.other: .*checkpoints.bambnet: already defined"
    ):
        Plan(merged(PAPER, twice), BUILTIN)
    # a name of its own, but a model that already loads a package entry: the plan says so, not a job later
    same_model = user_catalogue(example / "same", name="my_bambnet", model="bambnet")
    both = merged(user, {"checkpoint_catalogues": {"same": str(same_model)}})
    with pytest.raises(WorkflowConfigError, match=r"checkpoint_catalogues.same: .*model 'bambnet' also loads"):
        Plan(merged(PAPER, both), BUILTIN)


def test_new_weights_of_a_builtin_network_join_a_table_through_a_tagged_model(example, monkeypatch):
    import jsonschema

    monkeypatch.chdir(example)
    mine = user_catalogue(example / "mine", model="restormer_dual.mine", manifest="restormer_dual_pixel")
    user = {
        "checkpoint_catalogues": {"mine": str(mine)},
        "published": {
            "restormer_mine": {"model": "restormer_dual.mine", "checkpoint": "my_weights", "test": ["dpdd_test"]}
        },
        "tables": {"table1_dpdd": {"extra_rows": {"restormer_mine": "Restormer (my weights)"}}},
    }
    config = merged(merged(PAPER, MINI), user)
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    jsonschema.validate(config, schema)
    plan = Plan(config, BUILTIN)
    assert plan.method_args("restormer_mine", "dpdd_test").startswith("--model restormer_dual.mine --weights ")
    assert plan.tables["table1_dpdd"]["rows"][-1]["method"] == "restormer_mine"
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(merged(config, {"published": {"restormer_mine": {"model": "a.b.c"}}}), schema)


def test_the_miniature_dry_run_with_the_example_runs_it_into_table_1(example):
    """What CI runs: the schema accepts the user config, and the plugin's checkpoint is stood in, fetched,
    predicted, scored and put in Table 1; the paper's own jobs are unchanged."""
    out = snakemake_dry_run(
        example, "-p", "all", "--configfile", "config/miniature.yaml", str(EXAMPLE / "my_method.yaml")
    )
    assert out.returncode == 0, out.stderr[-3000:]
    commands = shell_commands(out.stdout, "example_tiny_dp")
    assert any(c.startswith("k3dn miniature weights") for c in commands)
    assert any(c.startswith("k3dn baselines fetch example_tiny_dp") for c in commands)
    assert any(c.startswith("k3dn predict --model example_tiny_dp --weights ") for c in commands)
    assert any(c.startswith("k3dn evaluate --pred results/predictions/example_tiny_dp/dpdd_test") for c in commands)
    [table] = [c for c in commands if c.startswith("k3dn report table") and "table1_dpdd" in c]
    assert '{"label":"Example plugin (TinyDP)","method":"example_tiny_dp"}]' in table
