"""The data-set catalogue: ``k3dn/data/datasets.yaml`` loaded into typed records, validated with clear errors.

Every problem in the YAML raises :class:`CatalogError` naming the file, the entry (``datasets.dpdd.sources[1]
.files[0]``) and what is wrong, so a typo in a checksum or a method fails at load time, not halfway through
a 10 GB download.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from k3dn.data.adapters import ADAPTERS

DEFAULT_CATALOG = Path(__file__).resolve().parent / "datasets.yaml"

KINDS = ("download", "generated")
METHODS = ("http", "gdrive", "manual")
ROLES = ("official", "mirror")
#: Adapter names k3dn.data.layouts implements (from the plain table, so loading the catalogue imports no image code).
ADAPTER_NAMES = tuple(ADAPTERS)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to the download destination
    url: str | None = None  # http / manual
    id: str | None = None  # gdrive file id
    sha256: str | None = None  # None: not published, recorded on first download
    git_sha1: str | None = None  # a file pinned in a git repository: its blob id, a published checksum too
    size: int | None = None
    unpack: bool = False

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Source:
    name: str
    role: str
    method: str
    files: tuple[FileSpec, ...]
    layout: str | None = None
    optional: bool = False
    notes: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    kind: str
    adapter: str | None
    licence: str
    citation: str
    homepage: str | None = None
    notes: str = ""
    sources: tuple[Source, ...] = ()
    requires: tuple[str, ...] = ()
    generator: str | None = None
    extra: dict = field(default_factory=dict)

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise CatalogError(f"data set {self.name!r} has no source {name!r}; known: {[s.name for s in self.sources]}")


_DATASET_KEYS = {
    "title",
    "kind",
    "adapter",
    "licence",
    "citation",
    "homepage",
    "notes",
    "sources",
    "requires",
    "generator",
}
_SOURCE_KEYS = {"name", "role", "method", "files", "base_url", "layout", "optional", "notes"}
_FILE_KEYS = {"path", "url", "id", "sha256", "git_sha1", "size", "unpack"}


def _fail(origin, where: str, msg: str):
    raise CatalogError(f"{origin}: {where}: {msg}")


def _str(origin, where, d, key, required=True):
    v = d.get(key)
    if v is None:
        if required:
            _fail(origin, where, f"missing required key {key!r}")
        return None
    if not isinstance(v, str) or not v.strip():
        _fail(origin, where, f"{key!r} must be a non-empty string, got {v!r}")
    return v


def _check_keys(origin, where, d, allowed):
    if not isinstance(d, dict):
        _fail(origin, where, f"expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        _fail(origin, where, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _safe_relpath(origin, where, p: str) -> str:
    pp = PurePosixPath(p)
    if pp.is_absolute() or ".." in pp.parts or "\\" in p or not pp.parts:
        _fail(origin, where, f"path {p!r} must be relative, without '..' or backslashes")
    return str(pp)


def _parse_file(origin, where, d, method, base_url) -> FileSpec:
    _check_keys(origin, where, d, _FILE_KEYS)
    path = _safe_relpath(origin, where, _str(origin, where, d, "path"))
    sha = d.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
        _fail(origin, where, f"sha256 must be 64 lowercase hex digits or null, got {sha!r}")
    git_sha1 = d.get("git_sha1")
    if git_sha1 is not None and (not isinstance(git_sha1, str) or not _SHA1.match(git_sha1)):
        _fail(origin, where, f"git_sha1 must be 40 lowercase hex digits or null, got {git_sha1!r}")
    size = d.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        _fail(origin, where, f"size must be a non-negative integer, got {size!r}")
    url = _str(origin, where, d, "url", required=False)
    fid = _str(origin, where, d, "id", required=False)
    if method == "gdrive":
        if fid is None:
            _fail(origin, where, "a gdrive file needs an 'id'")
    elif url is None:
        if base_url is None:
            _fail(origin, where, f"a {method} file needs a 'url' (or the source a 'base_url')")
        url = base_url + path
    if url is not None and not re.match(r"^https?://", url):
        _fail(origin, where, f"url must start with http:// or https://, got {url!r}")
    unpack = d.get("unpack", False)
    if not isinstance(unpack, bool):
        _fail(origin, where, f"unpack must be true/false, got {unpack!r}")
    return FileSpec(path=path, url=url, id=fid, sha256=sha, git_sha1=git_sha1, size=size, unpack=unpack)


def _parse_source(origin, where, d) -> Source:
    _check_keys(origin, where, d, _SOURCE_KEYS)
    name = _str(origin, where, d, "name")
    role = _str(origin, where, d, "role")
    if role not in ROLES:
        _fail(origin, where, f"role must be one of {ROLES}, got {role!r}")
    method = _str(origin, where, d, "method")
    if method not in METHODS:
        _fail(origin, where, f"method must be one of {METHODS}, got {method!r}")
    base_url = _str(origin, where, d, "base_url", required=False)
    if base_url is not None and not base_url.endswith("/"):
        _fail(origin, where, f"base_url must end with '/', got {base_url!r}")
    files = d.get("files")
    if not isinstance(files, list) or not files:
        _fail(origin, where, "'files' must be a non-empty list")
    specs = tuple(_parse_file(origin, f"{where}.files[{i}]", f, method, base_url) for i, f in enumerate(files))
    paths = [f.path for f in specs]
    if len(set(paths)) != len(paths):
        _fail(origin, where, "duplicate file paths")
    optional = d.get("optional", False)
    if not isinstance(optional, bool):
        _fail(origin, where, f"optional must be true/false, got {optional!r}")
    return Source(
        name=name,
        role=role,
        method=method,
        files=specs,
        layout=d.get("layout"),
        optional=optional,
        notes=d.get("notes") or "",
    )


def _parse_dataset(origin, name, d) -> Dataset:
    where = f"datasets.{name}"
    _check_keys(origin, where, d, _DATASET_KEYS)
    kind = _str(origin, where, d, "kind")
    if kind not in KINDS:
        _fail(origin, where, f"kind must be one of {KINDS}, got {kind!r}")
    if "adapter" not in d:
        _fail(origin, where, "missing required key 'adapter' (null for a generator's source set)")
    adapter = d["adapter"]
    if adapter is not None and adapter not in ADAPTER_NAMES:
        _fail(origin, where, f"unknown adapter {adapter!r}; known: {ADAPTER_NAMES}")
    srcs = d.get("sources") or []
    if not isinstance(srcs, list):
        _fail(origin, where, "'sources' must be a list")
    sources = tuple(_parse_source(origin, f"{where}.sources[{i}]", s) for i, s in enumerate(srcs))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        _fail(origin, where, f"duplicate source names {names}")
    if kind == "download" and not [s for s in sources if not s.optional]:
        _fail(origin, where, "a 'download' data set needs at least one non-optional source")
    main = [s for s in sources if not s.optional]
    if main and main[0].role != "official" and any(s.role == "official" for s in main):
        _fail(origin, where, "official sources must come before mirrors")
    requires = d.get("requires") or []
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        _fail(origin, where, "'requires' must be a list of data-set names")
    if kind == "generated" and not d.get("generator"):
        _fail(origin, where, "a 'generated' data set needs a 'generator'")
    return Dataset(
        name=name,
        title=_str(origin, where, d, "title"),
        kind=kind,
        adapter=adapter,
        licence=_str(origin, where, d, "licence"),
        citation=_str(origin, where, d, "citation"),
        homepage=d.get("homepage"),
        notes=d.get("notes") or "",
        sources=sources,
        requires=tuple(requires),
        generator=d.get("generator"),
    )


def load_catalog(path: str | os.PathLike | None = None) -> dict[str, Dataset]:
    """Load and validate the catalogue; ``path`` defaults to the repository's ``k3dn/data/datasets.yaml``."""
    path = Path(path) if path is not None else DEFAULT_CATALOG
    if not path.is_file():
        raise CatalogError(f"{path}: data-set catalogue not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: not valid YAML ({e})") from e
    _check_keys(path, "top level", raw, {"schema", "datasets"})
    if raw.get("schema") != 1:
        _fail(path, "top level", f"unsupported schema {raw.get('schema')!r} (expected 1)")
    dsets = raw.get("datasets")
    if not isinstance(dsets, dict) or not dsets:
        _fail(path, "top level", "'datasets' must be a non-empty mapping")
    out = {name: _parse_dataset(path, name, d) for name, d in dsets.items()}
    for ds in out.values():
        for r in ds.requires:
            if r not in out:
                _fail(path, f"datasets.{ds.name}", f"requires unknown data set {r!r}")
    return out


def get_dataset(name: str, path: str | os.PathLike | None = None) -> Dataset:
    reg = load_catalog(path)
    if name not in reg:
        raise CatalogError(f"unknown data set {name!r}; registered: {sorted(reg)}")
    return reg[name]
