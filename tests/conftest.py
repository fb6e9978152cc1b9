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


@pytest.fixture
def rng():
    return np.random.default_rng(0)


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
