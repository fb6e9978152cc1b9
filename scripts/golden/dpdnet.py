"""Golden outputs of the official Keras DPDNet for the checkpoints ``dpdnet_dual`` and ``dpdnet_single_retrained``.

Sources: Abdullah-Abuolaim/defocus-deblurring-dual-pixel @ 7ebf77e71a073de0f8ff79510274a8af1e84a5ad (``DPDNet/``,
the dual-pixel model) and lingyanruan/DPDNet @ 33761598b218fae8a2ef4344b3a58dec32bc00d6 (the retrained single-image
model). Both build ``model.py::unet`` on ``Input((H, W, nb_ch_all))`` as their ``main.py`` does (the test re-wraps
the loaded model on a whole-image input; here that input is H x W), with their own ``config.py`` imported unchanged
from a scratch folder holding the empty test-set folders it lists. Inputs as their ``test_generator``: cv2 BGR
views / ``norm_val`` in a float64 array, ``cat(L, R)`` (dual, channels 0:3 = L, 3:6 = R) or C (single); the
sigmoid output is saved before the ``* norm_val`` integer cast, BGR -> RGB.

Weights: ``random_tensors(manifest, WEIGHTS_SEED)`` with every kernel rescaled by ``keras_writer.he_scaled`` (see
there why), assigned in Keras' topological order (``keras_writer.assign_in_file_order``). ``--check-writer`` then
saves the same arrays with ``keras_writer.write`` (real Keras HDF5), loads that file into a fresh official model
with ``load_weights`` and requires identical weights and output; ``--keras-out DIR`` also saves each official model
with ``model.save(save_format='h5')`` (the published container) for inspection.

Needs tensorflow-cpu 2.15.1 (tf.keras 2.15; ``keras`` 2.15 is what ``from keras.models import *`` finds),
numpy < 2, opencv-python-headless, scikit-image, scikit-learn, pillow, pyyaml and torch (for the suite's
``baselines`` import), in a venv of its own. Nothing is stubbed; one name is added: lingyanruan's ``config.py``
defines no ``dropout_rate``, which its ``model.py::unet`` reads (its test only calls ``load_model`` on the file,
whose stored config supplies it), so the script sets the manifest constructor's 0.4 (the original ``config.py``
value) in ``model``'s globals; Dropout is inactive in ``predict`` either way. Rerun from the repository root:

    python scripts/golden/dpdnet.py --official /path/to/defocus-deblurring-dual-pixel \\
        --official-retrained /path/to/lingyanruan-DPDNet [--check-writer] [--keras-out DIR]

It writes ``tests/fixtures/golden/dpdnet_dual.npz`` and ``dpdnet_single_retrained.npz``
(``tests/test_golden_dpdnet.py``).
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

# Multiples of 16 (four 2x2 max-pools), 4 x 6 at 1/16; unequal so that an H/W mix-up changes the output's shape.
HEIGHT, WIDTH = 64, 96
# checkpoint -> (source, subfolder of the checkout with model.py/config.py, folders config.py lists, views)
CHECKPOINTS = {
    "dpdnet_dual": (
        "Abdullah-Abuolaim/defocus-deblurring-dual-pixel@7ebf77e71a073de0f8ff79510274a8af1e84a5ad",
        "DPDNet",
        ["dd_dp_dataset_canon/test_c/source"],
        ("left", "right"),
    ),
    "dpdnet_single_retrained": (
        "lingyanruan/DPDNet@33761598b218fae8a2ef4344b3a58dec32bc00d6",
        ".",
        ["DPD/test_c/source", "DPD/test_c/target"],
        ("center",),
    ),
}
OFFICIAL_MODULES = ("config", "model", "data", "metrics", "utils")


def import_official(code: Path, folders: list[str], scratch: Path):
    """The checkout's ``model`` module, with its ``config`` run unchanged in ``scratch`` (relative data paths)."""
    for name in OFFICIAL_MODULES:  # the two checkouts use the same module names
        sys.modules.pop(name, None)
    for f in folders:
        (scratch / f).mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(scratch)
    sys.path.insert(0, str(code))
    try:
        import model
    finally:
        sys.path.remove(str(code))
        os.chdir(cwd)
    return model


def build(official, channels: int):
    import tensorflow as tf

    x = tf.keras.Input((HEIGHT, WIDTH, channels))
    return tf.keras.Model(inputs=x, outputs=official.unet(x))


def golden(name: str, checkout: Path, check_writer: bool, keras_out: Path | None) -> dict:
    source, sub, folders, views_read = CHECKPOINTS[name]
    manifest = load_manifest(get_checkpoint(name).manifests[0])
    with tempfile.TemporaryDirectory() as scratch:
        official = import_official(checkout / sub, folders, Path(scratch))
    if not hasattr(official, "dropout_rate"):  # lingyanruan's config.py: see the docstring
        official.dropout_rate = manifest["constructor"]["dropout_rate"]
        print(f"{name}: config.py defines no dropout_rate; unet() gets {official.dropout_rate}")
    arrays = keras_writer.he_scaled(manifest, [a for _, a in random_tensors(manifest, WEIGHTS_SEED)])
    channels = manifest["tensors"][0][1][2]
    assert channels == official.nb_ch_all == 3 * len(views_read)

    views = random_views(INPUT_SEED, HEIGHT, WIDTH)
    x = np.zeros((1, HEIGHT, WIDTH, channels))  # float64, as test_generator's np.zeros
    for i, v in enumerate(views_read):
        x[0, :, :, 3 * i : 3 * i + 3] = views[v][..., ::-1]  # RGB -> cv2's BGR

    build_net = functools.partial(build, official, channels)
    out = keras_writer.run_official(build_net, manifest, arrays, x, name, keras_out, check_writer)
    output = np.ascontiguousarray(out[..., ::-1], np.float32)  # BGR -> RGB
    return fixture(output, f"{source} main.py", HEIGHT, WIDTH, weights=np.str_(keras_writer.HE_SCALED_WEIGHTS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", type=Path, help="checkout of Abdullah-Abuolaim/defocus-deblurring-dual-pixel")
    p.add_argument("--official-retrained", type=Path, help="checkout of lingyanruan/DPDNet")
    p.add_argument("--out", type=Path, default=FIXTURES)
    p.add_argument("--check-writer", action="store_true", help="also check keras_writer's file against load_weights")
    p.add_argument("--keras-out", type=Path, help="also save each official model here (model.save, HDF5)")
    a = p.parse_args()
    todo = {"dpdnet_dual": a.official, "dpdnet_single_retrained": a.official_retrained}
    if not any(todo.values()):
        p.error("give --official and/or --official-retrained")
    for name, checkout in todo.items():
        if checkout is None:
            continue
        arrays = golden(name, checkout.resolve(), a.check_writer, a.keras_out)
        save_fixture(a.out / f"{name}.npz", arrays, compressed=True)
        print(
            f"{name}: wrote {a.out / name}.npz, output range [{arrays['output'].min():.4f}, "
            f"{arrays['output'].max():.4f}]"
        )


if __name__ == "__main__":
    main()
