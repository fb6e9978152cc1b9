"""Provenance of every number the suite writes: code version, config hash, data checksum, device."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
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


#: Packages whose modules :func:`source_closure` follows, besides a root's own; anything else (torch, numpy) is
#: pinned by its version.
FIRST_PARTY = ("k3dn", "baselines")


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _imports(name: str, path: Path, top_level_only: bool) -> set[str]:
    """Modules ``name`` imports (``from a.b import c`` names a.b.c too where c is a submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return {m for m in found if m}


def source_closure(roots=(), path_roots=()) -> dict[str, Path]:
    """``{module: file}`` of the code behind ``roots`` and ``path_roots`` (module names): a root with every import
    it makes, a path root (shared plumbing, e.g. image I/O) and every module reached with their top-level imports
    only, since their function-local imports are command plumbing (downloads, CLI), not the computation. Only
    modules of :data:`FIRST_PARTY` and of the roots' own packages are followed. The result does not depend on the
    order of the walk: a module reached both ways is expanded with every import it makes."""
    packages = set(FIRST_PARTY) | {r.split(".", 1)[0] for r in roots}
    files: dict[str, Path] = {}
    expanded: dict[str, bool] = {}  # module -> whether its function-local imports were followed
    todo = [(m, False) for m in roots] + [(m, True) for m in path_roots]
    while todo:
        name, top_only = todo.pop()
        if name in expanded and (expanded[name] or top_only):
            continue
        path = files.get(name) or (_module_file(name) if name.split(".", 1)[0] in packages else None)
        if path is None:
            continue
        files[name], expanded[name] = path, not top_only
        todo += [(m, True) for m in _imports(name, path, top_only)]
    return dict(sorted(files.items()))


def code_identity(roots=(), path_roots=(), data_files=None) -> dict:
    """``{"code_sha256", "code_modules", "code_data"}``: one checksum of :func:`source_closure`'s files and of the
    ``data_files`` the code reads (``{label: path}``, e.g. a weight manifest), by module name or label and
    content (so a moved checkout keeps it; committed or not), and what it covers."""
    files = source_closure(roots, path_roots)
    data = dict(sorted((data_files or {}).items()))
    h = hashlib.sha256()
    for name, path in [*files.items(), *data.items()]:
        h.update(f"{name}\0{sha256_file(path)}\n".encode())
    return {"code_sha256": h.hexdigest(), "code_modules": list(files), "code_data": list(data)}


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
