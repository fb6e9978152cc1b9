"""The model contract (docs/DEVELOPING.md, Models), held for every registered model and every published checkpoint.

Every model of ``list_models()``: the contract attributes; a batch of two at its smallest size (output of the same
shape, finite, in [0, 1] in eval); a size that is not a multiple, through ``k3dn.infer.forward_fitted`` (back at the
input size) and called directly (the input size, or a ValueError naming the multiple); it reads the views it
declares and no other. Every entry of ``baselines/checkpoints.yaml``: well formed; its random-weight file in the
published container (one file per manifest in one folder for a multi-file entry, as ``k3dn baselines fake`` writes
them) loads strictly through ``load_published(create_model(ck.model), path)`` and sets every tensor; the parameter
counts agree; a truncated file, and a file with one tensor removed or mis-shaped, are refused naming the file and
the tensor. What each port does with its inputs is pinned by its own tests and its golden outputs
(``tests/test_baselines_*.py``, ``tests/test_golden_*.py``).

``pytest --device cuda --dtype bfloat16 tests/test_models_contract.py`` runs the model half on a GPU and under bf16
autocast, the way ``k3dn predict --dtype bfloat16`` runs a model; the checkpoint half is file handling on the CPU.
"""

import inspect
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from baselines.published import load_checkpoints
from baselines.weight_manifests import load_manifest, manifest_names, write_fake_checkpoint
from k3dn.checkpoint import CheckpointError, CheckpointMismatch, load_published, read_foreign
from k3dn.infer import forward_fitted
from k3dn.registry import checkpoint_filter, create_model, list_models, split_tag
from tests.conftest import make_batch

MODELS = list_models()
CHECKPOINTS = load_checkpoints()

# No network here is meant for images under 8 px; a size multiple of 1 or 4 alone would allow them.
FLOOR = 8
# Sizes that are not a multiple: (H, W) + this, for every multiple above 1.
ODD = (3, 5)

# With freshly initialised weights IFAN's dual-pixel views reach its output at ~1e-7 (one float32 step, nothing in
# bf16), so only "no other view" is checked here; tests/test_baselines_ifan.py shows they are read, with weights
# that let them through.
FAINT = {"ifan_dual": {"left", "right"}}

# A filter may fold several tensors of the file into one: DeepRFT's published DO-Conv (W, D, D_diag) becomes one
# kernel per layer, so the model holds the parameters of the folded form's manifest, not those of the file's.
FOLDED = {"deeprft_defocus_saved": "deeprft_defocus_inference"}


pytestmark = pytest.mark.usefixtures("one_thread")


def overrides(name: str) -> dict:
    """Factory overrides that make ``name`` cheap without changing anything this file checks."""
    if name.startswith("k3dn_"):
        return {"window": (4, 4)}  # size multiple 32x32 instead of 288x224
    if name == "xin2021":
        return {"iterations": 5, "scales": [3.0, 0.0, -3.0]}  # 10,000 Adam steps over 12 layers by default
    if name == "grl_b_dual":
        return {"depths": (1,)}  # one block instead of 44, each at 96x96 at least (inputs are padded to 96)
    return {}


def smallest(model) -> tuple[int, int]:
    lo = getattr(model, "min_size", (1, 1))
    return tuple(math.ceil(max(m, low, FLOOR) / m) * m for m, low in zip(model.size_multiple, lo))


def run(model, batch, dtype):
    bf16 = dtype == torch.bfloat16
    with torch.no_grad(), torch.autocast(batch["left"].device.type, dtype=torch.bfloat16, enabled=bf16):
        return model(batch)


def unread_atol(device, dtype) -> float:
    """How far an unread view may move the output: not at all on the CPU; a GPU may sum in another order from one
    call to the next, by about one step of the precision."""
    if device.type == "cpu":
        return 0.0
    return 1e-5 if dtype == torch.float32 else 2.0**-7


def assert_image(y, shape):
    # clamping and sigmoid outputs stay within [0, 1] in bf16 too: the range is not relaxed for it
    assert tuple(y.shape) == shape, f"output {tuple(y.shape)}, expected {shape}"
    y = y.float()
    assert torch.isfinite(y).all(), "non-finite output"
    assert y.min() >= 0 and y.max() <= 1, f"output in [{y.min():.4g}, {y.max():.4g}], not in [0, 1]"


# ----------------------------------------------------------------------------------------------------------
# Every registered model
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODELS)
def model(request, device):
    """(name, the model built with its test overrides, on ``device``, in eval mode); built once per module."""
    return request.param, create_model(request.param, **overrides(request.param)).to(device).eval()


def test_contract_attributes(model):
    name, m = model
    assert m.registry_name == name and m.registry_overrides == overrides(name)
    views = m.input_views
    assert isinstance(views, tuple) and views and len(set(views)) == len(views), views
    assert set(views) <= {"left", "right", "center"}, views
    mult = m.size_multiple
    assert len(mult) == 2 and all(isinstance(v, int) and v >= 1 for v in mult), mult
    assert m.size_mode in ("pad", "resize"), m.size_mode
    lo = getattr(m, "min_size", (1, 1))
    assert len(lo) == 2 and all(isinstance(v, int) and v >= 1 for v in lo), lo


def test_forward_at_the_smallest_size(model, device, dtype):
    name, m = model
    h, w = smallest(m)
    out = run(m, make_batch(h, w, b=2, device=device), dtype)
    assert_image(out["output"], (2, 3, h, w))


def test_a_size_that_is_not_a_multiple(model, device, dtype):
    name, m = model
    h, w = (s + d for s, d in zip(smallest(m), ODD))
    batch = make_batch(h, w, device=device)
    y = forward_fitted(m, batch, amp=dtype == torch.bfloat16)
    assert_image(y, (1, 3, h, w))
    if m.size_multiple == (1, 1):
        return
    # called directly, a model either copes with the size itself or says which multiple it needs
    try:
        out = run(m, batch, dtype)
    except ValueError as e:
        assert any(str(v) in str(e) for v in m.size_multiple), f"{name}: {e}"
    else:
        assert_image(out["output"], (1, 3, h, w))


def test_reads_the_views_it_declares_and_no_other(model, device, dtype):
    name, m = model
    h, w = smallest(m)
    batch = make_batch(h, w, device=device)
    base = run(m, batch, dtype)["output"].float()
    for view in ("left", "right", "center", "target"):
        other = dict(batch, **{view: 1 - batch[view]})
        moved = float((run(m, other, dtype)["output"].float() - base).abs().max())
        if view not in m.input_views:
            assert moved <= unread_atol(device, dtype), f"{name}: the undeclared {view} moves the output by {moved:.3g}"
        elif view not in FAINT.get(name, ()):
            assert moved > unread_atol(device, dtype), f"{name}: {view} is declared but does not move the output"


# Every published checkpoint
# ----------------------------------------------------------------------------------------------------------


def entries(*args) -> list:
    """One case per catalogue entry, ``args`` after its name."""
    return [pytest.param(n, *args, id="-".join((n, *args))) for n in CHECKPOINTS]


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """``published(name)`` -> the folder holding the entry's random-weight file(s) in the published container,
    written on first use with seeds 0, 1, ... per file, as ``k3dn baselines fake`` writes them."""
    root, done = tmp_path_factory.mktemp("published"), set()

    def folder(name):
        if name not in done:
            ck = CHECKPOINTS[name]
            for i, (manifest, file) in enumerate(zip(ck.manifests, ck.files)):
                write_fake_checkpoint(manifest, root / name / file, seed=i)
            done.add(name)
        return root / name

    return folder


def copy_entry(ck, src, dest):
    for f in ck.files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / f, dest / f)


def replace_tensor(path, framework: str, name: str, index: int, new):
    """Rewrite the published file ``path`` without tensor ``name`` (``new`` None) or with ``new`` in its place;
    ``index`` is its position, the only handle a TensorLayer list has."""
    if framework == "pytorch":
        obj = torch.load(path, map_location="cpu", weights_only=True)
        holder = next(d for d in (obj, *obj.values()) if isinstance(d, dict) and name in d)
        if new is None:
            del holder[name]
        else:
            holder[name] = torch.from_numpy(new)
        torch.save(obj, path)
    elif framework == "keras":
        with h5py.File(path, "r+") as f:
            del f[name]
            if new is not None:
                f[name] = new
    elif framework == "tensorlayer":
        arrays = list(read_foreign(path)["params"])
        if new is None:
            del arrays[index]
        else:
            arrays[index] = new
        params = np.empty(len(arrays), dtype=object)
        params[:] = arrays
        with open(path, "wb") as f:
            np.savez(f, params=params)
    else:
        raise ValueError(f"unknown framework {framework!r}")


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_catalogue_entry_is_well_formed(name):
    ck = CHECKPOINTS[name]
    assert split_tag(ck.model)[0] in MODELS, f"{name}: model {ck.model!r} is not registered"
    assert ck.input_protocol in ("8bit", "16bit"), ck.input_protocol
    # a user catalogue's manifest is a path (checked to exist when the catalogue was read)
    assert all(m in manifest_names() or Path(m).is_absolute() for m in ck.manifests), ck.manifests
    assert len(ck.manifests) == len(ck.files) == len(set(ck.files))
    fn = checkpoint_filter(ck.model)
    assert fn is not None, f"{name}: {ck.model} registers no checkpoint_filter_fn"
    assert list(inspect.signature(fn).parameters)[:2] == ["state_dict", "model"]
    for m in ck.manifests:
        manifest = load_manifest(m)
        buffers = set(manifest.get("buffers") or ())
        names = {t[0] for t in manifest["tensors"]}
        # training-only tensors (IFAN's reblurNet) are listed apart and not counted
        assert not names & {t[0] for t in manifest.get("training_only_tensors", [])}, m
        assert manifest["total_params"] == sum(math.prod(s) for k, s, *_ in manifest["tensors"] if k not in buffers), m


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_published_file_loads_strictly_and_sets_every_tensor(name, published):
    ck = CHECKPOINTS[name]
    model = create_model(ck.model)
    assert model.registry_name == ck.model  # the weight tag is kept
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_published(model, ck.weights_path(published(name)))
    # every value of the file is random: a tensor still at its initial value was not read from it
    kept = [k for k, v in model.state_dict().items() if v.is_floating_point() and torch.equal(v, before[k])]
    assert not kept, f"{name}: not set by the file: {kept[:5]}"
    n = sum(p.numel() for p in model.parameters())
    expected = sum(load_manifest(FOLDED.get(m, m))["total_params"] for m in ck.manifests)
    assert n == ck.params == expected, f"{name}: model {n:,}, catalogue {ck.params:,}, manifests {expected:,}"


@pytest.mark.parametrize("name", entries())
def test_truncated_file_is_refused_naming_it(name, published, tmp_path):
    ck = CHECKPOINTS[name]
    copy_entry(ck, published(name), tmp_path)
    bad = tmp_path / ck.files[-1]  # of a multi-file entry the last file: the tensor test damages the first
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_published(create_model(ck.model), ck.weights_path(tmp_path))
    assert str(bad) in str(err.value)


@pytest.mark.parametrize("name,damage", entries("removed") + entries("mis-shaped"))
def test_damaged_tensor_is_refused_naming_it(name, damage, published, tmp_path):
    ck = CHECKPOINTS[name]
    manifest = load_manifest(ck.manifests[0])
    tensors = manifest["tensors"]
    # the largest tensor: a weight every loader needs, never an optional buffer a filter may fill in
    # (num_batches_tracked of old files, DeepRFT's constant D_diag)
    index = max(range(len(tensors)), key=lambda i: math.prod(tensors[i][1]))
    victim, shape = tensors[index][0], tensors[index][1]
    copy_entry(ck, published(name), tmp_path)
    new = None if damage == "removed" else np.zeros([shape[0] + 1, *shape[1:]], np.float32)
    replace_tensor(tmp_path / ck.files[0], manifest["framework"], victim, index, new)
    path = ck.weights_path(tmp_path)
    with pytest.raises(CheckpointMismatch) as err:
        load_published(create_model(ck.model), path)
    # the message names the model's tensor, i.e. the file's without the container's prefix (module.Network.)
    prefix = manifest.get("key_prefix") or ""
    stem = victim[len(prefix) :] if prefix and victim.startswith(prefix) else victim
    misshaped = [m[0] for m in err.value.misshaped]
    named = misshaped if damage == "mis-shaped" else err.value.missing + misshaped  # a positional list shifts
    assert any(stem in k for k in named), f"{name}: {stem} not among {named[:5]}"
    assert str(path) in str(err.value) and stem in str(err.value)
