"""Golden outputs of the official KPAC network (HyeongseokSon1/KPAC@8603ec3ac56b5a416be6b996165b552aff1c4b0f,
``model.py`` with its bundled TensorLayer 1.7) for seeded random weights and seeded views.

The official code is TensorFlow 1.10 on Python 2.7; it runs here under ``tensorflow.compat.v1`` of a TF 2.15 CPU
build, in a venv of its own (the suite's numpy is too new for TF 2.15)::

    python3.11 -m venv /tmp/tfvenv-kpac
    /tmp/tfvenv-kpac/bin/pip install tensorflow-cpu==2.15.1 torch "numpy<2" pyyaml six scipy matplotlib \
        scikit-image "opencv-python-headless<4.11"
    /tmp/tfvenv-kpac/bin/python scripts/golden/kpac.py --official /path/to/KPAC-checkout [--tl-npz-dir DIR]

For each checkpoint the graph is built as ``main_eval_{2level,3level,dual}.py`` builds it (same function and
arguments, hrg/wrg = the fixture's H, W), the random-weight file is written in the published container
(``write_fake_checkpoint``) and assigned by the official ``tl.files.load_and_assign_npz`` (positional,
``all_params`` order; every TF variable name is also checked against the manifest), the views are scaled by the
official ``utils.scale_imgs_fn`` through ``tl.prepro.threading_data`` (RGB, 8-bit values -> [-1, 1]; the dual
graph gets C, L, R in its three placeholders and concatenates (L, R) itself), and the output goes through the
official ``tl.visualize.scale_image`` (the clip of ``save_image``) divided by 255, stopping before 8-bit rounding.
With ``--tl-npz-dir`` the official ``tl.files.save_npz`` also writes the assigned weights there.

Shims (nothing else of the official code is changed; the network uses no ``tf.contrib`` piece):
1. ``sys.modules['tensorflow']`` is ``tensorflow.compat.v1`` after ``disable_v2_behavior()``.
2. Python 2 division: ``hrg``, ``wrg`` (and, for the 2-level graph, ``ch=48``, its default) are passed as an int
   subclass whose ``/`` floors, as ``/`` on ints does in Python 2.7; in Python 3 ``hrg/4`` and ``ch/4`` are floats
   that TF rejects as shapes. The values are unchanged.
3. ``tensorlayer.files.np``: ``load`` defaults to ``allow_pickle=True`` (numpy >= 1.16.3 refuses the pickled object
   array of ``save_npz`` files) and ``savez`` stores the ragged parameter list as the 1-D object array older numpy
   made of it (numpy >= 1.24 refuses ragged lists).
4. The eval scripts' ``tf.device('/device:GPU:0')`` and GPU session options are left out (CPU, float32).
5. ``MPLBACKEND=Agg`` for the ``matplotlib`` import of ``tensorlayer.visualize`` (no display).
"""

import argparse
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
from common import FIXTURES, INPUT_SEED, ROOT, WEIGHTS_SEED, fixture, save_fixture

COMMIT = "8603ec3ac56b5a416be6b996165b552aff1c4b0f"
H, W = 64, 96
# checkpoint -> (official eval script, the model.py function it builds, its placeholders' views in argument order,
# its keyword arguments besides is_train, hrg, wrg)
GRAPHS = {
    "kpac_single_2level": ("main_eval_2level.py", "Defocus_Deblur_Net6_ms", ("center",), {"ks": 5, "bs": 2, "ch": 48}),
    "kpac_single_3level": ("main_eval_3level.py", "Defocus_Deblur_Net6_ds", ("center",), {"ks": 5, "bs": 2}),
    "kpac_dual": ("main_eval_dual.py", "Defocus_Deblur_Net6_ds_dual", ("center", "left", "right"), {}),
}


class Py2Int(int):
    def __truediv__(self, other):
        return Py2Int(int(self) // other)


class _Numpy2017(types.ModuleType):
    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def load(*args, **kwargs):
        kwargs.setdefault("allow_pickle", True)
        return np.load(*args, **kwargs)

    @staticmethod
    def savez(file, **arrays):
        for key, value in arrays.items():
            if isinstance(value, list):
                arrays[key] = np.empty(len(value), dtype=object)
                arrays[key][:] = value
        return np.savez(file, **arrays)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, type=Path, help="checkout of HyeongseokSon1/KPAC@" + COMMIT[:7])
    p.add_argument("--out", type=Path, default=FIXTURES)
    p.add_argument("--tl-npz-dir", type=Path, default=None, help="also write tl.files.save_npz files here")
    args = p.parse_args()

    os.environ.setdefault("MPLBACKEND", "Agg")
    import tensorflow.compat.v1 as tf
    import yaml

    tf.disable_v2_behavior()
    sys.modules["tensorflow"] = tf
    sys.path.insert(0, str(args.official.resolve()))
    import model as official
    import tensorlayer as tl
    import utils as official_utils

    from baselines.weight_manifests import (
        load_manifest,
        random_views,
        write_fake_checkpoint,
    )

    tl.files.np = _Numpy2017("numpy")
    registry = yaml.safe_load((ROOT / "baselines" / "checkpoints.yaml").read_text())["checkpoints"]
    views = random_views(INPUT_SEED, H, W)
    for name, (script, function, inputs, kwargs) in GRAPHS.items():
        entry = registry[name]
        manifest = load_manifest(entry["manifest"])
        kwargs = {k: Py2Int(v) if k == "ch" else v for k, v in kwargs.items()}
        with tf.Graph().as_default(), tempfile.TemporaryDirectory() as tmp:
            tl.layers.clear_layers_name()
            ph = [tf.placeholder("float32", [1, H, W, 3], name=f"t_image_{v[0]}") for v in inputs]
            net = getattr(official, function)(*ph, is_train=False, hrg=Py2Int(H), wrg=Py2Int(W), **kwargs)
            tf_names = [v.name[: -len(":0")] for v in net.all_params]
            assert tf_names == [t[0] for t in manifest["tensors"]], f"{name}: all_params order differs from manifest"
            sess = tf.Session()
            tl.layers.initialize_global_variables(sess)
            path = write_fake_checkpoint(entry["manifest"], Path(tmp) / Path(entry["file"]).name, seed=WEIGHTS_SEED)
            assert tl.files.load_and_assign_npz(sess=sess, name=str(path), network=net) is not False
            feed = {
                t: tl.prepro.threading_data(
                    np.expand_dims(views[v].astype(np.float64) * 255, 0), fn=official_utils.scale_imgs_fn
                )
                for t, v in zip(ph, inputs)
            }
            out = sess.run(net.outputs, feed)
            output = (tl.visualize.scale_image(out[0], True) / 255.0).astype(np.float32)
            if args.tl_npz_dir is not None:
                args.tl_npz_dir.mkdir(parents=True, exist_ok=True)
                tl.files.save_npz(net.all_params, name=str(args.tl_npz_dir / f"{name}_tensorlayer.npz"), sess=sess)
            sess.close()
        dest = save_fixture(args.out / f"{name}.npz", fixture(output, f"HyeongseokSon1/KPAC@{COMMIT} {script}", H, W))
        print(
            f"{name}: {function}, output {output.shape} range [{output.min():.4f}, {output.max():.4f}] "
            f"residual std {np.std(out[0] - feed[ph[0]][0]):.3g} -> {dest}"
        )


if __name__ == "__main__":
    main()
