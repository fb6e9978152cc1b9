"""What the golden-output scripts share: the suite on ``sys.path``, the fixtures' folder, the seeds, the seeded
state dict, a fixture's standard arrays and its atomic write.

A script imports this before ``baselines`` (``python scripts/golden/<method>.py`` puts this folder on ``sys.path``),
so the suite imports from any interpreter, including the TensorFlow venvs that do not install it. Beyond the
standard library only numpy is imported here (torch where a state dict is built).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures" / "golden"
# Stored in every fixture: the tests regenerate the weights and the views from them.
WEIGHTS_SEED = 0
INPUT_SEED = 1


def seeded_state_dict(manifest: dict, prefix_to_strip: str = "") -> dict:
    """``random_tensors(manifest, WEIGHTS_SEED)`` as torch tensors, keys without ``prefix_to_strip``."""
    import torch

    from baselines.weight_manifests import random_tensors

    sd = {}
    for key, arr in random_tensors(manifest, seed=WEIGHTS_SEED):
        if not key.startswith(prefix_to_strip):
            raise ValueError(f"{manifest['method']}: tensor {key} does not start with {prefix_to_strip!r}")
        sd[key[len(prefix_to_strip) :]] = torch.from_numpy(arr)
    return sd


def fixture(output: np.ndarray, source: str, height: int, width: int, **extra) -> dict:
    """A fixture's arrays: ``output`` (H, W, 3, float32 RGB), the seeds and size that regenerate the weights and
    views, ``source`` (``owner/repo@commit script``), then ``extra`` in the order given. ``np.savez`` writes the
    members in this order, so a fixture's bytes depend on it."""
    return {
        "output": output,
        "input_seed": np.int64(INPUT_SEED),
        "weights_seed": np.int64(WEIGHTS_SEED),
        "height": np.int64(height),
        "width": np.int64(width),
        "source": np.str_(source),
        **extra,
    }


def save_fixture(path, arrays: dict, compressed: bool = False) -> Path:
    """Write ``arrays`` as an ``.npz`` (``np.savez``, or ``np.savez_compressed``) to ``path.tmp``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
    os.replace(tmp, path)
    return path


def warn_unless_at(checkout: Path, commit: str) -> None:
    """Warn on stderr when ``checkout`` is a git work tree at another commit than the fixture's source."""
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0 and head.stdout.strip() != commit:
        print(f"warning: {checkout} is at {head.stdout.strip()}, not {commit}", file=sys.stderr)
