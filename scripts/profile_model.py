"""Where a model's inference time goes: the top operators of torch.profiler for one forward pass.

Runs ``k3dn.infer.forward_fitted`` (the path ``k3dn predict`` and the speed rule use) once to warm up, then profiles
``--runs`` passes and prints the operators with the largest self time (CPU, plus CUDA on a GPU). ``--fast off``
leaves out the device settings of ``k3dn.infer.prepare_inference`` (cuDNN benchmark, channels-last; the in-model
caches and the banded correlation stay), so on a GPU the two tables show what those settings change.

Usage: python scripts/profile_model.py k3dn_lightweight [--size 576 448] [--fast on|off] [--top 15]
       python scripts/profile_model.py wiener --size 480 640 --fast off
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from k3dn.infer import forward_fitted, pick_device, prepare_inference
from k3dn.registry import create_model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--size", nargs=2, type=int, default=(576, 448))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--fast", choices=("on", "off"), default="on")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    model = create_model(args.name).eval().to(device)
    settings = prepare_inference(model, device, fast=args.fast == "on")
    g = torch.Generator().manual_seed(0)
    h, w = args.size
    batch = {k: torch.rand(1, 3, h, w, generator=g).to(device) for k in ("left", "right", "center")}
    amp = args.dtype == "bfloat16"
    forward_fitted(model, batch, amp=amp)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.runs):
            forward_fitted(model, batch, amp=amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"{args.name} @{h}x{w} on {device} ({args.dtype}, {settings}), {args.runs} runs")
    print(prof.key_averages().table(sort_by=key, row_limit=args.top))


if __name__ == "__main__":
    main()
