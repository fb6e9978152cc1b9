import os

import numpy as np
import pytest
import torch

# Tests are CPU, float32, small sizes, and must not depend on the machine's thread count for exactness.
# ``--device`` / ``--dtype`` move the tests that take the ``device`` / ``dtype`` fixtures (the model contract)
# onto another device or into bf16; every other test stays on the CPU in float32.
torch.set_num_threads(min(2, os.cpu_count() or 1))

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
VIEWS = ("left", "right", "center", "target")


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for the tests that take it (default: cpu)")
    parser.addoption(
        "--dtype",
        default="float32",
        choices=sorted(DTYPES),
        help="precision for the tests that take it; bfloat16 runs them under bf16 autocast, the "
        "way `k3dn predict --dtype bfloat16` runs models",
    )


@pytest.fixture(scope="session")
def device(request):
    dev = torch.device(request.config.getoption("--device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {dev}: CUDA is not available here")
    return dev


@pytest.fixture(scope="session")
def dtype(request):
    return DTYPES[request.config.getoption("--dtype")]


def make_batch(h, w, b=1, seed=0, views=VIEWS, device=None):
    """Seeded random views ``{view: (b, 3, h, w)}`` in [0, 1], drawn in ``views`` order from one generator (so a
    view's values do not depend on the views after it), on the CPU and then moved to ``device``."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 3, h, w, generator=g).to(device or "cpu") for k in views}


def one_error_line(err: str) -> str:
    """The one line ``error: ...`` that ``k3dn`` prints on stderr for a failure a person can act on."""
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def snakemake_dry_run(workdir, *args):
    """``snakemake -n *args`` of the repository's Snakefile in ``workdir``, offline: an unroutable proxy makes any
    attempt to reach the network fail loudly instead of succeeding."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    env = dict(os.environ, XDG_CACHE_HOME=str(Path(workdir).parent / "cache"), no_proxy="*")
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    return subprocess.run(
        [snakemake, "-n", "--cores", "2", *args, "-d", str(workdir), "--snakefile", str(root / "Snakefile")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def shell_commands(stdout: str, having: str) -> list[str]:
    """The ``k3dn`` commands a ``snakemake -n -p`` run prints that contain ``having``."""
    lines = [line.strip().removeprefix("Shell command: ") for line in stdout.splitlines()]
    return [line for line in lines if line.startswith("k3dn ") and having in line]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of many small forward passes: on a busy 2-core machine a second OpenMP
    thread mostly waits for the first (the contract test's model half: 149 s with two threads, 24 s with one).
    Results do not depend on it. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def load_probe():
    """``tests/test_train_probe.py`` as a module (the tiny registered model and ``write_dp_set``): tests import
    with ``--import-mode=importlib``, so a test file is not importable by name."""
    import importlib.util
    import sys
    from pathlib import Path

    if "k3dn_test_probe" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "k3dn_test_probe", Path(__file__).with_name("test_train_probe.py")
        )
        mod = importlib.util.module_from_spec(spec)
        sys.modules["k3dn_test_probe"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["k3dn_test_probe"]


@pytest.fixture
def probe():
    return load_probe()


class Golden:
    """The path of ``tests/test_golden_*.py``: a fixture that ``scripts/golden/`` wrote from an official network,
    the same seeded weights in the published container read by the suite's ``load_published``, the same views."""

    NO_TF = (
        "TensorFlow not installed: set K3DN_TF_PYTHON to a python with tensorflow-cpu==2.15.1 "
        "(the checkpoint must be written by real Keras)"
    )

    def __init__(self):
        from pathlib import Path

        self.root = Path(__file__).resolve().parents[1]
        self.fixtures = self.root / "tests" / "fixtures" / "golden"

    def load(self, name: str, source: str):
        """``<name>.npz``, which must come from ``source`` (``owner/repo@commit``, then the script)."""
        fixture = np.load(self.fixtures / f"{name}.npz")
        assert str(fixture["source"]).startswith(source + " "), f"{name}.npz: from {fixture['source']}, not {source}"
        return fixture

    def model(self, name: str, path, **overrides):
        """Checkpoint ``name``'s registered model (``create_model`` ``overrides``) loaded by ``load_published``."""
        from baselines.published import get_checkpoint
        from k3dn.checkpoint import load_published
        from k3dn.registry import create_model

        return load_published(create_model(get_checkpoint(name).model, **overrides), path).eval()

    def published_model(self, name: str, dest, fixture, edit=None, **overrides):
        """:meth:`model` on checkpoint ``name``'s file(s) written into ``dest`` with the fixture's seed as ``k3dn
        baselines fake`` writes them (file i of a multi-file checkpoint with seed + i), after ``edit(path)``."""
        from baselines.published import get_checkpoint
        from baselines.weight_manifests import write_fake_checkpoint

        ck = get_checkpoint(name)
        for i, (manifest, file) in enumerate(zip(ck.manifests, ck.files, strict=True)):
            write_fake_checkpoint(manifest, dest / file, seed=int(fixture["weights_seed"]) + i)
        if edit is not None:
            edit(ck.weights_path(dest))
        return self.model(name, ck.weights_path(dest), **overrides)

    @staticmethod
    def run(model, fixture) -> dict:
        """``model`` on the fixture's seeded views, a batch of one, without autograd."""
        from baselines.weight_manifests import random_views

        views = random_views(int(fixture["input_seed"]), int(fixture["height"]), int(fixture["width"]))
        with torch.no_grad():
            return model({k: torch.from_numpy(v).permute(2, 0, 1)[None] for k, v in views.items()})

    def output(self, model, fixture) -> np.ndarray:
        return self.run(model, fixture)["output"][0].permute(1, 2, 0).numpy()  # (H, W, 3), as the fixtures

    @staticmethod
    def assert_matches(label: str, ours, want, tol: float) -> None:
        assert ours.shape == want.shape, f"{label}: shape {tuple(ours.shape)}, the official {tuple(want.shape)}"
        diff = float(np.abs(ours - want).max())
        assert diff <= tol, f"{label}: max |port - official| = {diff:.3g} > {tol}"

    # The Keras methods' weights are random_tensors(seed) with kernels at He-normal scale (keras_writer.he_scaled).

    def script(self, name: str):
        """``scripts/golden/<name>.py`` as a module (its folder on ``sys.path`` for ``common``), loaded once: the
        tests share a script's own code where they must do what it did (its weight edit, its Keras writer)."""
        import importlib.util
        import sys

        key = f"k3dn_golden_{name}"
        if key not in sys.modules:
            folder = self.root / "scripts" / "golden"
            if str(folder) not in sys.path:
                sys.path.append(str(folder))
            spec = importlib.util.spec_from_file_location(key, folder / f"{name}.py")
            sys.modules[key] = module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        return sys.modules[key]

    def keras_writer(self):
        return self.script("keras_writer")

    def keras_written(self, name: str, dest, fixture):
        """Checkpoint ``name``'s file saved by Keras itself (``keras_writer.py`` under ``$K3DN_TF_PYTHON``);
        skips without TensorFlow."""
        import h5py

        from baselines.published import get_checkpoint
        from baselines.weight_manifests import MANIFEST_DIR, load_manifest, random_tensors

        kw, ck = self.keras_writer(), get_checkpoint(name)
        if kw.tf_python() is None:
            pytest.skip(self.NO_TF)
        manifest = load_manifest(ck.manifests[0])
        arrays = kw.he_scaled(manifest, [a for _, a in random_tensors(manifest, int(fixture["weights_seed"]))])
        path = kw.write_with(kw.tf_python(), MANIFEST_DIR / f"{ck.manifests[0]}.json", arrays, ck.weights_path(dest))
        with h5py.File(path, "r") as f:  # written by Keras' own saver, not by ours (which stores no model_config)
            assert "model_config" in f.attrs and "layer_names" in f["model_weights"].attrs
        return path

    def he_scale(self, name: str):
        """An ``edit`` for :meth:`published_model`: rescale the kernels of checkpoint ``name``'s HDF5 file (our own
        writer's, holding ``random_tensors(seed)``) in place, as the Keras fixtures' weights are."""
        import h5py

        from baselines.published import get_checkpoint
        from baselines.weight_manifests import load_manifest

        manifest = load_manifest(get_checkpoint(name).manifests[0])
        keys = [key for key, *_ in manifest["tensors"]]

        def edit(path):
            with h5py.File(path, "a") as f:
                scaled = self.keras_writer().he_scaled(manifest, [f[k][()] for k in keys])
                for key, arr in zip(keys, scaled, strict=True):
                    f[key][...] = arr

        return edit


@pytest.fixture(scope="session")
def golden():
    return Golden()
