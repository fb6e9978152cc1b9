"""Resume state under ``<out>/state/``: one folder per checkpoint, a ``latest`` pointer written last.

    state/ckpt_00009800/weights.safetensors   model weights (k3dn.checkpoint.save_weights)
    state/ckpt_00009800/trainer.pt            optimizer, scheduler, iteration, stage, config identity
    state/ckpt_00009800/rng_<rank>.pt         torch / numpy / python / CUDA generator states of each rank
    state/latest                              name of the newest complete folder

A folder is written as ``<name>.tmp`` and renamed when every rank has written its part; ``latest`` is then
replaced atomically. A crash at any point leaves the previous ``latest`` and its folder intact. The torch
files hold only tensors and plain Python values, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from k3dn.train.distributed import DistInfo, barrier


def _torch_save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def capture_rng() -> dict:
    np_state = np.random.get_state()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    v, internal, gauss = st["python"]
    random.setstate((v, tuple(internal), gauss))
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(
    state_dir: Path, iteration: int, model: torch.nn.Module, trainer: dict, info: DistInfo, keep: int = 2
) -> Path:
    """Collective: every rank must call it (each writes its RNG state)."""
    from k3dn.checkpoint import save_weights

    state_dir = Path(state_dir)
    name = f"ckpt_{iteration:08d}"
    final, tmp = state_dir / name, state_dir / (name + ".tmp")
    if info.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_weights(model, tmp / "weights.safetensors", metadata={"iteration": iteration})
        _torch_save_atomic(trainer, tmp / "trainer.pt")
    barrier(info)
    _torch_save_atomic(capture_rng(), tmp / f"rng_{info.rank}.pt")
    barrier(info)
    if info.is_main:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        ptr = state_dir / "latest"
        ptr_tmp = state_dir / "latest.tmp"
        ptr_tmp.write_text(name + "\n")
        os.replace(ptr_tmp, ptr)
        old = sorted(p for p in state_dir.glob("ckpt_*") if p.is_dir() and not p.name.endswith(".tmp"))
        for p in old[:-keep] if keep > 0 else []:
            if p.name != name:
                shutil.rmtree(p, ignore_errors=True)
    barrier(info)
    return final


def latest_checkpoint(state_dir: Path) -> Path | None:
    ptr = Path(state_dir) / "latest"
    if not ptr.is_file():
        return None
    folder = Path(state_dir) / ptr.read_text().strip()
    if not (folder / "weights.safetensors").is_file() or not (folder / "trainer.pt").is_file():
        raise RuntimeError(f"{ptr}: points to {folder}, which is incomplete; delete {state_dir} to start over")
    return folder


def load_checkpoint(folder: Path, model: torch.nn.Module, rank: int = 0) -> dict:
    """Load weights into ``model`` and return the trainer state (plus ``rng`` for this rank, if saved)."""
    from k3dn.checkpoint import load_weights

    load_weights(model, folder / "weights.safetensors")
    try:
        trainer = torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise RuntimeError(f"{folder / 'trainer.pt'}: cannot read trainer state ({e})") from e
    rng = folder / f"rng_{rank}.pt"
    trainer["rng"] = torch.load(rng, map_location="cpu", weights_only=True) if rng.is_file() else None
    return trainer
