"""The miniature's stand-ins go through the real download code: written in each set's published layout and
container, served on 127.0.0.1, fetched and verified with a derived registry, unpacked, and read by the
adapters. A stand-in in the wrong layout, a registry pointing elsewhere, or a checksum not re-derived fails here."""

import threading
from pathlib import Path

import pytest
import yaml

from k3dn.cli import main
from k3dn.data.catalog import DEFAULT_CATALOG
from k3dn.data.manifest import read_manifest
from k3dn.miniature.mirror import derive_registry, load_entries, place_manual, served_path
from k3dn.miniature.serve import make_server
from k3dn.miniature.standins import write_dataset_standin

SPECS = {
    "dpdd": ({"train": 1, "val": 1, "test": 2, "eval_size": [32, 48]}, {"image_size": [64, 64]}),
    "pixel": ({"scenes": 2}, {"crop": [48, 64]}),
    "dpd_disp": ({"qualitative": 1, "quantitative": 1, "archive": 1, "size": [32, 48]}, {}),
    "nyu_depth_v2_labeled": ({"images": 2, "size": [24, 32]}, {}),
    "synthia_sf": ({"sequences": 2, "frames": 1}, {"image_size": [24, 32]}),
    "lpips_weights": ({}, {}),
}


@pytest.fixture
def server(tmp_path):
    srv = make_server(tmp_path / "mini" / "www")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def _obtain(tmp_path, url, item, registry=DEFAULT_CATALOG):
    """Stand in ``item``, derive the registry for ``url``, then do what a run does: place manual files, download."""
    root, dest = tmp_path / "mini", tmp_path / "raw" / item
    spec, ds_cfg = SPECS[item]
    entry = load_entries(registry, "datasets")[item]
    assert write_dataset_standin(item, spec, ds_cfg, entry, root)
    place_manual(root, item, entry, dest)
    derived = derive_registry(Path(registry), "datasets", {item}, root, url, root / "datasets.yaml")
    code = main(["data", "--registry", str(derived), "download", item, "--dest", str(dest)])
    return code, dest, yaml.safe_load(derived.read_text())["datasets"][item]


@pytest.mark.parametrize("item", sorted(SPECS))
def test_standin_downloads_verifies_and_reads(tmp_path, server, item):
    code, dest, derived = _obtain(tmp_path, server, item)
    assert code == 0 and any(dest.iterdir())
    fetched = [f for s in derived["sources"] if s["method"] != "manual" for f in s["files"]]
    assert all(f["url"].startswith(server) for f in fetched)  # nothing leaves this machine
    published = {f["path"]: f for s in load_entries(DEFAULT_CATALOG, "datasets")[item]["sources"] for f in s["files"]}
    for f in fetched:  # a published checksum is replaced by the stand-in's, an absent one stays absent
        assert bool(f.get("sha256")) == bool(published[f["path"]].get("sha256"))
    if item in ("dpdd", "pixel", "dpd_disp"):
        extra = ["--crop", "48", "64"] if item == "pixel" else []
        out = tmp_path / "manifests"
        assert main(["data", "manifest", item, "--root", str(dest), "--out", str(out), "--any-count", *extra]) == 0
        tests = read_manifest(out / f"{item}_test.csv")
        assert len(tests) == {"dpdd": 2, "pixel": 2, "dpd_disp": 2}[item]
    if item == "dpdd":
        assert set(read_manifest(tmp_path / "manifests" / "dpdd_test.csv")["label_source"]) == {"official"}
        assert len(read_manifest(tmp_path / "manifests" / "dpdd_train.csv")) == 1


def test_dpd_disp_archive_source(tmp_path, server):
    """The second published DPD-disp layout (the JPEG archive behind a Drive link), as the only source."""
    full = yaml.safe_load(DEFAULT_CATALOG.read_text())
    entry = full["datasets"]["dpd_disp"]
    entry["sources"] = [s for s in entry["sources"] if s["method"] == "gdrive"]
    assert entry["sources"], "the registry lost DPD-disp's archive source"
    reg = tmp_path / "datasets.yaml"
    reg.write_text(yaml.safe_dump(full, sort_keys=False))
    code, dest, derived = _obtain(tmp_path, server, "dpd_disp", registry=reg)
    assert code == 0 and derived["sources"][0]["method"] == "http"
    out = tmp_path / "manifests"
    assert main(["data", "manifest", "dpd_disp", "--root", str(dest), "--out", str(out), "--any-count"]) == 0
    assert len(read_manifest(out / "dpd_disp_test.csv")) == SPECS["dpd_disp"][0]["archive"]


def test_a_tampered_standin_fails_verification(tmp_path, server):
    root = tmp_path / "mini"
    code, dest, derived = _obtain(tmp_path, server, "lpips_weights")
    assert code == 0
    f = derived["sources"][0]["files"][0]
    served = root / "www" / f["url"][len(server) :]
    served.write_bytes(served.read_bytes()[:-1] + b"x")
    fresh = tmp_path / "raw2"
    assert (
        main(["data", "--registry", str(root / "datasets.yaml"), "download", "lpips_weights", "--dest", str(fresh)])
        != 0
    )
    assert not (fresh / f["path"]).exists()


def test_served_paths_keep_files_of_one_host_apart():
    a = served_path("https://drive.google.com/uc?id=1&export=download")
    b = served_path("https://drive.google.com/uc?id=2&export=download")
    assert a != b and a.startswith("drive.google.com/uc__")
    assert served_path("https://github.com/x/y/raw/abc/a%20b.png") == "github.com/x/y/raw/abc/a%20b.png"


def test_a_checkpoint_with_a_published_size_and_checksum_is_fetched_from_its_standin(tmp_path, server):
    """DiNAT-IR's Git LFS pointer publishes the file's size and sha256: the derived registry holds the stand-in's
    (random weights, another size), so the real download code fetches, verifies and loads it strictly."""
    from baselines.published import DEFAULT
    from k3dn.miniature.weights import write_weight_standins

    name, root = "dinat_ir_dual", tmp_path / "mini"
    entries = load_entries(DEFAULT, "checkpoints")
    assert all(f.get("size") and f.get("sha256") for s in entries[name]["sources"] for f in s["files"])
    write_weight_standins(entries, [name], root)
    derived = derive_registry(DEFAULT, "checkpoints", {name}, root, server, root / "checkpoints.yaml")
    dest = tmp_path / "ckpt" / name
    assert main(["baselines", "fetch", name, "--dest", str(dest), "--registry", str(derived)]) == 0
    (file,) = [f for s in yaml.safe_load(derived.read_text())["checkpoints"][name]["sources"] for f in s["files"]]
    assert file["size"] == (dest / file["path"]).stat().st_size != entries[name]["sources"][0]["files"][0]["size"]
