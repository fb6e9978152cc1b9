"""Golden outputs of Xin et al.'s official JAX optimisation on a small real Pixel 4 scene, for
``tests/test_golden_xin2021.py``.

The official code (``--official``: a checkout of cmu-ci-lab/dual_pixel_defocus_estimation_deblurring at the
commit below, with its ``DP_data_pixel_4`` data) targets JAX 0.2.19. It runs here under a current ``jax[cpu]``
with the shims listed in ``SHIMS`` (each is stored in the fixture) and SciPy <= 1.13 (``interp2d``)::

    python -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install "jax[cpu]" "scipy<=1.13" pillow numpy
    /tmp/jaxenv/bin/python scripts/golden/xin2021.py --official /path/to/checkout

The scene is a 2 x 2 grid of ``PATCH``-px cells around the centre of scene ``SCENE``'s 1008 x 1344 crop, so each
quadrant lies in a different calibration cell (cells (2, 3), (2, 4), (3, 3), (3, 4) of the 6 x 8 grid) and is
rendered with that cell's calibrated kernels, as the official code renders the whole frame. What is recorded:

* ``raw_left``/``raw_right``: the raw 16-bit counts of the crop, and ``white_left``/``white_right`` the white
  sheets' raw counts around it with a margin of half the 101-px vignetting window (all the box filter reads);
  ``left``/``right``: the official ``load_data_and_calibration`` output for the crop (black level, vignetting).
* ``kernels``: the four cells' calibrated kernels (4, 2, 61, 61) (view axis left, right);
  ``resampled``: the official ``rescale_blur_kernels`` of cell 0's pair at ``resample_scales`` (both sides of
  0.5, where the resampler switches to its Gaussian branch, and of 1, below which samples fall beyond the last
  calibrated tap); ``scales``: the optimisation's 12 layer blur sizes (float32, as the official computes them).
* ``mpi_logits``: a fixed MPI (seeded, low resolution, repeated ``MPI_REPEAT`` x in y and x; the back layer's
  alpha logit +inf as the official init), and for it: ``views`` (the official rendering), ``bias``,
  ``terms`` (the five loss terms in ``TERMS`` order), ``grad`` (d total / d logits, every ``GRAD_STRIDE``-th
  pixel) - all with the official direct convolution - and ``fft_*``: the same through the FFT shim, which shows
  what the shim changes.
* ``history``: the total loss before each of ``steps`` Adam steps from the official initialisation, and after
  them ``final_terms``, ``aif`` (the raw ``sum_i T_i c_i`` on the input scale), ``aif_bilateral`` (run.py's
  saved image) and ``defocus`` (``sum_i T_i s_i``), run through the FFT shim (a direct 61 x 61 convolution under
  XLA on the CPU costs about 100x more per step).

The loop is the official ``optim.optimization`` loop with ``steps`` steps (i = 0 .. steps - 1) instead of
``num_iters + 1``, and the learning rate decayed over ``steps`` (the port's convention, README deviation 6);
everything it calls (``lossfun_helper``, the Adam of ``jax.example_libraries``, ``nan_to_num`` of the gradient)
is the official code. Run twice in the same environment, the fixture is byte-identical (``np.savez``, fixed
member order, no timestamps).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import types
from pathlib import Path

import numpy as np
from common import FIXTURES, save_fixture, warn_unless_at

SOURCE = "cmu-ci-lab/dual_pixel_defocus_estimation_deblurring@d6a92620163cb462ff5b77a813bc5c03b0dab240"
SCENE = "003"
PATCH = 48  # cell size of the small scene (the official 168 px would cost 12x per step)
GRID = (2, 2)
CELLS = (19, 20, 27, 28)  # rows 2-3, columns 3-4 of the 6 x 8 calibration grid (index 8 row + col)
CROP = (1008, 1344)  # the official central field of view
MARGIN = 50  # half the 101-px vignetting window
LAYERS = 12
# The layers' s_start, s_end: scene 003's weights with a range of our choosing, 1.55 .. 0.45 in steps of 0.1, so
# that no layer samples its kernel on the last tap (s = j / 30; see baselines.xin2021.resample_kernel), and the
# front layer takes the Gaussian branch (s <= 0.5). Scene 003's own range (0.7, 1.6) ends on such a tie (0.7).
SCENE_SCALES = (0.45, 1.55)
# Both sides of 0.5 and of 1; 0.6, 0.7, 0.8, 0.9 and 1.0 sample the last tap (ties), the others do not.
RESAMPLE_SCALES = (0.3, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.25, 1.6)
MPI_SEED = 3
MPI_REPEAT = 4
GRAD_STRIDE = 4
STEPS = 100
TERMS = ("loss_data", "loss_aux_data", "prior_sharp_im_tv", "prior_alpha_tv", "prior_entropy")
# setup.py, scene 003 (index 2): the weights as optim_params holds them
WEIGHTS = {
    "weight_loss_data": 2.5e4,
    "weight_loss_aux_data": 2.5e4,
    "weight_prior_sharp_im_tv": 30.0,
    "weight_prior_alpha_tv": 1.5e4,
    "weight_prior_entropy_before_ln": 20.0,
}
SHIMS = (
    "flax.nn.sigmoid -> jax.nn.sigmoid (flax.nn was removed in flax 0.4)",
    "flax.nn.avg_pool -> lax.reduce_window sum / window size, padded zeros counted (flax.nn's 'SAME' pooling)",
    "jax.experimental.optimizers -> jax.example_libraries.optimizers (moved in jax 0.2.25)",
    "PIL.Image.open -> 16-bit PNGs converted to mode 'I' (int32): Pillow 10+ opens them as 'I;16' (uint16), and "
    "subtracting the black level would wrap around instead of going negative and being clipped to 0",
    "util.filter_image_2d -> jax.scipy.signal.fftconvolve (same 'valid' convolution) for the optimisation run only "
    "(fft_* records what it changes at the fixed MPI); the fixed-MPI views, terms and gradient use the official "
    "direct convolve2d",
)


def _install_shims():
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.example_libraries import optimizers

    def avg_pool(x, window_shape, strides=None, padding="VALID"):
        dims = (1, *window_shape, 1)
        st = (1, *(strides or (1,) * len(window_shape)), 1)
        return lax.reduce_window(x, 0.0, lax.add, dims, st, padding) / np.prod(window_shape)

    flax = types.ModuleType("flax")
    flax.nn = types.SimpleNamespace(sigmoid=jax.nn.sigmoid, avg_pool=avg_pool)
    sys.modules["flax"] = flax
    jax.experimental.optimizers = optimizers
    sys.modules["jax.experimental.optimizers"] = optimizers

    import PIL.Image

    open_ = PIL.Image.open

    def open_signed(fp, *a, **kw):
        im = open_(fp, *a, **kw)
        return im.convert("I") if im.mode.startswith("I;16") else im

    PIL.Image.open = open_signed
    return jnp


def _fft_filter_image_2d(im, f, mode):
    import jax
    from jax.scipy.signal import fftconvolve

    return jax.vmap(lambda x: fftconvolve(x, f, mode=mode), in_axes=-1, out_axes=-1)(im)


def _environment() -> str:
    import jax
    import PIL
    import scipy

    return (
        f"python {platform.python_version()}, jax {jax.__version__}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, pillow {PIL.__version__}, {platform.machine()} CPU"
    )


def build(official: Path, steps: int = STEPS) -> dict:
    jnp = _install_shims()
    import jax
    from jax.example_libraries import optimizers

    code = official / "code"
    sys.path.insert(0, str(code))
    util = importlib.import_module("util")
    optim = importlib.import_module("optim")
    multiplane_image = importlib.import_module("multiplane_image")
    direct_filter = util.filter_image_2d

    # --- preprocessing: the official loader on the whole frame, then our crop of its output
    full = dict(patch_size=168, num_rows=6, num_cols=8)
    obs_full, kernels_full = util.load_data_and_calibration(str(official / "DP_data_pixel_4"), SCENE, full)
    h, w = PATCH * GRID[0], PATCH * GRID[1]
    cy, cx = CROP[0] // 2 - h // 2, CROP[1] // 2 - w // 2
    obs = np.asarray(obs_full[:, cy : cy + h, cx : cx + w, :])  # (2, h, w, 1)
    import PIL.Image

    frame = PIL.Image.open(official / "DP_data_pixel_4" / f"{SCENE}_left.png")
    oy, ox = (frame.size[1] - CROP[0]) // 2 + cy, (frame.size[0] - CROP[1]) // 2 + cx

    def raw(name, m=0):
        a = np.asarray(PIL.Image.open(official / "DP_data_pixel_4" / name), dtype=np.int64)
        return a[oy - m : oy + h + m, ox - m : ox + w + m].astype(np.uint16)

    kernels = np.asarray(kernels_full)[list(CELLS)]  # (4, 2, 61, 61)

    # --- kernel resampling
    resample_scales = jnp.asarray(RESAMPLE_SCALES, dtype=jnp.float32)
    resampled = np.asarray(util.rescale_blur_kernels(jnp.asarray(kernels[0]), 61, resample_scales))

    # --- the small scene as run.py sets it up
    patch_params = dict(patch_size=PATCH, num_rows=GRID[0], num_cols=GRID[1])
    observations = jnp.asarray(obs)
    observations_max = jnp.max(observations)
    observations = observations / observations_max
    scales = jnp.linspace(SCENE_SCALES[1], SCENE_SCALES[0], num=LAYERS, endpoint=True)
    blur_kernels_scaled = util.rescale_blur_kernels(jnp.asarray(kernels), 61, scales)
    bias = util.compute_bias_correction(observations, blur_kernels_scaled)
    precomputed = dict(
        observations=observations,
        observations_volume=jnp.repeat(observations[None], repeats=LAYERS, axis=0),
        filter_halfwidth=30,
        blur_kernels_scaled=blur_kernels_scaled,
        bias_correction=bias,
    )
    optim_params = dict(
        scales=scales,
        weight_loss_data=WEIGHTS["weight_loss_data"],
        weight_loss_aux_data=WEIGHTS["weight_loss_aux_data"],
        weight_prior_sharp_im_tv=WEIGHTS["weight_prior_sharp_im_tv"],
        weight_prior_alpha_tv=WEIGHTS["weight_prior_alpha_tv"] * (LAYERS / 12) ** 2,
        weight_prior_entropy=WEIGHTS["weight_prior_entropy_before_ln"]
        / (-jnp.log(jnp.sum((jnp.ones((LAYERS,)) / LAYERS) ** 2))),
    )

    def loss_and_grad(params):
        def f(p):
            return optim.lossfun_helper(p, precomputed, optim_params, patch_params)[0]

        return jax.value_and_grad(f)(params)

    # --- a fixed MPI: views, terms, gradient (direct convolution, then the FFT shim)
    rng = np.random.default_rng(MPI_SEED)
    low = (2.0 * rng.standard_normal((LAYERS, h // MPI_REPEAT, w // MPI_REPEAT, 2))).astype(np.float32)
    low[0, :, :, 1] = np.inf
    logits = low.repeat(MPI_REPEAT, axis=1).repeat(MPI_REPEAT, axis=2)

    def forward(filter_2d):
        util.filter_image_2d = filter_2d
        mpi = jax.nn.sigmoid(jnp.asarray(logits))
        mpi = jnp.pad(mpi, ((0, 0), (30, 30), (30, 30), (0, 0)), mode="edge")
        views, _ = multiplane_image.render_blurred_image_from_mpi(mpi, blur_kernels_scaled, patch_params)
        _, _, terms = optim.lossfun_helper([jnp.asarray(logits)], precomputed, optim_params, patch_params)
        total, grad = loss_and_grad([jnp.asarray(logits)])
        g = np.asarray(grad[0])[:, ::GRAD_STRIDE, ::GRAD_STRIDE, :]
        return np.asarray(views)[..., 0], np.array([float(terms[k]) for k in TERMS]), float(total), g

    views, terms, total, grad = forward(direct_filter)
    fft_views, fft_terms, fft_total, fft_grad = forward(_fft_filter_image_2d)

    # --- the optimisation from the official initialisation (run.py), FFT shim
    util.filter_image_2d = _fft_filter_image_2d
    from scipy.special import logit

    mean = float(jnp.mean(observations))
    colors = np.ones((LAYERS, h, w, 1)) * mean
    alphas = np.ones((LAYERS, h, w, 1)) / np.arange(1.0, LAYERS + 1.0)[:, None, None, None]
    init = [jnp.asarray(logit(np.concatenate([colors, alphas], axis=-1)), dtype=jnp.float32)]

    def lr_fun(i):
        t = jnp.clip(i / steps, 0, 1)
        lr = jnp.exp(jnp.log(0.3) * (1 - t) + jnp.log(0.1) * t)
        return jnp.clip(lr, 0.1, 0.3)

    opt_init, opt_update, opt_get_params = optimizers.adam(lr_fun)

    @jax.jit
    def step(i, state):
        loss, g = loss_and_grad(opt_get_params(state))
        return loss, opt_update(i, [jnp.nan_to_num(x, nan=0.0) for x in g], state)

    state = opt_init(init)
    history = []
    for i in range(steps):
        loss, state = step(i, state)
        history.append(float(loss))
    _, outputs, final = optim.lossfun_helper(opt_get_params(state), precomputed, optim_params, patch_params)
    kappa = 0.5 / jnp.mean(observations)
    aif = np.asarray(outputs["sharp_im"][..., 0] * observations_max)
    aif_bilateral = np.asarray(
        observations_max / kappa * util.filter_bilateral(kappa * outputs["sharp_im"][..., 0], sigma_s=3.0, sigma_v=0.05)
    )
    return {
        "source": np.str_(f"{SOURCE} scripts/golden/xin2021.py"),
        "environment": np.str_(_environment()),
        "shims": np.array(SHIMS),
        "scene": np.str_(SCENE),
        "cells": np.array(CELLS, dtype=np.int64),
        "grid": np.array(GRID, dtype=np.int64),
        "raw_left": raw(f"{SCENE}_left.png"),
        "raw_right": raw(f"{SCENE}_right.png"),
        "white_left": raw("calibration/white_sheet_left.png", MARGIN),
        "white_right": raw("calibration/white_sheet_right.png", MARGIN),
        "left": obs[0, ..., 0].astype(np.float32),
        "right": obs[1, ..., 0].astype(np.float32),
        "kernels": kernels.astype(np.float32),
        "resample_scales": np.asarray(resample_scales),
        "resampled": resampled.astype(np.float32),
        "scales": np.asarray(scales),
        "weights": np.array([WEIGHTS[k] for k in WEIGHTS], dtype=np.float64),
        "mpi_logits": low,
        "mpi_repeat": np.int64(MPI_REPEAT),
        "grad_stride": np.int64(GRAD_STRIDE),
        "bias": np.asarray(bias),
        "views": views.astype(np.float32),
        "terms": terms,
        "total": np.float64(total),
        "grad": grad.astype(np.float32),
        "fft_views": fft_views.astype(np.float32),
        "fft_terms": fft_terms,
        "fft_grad": fft_grad.astype(np.float32),
        "steps": np.int64(steps),
        "history": np.array(history),
        "final_terms": np.array([float(final[k]) for k in TERMS]),
        "aif": aif.astype(np.float32),
        "aif_bilateral": aif_bilateral.astype(np.float32),
        "defocus": np.asarray(outputs["defocus_map"]).astype(np.float32),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", type=Path, required=True, help="checkout of the official repository (with its data)")
    ap.add_argument("--out", type=Path, default=FIXTURES / "xin2021.npz")
    ap.add_argument("--steps", type=int, default=STEPS)
    args = ap.parse_args(argv)
    warn_unless_at(args.official, SOURCE.split("@")[1])
    arrays = build(args.official.resolve(), args.steps)
    save_fixture(args.out, arrays, compressed=True)
    print(
        f"{args.out}: {arrays['steps']} steps, loss {arrays['history'][0]:.6g} -> {arrays['history'][-1]:.6g}; "
        f"FFT shim vs direct at the fixed MPI: total {abs(arrays['fft_terms'].sum() / arrays['terms'].sum() - 1):.2e} "
        f"relative, views {np.abs(arrays['fft_views'] - arrays['views']).max():.2e}, "
        f"gradient {np.abs(arrays['fft_grad'] - arrays['grad']).max():.2e} (max |grad| "
        f"{np.abs(arrays['grad']).max():.2e})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
