"""Where the miniature's stand-ins live, and the registries that point a run at them.

A registry file (``k3dn/data/datasets.yaml``, ``baselines/checkpoints.yaml``) lists each item's sources. The
miniature stands in, for every item a run needs, the source a fresh paper run would take (the first one a
program can fetch; where there is none, the first manual one) plus its optional sources:

* fetchable files are written under ``<root>/www/<host>/<path>`` (:func:`served_path`), which the local server
  serves, and the derived registry points the source at ``<url><host>/<path>``. Google Drive has no local
  equivalent of its protocol, so a Drive file becomes a plain HTTP file of the local server;
* manual files are written under ``<root>/manual/<item>/<path>`` and then put where a user would put them
  (the path the manual-download message names);
* checksums and sizes: where the real registry publishes one (sha256, git blob id, size in bytes), the derived
  registry holds the stand-in's; where it publishes none, none (so the first download records it, as in a paper run). Files of
  the source that the stand-in does not hold (fewer scenes) are dropped from it.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import urllib.parse
import zipfile
from pathlib import Path

import yaml

from k3dn.data.downloads import git_blob_sha1
from k3dn.provenance import sha256_file

REGISTRY_KEYS = {"datasets": "datasets", "checkpoints": "checkpoints"}


def gdrive_url(file_id: str) -> str:
    return f"https://drive.google.com/uc/{file_id}"


def served_path(url: str) -> str:
    """``https://host/a/b?q`` -> ``host/a/b`` (``__<hash of q>`` appended when there is a query, since several
    files of one host can differ only by it)."""
    u = urllib.parse.urlsplit(url)
    path = u.path.strip("/") or "index"
    rel = f"{u.hostname}/{path}"
    if u.query:
        rel += "__" + hashlib.sha1(u.query.encode()).hexdigest()[:10]
    return rel


def file_url(source: dict, f: dict) -> str:
    if source["method"] == "gdrive":
        return gdrive_url(f["id"])
    return f.get("url") or source["base_url"] + f["path"]


def chosen_sources(entry: dict) -> list[dict]:
    """The sources a fresh run of ``entry`` uses: the first fetchable (else the first manual) main source,
    then every optional source."""
    main = [s for s in entry.get("sources") or [] if not s.get("optional")]
    pick = next((s for s in main if s["method"] != "manual"), main[0] if main else None)
    return ([pick] if pick else []) + [s for s in entry.get("sources") or [] if s.get("optional")]


def standin_file(root: Path, item: str, source: dict, f: dict) -> Path:
    """Where the stand-in of one registry file is written."""
    if source["method"] == "manual":
        return Path(root) / "manual" / item / f["path"]
    return Path(root) / "www" / served_path(file_url(source, f))


def write_file(path: Path, data: bytes) -> Path:
    """Write one stand-in file (atomically: a killed job leaves no half file that looks finished)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A stand-in archive of ``members`` (name -> bytes), in name order whatever order they were collected in (the
    member headers still carry the time of writing, so two writes differ in those bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(members):
            z.writestr(name, members[name])
    return write_file(path, buf.getvalue())


def load_entries(registry: Path, kind: str) -> dict:
    return yaml.safe_load(Path(registry).read_text())[REGISTRY_KEYS[kind]]


def place_manual(root: Path, item: str, entry: dict, dest: Path) -> list[Path]:
    """Put the manual stand-in files of ``item`` where the manual-download message tells a user to (``dest``)."""
    placed = []
    for s in chosen_sources(entry):
        if s["method"] != "manual":
            continue
        for f in s["files"]:
            src = standin_file(root, item, s, f)
            if not src.is_file():
                continue
            target = Path(dest) / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
            placed.append(target)
    return placed


def derive_registry(registry: Path, kind: str, items, root: Path, url: str, out: Path) -> Path:
    """Write the registry of the miniature: ``items`` only, each with its stood-in sources, pointing at ``url``."""
    full = yaml.safe_load(Path(registry).read_text())
    entries = full[REGISTRY_KEYS[kind]]
    derived = {}
    for name, entry in entries.items():
        if name not in items:
            if not entry.get("sources"):
                derived[name] = entry  # generated sets: nothing to fetch
            continue
        new = dict(entry)
        new["sources"] = []
        for s in chosen_sources(entry):
            files = []
            for f in s["files"]:
                p = standin_file(root, name, s, f)
                if not p.is_file():
                    continue
                if s["method"] == "manual":
                    g = dict(f, url=file_url(s, f))  # where a user would fetch it (for the messages)
                else:
                    g = {k: v for k, v in f.items() if k not in ("url", "id")}
                    g["url"] = url + served_path(file_url(s, f))
                if f.get("sha256"):
                    g["sha256"] = sha256_file(p)
                if f.get("size"):  # a published size is checked on download like a checksum
                    g["size"] = p.stat().st_size
                if f.get("git_sha1"):
                    g["git_sha1"] = git_blob_sha1(p)
                files.append(g)
            if not files:
                if s.get("optional"):
                    continue
                raise FileNotFoundError(
                    f"{root}: no stand-in of {kind} item {name!r} (source {s['name']!r}); "
                    f"write it with `k3dn miniature data {name}`"
                )
            t = {k: v for k, v in s.items() if k not in ("files", "base_url")}
            if s["method"] == "gdrive":
                t["method"] = "http"
            t["files"] = files
            new["sources"].append(t)
        derived[name] = new
    # A generated set whose source is not stood in cannot be made here: drop it too, so the registry stays valid.
    while gone := [n for n, e in derived.items() if any(r not in derived for r in e.get("requires") or [])]:
        for n in gone:
            del derived[n]
    full[REGISTRY_KEYS[kind]] = derived
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    header = (
        f"# DERIVED by `k3dn miniature registries` from {registry}: the miniature's stand-ins, served at {url}.\n"
        "# Checksums are the stand-ins' (random data and weights, not the published files).\n"
    )
    tmp.write_text(header + yaml.safe_dump(full, sort_keys=False, width=120))
    os.replace(tmp, out)
    return out
