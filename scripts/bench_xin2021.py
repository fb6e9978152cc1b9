"""Seconds per Adam iteration of the Xin et al. (ICCV 2021) MPI optimisation (``baselines.xin2021``), and the
projected time of the official 10,000-iteration schedule.

The setting is the Pixel set's: 12 layers, a 6x8 grid of 61x61 kernel pairs (``--kernels`` = the Pixel adapter's
``blur_kernels.npz`` or the calibration folder; without it, synthetic 61x61 DP half-disk pairs with the
calibrated kernels' size and layout, which cost the same), one grey image of ``--size H W`` (default the
1008x1344 crop) with a random texture. The first ``--warmup`` iterations (kernel spectra, allocator, FFT plans)
are not timed; the time per iteration is measured between the callbacks of the next ``--iterations`` steps
(CUDA synchronised). Full-size runs belong on a GPU; on a CPU use e.g. ``--size 256 256 --iterations 5``.

Usage: python scripts/bench_xin2021.py [--size 1008 1344] [--iterations 5] [--warmup 2] [--device cpu|cuda]
       [--kernels PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from baselines.wiener import half_disk_kernels
from baselines.xin2021 import ITERATIONS, KernelBank, optimise


def synthetic_kernels(cells: int = 48, size: int = 61) -> tuple[np.ndarray, np.ndarray]:
    """Half-disk pairs of radius 10 on a 61x61 support, one per cell (the calibrated set's shape)."""
    kl, kr = half_disk_kernels([10.0], size=size)
    return np.repeat(kl, cells, 0).astype(np.float32), np.repeat(kr, cells, 0).astype(np.float32)


def time_steps(bank: KernelBank, size, device, warmup: int = 2, iterations: int = 5):
    """Seconds of each of ``iterations`` Adam steps after ``warmup`` untimed ones (CUDA synchronised) on one grey
    image of ``size`` with a random texture (the right view shifted by 3 px), and the peak GPU memory in GiB
    (None on a CPU)."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    left = torch.rand(1, 1, h, w, generator=g).to(device) * 0.5 + 0.1
    right = torch.roll(left, 3, dims=-1)
    stamps = []

    def cb(i, _terms):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    optimise(left, right, bank, iterations=warmup + iterations, bilateral=False, callback=cb)
    timed = np.diff(stamps[warmup - 1 :]) if warmup >= 1 else np.diff([t0, *stamps])
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return timed, peak


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, nargs=2, default=(1008, 1344), metavar=("H", "W"))
    p.add_argument("--iterations", type=int, default=5, help="timed iterations")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--kernels", default=None, help="blur_kernels.npz or the Pixel calibration folder")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    a = p.parse_args(argv)
    if a.iterations < 1:
        p.error("--iterations must be >= 1")
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    h, w = a.size
    bank = KernelBank.build(a.kernels if a.kernels else synthetic_kernels())
    t0 = time.perf_counter()
    timed, peak = time_steps(bank, (h, w), dev, a.warmup, a.iterations)
    total = time.perf_counter() - t0
    per = float(np.mean(timed))
    print(
        f"xin2021 on {dev} ({torch.get_num_threads()} CPU threads): {h}x{w}, {bank.layers} layers, "
        f"grid {bank.grid[0]}x{bank.grid[1]}, {bank.kernels.shape[-1]}x{bank.kernels.shape[-1]} kernels"
    )
    print(
        f"  {per:.4f} s/iteration (mean of {len(timed)}, min {timed.min():.4f}); whole call {total:.2f} s "
        f"incl. {a.warmup} warm-up + final evaluation"
    )
    print(f"  projected {ITERATIONS} iterations: {per * ITERATIONS:.0f} s = {per * ITERATIONS / 3600:.2f} h")
    if peak is not None:
        print(f"  peak memory {peak:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
