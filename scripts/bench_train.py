"""Training throughput of each K3DN variant and the projected wall time of the full DPD-blur schedule.

    python scripts/bench_train.py --crop 576 448 --batch 4 [--variants k3dn_tiny ...] [--iters 5] [--device cuda]

Times whole training iterations (forward with the reblurring path, the loss, backward, clipping, AdamW) of both
stages on random data (the data loader is not included: it overlaps with compute in real runs), after warm-up
iterations. Stage 2 backpropagates into SRP only, so it is timed separately. The projection is
``9800 / it_s(stage 1) + 10200 / it_s(stage 2)`` (validation and checkpointing excluded). On CUDA it uses bf16
autocast and channels_last, as the trainer does.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from k3dn.losses import K3DNLoss
from k3dn.models import to_channels_last
from k3dn.registry import create_model


def bench(name: str, crop, batch: int, iters: int, warmup: int, device: torch.device, stages=(1, 2)) -> dict:
    torch.manual_seed(0)
    model = create_model(name).to(device)
    cuda = device.type == "cuda"
    if cuda:
        to_channels_last(model)
    b = {k: torch.rand(batch, 3, *crop, device=device) for k in ("left", "right", "center", "target")}
    crit = K3DNLoss()
    out = {
        "model": name,
        "crop": list(crop),
        "batch": batch,
        "device": str(device),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }
    for stage in stages:
        if hasattr(model, "set_stage"):
            model.set_stage(stage)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=1e-6)
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

        def step():
            with ctx:
                o = model(b)
            loss, _ = crit(o, b, reblur=stage == 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.01)
            opt.step()

        for _ in range(warmup):
            step()
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            step()
        if cuda:
            torch.cuda.synchronize()
        out[f"stage{stage}_it_s"] = iters / (time.perf_counter() - t)
    if cuda:
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    s1, s2 = out.get("stage1_it_s"), out.get("stage2_it_s")
    if s1 and s2:
        out["dpd_blur_hours"] = (9800 / s1 + 10200 / s2) / 3600
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["k3dn_tiny", "k3dn_lightweight", "k3dn_large"])
    p.add_argument("--crop", nargs=2, type=int, default=[576, 448], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    for v in args.variants:
        r = bench(v, tuple(args.crop), args.batch, args.iters, args.warmup, dev)
        print(json.dumps(r), flush=True)
        print(
            f"{v}: stage 1 {r['stage1_it_s']:.3f} it/s, stage 2 {r['stage2_it_s']:.3f} it/s at "
            f"{args.batch}x{args.crop[0]}x{args.crop[1]} on {dev}; full DPD-blur schedule (9.8k + 10.2k) "
            f"~{r['dpd_blur_hours']:.2f} h",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
