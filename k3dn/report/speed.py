"""Inference speed under the protocol of the supplement's Table 12, with each network's size and work.

Batch 1, 5 warm-up passes, then the mean of 30 timed passes, the device recorded. The supplement does not
state the input size; the default here is a DPDD image (1120x1680), with each model's own size handling
(K3DN resizes it to 1152x1792, as in its evaluation; GRL runs in tiles of 480 with 48 overlap, as its test does:
12 tiles covering 1.47 times the image, which its time and MACs include).

Beside the time, two numbers that do not depend on the device: the parameter count and the multiply-accumulates
of one forward pass at that size, each model's own size handling included (:func:`count_macs`:
``torch.utils.flop_counter`` counts convolutions, matrix products and attention as two FLOPs per MAC, and a
module built from element-wise products states its own; FFTs and other element-wise work are not counted, so
K3DN's Fourier-domain PSF blocks and Wiener's deconvolution count less than they cost). On CUDA the peak memory of the timed passes too.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from k3dn.io import write_csv
from k3dn.provenance import provenance


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_model(
    model,
    size=(1120, 1680),
    warmup: int = 5,
    runs: int = 30,
    device="cpu",
    dtype: str = "float32",
    fast: bool = True,
    compile: bool = False,
) -> dict:
    from k3dn.infer import forward_fitted, prepare_inference

    device = torch.device(device)
    inference = prepare_inference(model, device, fast=fast, compile=compile)
    h, w = size
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(1, 3, h, w, generator=g).to(device) for k in ("left", "right", "center")}
    amp = dtype == "bfloat16"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + runs):
        _sync(device)
        t0 = time.perf_counter()
        forward_fitted(model, batch, amp=amp)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan
    return {
        "seconds_mean": statistics.fmean(times),
        "seconds_std": statistics.pstdev(times),
        "warmup": warmup,
        "runs": runs,
        "size": f"{h}x{w}",
        "dtype": dtype,
        "peak_gib": peak,
        "params": sum(p.numel() for p in model.parameters()),
        "gmacs": count_macs(model, batch, amp=amp) / 1e9,
        **inference,
    }


@torch.no_grad()
def count_macs(model, batch: dict, amp: bool = False) -> float:
    """Multiply-accumulates of one ``forward_fitted`` pass on ``batch``: the ops ``FlopCounterMode`` knows, plus
    what a module built from element-wise ops states itself (``uncounted_macs(inputs, output)``, e.g. DiNAT-IR's
    neighbourhood attention, whose products the counter cannot see)."""
    from torch.utils.flop_counter import FlopCounterMode

    from k3dn.infer import forward_fitted

    stated = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out: stated.append(mod.uncounted_macs(args, out)))
        for m in model.modules()
        if hasattr(m, "uncounted_macs")
    ]
    try:
        with FlopCounterMode(display=False) as counter:
            forward_fitted(model, batch, amp=amp)
    finally:
        for h in hooks:
            h.remove()
    return counter.get_total_flops() / 2 + sum(stated)


def write_speed(model, method: str, out, **kw) -> Path:
    row = {"method": method, **time_model(model, **kw)}
    row.update(provenance(device=kw.get("device", "cpu")))
    return write_csv(pd.DataFrame([row]), out)
