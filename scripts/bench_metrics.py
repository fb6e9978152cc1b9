#!/usr/bin/env python
"""Time per 1120x1680 RGB image of the metric implementations (DPDD size).

Paths: the scikit-image / numpy reference (float64), the batched torch path on CPU (float64 and float32),
on CUDA if available (float64 and float32), and AlexNet-LPIPS (random weights: speed only).

    python scripts/bench_metrics.py [--repeat 3] [--batch 4] [--threads N] [--no-lpips]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from k3dn.lpips import LPIPS  # noqa: E402
from k3dn.metrics import batch_metrics, image_metrics, to_tensor  # noqa: E402

H, W = 1120, 1680


def _time(fn, repeat):
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4, help="images per batch for the torch paths")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-lpips", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    tgt = rng.random((H, W, 3))
    pred = np.clip(tgt + 0.05 * rng.standard_normal(tgt.shape), 0, 1)
    print(f"image {H}x{W}x3, torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    rows = []

    t = _time(lambda: image_metrics(pred, tgt), args.repeat)
    rows.append(("skimage/numpy reference (float64)", "cpu", t))
    ref = image_metrics(pred, tgt)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        xb = to_tensor(pred, dev).repeat(args.batch, 1, 1, 1)
        yb = to_tensor(tgt, dev).repeat(args.batch, 1, 1, 1)
        for dt in (torch.float64, torch.float32):
            x, y = xb.to(dt), yb.to(dt)

            def run():
                out = batch_metrics(x, y, dtype=dt)
                sync()
                return out

            out = run()
            t = _time(run, args.repeat) / args.batch
            dpsnr = abs(out["psnr"][0].item() - ref["psnr"])
            dssim = abs(out["ssim"][0].item() - ref["ssim"])
            rows.append((f"torch batched ({str(dt).split('.')[-1]}, |dPSNR|={dpsnr:.1e}, |dSSIM|={dssim:.1e})", dev, t))
        if not args.no_lpips:
            m = LPIPS().to(dev)
            x, y = xb.float(), yb.float()

            def run_lp():
                with torch.no_grad():
                    out = m(x, y)
                sync()
                return out

            rows.append(("LPIPS alex v0.1 (float32, random weights)", dev, _time(run_lp, args.repeat) / args.batch))
        if dev == "cuda":
            rows.append(("(device)", torch.cuda.get_device_name(), float("nan")))

    for name, dev, t in rows:
        print(f"{name:70s} {dev:24s} " + ("" if t != t else f"{t * 1000:9.1f} ms/image"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
