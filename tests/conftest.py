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
