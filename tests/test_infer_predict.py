"""Inference: size fitting round trips, predict over a manifest (sizes, 16 bits, resume, grey rows), CLI."""

import json

import cv2
import numpy as np
import pytest
import torch

from k3dn.checkpoint import save_weights
from k3dn.infer import fit_batch, load_model, predict_manifest
from tests.conftest import load_probe

P = load_probe()


def _identity_probe():
    """Probe whose residual branch is zero: output == centre view, a known answer for the whole pipeline."""
    m = P.ProbeDP()
    with torch.no_grad():
        m.body[2].weight.zero_()
        m.body[2].bias.zero_()
    return m.eval()


@pytest.mark.parametrize("mode", ["pad", "resize"])
def test_fit_batch_reaches_the_multiple_and_undoes(mode):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 20), torch.linspace(0, 1, 30), indexing="ij")
    x = (0.5 + 0.4 * torch.sin(3 * xx + 2 * yy)).expand(1, 3, 20, 30).contiguous()  # smooth: resampling-safe
    fitted, undo = fit_batch({"left": x, "right": x}, (8, 16), mode)
    assert fitted["left"].shape[-2:] == (24, 32)
    back = undo(fitted["left"])
    assert back.shape == x.shape
    if mode == "pad":
        assert torch.equal(back, x)
    else:  # bicubic up and down: close, not exact
        assert (back - x).abs().max() < 0.01


def test_fit_batch_pad_uses_replicate_when_reflection_is_impossible():
    x = torch.rand(1, 3, 5, 5)
    fitted, undo = fit_batch({"left": x}, (16, 16), "pad")
    assert fitted["left"].shape[-2:] == (16, 16) and torch.equal(undo(fitted["left"]), x)
    assert torch.equal(fitted["left"][..., 15, 15], x[..., 4, 4])


def test_predict_writes_every_row_at_the_target_size_and_resumes(tmp_path):
    manifest = P.write_dp_set(tmp_path / "d", 3, 20, 28, split="test")  # 20x28: not a multiple of 8
    out = tmp_path / "pred"
    paths = predict_manifest(_identity_probe(), manifest, out, device="cpu", progress=False)
    assert sorted(p.name for p in out.glob("*.png")) == ["test000.png", "test001.png", "test002.png"]
    done = json.loads((out / "predictions.json").read_text())
    assert done["images"] == 3 and done["dtype"] == "float32" and done["device"].startswith("cpu")
    for p in paths:
        got = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        want = cv2.imread(str(tmp_path / "d" / p.name.replace(".png", "_center.png")), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16 and got.shape == (20, 28, 3)
        assert np.array_equal(got, want)  # output == centre, bit for bit through pad/crop and 16-bit I/O


class _Interrupted(Exception):
    pass


class _StopsAfter(torch.nn.Module):
    """``inner`` that raises once it has made ``limit`` outputs: a prediction killed part-way (same key on every
    call, since the limit is an attribute, not a weight)."""

    def __init__(self, inner, limit=None):
        super().__init__()
        self.inner, self.limit, self.calls = inner, limit, 0
        self.input_views, self.size_multiple, self.size_mode = inner.input_views, inner.size_multiple, "pad"

    def forward(self, batch):
        if self.limit is not None and self.calls >= self.limit:
            raise _Interrupted
        self.calls += 1
        return self.inner(batch)


def _interrupted(model, manifest, out, limit, **kw):
    """Run ``predict_manifest`` until ``model`` stops after ``limit`` images; returns the model for the resume."""
    stops = _StopsAfter(model, limit)
    with pytest.raises(_Interrupted):
        predict_manifest(stops, manifest, out, device="cpu", progress=False, **kw)
    stops.limit = None
    return stops


def test_an_interrupted_prediction_resumes(tmp_path):
    """Killed after one image: the same key resumes, keeping the finished image and writing the rest."""
    manifest = P.write_dp_set(tmp_path / "d", 3, 16, 16, split="test")
    out = tmp_path / "pred"
    model = _interrupted(_identity_probe(), manifest, out, 1)
    assert [p.name for p in out.glob("*.png")] == ["test000.png"] and (out / ".key.json").is_file()
    assert not (out / "predictions.json").exists()
    (out / "test000.png").write_bytes(b"sentinel")  # finished work is kept, not recomputed
    predict_manifest(model, manifest, out, device="cpu", progress=False)
    assert (out / "test000.png").read_bytes() == b"sentinel" and model.calls == 3
    assert (out / "predictions.json").is_file() and not (out / ".key.json").exists()


def test_a_finished_prediction_run_again_redoes_every_image(tmp_path):
    """What `snakemake --forcerun predict` does: delete predictions.json and run the job again. Its old images
    (possibly of other code) must not be taken as finished work."""
    manifest = P.write_dp_set(tmp_path / "d", 2, 16, 16, split="test")
    out = tmp_path / "pred"
    paths = predict_manifest(_identity_probe(), manifest, out, device="cpu", progress=False)
    good = paths[0].read_bytes()
    paths[0].write_bytes(b"stale")
    (out / "predictions.json").unlink()
    predict_manifest(_identity_probe(), manifest, out, device="cpu", progress=False)
    assert paths[0].read_bytes() == good


def test_new_weights_discard_the_old_predictions(tmp_path):
    """A retrained run (new weights, same output folder) must not have its predecessor's images scored as its own,
    even where the predecessor was interrupted (a resume of its key would have kept them)."""
    manifest = P.write_dp_set(tmp_path / "d", 2, 16, 16, split="test")
    out = tmp_path / "pred"
    _interrupted(_identity_probe(), manifest, out, 1, identity={"model": "probe", "weights_sha256": "a"})
    (out / "test000.png").write_bytes(b"stale")
    predict_manifest(
        _identity_probe(),
        manifest,
        out,
        device="cpu",
        identity={"model": "probe", "weights_sha256": "b"},
        progress=False,
    )
    assert (out / "test000.png").read_bytes() != b"stale"
    assert json.loads((out / "predictions.json").read_text())["weights_sha256"] == "b"


_CODE = """
import torch


class Model(torch.nn.Module):
    input_views = ("center",)
    size_multiple = (1, 1)
    size_mode = "pad"

    def forward(self, batch):
        return {"output": OUTPUT}
"""


def _code_module(folder, output: str):
    """A fresh module ``codeprobe_model`` (in ``folder``, which is on sys.path) whose model returns ``output``."""
    import importlib
    import sys

    folder.mkdir(exist_ok=True)
    (folder / "codeprobe_model.py").write_text(_CODE.replace("OUTPUT", output))
    sys.modules.pop("codeprobe_model", None)
    importlib.invalidate_caches()
    return importlib.import_module("codeprobe_model")


def test_a_code_change_predicts_again(tmp_path, monkeypatch):
    """The same weights under edited model code (a fixed port, an edited working tree): an interrupted prediction
    must not resume with the old code's images, and predictions.json names the code it hashed."""
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    manifest = P.write_dp_set(tmp_path / "d", 2, 16, 16, split="test")
    out = tmp_path / "pred"
    ident = {"model": "codeprobe", "weights_sha256": None}
    old = _code_module(tmp_path / "code", 'batch["center"]')
    _interrupted(old.Model(), manifest, out, 1, identity=ident)
    old_key = json.loads((out / ".key.json").read_text())
    new = _code_module(tmp_path / "code", '1 - batch["center"]')
    [first, _] = predict_manifest(_StopsAfter(new.Model()), manifest, out, device="cpu", progress=False, identity=ident)
    got = cv2.imread(str(first), cv2.IMREAD_UNCHANGED).astype(int)
    center = cv2.imread(str(tmp_path / "d/test000_center.png"), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(got - (65535 - center)).max() <= 1  # redone with the new code, not kept from the old
    done = json.loads((out / "predictions.json").read_text())
    # the same modules, other contents: the hash is of what the files hold, not of their names
    assert done["code_modules"] == old_key["code_modules"] and done["code_sha256"] != old_key["code_sha256"]
    assert "codeprobe_model" in done["code_modules"] and "k3dn.infer" in done["code_modules"]


def test_code_identity_covers_the_models_imports_and_the_prediction_path():
    """K3DN's hash covers its blocks (imported by its module) and the I/O it is read and written with; a baseline's
    covers its own module and the shared port helpers, not another baseline's."""
    from k3dn.infer import code_identity
    from k3dn.registry import create_model

    k3dn_files = code_identity(create_model("k3dn_tiny"))["code_modules"]
    assert "k3dn.data.manifest" in k3dn_files  # which files a row names is part of the prediction
    assert {"k3dn.models.k3dn", "k3dn.models.psf", "k3dn.models.srp", "k3dn.models.disparity"} <= set(k3dn_files)
    assert {"k3dn.infer", "k3dn.io", "k3dn.checkpoint", "k3dn.models.blocks"} <= set(k3dn_files)
    restormer = code_identity(create_model("restormer_dual"))
    assert {"baselines.restormer", "baselines.common"} <= set(restormer["code_modules"])
    assert not {"baselines.ifan", "k3dn.models.k3dn", "k3dn.data.downloads"} & set(restormer["code_modules"])
    assert restormer["code_sha256"] != code_identity(create_model("ifan_dual"))["code_sha256"]


def _package(root, monkeypatch, name: str, **modules: str):
    """A package ``name`` under ``root`` (on sys.path) holding ``modules`` (module name -> source)."""
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for module, source in modules.items():
        (pkg / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    return pkg


def test_code_identity_follows_imports_inside_the_models_package(tmp_path, monkeypatch):
    """A helper module the model's module imports is part of its code: editing it changes the hash."""
    from k3dn.provenance import code_identity

    pkg = _package(
        tmp_path, monkeypatch, "codeprobe_pkg", net="from codeprobe_pkg.helper import SCALE\n", helper="SCALE = 1.0\n"
    )
    before = code_identity(["codeprobe_pkg.net"])
    assert before["code_modules"] == ["codeprobe_pkg.helper", "codeprobe_pkg.net"]
    (pkg / "helper.py").write_text("SCALE = 2.0\n")
    assert code_identity(["codeprobe_pkg.net"])["code_sha256"] != before["code_sha256"]


def test_source_closure_does_not_depend_on_the_order_it_walks(tmp_path, monkeypatch):
    """A model module that shared plumbing also imports keeps its function-local imports in the closure."""
    from k3dn.provenance import source_closure

    _package(
        tmp_path,
        monkeypatch,
        "codeprobe_walk",
        model="def forward():\n    from codeprobe_walk.helper import SCALE\n    return SCALE\n",
        helper="SCALE = 1.0\n",
        io="import codeprobe_walk.model\n",
    )
    alone = source_closure(["codeprobe_walk.model"])
    assert "codeprobe_walk.helper" in alone
    assert set(alone) <= set(source_closure(["codeprobe_walk.model"], ["codeprobe_walk.io"]))


def test_a_weight_manifest_and_a_kernels_file_are_part_of_the_key(tmp_path, monkeypatch):
    """KPAC's published file is assigned to layers in the order of its tensor manifest, and Wiener reads its
    calibrated kernels from a file: editing either changes what a prediction computes, so it changes the key."""
    import baselines.weight_manifests as wm
    from k3dn.infer import _prediction_key, code_identity
    from k3dn.registry import create_model

    kpac = create_model("kpac_dual")
    assert "weight_manifests/kpac_dual_npz.json" in code_identity(kpac)["code_data"]
    monkeypatch.setattr(wm, "MANIFEST_DIR", tmp_path)
    manifest = json.loads((wm.Path(wm.__file__).parent / "kpac_dual_npz.json").read_text())
    (tmp_path / "kpac_dual_npz.json").write_text(json.dumps(manifest))
    before = code_identity(kpac)["code_sha256"]
    manifest["tensors"][:2] = manifest["tensors"][1::-1]
    (tmp_path / "kpac_dual_npz.json").write_text(json.dumps(manifest))
    assert code_identity(kpac)["code_sha256"] != before

    rows = P.write_dp_set(tmp_path / "d", 1, 8, 8, split="test")
    kernels = tmp_path / "kernels.npz"
    kernels.write_bytes(b"a")
    ident = {"model": "wiener", "overrides": {"kernels": str(kernels)}, "weights_sha256": None}

    def key():
        return _prediction_key(_identity_probe(), rows, ident, None, "float32", "linear", "cpu")

    first = key()
    assert set(first["override_files_sha256"]) == {"kernels"} and "torch" in first["libraries"]
    kernels.write_bytes(b"b")
    assert key()["override_files_sha256"] != first["override_files_sha256"]


def test_gather_keeps_the_code_identity_and_refuses_parts_of_other_code(tmp_path):
    """Per-image parts (Xin et al., one job per scene) are one prediction only if the same code made them."""
    from k3dn.errors import InputError
    from k3dn.infer import merge_predictions

    manifest = P.write_dp_set(tmp_path / "d", 2, 8, 8, split="test")
    parts = []
    for i in ("test000", "test001"):
        parts.append(tmp_path / "parts" / i)
        predict_manifest(_identity_probe(), manifest, parts[-1], device="cpu", progress=False, ids=[i])
    merged = json.loads((merge_predictions(parts, tmp_path / "all") / "predictions.json").read_text())
    part = json.loads((parts[0] / "predictions.json").read_text())
    assert merged["code_sha256"] == part["code_sha256"] and merged["code_modules"] == part["code_modules"]
    assert merged["images"] == 2 and sorted(p.name for p in (tmp_path / "all").glob("*.png")) == [
        "test000.png",
        "test001.png",
    ]
    record = json.loads((parts[1] / "predictions.json").read_text())
    (parts[1] / "predictions.json").write_text(json.dumps({**record, "code_sha256": "other"}))
    with pytest.raises(
        InputError, match=r"the parts differ in code_sha256 \(1 like \S*test000, 1 like \S*test001\).*--forcerun"
    ):
        merge_predictions(parts, tmp_path / "again")


def test_an_8bit_checkpoint_gets_its_inputs_truncated_to_8_bits(tmp_path):
    """A model with input_protocol '8bit' reads 16-bit files as (v >> 8) / 255, like its authors' code."""
    manifest = P.write_dp_set(tmp_path / "d", 1, 16, 24, split="test")
    model = _identity_probe()
    model.input_protocol = "8bit"
    [path] = predict_manifest(model, manifest, tmp_path / "pred", device="cpu", progress=False)
    got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int64)
    src = cv2.imread(str(tmp_path / "d" / "test000_center.png"), cv2.IMREAD_UNCHANGED).astype(np.int64)
    want = np.round((src >> 8) / 255 * 65535)
    assert np.array_equal(got, want) and not np.array_equal(got, src)


def test_published_weights_are_read_under_their_catalogue_protocol(tmp_path):
    """The protocol belongs to the published file: IFAN.pytorch is 8-bit, the tag ifan_single.16bit names
    IFAN_16bit.pytorch (same tensors), and the suite's own weights of the same network read the manifest's."""
    from baselines.weight_manifests import write_fake_checkpoint

    path = write_fake_checkpoint("ifan_single", tmp_path / "IFAN.pytorch")
    assert load_model(name="ifan_single", weights=path).input_protocol == "8bit"
    assert load_model(name="ifan_single.16bit", weights=path).input_protocol == "16bit"
    own = save_weights(load_model(name="ifan_single", weights=path), tmp_path / "model.safetensors")
    assert getattr(load_model(name="ifan_single", weights=own), "input_protocol", None) is None


def test_single_channel_rows_are_written_as_one_channel_mean(tmp_path):
    manifest = P.write_dp_set(tmp_path / "g", 1, 16, 16, split="test", channels=1)
    [path] = predict_manifest(_identity_probe(), manifest, tmp_path / "pred", device="cpu", progress=False)
    got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    want = cv2.imread(str(tmp_path / "g/test000_center.png"), cv2.IMREAD_UNCHANGED)
    assert got.shape == (16, 16) and np.array_equal(got, want)


def test_predict_and_deblur_cli_from_a_run_folder(tmp_path):
    from k3dn.cli import main

    manifest = P.write_dp_set(tmp_path / "d", 2, 16, 24, split="test")
    run = tmp_path / "run"
    save_weights(_identity_probe(), run / "model.safetensors")
    (run / "model.json").write_text(json.dumps({"model": P.PROBE, "overrides": {"width": 8}}))
    with P.probe_registered():
        assert (
            main(
                [
                    "predict",
                    "--run",
                    str(run),
                    "--manifest",
                    str(manifest),
                    "--out",
                    str(tmp_path / "p"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "deblur",
                    "--model",
                    P.PROBE,
                    "--weights",
                    str(run / "model.safetensors"),
                    "--left",
                    str(tmp_path / "d/test000_left.png"),
                    "--right",
                    str(tmp_path / "d/test000_right.png"),
                    "--out",
                    str(tmp_path / "one.png"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        m = load_model(run=run)
    assert not m.training
    a = cv2.imread(str(tmp_path / "p/test000.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(tmp_path / "one.png"), cv2.IMREAD_UNCHANGED)
    # deblur without --center uses (L + R) / 2, which is how the test set's centre was made (up to rounding)
    assert a.shape == b.shape == (16, 24, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_a_retrained_run_is_predicted_again(tmp_path):
    """Retrain (new weights in the same run folder): `k3dn predict` into the same folder redoes every image."""
    from k3dn.cli import main

    manifest = P.write_dp_set(tmp_path / "d", 2, 16, 16, split="test")
    run, out = tmp_path / "run", tmp_path / "p"
    (run / "model.json").parent.mkdir(parents=True)
    (run / "model.json").write_text(json.dumps({"model": P.PROBE, "overrides": {"width": 8}, "config_hash": "1"}))
    args = ["predict", "--run", str(run), "--manifest", str(manifest), "--out", str(out), "--device", "cpu"]
    with P.probe_registered():
        save_weights(_identity_probe(), run / "model.safetensors")
        assert main(args) == 0
        first = cv2.imread(str(out / "test000.png"), cv2.IMREAD_UNCHANGED)
        key = json.loads((out / "predictions.json").read_text())
        retrained = _identity_probe()
        with torch.no_grad():
            retrained.body[2].bias.fill_(0.1)  # the residual branch now adds 0.1
        save_weights(retrained, run / "model.safetensors")
        assert main(args) == 0
    second = cv2.imread(str(out / "test000.png"), cv2.IMREAD_UNCHANGED)
    assert json.loads((out / "predictions.json").read_text())["weights_sha256"] != key["weights_sha256"]
    assert np.abs(second.astype(int) - first.astype(int)).mean() > 1000


def test_load_model_names_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model(run=tmp_path)


def test_gamma_encoded_input_is_decoded_back(tmp_path):
    """--input-encoding gamma2.2 on the identity probe: encode then decode gives the centre view back (up to
    16-bit rounding), and the key records it, so linear and gamma predictions never mix in one folder."""
    manifest = P.write_dp_set(tmp_path / "d", 1, 16, 16, split="test", channels=1)
    [p] = predict_manifest(
        _identity_probe(), manifest, tmp_path / "g", device="cpu", progress=False, input_encoding="gamma2.2"
    )
    got = cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(int)
    want = cv2.imread(str(tmp_path / "d/test000_center.png"), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(got - want).max() <= 2
    assert json.loads((tmp_path / "g/predictions.json").read_text())["input_encoding"] == "gamma2.2"


def test_bf16_is_really_bf16_on_the_cpu(tmp_path):
    manifest = P.write_dp_set(tmp_path / "d", 1, 16, 16, split="test")
    m = P.ProbeDP().eval()
    [a] = predict_manifest(m, manifest, tmp_path / "a", device="cpu", progress=False)
    [b] = predict_manifest(m, manifest, tmp_path / "b", device="cpu", progress=False, dtype="bfloat16")
    a, b = (cv2.imread(str(x), cv2.IMREAD_UNCHANGED).astype(int) for x in (a, b))
    assert 0 < np.abs(a - b).max() < 2000  # bf16 rounding shows, and stays small


def test_snakemake_forcerun_predict_redoes_the_images(tmp_path):
    """Through Snakemake itself: a rule around `k3dn predict`, run, then rerun with --forcerun. The second run
    must write every image again, not keep the first run's (here replaced by a stale file)."""
    import subprocess
    import sys

    manifest = P.write_dp_set(tmp_path / "d", 2, 16, 16, split="test")
    (tmp_path / "Snakefile").write_text(
        "rule predict:\n"
        '    output: "pred/predictions.json"\n'
        f'    shell: "{sys.executable} -m k3dn.cli predict --model identity --manifest {manifest} --out pred'
        ' --device cpu"\n'
    )

    def snakemake(*extra):
        cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "-q", *extra]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    snakemake()
    good = (tmp_path / "pred/test000.png").read_bytes()
    (tmp_path / "pred/test000.png").write_bytes(b"stale")
    snakemake("--forcerun", "predict")
    assert (tmp_path / "pred/test000.png").read_bytes() == good
