"""Golden output of the official DDDNet networks for seeded random weights -> tests/fixtures/golden/dddnet.npz.

Official code: panpanfei/Dual-Pixel-Exploration-Simultaneous-Depth-Estimation-and-Image-Restoration
@ 9fb81c17d30e3b4b5e111d4f7e965ca712bb8718 (``DDDNet/model_test.py``, ``DDDNet/dual_pixel_test_MB.py``, the
DPD-blur test). Rerun from the repository root with a checkout of that commit:

    python scripts/golden/dddnet.py --official /path/to/checkout      # the folder that holds DDDNet/

What runs is ``dual_pixel_test_MB.py`` on CPU in fp32: ``YRStereonet_3D()`` (Estd) and ``Mydeblur()`` (Esti), each
wrapped in ``nn.DataParallel`` and loaded strictly from ``Estd.pkl`` / ``Esti.pkl`` written by
``write_fake_checkpoint`` from manifests ``dddnet_dpd_Estd`` / ``dddnet_dpd_Esti`` with seeds ``WEIGHTS_SEED`` and
``WEIGHTS_SEED + 1`` (as ``k3dn baselines fake`` writes the pair); L and R as RGB [0, 1] (PIL + ``ToTensor``);
``disp = Estd(L, R)``, ``out, _ = Esti(L, R, disp)``, clamped to [0, 1] as ``save_image`` does. Like the official
script, ``.eval()`` is never called, so Estd's BatchNorms normalise with the batch's own statistics.

Input 72x128: multiples of 8, and 128 columns so that Estd's 64x64 average pooling leaves two values per channel
(BatchNorm in batch-statistics mode refuses a single one). The fixture also holds Estd's ``disparity``.

Not stubbed, but patched for CPU: ``torch.cuda.current_device`` (used as the device of ``arange`` in
``DisparityRegression``) returns the CPU device, and the cost volume that Estd allocates uninitialised
(``x.new().resize_``; columns left of each shift are never written) is zero-filled, as the port does.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from common import FIXTURES, INPUT_SEED, WEIGHTS_SEED, fixture, save_fixture, warn_unless_at

from baselines.weight_manifests import random_views, write_fake_checkpoint

REPO = "panpanfei/Dual-Pixel-Exploration-Simultaneous-Depth-Estimation-and-Image-Restoration"
COMMIT = "9fb81c17d30e3b4b5e111d4f7e965ca712bb8718"
CHECKPOINT = "dddnet"
PARTS = (("dddnet_dpd_Estd", "Estd.pkl"), ("dddnet_dpd_Esti", "Esti.pkl"))
HEIGHT, WIDTH = 72, 128
# The committed fixture's member order (np.savez writes them in dict order).
MEMBERS = "output disparity input_seed weights_seed height width source".split()


@contextlib.contextmanager
def zeroed_resize():
    """Make ``Tensor.resize_`` zero-fill, so the official cost volume starts from zeros instead of stale memory."""
    original = torch.Tensor.resize_

    def resize_zero(self, *size, **kw):
        return original(self, *size, **kw).zero_()

    torch.Tensor.resize_ = resize_zero
    try:
        yield
    finally:
        torch.Tensor.resize_ = original


def official_outputs(official: Path) -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(official / "DDDNet"))
    torch.cuda.current_device = lambda: torch.device("cpu")
    import model_test

    estd = nn.DataParallel(model_test.YRStereonet_3D())
    esti = nn.DataParallel(model_test.Mydeblur())
    with tempfile.TemporaryDirectory() as tmp:
        for i, (manifest, file) in enumerate(PARTS):
            write_fake_checkpoint(manifest, Path(tmp) / file, seed=WEIGHTS_SEED + i)
        estd.load_state_dict(torch.load(Path(tmp) / "Estd.pkl", weights_only=True), strict=True)
        esti.load_state_dict(torch.load(Path(tmp) / "Esti.pkl", weights_only=True), strict=True)
    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    left, right = (torch.from_numpy(views[v]).permute(2, 0, 1)[None] for v in ("left", "right"))
    with torch.no_grad(), zeroed_resize():
        disp = estd(left, right)
        out, _ = esti(left, right, disp)
    out = out.clamp(0, 1)[0].permute(1, 2, 0).numpy().astype(np.float32)
    return out, disp[0].numpy().astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="checkout of the official repository at COMMIT")
    ap.add_argument("--out", type=Path, default=FIXTURES / f"{CHECKPOINT}.npz")
    args = ap.parse_args(argv)
    warn_unless_at(args.official, COMMIT)
    out, disp = official_outputs(args.official.resolve())
    arrays = fixture(out, f"{REPO}@{COMMIT} DDDNet/dual_pixel_test_MB.py", HEIGHT, WIDTH, disparity=disp)
    save_fixture(args.out, {k: arrays[k] for k in MEMBERS})
    print(
        f"output {out.shape}: range [{out.min():.4g}, {out.max():.4g}], std {out.std():.3g}, "
        f"{np.mean(out <= 0) * 100:.0f}% clamped to 0; disparity {disp.shape}: range [{disp.min():.4g}, "
        f"{disp.max():.4g}], std {disp.std():.3g}"
    )


if __name__ == "__main__":
    main()
