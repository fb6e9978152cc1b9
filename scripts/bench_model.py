"""Parameters, multiply-accumulates, peak memory and latency of the K3DN variants (forward only, no grad).

* MACs at --size (default 1152×1792, the resized DPDD frame): counted with torch.utils.flop_counter.FlopCounterMode
  on the meta device (no real compute; MACs = FLOPs / 2). FlopCounterMode counts convolutions and matrix products;
  the SRP 9×9 local correlation (81·C'·H·W multiply-adds per SRP block, elementwise) is not in it, so it is added
  analytically and printed separately.
* CPU: latency at --cpu-size (default 288×224; a 1152×1792 forward takes minutes on CPU), mean of --cpu-runs after
  one warm-up, and the process's peak-RSS growth during those runs.
* CUDA (if available): the supplement's protocol at --size: batch 1, 5 warm-ups, mean of 30 timed runs, fp32 and bf16
  autocast, plus torch.cuda.max_memory_allocated.

Usage: python scripts/bench_model.py [--names k3dn_tiny ...] [--size 1152 1792] [--cpu-size 288 224]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from k3dn.models.srp import CORR_RADIUS
from k3dn.registry import create_model

DEFAULT_NAMES = ("k3dn_tiny", "k3dn_lightweight", "k3dn_large")
PAPER_A40_S = {"k3dn_tiny": 0.236, "k3dn_lightweight": 0.318, "k3dn_large": 0.578}


def make_batch(model, h, w, device="cpu", dtype=torch.float32):
    return {k: torch.rand(1, 3, h, w, device=device, dtype=dtype) for k in model.input_views}


def count_macs(name, h, w):
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(name).eval().to("meta")
    batch = {k: torch.empty(1, 3, h, w, device="meta") for k in model.input_views}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(batch)
    conv_macs = counter.get_total_flops() / 2
    corr = 0
    if model.srp is not None:
        bc, in_ch = model.config["bc"], model.in_ch
        widths = ((4 * bc, h // 4, w // 4), (2 * bc, h // 2, w // 2), (bc + in_ch, h, w))
        corr = sum((2 * CORR_RADIUS + 1) ** 2 * c * hh * ww for c, hh, ww in widths)
    return conv_macs, corr


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_latency(name, h, w, runs):
    model = create_model(name).eval()
    batch = make_batch(model, h, w)
    before = peak_rss_mb()
    with torch.no_grad():
        model(batch)
        t = time.perf_counter()
        for _ in range(runs):
            model(batch)
        dt = (time.perf_counter() - t) / runs
    return dt, peak_rss_mb() - before


def cuda_latency(name, h, w, bf16, warmup=5, runs=30):
    model = create_model(name).eval().cuda()
    batch = make_batch(model, h, w, "cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(warmup):
            model(batch)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(runs):
            start.record()
            model(batch)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
    return sum(times) / len(times), torch.cuda.max_memory_allocated() / 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", nargs="+", default=list(DEFAULT_NAMES))
    ap.add_argument("--size", nargs=2, type=int, default=(1152, 1792))
    ap.add_argument("--cpu-size", nargs=2, type=int, default=(288, 224))
    ap.add_argument("--cpu-runs", type=int, default=3)
    ap.add_argument("--no-cpu", action="store_true")
    args = ap.parse_args(argv)
    h, w = args.size
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, CUDA {torch.cuda.is_available()}")
    for name in args.names:
        params = sum(p.numel() for p in create_model(name).parameters())
        conv_macs, corr = count_macs(name, h, w)
        print(
            f"{name}: params {params / 1e6:.3f} M | MACs @{h}x{w}: {(conv_macs + corr) / 1e9:.1f} G "
            f"(conv/matmul {conv_macs / 1e9:.1f} G + SRP correlation {corr / 1e9:.1f} G)"
        )
        if not args.no_cpu:
            ch, cw = args.cpu_size
            dt, rss = cpu_latency(name, ch, cw, args.cpu_runs)
            print(
                f"  CPU @{ch}x{cw}: {dt:.3f} s/forward (mean of {args.cpu_runs} after 1 warm-up), peak RSS growth {rss:.0f} MiB"
            )
        if torch.cuda.is_available():
            for bf16 in (False, True):
                dt, mem = cuda_latency(name, h, w, bf16)
                print(
                    f"  {torch.cuda.get_device_name()} {'bf16' if bf16 else 'fp32'} @{h}x{w}: {dt:.3f} s "
                    f"(5 warm-ups, mean of 30), peak {mem:.0f} MiB (paper, A40: {PAPER_A40_S.get(name, '-')} s)"
                )


if __name__ == "__main__":
    main()
