import os

import numpy as np
import pytest
import torch

# Tests are CPU, float32, small sizes, and must not depend on the machine's thread count for exactness.
torch.set_num_threads(min(2, os.cpu_count() or 1))


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
        spec = importlib.util.spec_from_file_location("k3dn_test_probe", Path(__file__).with_name("test_train_probe.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules["k3dn_test_probe"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["k3dn_test_probe"]


@pytest.fixture
def probe():
    return load_probe()
