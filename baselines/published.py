"""The published-checkpoint catalogue (``baselines/checkpoints.yaml``) and its verified fetch.

Each entry names the registered model that loads it, the manifest of its tensors, where it is published
(sources in the same form as the data-set catalogue, so downloads share one verified, resumable path), the
file name (and, for archives, the member to take out), its container, licence and citation.

User catalogues. Weights published outside this suite (a plugin's model, see :mod:`k3dn.registry`) enter
through catalogue files of the same schema, listed in ``$K3DN_CHECKPOINTS`` (``os.pathsep``-separated, relative
to the working directory) or in the workflow config's ``checkpoint_catalogues`` (:mod:`k3dn.workflow` adds them
to ``$K3DN_CHECKPOINTS`` for the jobs it starts). They are merged over the package's catalogue; a name defined
twice is an error naming both files. A ``manifest`` is the name of one in ``baselines/weight_manifests/`` or,
where it contains a ``/`` or ends in ``.json``, a tensor manifest file relative to the catalogue file.
"""

from __future__ import annotations

import copy
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


#: User catalogues merged over the package's (see the module docstring).
USER_ENV = "K3DN_CHECKPOINTS"


def user_catalogues() -> list[Path]:
    """The user catalogues of ``$K3DN_CHECKPOINTS``, absolute, in order, each once."""
    out: list[Path] = []
    for item in os.environ.get(USER_ENV, "").split(os.pathsep):
        p = Path(item.strip()).expanduser().resolve() if item.strip() else None
        if p is not None and p not in out:
            out.append(p)
    return out


def use_user_catalogues(paths) -> list[Path]:
    """Add ``paths`` to ``$K3DN_CHECKPOINTS`` of this process, so the commands it starts read them too (after
    checking that they load); returns every user catalogue now in use."""
    paths = [Path(p).expanduser().resolve() for p in paths]
    for p in paths:
        _load_file(p)
    merged = user_catalogues()
    merged += [p for p in dict.fromkeys(paths) if p not in merged]
    if merged:
        os.environ[USER_ENV] = os.pathsep.join(str(p) for p in merged)
    return merged


def catalogue_files(path: str | os.PathLike | None = None) -> list[Path]:
    """The files a catalogue is read from: ``path`` alone (a derived registry is the whole catalogue), else the
    package's and then the user catalogues."""
    return [Path(path)] if path else [DEFAULT, *user_catalogues()]


def load_checkpoints(path: str | os.PathLike | None = None) -> dict[str, Checkpoint]:
    return {name: ck for name, (ck, _raw, _origin) in _merged(tuple(catalogue_files(path))).items()}


def checkpoint_entries(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The catalogue's entries as mappings (the YAML's, with every manifest file made absolute), for code that
    must not import torch (the workflow's plan) and for the miniature's stand-ins."""
    return {name: copy.deepcopy(raw) for name, (_ck, raw, _origin) in _merged(tuple(catalogue_files(path))).items()}


def add_catalogues(entries: dict[str, dict], paths) -> dict[str, dict]:
    """``entries`` (:func:`checkpoint_entries`) with those of the catalogue files ``paths`` added. An entry
    already there unchanged (the same file read twice) is kept once; another entry under a taken name is an error
    naming both files."""
    out = dict(entries)
    for p in paths:
        p = Path(p).expanduser().resolve()
        for name, (_ck, raw) in _load_file(p).items():
            if name in out and out[name] != raw:
                other = next((str(f) for f in catalogue_files() if name in _load_file(f)), "the catalogue given")
                raise CatalogError(f"{p}: checkpoints.{name}: already defined in {other}; rename one of them")
            out[name] = copy.deepcopy(raw)
    return out


def write_catalogue(out: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write the merged catalogue (:func:`checkpoint_entries`) to ``out`` as one file of the same schema, e.g.
    for the miniature to derive its registry from (atomic)."""
    import yaml

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# MERGED from {', '.join(str(f) for f in catalogue_files(path))} (baselines.published.write_catalogue)\n"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(header + yaml.safe_dump({"checkpoints": checkpoint_entries(path)}, sort_keys=False, width=120))
    os.replace(tmp, out)
    return out


def _merged(files: tuple[Path, ...]) -> dict[str, tuple[Checkpoint, dict, Path]]:
    out: dict[str, tuple[Checkpoint, dict, Path]] = {}
    for f in files:
        for name, (ck, raw) in _load_file(f).items():
            if name in out:
                raise CatalogError(f"{f}: checkpoints.{name}: already defined in {out[name][2]}; rename one of them")
            clash = next((n for n, (c, _raw, _origin) in out.items() if c.model == ck.model), None)
            if clash is not None:
                raise CatalogError(
                    f"{f}: checkpoints.{name}: model {ck.model!r} also loads checkpoints.{clash} of {out[clash][2]}; "
                    f"tell their weights apart with a tag (model: {ck.model.split('.')[0]}.<tag>)"
                )
            out[name] = (ck, raw, f)
    return out


def _load_file(path: Path) -> dict[str, tuple[Checkpoint, dict]]:
    path = Path(path)
    return _load(path.resolve(), path.stat().st_mtime_ns if path.is_file() else None)


@functools.lru_cache(maxsize=8)
def _load(path: Path, mtime) -> dict[str, tuple[Checkpoint, dict]]:
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
        files = _listed(d["file"])
        manifests = tuple(_manifest(path, where, m) for m in _listed(d["manifest"]))
        if len(files) != len(manifests) or (d.get("member") and len(files) > 1):
            raise CatalogError(f"{path}: {where}: one manifest per file, and 'member' only for a single file")
        ck = Checkpoint(
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
        out[name] = (ck, dict(d, manifest=list(manifests) if isinstance(d["manifest"], list) else manifests[0]))
    models = [ck.model for ck, _ in out.values()]
    twice = sorted({m for m in models if models.count(m) > 1})
    if twice:
        raise CatalogError(
            f"{path}: model(s) {twice} name several checkpoints; tell their weights apart with a "
            "tag (model: ifan_single.16bit)"
        )
    return out


def _manifest(path: Path, where: str, m) -> str:
    """A manifest name of ``baselines/weight_manifests/``, or a manifest file (relative to the catalogue ``path``)
    as its absolute path without ``.json``: ``weight_manifests.load_manifest`` reads ``MANIFEST_DIR / f"{name}.json"``
    and an absolute name replaces that folder, so the file is read wherever a manifest name is."""
    if not isinstance(m, str) or not m.strip():
        raise CatalogError(f"{path}: {where}.manifest: expected a manifest name or a .json file, got {m!r}")
    if "/" not in m and not m.endswith(".json"):
        return m
    file = (path.parent / m).resolve()
    if not file.name.endswith(".json"):
        file = file.with_name(file.name + ".json")
    if not file.is_file():
        raise CatalogError(f"{path}: {where}.manifest: {file}: no such tensor manifest (relative to the catalogue)")
    return str(file.with_name(file.name[: -len(".json")]))


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
