"""Golden output of the official BaMBNet network for seeded random weights -> tests/fixtures/golden/bambnet.npz.

Official code: junjun-jiang/BaMBNet @ 211a90a59b94b3d3cde2d2d0c5464ad548c64903 (``test.py``,
``data/create_test_dataset.py``, ``models/kernel_de_param_net.py``). Rerun from the repository root with a
checkout of that commit:

    python scripts/golden/bambnet.py --official /path/to/BaMBNet

What runs is ``test.py`` on CPU in fp32: ``KernelEDNet()`` loaded strictly from the ``'state_dict'`` entry of a
file that ``write_fake_checkpoint`` writes from manifest ``bambnet`` (the published container), ``iter_num = 100e4``,
``.eval()``; L and R as ``cv2.imread`` leaves them (BGR, never converted) over 65535, i.e. the seeded RGB views with
the channel order reversed; network input ``cat(L, R, R)``; output ``[0]`` (sigmoid, BGR), clamped to [0, 1] as the
16-bit writer does, then turned back to RGB for the fixture.

Input 64x96: multiples of 16 (four 2x poolings), and wider than tall, so the test loader's 90-degree rotation of
portrait images does not apply. Nothing is stubbed (the network imports only torch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import FIXTURES, INPUT_SEED, WEIGHTS_SEED, fixture, save_fixture, warn_unless_at

from baselines.weight_manifests import random_views, write_fake_checkpoint

REPO, COMMIT = "junjun-jiang/BaMBNet", "211a90a59b94b3d3cde2d2d0c5464ad548c64903"
CHECKPOINT, MANIFEST = "bambnet", "bambnet"
HEIGHT, WIDTH = 64, 96


def official_output(official: Path) -> np.ndarray:
    sys.path.insert(0, str(official))
    from models.kernel_de_param_net import KernelEDNet

    model = KernelEDNet()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fake_checkpoint(MANIFEST, Path(tmp) / "bambnet.pth", seed=WEIGHTS_SEED)
        resume_state = torch.load(path, weights_only=True)
    model.load_state_dict(resume_state["state_dict"])
    model.iter_num = 100e4
    model.eval()
    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    l_img, r_img = (
        torch.from_numpy(np.ascontiguousarray(views[v][..., ::-1])).permute(2, 0, 1)[None] for v in ("left", "right")
    )
    with torch.no_grad():
        recover = model(torch.cat((l_img, r_img, r_img), dim=1))[0]
    recover = recover.clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(recover[..., ::-1]).astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="checkout of junjun-jiang/BaMBNet at COMMIT")
    ap.add_argument("--out", type=Path, default=FIXTURES / f"{CHECKPOINT}.npz")
    args = ap.parse_args(argv)
    warn_unless_at(args.official, COMMIT)
    out = official_output(args.official.resolve())
    save_fixture(args.out, fixture(out, f"{REPO}@{COMMIT} test.py", HEIGHT, WIDTH))
    print(f"output {out.shape}: range [{out.min():.4g}, {out.max():.4g}], std {out.std():.3g}")


if __name__ == "__main__":
    main()
