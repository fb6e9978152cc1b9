"""Golden output of the official Keras RDPD+ for the checkpoint ``rdpd_plus``.

Source: Abdullah-Abuolaim/recurrent-defocus-deblurring-synth-dual-pixel @ 03d592a8ec970843ae49579bc8a87ce019043092,
``rdpd_code/``. The model is built as ``main.py --op_phase test`` builds it for images:
``Input(batch_shape=(None, None, H, W, nb_ch_all))``, ``Model(inputs, unet(in_data, False))``, with the official
``config.py`` imported unchanged (``sys.argv`` = ``main.py --op_phase test --data_dir <scratch>``, the scratch folder
holding the empty data-set folders it lists; working directory ``rdpd_code`` so that it reads
``real_radial_mask.png`` / 255 itself). The input is one frame, as ``test_generator_image`` fills it: cv2 BGR
L (channels 0:3) and R (3:6) / ``norm_val``, and the radial mask in channel 6. The official mask is 1120 x 1680; for
another size the loader's ``resize_flag`` branch resizes it with ``cv2.resize(img_real_rd_mask, (w, h))`` (default
bilinear), which is what this script does for H x W. The output (linear, ``backend.clip`` to [0, 1] inside the
graph) is saved before the ``* norm_val`` integer cast, BGR -> RGB.

Weights: ``random_tensors(manifest, WEIGHTS_SEED)`` with every kernel rescaled by ``keras_writer.he_scaled``,
assigned in Keras' topological order. ``--check-writer`` saves the same arrays with ``keras_writer.write`` (real
Keras HDF5) and loads that file into a fresh official model with ``m.load_weights`` (the official test's call),
requiring identical weights and output; ``--keras-out DIR`` also saves the official model with
``model.save(save_format='h5')``.

Needs tensorflow-cpu 2.15.1 (tf.keras 2.15), numpy < 2, opencv-python-headless, scikit-image, scikit-learn,
pyyaml and torch (for the suite's ``baselines`` import), in a venv of its own. Nothing is stubbed. Rerun from the
repository root:

    python scripts/golden/rdpd.py --official /path/to/recurrent-defocus-deblurring-synth-dual-pixel \\
        [--check-writer] [--keras-out DIR]

It writes ``tests/fixtures/golden/rdpd_plus.npz`` (``tests/test_golden_rdpd.py``).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

import keras_writer
import numpy as np
from common import FIXTURES, INPUT_SEED, WEIGHTS_SEED, fixture, save_fixture

from baselines.published import get_checkpoint
from baselines.weight_manifests import load_manifest, random_tensors, random_views

SOURCE = "Abdullah-Abuolaim/recurrent-defocus-deblurring-synth-dual-pixel@03d592a8ec970843ae49579bc8a87ce019043092"
NAME = "rdpd_plus"
# Multiples of 16 (four 2x2 max-pools), 4 x 6 at 1/16; unequal so that an H/W mix-up changes the output's shape.
HEIGHT, WIDTH = 64, 96
DATA_FOLDERS = [
    f"{s}/{p}_c/source" for s in ("dd_dp_dataset_canon", "dd_dp_dataset_synth_vid") for p in ("train", "val", "test")
]


def import_official(code: Path, scratch: Path):
    for f in DATA_FOLDERS:
        (scratch / f).mkdir(parents=True, exist_ok=True)
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = ["main.py", "--op_phase", "test", "--data_dir", f"{scratch}/"]
    os.chdir(code)
    sys.path.insert(0, str(code))
    try:
        import model
    finally:
        sys.path.remove(str(code))
        os.chdir(cwd)
        sys.argv = argv
    return model


def build(official):
    import tensorflow as tf

    x = tf.keras.Input(batch_shape=(None, None, HEIGHT, WIDTH, official.nb_ch_all))
    return tf.keras.Model(inputs=x, outputs=official.unet(x, False))


def golden(checkout: Path, check_writer: bool, keras_out: Path | None) -> dict:
    import cv2

    with tempfile.TemporaryDirectory() as scratch:
        official = import_official(checkout / "rdpd_code", Path(scratch))
    assert official.linear_layer and official.radial_mask and official.nb_ch_all == 7 and not official.ms_edge_loss
    manifest = load_manifest(get_checkpoint(NAME).manifests[0])
    arrays = keras_writer.he_scaled(manifest, [a for _, a in random_tensors(manifest, WEIGHTS_SEED)])

    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    x = np.zeros((1, 1, HEIGHT, WIDTH, official.nb_ch_all))  # float64, as test_generator_image's np.zeros
    x[0, 0, :, :, 0:3] = views["left"][..., ::-1]  # RGB -> cv2's BGR
    x[0, 0, :, :, 3:6] = views["right"][..., ::-1]
    x[0, 0, :, :, 6] = cv2.resize(official.img_real_rd_mask, (WIDTH, HEIGHT))

    build_net = functools.partial(build, official)
    out = keras_writer.run_official(build_net, manifest, arrays, x, NAME, keras_out, check_writer)[0]  # frame 0
    output = np.ascontiguousarray(out[..., ::-1], np.float32)  # BGR -> RGB
    return fixture(output, f"{SOURCE} main.py", HEIGHT, WIDTH, weights=np.str_(keras_writer.HE_SCALED_WEIGHTS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--official",
        type=Path,
        required=True,
        help="checkout of Abdullah-Abuolaim/recurrent-defocus-deblurring-synth-dual-pixel",
    )
    p.add_argument("--out", type=Path, default=FIXTURES)
    p.add_argument("--check-writer", action="store_true", help="also check keras_writer's file against load_weights")
    p.add_argument("--keras-out", type=Path, help="also save the official model here (model.save, HDF5)")
    a = p.parse_args()
    arrays = golden(a.official.resolve(), a.check_writer, a.keras_out)
    save_fixture(a.out / f"{NAME}.npz", arrays, compressed=True)
    print(
        f"{NAME}: wrote {a.out / NAME}.npz, output range [{arrays['output'].min():.4f}, {arrays['output'].max():.4f}]"
    )


if __name__ == "__main__":
    main()
