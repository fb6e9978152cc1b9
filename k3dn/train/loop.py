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
import logging
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from k3dn.data.datasets import DPEvalDataset, DPTrainDataset, InfiniteDistributedSampler, collate, worker_count
from k3dn.losses import K3DNLoss
from k3dn.models.blocks import to_channels_last
from k3dn.train.checkpointing import latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from k3dn.train.config import training_identity
from k3dn.train.distributed import DistInfo, all_reduce_max, all_reduce_sum, barrier, cleanup, init_distributed
from k3dn.train.schedule import WarmupCosineRestarts

log = logging.getLogger(__name__)

LOG_COLUMNS = [
    "iteration",
    "stage",
    "kind",
    "lr",
    "loss",
    "charbonnier",
    "edge",
    "frequency",
    "reblur",
    "psnr",
    "ssim",
    "input_psnr",
    "input_ssim",
    "images_per_s",
    "elapsed_s",
]
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
        sums += torch.stack(
            [
                m["psnr"][0],
                m["ssim"][0],
                m_in["psnr"][0],
                m_in["ssim"][0],
                torch.ones((), dtype=torch.float64, device=info.device),
            ]
        )
    all_reduce_sum(sums, info)
    model.train(was_training)
    n = max(sums[4].item(), 1.0)
    return {
        "psnr": sums[0].item() / n,
        "ssim": sums[1].item() / n,
        "input_psnr": sums[2].item() / n,
        "input_ssim": sums[3].item() / n,
    }


def write_run_outputs(out: Path, model, cfg: dict, extra: dict) -> None:
    from k3dn.checkpoint import save_weights
    from k3dn.provenance import config_hash, git_commit

    save_weights(model, out / "model.safetensors", metadata={"model": cfg["model"]["name"]})
    spec = {
        "model": cfg["model"]["name"],
        "overrides": cfg["model"]["overrides"],
        "config_hash": config_hash(training_identity(cfg)),
        "git_commit": git_commit(),
        **extra,
    }
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


@dataclass
class _Run:
    """What every stage and step of one run shares; built once by :func:`_build_run`."""

    cfg: dict
    out: Path
    info: DistInfo
    identity: str  # the config hash a checkpoint must carry to be resumed into this run
    model: torch.nn.Module
    two_stage: bool
    plan: list[tuple[int, int, int]]
    train_ds: DPTrainDataset
    val_ds: DPEvalDataset | None
    criterion: K3DNLoss
    amp: bool
    channels_last: bool
    log: CsvLog | None = None  # main rank only
    elapsed0: float = 0.0  # wall time spent before the checkpoint this run resumed from
    t_start: float = 0.0
    last_val: dict = field(default_factory=dict)

    @property
    def eng(self) -> dict:
        return self.cfg["engine"]

    @property
    def state_dir(self) -> Path:
        return self.out / "state"

    @property
    def batch_size(self) -> int:
        return int(self.cfg["data"]["batch_size"])

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t_start

    def summary(self, iteration: int, stopped: bool) -> dict:
        return {
            "iteration": iteration,
            "stopped": stopped,
            "elapsed_s": self.elapsed(),
            "model": self.model,
            **self.last_val,
        }


@dataclass
class _Stage:
    """One stage's optimisation state. ``fwd`` is the model as called: DDP-wrapped and/or compiled."""

    stage: int
    first: int  # global iteration the stage starts at
    end: int
    fwd: torch.nn.Module
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    sched: WarmupCosineRestarts
    autocast: object  # bf16 autocast on CUDA with engine.amp, else a no-op context


class _TrainMeter:
    """Sums of the loss parts since the last ``train`` log row, and the clock its images/s is measured from."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0
        self.restart_clock()

    def restart_clock(self) -> None:
        self.t0 = time.perf_counter()

    def add(self, parts: dict) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1


def _train(cfg: dict, out: Path, resume: str, info: DistInfo) -> dict:
    """The run top-down: build it, resume it, then per stage its steps (each followed by the log row, validation
    and checkpoint due after it), and at the end the run folder's ``model.*`` files."""
    from k3dn.provenance import config_hash

    identity = config_hash(training_identity(cfg))
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(info)
    run = _build_run(cfg, out, info, identity)
    ckpt, iteration = _resume(run, resume)
    _open_outputs(run, keep_log_until=iteration if ckpt is not None else None)
    run.model.to(info.device)
    if run.channels_last:
        to_channels_last(run.model)

    run.t_start = time.perf_counter()
    for stage, first, end in run.plan:
        if iteration >= end:
            continue  # finished before the checkpoint this run resumed from
        st = _build_stage(run, stage, first, end, iteration, ckpt)
        iteration, stopped = _run_stage(run, st, iteration)
        if stopped:
            return run.summary(iteration, stopped=True)

    if info.is_main:
        _write_final_outputs(run)
        if not run.eng["keep_state"]:
            shutil.rmtree(run.state_dir, ignore_errors=True)  # only after model.safetensors is complete
    barrier(info)
    return run.summary(iteration, stopped=False)


def _build_run(cfg: dict, out: Path, info: DistInfo, identity: str) -> _Run:
    """Seed, then the model (its initial weights come from the seed), the stage plan, the data sets and the loss."""
    from k3dn.registry import create_model

    eng, data = cfg["engine"], cfg["data"]
    cuda = info.device.type == "cuda"
    _seed_all(int(eng["seed"]))
    model = create_model(cfg["model"]["name"], **cfg["model"]["overrides"])
    two_stage = callable(getattr(model, "set_stage", None))
    plan = _stage_plan(cfg, two_stage)
    if not data["train"]:
        raise TrainingError("data.train is not set (a manifest CSV of the training split)")
    train_ds = DPTrainDataset(
        data["train"],
        data["crop"],
        getattr(model, "size_multiple", (1, 1)),
        data["hflip"],
        data["vflip"],
        data["cache"],
        data["crop_fit"],
        getattr(model, "min_size", (1, 1)),
    )
    val_ds = DPEvalDataset(data["val"], data["val_crop"], data["val_max_images"]) if data["val"] else None
    criterion = K3DNLoss(**cfg["loss"])
    return _Run(
        cfg=cfg,
        out=out,
        info=info,
        identity=identity,
        model=model,
        two_stage=two_stage,
        plan=plan,
        train_ds=train_ds,
        val_ds=val_ds,
        criterion=criterion,
        amp=bool(eng["amp"]) and cuda,
        channels_last=bool(eng["channels_last"]) and cuda,
    )


def _resume(run: _Run, resume: str) -> tuple[dict | None, int]:
    """Per ``resume`` (auto/require/never), load the latest checkpoint: weights into ``run.model``, the RNG states,
    the elapsed time. Returns it (None when starting afresh) and the iteration to go on from; :func:`_build_stage`
    takes the optimizer and schedule state from it."""
    info, state_dir = run.info, run.state_dir
    ckpt_dir = latest_checkpoint(state_dir) if resume != "never" else None
    if resume == "require" and ckpt_dir is None:
        raise TrainingError(f"{state_dir}: --resume given but there is no checkpoint to resume from")
    if ckpt_dir is None:
        return None, 0
    ckpt = load_checkpoint(ckpt_dir, run.model, info.rank)
    if ckpt["identity"] != run.identity:
        raise TrainingError(
            f"{ckpt_dir}: was trained under a different config (identity {ckpt['identity']}, "
            f"now {run.identity}); use a new --out folder, or delete {state_dir} to start over"
        )
    iteration, run.elapsed0 = int(ckpt["iteration"]), float(ckpt["elapsed_s"])
    if ckpt["world_size"] != info.world_size and info.is_main:
        log.warning(
            "resuming a %d-process run with %d processes; the data order changes from here on",
            ckpt["world_size"],
            info.world_size,
        )
    if ckpt["rng"] is not None:
        restore_rng(ckpt["rng"])
    return ckpt, iteration


def _open_outputs(run: _Run, keep_log_until: int | None) -> None:
    """Main rank: ``log.csv`` (cut back to the resumed iteration) and the run's ``config.yaml``."""
    import yaml

    if not run.info.is_main:
        return
    run.log = CsvLog(run.out / "log.csv", keep_until=keep_log_until)
    tmp = run.out / "config.yaml.tmp"
    tmp.write_text(yaml.safe_dump(run.cfg, sort_keys=False))
    os.replace(tmp, run.out / "config.yaml")


def _build_stage(run: _Run, stage: int, first: int, end: int, iteration: int, ckpt: dict | None) -> _Stage:
    """Enter ``stage`` at global ``iteration``: the model switched to it, a fresh AdamW over the parameters it
    trains with a fresh schedule (or their saved state when the checkpoint is inside this stage), and the
    forward as called (DDP, torch.compile)."""
    model, cfg, info, eng = run.model, run.cfg, run.info, run.eng
    if run.two_stage:
        model.set_stage(stage)
    model.train()  # a two-stage model's train() keeps the modules the stage freezes in eval mode
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError(f"{cfg['model']['name']}: stage {stage} leaves no parameter to train")
    opt = torch.optim.AdamW(
        params, lr=cfg["optim"]["lr"], betas=tuple(cfg["optim"]["betas"]), weight_decay=cfg["optim"]["weight_decay"]
    )
    sc = cfg["schedule"]
    sched = WarmupCosineRestarts(
        opt, cfg["optim"]["lr"], sc["min_lr"], sc["cycle_steps"], sc["warmup_steps"], step=iteration - first
    )
    if ckpt is not None and int(ckpt["stage"]) == stage and first < int(ckpt["iteration"]) < end:
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
    fwd = model
    if info.distributed:
        fwd = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[info.local_rank] if info.device.type == "cuda" else None,
            find_unused_parameters=bool(eng["find_unused_parameters"]),
        )
    if eng["compile"]:
        fwd = torch.compile(fwd)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if run.amp else nullcontext()
    return _Stage(stage, first, end, fwd, params, opt, sched, autocast)


def _loader(run: _Run, iteration: int) -> DataLoader:
    """Training batches from global ``iteration`` on (the sampler's order is a function of the seed and position)."""
    data = run.cfg["data"]
    sampler = InfiniteDistributedSampler(
        len(run.train_ds), int(run.eng["seed"]), run.info.rank, run.info.world_size, start=iteration * run.batch_size
    )
    workers = worker_count(data["workers"])
    return DataLoader(
        run.train_ds,
        batch_size=run.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=run.info.device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )


def _run_stage(run: _Run, st: _Stage, iteration: int) -> tuple[int, bool]:
    """The steps of one stage from ``iteration``, each followed by its due log row, validation and checkpoint.
    Returns the iteration reached and whether ``engine.stop_after`` stopped the run there."""
    from tqdm import tqdm

    eng = run.eng
    loader = _loader(run, iteration)
    batches = iter(loader)
    bar = tqdm(
        total=st.end - st.first,
        initial=iteration - st.first,
        desc=f"stage {st.stage}/{len(run.plan)}",
        disable=not (run.info.is_main and eng["progress"]),
        dynamic_ncols=True,
    )
    meter = _TrainMeter()
    try:
        while iteration < st.end:
            lr, parts = _step(run, st, next(batches), iteration)
            iteration += 1
            meter.add(parts)
            bar.update(1)
            if iteration % eng["log_every"] == 0 or iteration == st.end:
                _log_train(run, st, meter, iteration, lr, bar)
            if _validate_and_save(run, st, iteration, meter, bar):
                return iteration, True
        return iteration, False
    finally:
        bar.close()
        del batches, loader


def _step(run: _Run, st: _Stage, batch: dict, iteration: int) -> tuple[float, dict]:
    """One optimisation step (the ``iteration + 1``-th); returns the lr it used and the loss parts.

    The forward runs under the stage's autocast, the loss in float32. A non-finite loss on any rank raises
    :class:`NonFiniteLoss` before the optimizer step, so the weights and the last checkpoint stay good.
    """
    batch = _to_device(batch, run.info.device, run.channels_last)
    lr = st.sched.get_lr()
    with st.autocast:
        outputs = st.fwd(batch)
    loss, parts = run.criterion(outputs, batch, reblur=(st.stage == 1))
    bad = all_reduce_max((~torch.isfinite(loss)).float().reshape(1), run.info)
    if bad.item():
        good = latest_checkpoint(run.state_dir)
        raise NonFiniteLoss(
            f"non-finite training loss at iteration {iteration + 1} (stage {st.stage}; this rank: "
            + ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
            + "). Stopped before the optimizer step. Last good checkpoint: "
            + (f"{good}" if good else "none (no checkpoint written yet)")
            + ". Lower optim.lr, check the data, or resume from it with a different seed."
        )
    st.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(st.params, run.cfg["optim"]["grad_clip"])
    st.opt.step()
    st.sched.step()
    return lr, parts


def _log_train(run: _Run, st: _Stage, meter: _TrainMeter, iteration: int, lr: float, bar) -> None:
    """A ``train`` row: the loss parts averaged over the steps since the last row and over ranks, and images/s."""
    info = run.info
    dt = time.perf_counter() - meter.t0
    means = {
        k: all_reduce_sum(v.detach().reshape(1).clone(), info).item() / (meter.n * info.world_size)
        for k, v in meter.sums.items()
    }
    ips = meter.n * run.batch_size * info.world_size / max(dt, 1e-9)
    if info.is_main:
        run.log.write(
            iteration=iteration, stage=st.stage, kind="train", lr=lr, images_per_s=ips, elapsed_s=run.elapsed(), **means
        )
        bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}")
    meter.reset()


def _validate_and_save(run: _Run, st: _Stage, iteration: int, meter: _TrainMeter, bar) -> bool:
    """After a step: validate where due (every ``val_every``, at the stage's end) and checkpoint where due (every
    ``ckpt_every``, at the stage's end, when ``engine.stop_after`` is reached). Returns whether the run stops."""
    eng, info = run.eng, run.info
    if run.val_ds is not None and (iteration % eng["val_every"] == 0 or iteration == st.end):
        run.last_val = validate(run.model, run.val_ds, info, run.amp)
        if info.is_main:
            run.log.write(iteration=iteration, stage=st.stage, kind="val", elapsed_s=run.elapsed(), **run.last_val)
            bar.write(
                f"iteration {iteration}: val PSNR {run.last_val['psnr']:.2f} dB "
                f"(input {run.last_val['input_psnr']:.2f}), SSIM {run.last_val['ssim']:.4f}"
            )
        meter.restart_clock()  # images/s counts training time only

    stop_after = eng["stop_after"]
    stopping = stop_after is not None and iteration >= int(stop_after)
    if iteration % eng["ckpt_every"] == 0 or iteration == st.end or stopping:
        trainer = {
            "iteration": iteration,
            "stage": st.stage,
            "optimizer": st.opt.state_dict(),
            "scheduler": st.sched.state_dict(),
            "identity": run.identity,
            "elapsed_s": run.elapsed(),
            "world_size": info.world_size,
            "model": run.cfg["model"]["name"],
        }
        save_checkpoint(run.state_dir, iteration, run.model, trainer, info, int(eng["keep_checkpoints"]))
    return stopping


def _write_final_outputs(run: _Run) -> None:
    """``model.safetensors`` and ``model.json`` of a finished run (main rank)."""
    plan = run.plan
    stages = [p[2] - p[1] for p in plan]
    write_run_outputs(
        run.out,
        run.model,
        run.cfg,
        {
            "iterations": plan[-1][2],
            "stages": stages,
            # inference uses exactly what was trained: a stage-2 block that never trained is bypassed
            "trained_stages": [st for (st, _, _), n in zip(plan, stages, strict=True) if n > 0],
            "precision": "bfloat16 autocast (float32 weights and loss)" if run.amp else "float32",
        },
    )
