"""The training engine: the supplement's two-stage recipe for K3DN, one stage for any other registered model.

Stage 1 (``model.set_stage(1)``): everything but SRP trains, loss = deblurring + 0.1 x reblurring.
Stage 2 (``model.set_stage(2)``): only SRP parameters (the model leaves ``requires_grad`` on those alone),
in a fresh AdamW with a fresh schedule, loss = deblurring only. Models without ``set_stage`` (baselines)
train in one stage for the sum of the configured iterations, with the reblurring term if they return one.

Each iteration: crop batch -> forward (bf16 autocast on CUDA) -> loss in float32 -> finiteness check (all
ranks agree) -> backward -> clip the gradient norm -> AdamW step -> lr of the next step. A non-finite loss
stops the run before the step, so the weights and the last checkpoint stay good.

Reproducibility: data order and augmentation are functions of (seed, iteration) (see
:class:`k3dn.data.datasets.InfiniteDistributedSampler`), the lr is a function of the step, and checkpoints
hold weights, optimizer, schedule and every RNG; so on CPU a resumed run equals an uninterrupted one bit for
bit.
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from k3dn.data.datasets import (DPEvalDataset, DPTrainDataset, InfiniteDistributedSampler, collate,
                                worker_count)
from k3dn.losses import K3DNLoss
from k3dn.models.blocks import to_channels_last
from k3dn.train.checkpointing import latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from k3dn.train.config import training_identity
from k3dn.train.distributed import DistInfo, all_reduce_max, all_reduce_sum, barrier, cleanup, init_distributed
from k3dn.train.schedule import WarmupCosineRestarts

LOG_COLUMNS = ["iteration", "stage", "kind", "lr", "loss", "charbonnier", "edge", "frequency", "reblur",
               "psnr", "ssim", "input_psnr", "input_ssim", "images_per_s", "elapsed_s"]
IMAGE_KEYS = ("left", "right", "center", "target")


class NonFiniteLoss(RuntimeError):
    pass


class TrainingError(RuntimeError):
    pass


# ----------------------------------------------------------------------------------------------------------
# Log
# ----------------------------------------------------------------------------------------------------------

class CsvLog:
    """``<out>/log.csv``; on resume, rows after the resumed iteration (written after that checkpoint) go."""

    def __init__(self, path: Path, keep_until: int | None):
        self.path = path
        rows = []
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= keep_until]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, LOG_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)

    def write(self, **row) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOG_COLUMNS).writerow({k: _fmt(row.get(k, "")) for k in LOG_COLUMNS})


def _fmt(v):
    if isinstance(v, torch.Tensor):
        v = v.item()
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


# ----------------------------------------------------------------------------------------------------------
# Pieces
# ----------------------------------------------------------------------------------------------------------

def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: batch[k].to(device, non_blocking=True, memory_format=fmt) for k in IMAGE_KEYS if k in batch}


def _stage_plan(cfg: dict, two_stage: bool) -> list[tuple[int, int, int]]:
    """``[(stage, first_iteration, end_iteration)]`` in global iterations."""
    st = cfg["stages"]
    if not two_stage:
        return [(1, 0, sum(st))]
    plan, start = [], 0
    for i, n in enumerate(st, start=1):
        plan.append((i, start, start + n))
        start += n
    return plan


@torch.no_grad()
def validate(model, ds: DPEvalDataset, info: DistInfo, amp: bool) -> dict:
    """Mean PSNR/SSIM of the output and of the blurry centre view over ``ds`` (sharded across ranks)."""
    from k3dn.infer import forward_fitted
    from k3dn.metrics import batch_metrics

    was_training = model.training
    model.eval()
    sums = torch.zeros(5, dtype=torch.float64, device=info.device)
    for i in range(info.rank, len(ds), info.world_size):
        s = ds[i]
        batch = {k: s[k][None].to(info.device) for k in IMAGE_KEYS}
        target = batch.pop("target")
        y = forward_fitted(model, batch, amp=amp)
        m = batch_metrics(y, target)
        m_in = batch_metrics(batch["center"], target)
        sums += torch.stack([m["psnr"][0], m["ssim"][0], m_in["psnr"][0], m_in["ssim"][0],
                             torch.ones((), dtype=torch.float64, device=info.device)])
    all_reduce_sum(sums, info)
    model.train(was_training)
    n = max(sums[4].item(), 1.0)
    return {"psnr": sums[0].item() / n, "ssim": sums[1].item() / n, "input_psnr": sums[2].item() / n,
            "input_ssim": sums[3].item() / n}


def write_run_outputs(out: Path, model, cfg: dict, extra: dict) -> None:
    from k3dn.checkpoint import save_weights
    from k3dn.provenance import config_hash, git_commit

    save_weights(model, out / "model.safetensors", metadata={"model": cfg["model"]["name"]})
    spec = {"model": cfg["model"]["name"], "overrides": cfg["model"]["overrides"],
            "config_hash": config_hash(training_identity(cfg)), "git_commit": git_commit(), **extra}
    tmp = out / "model.json.tmp"
    tmp.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / "model.json")


# ----------------------------------------------------------------------------------------------------------
# Engine
# ----------------------------------------------------------------------------------------------------------

def train(cfg: dict, out_dir, resume: str = "auto") -> dict:
    """Train per ``cfg`` into ``out_dir``. ``resume``: ``auto`` (if state exists), ``require`` or ``never``.

    Returns a summary: iteration reached, ``stopped`` (by ``engine.stop_after``), wall time, the last
    validation means, and ``model`` (the trained module). Raises :class:`NonFiniteLoss`.
    """
    info = init_distributed(cfg["engine"]["device"])
    try:
        return _train(cfg, Path(out_dir), resume, info)
    finally:
        cleanup(info)


def _train(cfg: dict, out: Path, resume: str, info: DistInfo) -> dict:
    import yaml
    from tqdm import tqdm

    from k3dn.provenance import config_hash
    from k3dn.registry import create_model

    eng, data = cfg["engine"], cfg["data"]
    cuda = info.device.type == "cuda"
    amp = bool(eng["amp"]) and cuda
    channels_last = bool(eng["channels_last"]) and cuda
    state_dir = out / "state"
    identity = config_hash(training_identity(cfg))
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(info)

    _seed_all(int(eng["seed"]))
    model = create_model(cfg["model"]["name"], **cfg["model"]["overrides"])
    two_stage = callable(getattr(model, "set_stage", None))
    plan = _stage_plan(cfg, two_stage)
    total = plan[-1][2]
    if not data["train"]:
        raise TrainingError("data.train is not set (a manifest CSV of the training split)")
    train_ds = DPTrainDataset(data["train"], data["crop"], getattr(model, "size_multiple", (1, 1)),
                              data["hflip"], data["vflip"], data["cache"], data["crop_fit"],
                              getattr(model, "min_size", (1, 1)))
    val_ds = DPEvalDataset(data["val"], data["val_crop"], data["val_max_images"]) if data["val"] else None
    criterion = K3DNLoss(**cfg["loss"])

    ckpt_dir = latest_checkpoint(state_dir) if resume != "never" else None
    if resume == "require" and ckpt_dir is None:
        raise TrainingError(f"{state_dir}: --resume given but there is no checkpoint to resume from")
    ckpt = None
    iteration, elapsed0 = 0, 0.0
    if ckpt_dir is not None:
        ckpt = load_checkpoint(ckpt_dir, model, info.rank)
        if ckpt["identity"] != identity:
            raise TrainingError(f"{ckpt_dir}: was trained under a different config (identity {ckpt['identity']}, "
                                f"now {identity}); use a new --out folder, or delete {state_dir} to start over")
        iteration, elapsed0 = int(ckpt["iteration"]), float(ckpt["elapsed_s"])
        if ckpt["world_size"] != info.world_size and info.is_main:
            print(f"warning: resuming a {ckpt['world_size']}-process run with {info.world_size} processes; "
                  "the data order changes from here on")
        if ckpt["rng"] is not None:
            restore_rng(ckpt["rng"])
    if info.is_main:
        log = CsvLog(out / "log.csv", keep_until=iteration if ckpt is not None else None)
        tmp = out / "config.yaml.tmp"
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        os.replace(tmp, out / "config.yaml")
    model.to(info.device)
    if channels_last:
        to_channels_last(model)

    batch_size = int(data["batch_size"])
    stop_after = eng["stop_after"]
    t_start = time.perf_counter()
    last_val: dict = {}

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - t_start

    for stage, first, end in plan:
        if iteration >= end:
            continue
        if two_stage:
            model.set_stage(stage)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise TrainingError(f"{cfg['model']['name']}: stage {stage} leaves no parameter to train")
        opt = torch.optim.AdamW(params, lr=cfg["optim"]["lr"], betas=tuple(cfg["optim"]["betas"]),
                                weight_decay=cfg["optim"]["weight_decay"])
        sc = cfg["schedule"]
        sched = WarmupCosineRestarts(opt, cfg["optim"]["lr"], sc["min_lr"], sc["cycle_steps"], sc["warmup_steps"],
                                     step=iteration - first)
        if ckpt is not None and int(ckpt["stage"]) == stage and first < int(ckpt["iteration"]) < end:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        fwd = model
        if info.distributed:
            fwd = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[info.local_rank] if cuda else None,
                find_unused_parameters=bool(eng["find_unused_parameters"]))
        if eng["compile"]:
            fwd = torch.compile(fwd)

        sampler = InfiniteDistributedSampler(len(train_ds), int(eng["seed"]), info.rank, info.world_size,
                                             start=iteration * batch_size)
        workers = worker_count(data["workers"])
        loader = DataLoader(train_ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                            collate_fn=collate, pin_memory=cuda, drop_last=True,
                            persistent_workers=False, prefetch_factor=4 if workers else None)
        batches = iter(loader)
        bar = tqdm(total=end - first, initial=iteration - first, desc=f"stage {stage}/{len(plan)}",
                   disable=not (info.is_main and eng["progress"]), dynamic_ncols=True)
        acc: dict[str, torch.Tensor] = {}
        n_acc, t_log = 0, time.perf_counter()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
        try:
            while iteration < end:
                batch = _to_device(next(batches), info.device, channels_last)
                lr = sched.get_lr()
                with autocast:
                    outputs = fwd(batch)
                loss, parts = criterion(outputs, batch, reblur=(stage == 1))
                bad = all_reduce_max((~torch.isfinite(loss)).float().reshape(1), info)
                if bad.item():
                    good = latest_checkpoint(state_dir)
                    raise NonFiniteLoss(
                        f"non-finite training loss at iteration {iteration + 1} (stage {stage}; this rank: "
                        + ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
                        + "). Stopped before the optimizer step. Last good checkpoint: "
                        + (f"{good}" if good else "none (no checkpoint written yet)")
                        + ". Lower optim.lr, check the data, or resume from it with a different seed.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg["optim"]["grad_clip"])
                opt.step()
                sched.step()
                iteration += 1
                for k, v in parts.items():
                    acc[k] = acc.get(k, 0.0) + v
                n_acc += 1
                bar.update(1)

                if iteration % eng["log_every"] == 0 or iteration == end:
                    dt = time.perf_counter() - t_log
                    means = {k: all_reduce_sum(v.detach().reshape(1).clone(), info).item() / (n_acc * info.world_size)
                             for k, v in acc.items()}
                    ips = n_acc * batch_size * info.world_size / max(dt, 1e-9)
                    if info.is_main:
                        log.write(iteration=iteration, stage=stage, kind="train", lr=lr, images_per_s=ips,
                                  elapsed_s=elapsed(), **means)
                        bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}")
                    acc, n_acc, t_log = {}, 0, time.perf_counter()

                if val_ds is not None and (iteration % eng["val_every"] == 0 or iteration == end):
                    last_val = validate(model, val_ds, info, amp)
                    if info.is_main:
                        log.write(iteration=iteration, stage=stage, kind="val", elapsed_s=elapsed(), **last_val)
                        bar.write(f"iteration {iteration}: val PSNR {last_val['psnr']:.2f} dB "
                                  f"(input {last_val['input_psnr']:.2f}), SSIM {last_val['ssim']:.4f}")
                    t_log = time.perf_counter()

                stopping = stop_after is not None and iteration >= int(stop_after)
                if iteration % eng["ckpt_every"] == 0 or iteration == end or stopping:
                    trainer = {"iteration": iteration, "stage": stage, "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "identity": identity, "elapsed_s": elapsed(),
                               "world_size": info.world_size, "model": cfg["model"]["name"]}
                    save_checkpoint(state_dir, iteration, model, trainer, info, int(eng["keep_checkpoints"]))
                if stopping:
                    return {"iteration": iteration, "stopped": True, "elapsed_s": elapsed(), "model": model,
                            **last_val}
        finally:
            bar.close()
            del batches, loader

    if info.is_main:
        stages = [p[2] - p[1] for p in plan]
        write_run_outputs(out, model, cfg, {
            "iterations": total, "stages": stages,
            # inference uses exactly what was trained: a stage-2 block that never trained is bypassed
            "trained_stages": [st for (st, _, _), n in zip(plan, stages) if n > 0],
            "precision": "bfloat16 autocast (float32 weights and loss)" if amp else "float32"})
    barrier(info)
    return {"iteration": iteration, "stopped": False, "elapsed_s": elapsed(), "model": model, **last_val}
