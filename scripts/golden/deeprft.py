"""Golden output of the official DeepRFT network for seeded random weights -> tests/fixtures/golden/deeprft.npz.

Official code: INVOKERer/DeepRFT @ 4bf63db9a41bbf73760d79dd67179d2b7c767a55 (``test.py``, ``DeepRFT_MIMO.py``,
``layers.py``, ``utils/model_utils.py``). Rerun from the repository root with a checkout of that commit:

    python scripts/golden/deeprft.py --official /path/to/DeepRFT

What runs is the defocus path of ``test.py`` (README: ``--num_res 8 --win_size 512``), on CPU in fp32:
``DeepRFT(num_res=8, inference=True)``; the weights file is written in the published training form (DO-Conv
``W``/``D``/``D_diag``, ``{'epoch', 'state_dict'}``) from manifest ``deeprft_defocus_saved`` and read by the
official folding loader ``utils.load_checkpoint_compress_doconv`` (strict); the centre view goes in as RGB [0, 1]
(PIL + ``to_tensor``); ``window_partitionx`` -> network -> ``window_reversex`` -> clamp [0, 1].

Window size: the official partition cannot handle an image smaller than one window, and a 512 window would need
a 512x512+ input (too big for a fixture), so the window here is ``WIN = 32`` on a 72x104 input: six whole
windows plus right, bottom and corner edge windows that fill only the remaining 8-pixel strips. The test runs
the port with ``tile=WIN``, which is stored in the fixture as ``win_size``.

Two outputs: ``output`` with the weights exactly as ``random_tensors`` draws them (std 0.02), and
``output_scaled`` with every float tensor of the same file multiplied by ``WEIGHTS_SCALE``. At std 0.02 the
folded kernels are ~1e-3 and the residual branch adds < 1e-7 to the input, so ``output`` pins only the input and
output handling; at x3.7 the residual is ~0.1 (a few per cent of pixels clamped) and pins the network itself.

Stubbed: ``natsort`` (imported by ``utils/dir_utils.py``; the loader does not use it). ``nn.DataParallel`` of
``test.py`` is left out (a pass-through on one device).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from common import FIXTURES, INPUT_SEED, WEIGHTS_SEED, fixture, save_fixture, warn_unless_at

from baselines.weight_manifests import random_views, write_fake_checkpoint

REPO, COMMIT = "INVOKERer/DeepRFT", "4bf63db9a41bbf73760d79dd67179d2b7c767a55"
CHECKPOINT, MANIFEST = "deeprft", "deeprft_defocus_saved"
HEIGHT, WIDTH, WIN = 72, 104, 32
WEIGHTS_SCALE = 3.7
# The committed fixture's member order (np.savez writes them in dict order).
MEMBERS = "output output_scaled weights_scale input_seed weights_seed height width win_size source".split()


def scale_checkpoint(path: Path, scale: float) -> None:
    """Multiply every float tensor of a ``{'epoch', 'state_dict'}`` file by ``scale``, in place."""
    raw = torch.load(path, weights_only=True)
    raw["state_dict"] = {k: v * scale if v.is_floating_point() else v for k, v in raw["state_dict"].items()}
    torch.save(raw, path)


def official_output(official: Path, scale: float = 1.0) -> np.ndarray:
    sys.modules.setdefault("natsort", types.SimpleNamespace(natsorted=sorted))
    sys.path.insert(0, str(official))
    import utils  # the checkout's package (loader)
    from DeepRFT_MIMO import DeepRFT
    from layers import window_partitionx, window_reversex

    model = DeepRFT(num_res=8, inference=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fake_checkpoint(MANIFEST, Path(tmp) / "deeprft.pth", seed=WEIGHTS_SEED)
        scale_checkpoint(path, scale)
        utils.load_checkpoint_compress_doconv(model, str(path))
    model.eval()
    x = torch.from_numpy(random_views(INPUT_SEED, HEIGHT, WIDTH)["center"]).permute(2, 0, 1)[None]
    with torch.no_grad():
        windows, batch_list = window_partitionx(x, WIN)
        restored = window_reversex(model(windows), WIN, HEIGHT, WIDTH, batch_list)
        restored = torch.clamp(restored, 0, 1)
    return restored[0].permute(1, 2, 0).numpy().astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="checkout of INVOKERer/DeepRFT at COMMIT")
    ap.add_argument("--out", type=Path, default=FIXTURES / f"{CHECKPOINT}.npz")
    args = ap.parse_args(argv)
    warn_unless_at(args.official, COMMIT)
    out = official_output(args.official.resolve())
    out_scaled = official_output(args.official.resolve(), WEIGHTS_SCALE)
    arrays = fixture(
        out,
        f"{REPO}@{COMMIT} test.py",
        HEIGHT,
        WIDTH,
        output_scaled=out_scaled,
        weights_scale=np.float64(WEIGHTS_SCALE),
        win_size=np.int64(WIN),
    )
    save_fixture(args.out, {k: arrays[k] for k in MEMBERS})
    x = random_views(INPUT_SEED, HEIGHT, WIDTH)["center"]
    for name, o in (("output", out), ("output_scaled", out_scaled)):
        print(
            f"{name}: {o.shape}, mean |out - input| {np.abs(o - x).mean():.3g}, "
            f"clamped {np.mean((o <= 0) | (o >= 1)) * 100:.1f}%"
        )


if __name__ == "__main__":
    main()
