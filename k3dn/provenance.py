"""Provenance of every number the suite writes: code version, config hash, data checksum, device."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """Commit of the checkout, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=_REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def config_hash(config) -> str:
    """Short sha256 of a JSON-serialisable config, independent of key order."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths) -> str:
    """One checksum for a set of files (e.g. every image a manifest names), order-independent."""
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def device_name(device=None) -> str:
    import torch

    if device is not None and torch.device(device).type == "cuda" or device is None and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device) if device is not None else None)
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()}"


def provenance(config=None, device=None, **extra) -> dict:
    """The provenance columns attached to every results row."""
    import torch

    row = {"git_commit": git_commit(), "torch": torch.__version__, "device": device_name(device)}
    if config is not None:
        row["config_hash"] = config_hash(config)
    row.update(extra)
    return row
