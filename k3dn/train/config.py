"""Training configuration: YAML files (``config/train/*.yaml``) over the defaults below, plus ``--set`` overrides.

A config file may name a ``base:`` file (relative to itself) whose values it overrides; nesting is merged key
by key. Every key must exist in :data:`DEFAULTS` (a typo is an error naming the file and the key, never a
silently ignored setting). Relative data paths are taken relative to the working directory (the repository
root, where Snakemake runs).

The defaults are the supplement's recipe; see ``config/train/recipe.yaml`` for the reasoning behind the
values the paper leaves open (weight decay, batch, crop, stage split).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from k3dn.errors import UserError

DEFAULTS: dict = {
    "model": {"name": "k3dn_tiny", "overrides": {}},
    "data": {
        "train": None,  # manifest CSV of the training split
        "val": None,  # manifest CSV of held-out images (optional)
        "crop": [576, 448],  # training crop H, W; must be a multiple of the model's size_multiple
        "crop_fit": "exact",  # exact: a crop that is not a multiple is an error; up: round it up to one
        "batch_size": 4,  # per process (per GPU); the global batch is this x world size
        "workers": None,  # DataLoader workers per process; None = min(8, cpus - 1)
        "hflip": 0.5,  # probability; swaps L and R (DP physics, see k3dn.data.datasets)
        "vflip": 0.5,
        "cache": False,  # keep decoded training images in memory (small sets only)
        "val_crop": None,  # None = full images; [H, W] = centre crops
        "val_max_images": None,  # None = all rows of data.val
    },
    "optim": {"lr": 3.0e-4, "betas": [0.9, 0.999], "weight_decay": 1.0e-6, "grad_clip": 0.01},
    "schedule": {"cycle_steps": 200, "warmup_steps": 100, "min_lr": 6.0e-5},
    "loss": {"charbonnier": 1.0, "edge": 0.05, "frequency": 0.01, "reblur": 0.1, "scales": 3, "eps": 1.0e-3},
    "stages": [9800, 10200],  # iterations of stage 1 (all but SRP) and stage 2 (SRP only)
    "engine": {
        "device": "auto",  # auto | cpu | cuda
        "seed": 0,
        "amp": True,  # bf16 autocast on CUDA (ignored on CPU)
        "channels_last": True,  # on CUDA
        "compile": False,  # torch.compile the model
        "find_unused_parameters": True,  # DDP: stage 1 bypasses SRP, whose parameters then get no gradient
        "log_every": 50,
        "val_every": 1000,
        "ckpt_every": 500,
        "keep_checkpoints": 2,
        "keep_state": True,  # keep state/ once the run has finished (to train on from it); model.safetensors stays
        "stop_after": None,  # stop (with a checkpoint) after this global iteration; for time-limited jobs
        "progress": True,
    },
}

# Changing these does not change what is trained, so a run may resume under different values.
RESUME_NEUTRAL = ("engine", "data.workers", "data.val", "data.val_crop", "data.val_max_images")


class ConfigError(UserError, ValueError):
    """A training config that cannot be used; the message names the file and the key."""


def _merge(base: dict, over: dict, where: str, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = f"{prefix}{k}"
        if k not in base:
            raise ConfigError(f"{where}: unknown config key {key!r}; known: {sorted(base)}")
        if k == "overrides":  # factory kwargs: free-form, replaced as a whole (model.overrides.KEY=V adds one)
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: {key!r} must be a mapping, got {v!r}")
            out[k] = copy.deepcopy(v)
        elif isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{where}: {key!r} must be a mapping, got {v!r}")
            out[k] = _merge(base[k], v, where, key + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping")
    return data


def load_config(path: str | os.PathLike | None = None, sets: list[str] | None = None) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        cfg = _apply_file(cfg, Path(path), seen=())
    cfg = apply_sets(cfg, sets or [])
    validate(cfg, str(path or "<defaults>"))
    return cfg


def _apply_file(cfg: dict, path: Path, seen: tuple) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'base:' chain")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is not None:
        cfg = _apply_file(cfg, (path.parent / base), seen + (path,))
    return _merge(cfg, data, str(path))


def parse_value(raw: str):
    """YAML, except that ``1e-4`` is a number (YAML 1.1 reads exponents without a dot as strings)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str) and not raw.strip().startswith(("'", '"')):  # a quoted value stays a string
        try:
            return float(value)
        except ValueError:
            pass
    return value


def apply_sets(cfg: dict, sets: list[str]) -> dict:
    """``key.sub=value`` overrides; values are parsed as YAML (``stages=[10,10]``, ``optim.lr=1e-4``)."""
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        value = parse_value(raw)
        parts = key.strip().split(".")
        if parts[:2] == ["model", "overrides"] and len(parts) == 3:
            cfg = copy.deepcopy(cfg)
            cfg["model"]["overrides"][parts[2]] = value
            continue
        node: dict = {}
        cur = node
        for p in parts[:-1]:
            cur[p] = {}
            cur = cur[p]
        cur[parts[-1]] = value
        cfg = _merge(cfg, node, f"--set {item}")
    return cfg


def validate(cfg: dict, where: str) -> None:
    st = cfg["stages"]
    if isinstance(st, int):
        cfg["stages"] = st = [st]
    if not isinstance(st, list) or not 1 <= len(st) <= 2 or any(not isinstance(s, int) or s < 0 for s in st):
        raise ConfigError(f"{where}: stages must be a list of 1 or 2 iteration counts, got {st!r}")
    if sum(st) <= 0:
        raise ConfigError(f"{where}: stages {st} train for zero iterations")
    crop = cfg["data"]["crop"]
    if not (isinstance(crop, list) and len(crop) == 2 and all(isinstance(c, int) and c > 0 for c in crop)):
        raise ConfigError(f"{where}: data.crop must be [H, W] positive integers, got {crop!r}")
    if cfg["data"]["crop_fit"] not in ("exact", "up"):
        raise ConfigError(f"{where}: data.crop_fit must be exact or up, got {cfg['data']['crop_fit']!r}")
    if cfg["data"]["batch_size"] < 1:
        raise ConfigError(f"{where}: data.batch_size must be >= 1")
    sc = cfg["schedule"]
    if not 0 <= sc["warmup_steps"] < sc["cycle_steps"]:
        raise ConfigError(f"{where}: need 0 <= schedule.warmup_steps < schedule.cycle_steps")
    if cfg["engine"]["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{where}: engine.device must be auto, cpu or cuda")


def training_identity(cfg: dict) -> dict:
    """The part of ``cfg`` that determines the trained weights (resume refuses to mix two of these)."""
    out = copy.deepcopy(cfg)
    for key in RESUME_NEUTRAL:
        node, *rest = key.split(".")
        if rest:
            out[node].pop(rest[0], None)
        else:
            out.pop(node, None)
    out["engine_seed"] = cfg["engine"]["seed"]
    return out
