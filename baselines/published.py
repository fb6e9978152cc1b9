"""The published-checkpoint catalogue (``baselines/checkpoints.yaml``) and its verified fetch.

Each entry names the registered model that loads it, the manifest of its tensors, where it is published
(sources in the same form as the data-set catalogue, so downloads share one verified, resumable path), the
file name (and, for archives, the member to take out), its container, licence and citation.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from k3dn.data.catalog import CatalogError, Dataset, Source, _parse_source

DEFAULT = Path(__file__).resolve().parent / "checkpoints.yaml"
_KEYS = {
    "model",
    "manifest",
    "params",
    "file",
    "member",
    "container",
    "licence",
    "citation",
    "source_repo",
    "trained_on",
    "input_protocol",
    "notes",
    "sources",
}
_REQUIRED = {"model", "manifest", "params", "file", "container", "licence", "citation", "sources"}


@dataclass(frozen=True)
class Checkpoint:
    """One published checkpoint; a method published as several files (DDDNet) lists them in ``files``
    (with one manifest each) and is loaded from their folder."""

    name: str
    model: str
    manifests: tuple[str, ...]
    params: int
    files: tuple[str, ...]
    member: str | None
    container: str
    licence: str
    citation: str
    input_protocol: str | None
    sources: tuple[Source, ...]

    def weights_path(self, dest) -> Path:
        return Path(dest) / self.files[0] if len(self.files) == 1 else Path(dest)

    def as_dataset(self) -> Dataset:
        """The entry seen as a downloadable item of the data-set machinery (same fetch and checks)."""
        return Dataset(
            name=self.name,
            title=", ".join(self.files),
            kind="download",
            adapter=None,
            licence=self.licence,
            citation=self.citation,
            sources=self.sources,
        )


def load_checkpoints(path: str | os.PathLike | None = None) -> dict[str, Checkpoint]:
    path = Path(path) if path else DEFAULT
    return dict(_load(path.resolve(), path.stat().st_mtime_ns if path.is_file() else None))


@functools.lru_cache(maxsize=8)
def _load(path: Path, mtime) -> dict[str, Checkpoint]:
    if not path.is_file():
        raise CatalogError(f"{path}: checkpoint catalogue not found")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("checkpoints"), dict):
        raise CatalogError(f"{path}: expected a top-level 'checkpoints' mapping")
    out = {}
    for name, d in raw["checkpoints"].items():
        where = f"checkpoints.{name}"
        if not isinstance(d, dict):
            raise CatalogError(f"{path}: {where}: expected a mapping")
        unknown, missing = sorted(set(d) - _KEYS), sorted(_REQUIRED - set(d))
        if unknown or missing:
            raise CatalogError(f"{path}: {where}: unknown key(s) {unknown}, missing key(s) {missing}")
        sources = tuple(_parse_source(path, f"{where}.sources[{i}]", s) for i, s in enumerate(d["sources"]))
        files, manifests = _listed(d["file"]), _listed(d["manifest"])
        if len(files) != len(manifests) or (d.get("member") and len(files) > 1):
            raise CatalogError(f"{path}: {where}: one manifest per file, and 'member' only for a single file")
        out[name] = Checkpoint(
            name=name,
            model=d["model"],
            manifests=manifests,
            params=int(d["params"]),
            files=files,
            member=d.get("member"),
            container=d["container"],
            licence=d["licence"],
            citation=d["citation"],
            input_protocol=d.get("input_protocol"),
            sources=sources,
        )
    twice = sorted({ck.model for ck in out.values() if [c.model for c in out.values()].count(ck.model) > 1})
    if twice:
        raise CatalogError(
            f"{path}: model(s) {twice} name several checkpoints; tell their weights apart with a "
            "tag (model: ifan_single.16bit)"
        )
    return out


def _listed(v) -> tuple[str, ...]:
    return tuple(v) if isinstance(v, list) else (v,)


def get_checkpoint(name: str, path=None) -> Checkpoint:
    reg = load_checkpoints(path)
    if name not in reg:
        raise CatalogError(f"unknown checkpoint {name!r}; registered: {sorted(reg)}")
    return reg[name]


def checkpoint_for_model(model_name: str, path=None) -> Checkpoint | None:
    """The published checkpoint whose ``model`` is ``model_name`` (tag included: ``ifan_single.16bit``), or None
    (K3DN, Wiener, a retrained network)."""
    return next((ck for ck in load_checkpoints(path).values() if ck.model == model_name), None)


def manifest_for_model(model_name: str) -> dict:
    """The tensor manifest of the one published file that ``model_name`` loads (the Keras and TensorLayer
    filters match tensors by the manifest's order)."""
    from baselines.weight_manifests import load_manifest

    ck = checkpoint_for_model(model_name)
    if ck is None or len(ck.manifests) != 1:
        raise CatalogError(f"model {model_name!r}: no single published checkpoint names it in {DEFAULT}")
    return load_manifest(ck.manifests[0])


def fetch_checkpoint(name: str, dest: str | os.PathLike, progress: bool = True, registry=None) -> Path:
    """Download (or verify what is in place), unpack, and put the weights at ``dest/<file>``; returns the
    path to load (the file, or ``dest`` itself for a multi-file checkpoint)."""
    from k3dn.data.downloads import fetch_dataset

    ck = get_checkpoint(name, registry)
    dest = Path(dest)
    final = ck.weights_path(dest)
    rep = fetch_dataset(ck.as_dataset(), dest, progress=progress)
    if ck.member:
        found = [u / ck.member for u in rep.unpacked if (u / ck.member).is_file()]
        if not found:
            raise FileNotFoundError(f"{name}: {ck.member} not found in the unpacked archive(s) {rep.unpacked}")
        tmp = final.with_name(final.name + ".tmp")
        shutil.copyfile(found[0], tmp)
        os.replace(tmp, final)
    missing = [f for f in ck.files if not (dest / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: expected {missing} in {dest} after the download")
    return final


def verify_checkpoint(name: str, weights: str | os.PathLike, registry=None) -> int:
    """Load ``weights`` strictly into the entry's model; return its parameter count (checked against the entry)."""
    from k3dn.checkpoint import load_published
    from k3dn.registry import create_model

    ck = get_checkpoint(name, registry)
    model = load_published(create_model(ck.model), weights)
    n = sum(p.numel() for p in model.parameters())
    if n != ck.params:
        raise ValueError(f"{name}: {n} parameters loaded, the catalogue says {ck.params}")
    return n
