"""Safe, idempotent unpacking of zip and tar archives.

Safety: every member is checked before anything is written. Absolute names, ``..`` components, drive
letters and backslash paths are rejected; symlinks and hard links are allowed only when they resolve inside
the target; device files and FIFOs are rejected. One bad member rejects the whole archive
(:class:`UnsafeArchiveError`, naming the archive and the member), so a hostile archive never leaves a
half-written tree behind.

Idempotence: an archive is unpacked into ``<dest>/.<folder>.partial`` and renamed to ``<dest>/<folder>``
only when complete, with a marker ``<folder>/.k3dn_unpacked.json`` (archive name, size, mtime, sha256,
member count) written before the rename. Re-running with the same archive is a no-op; a leftover
``.partial`` folder (an interrupted unpack) is deleted and the unpack redone; a ``<folder>`` that exists
without our marker, or with a marker for a different archive, is an error (we never delete data we did
not write).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from k3dn.provenance import sha256_file

MARKER = ".k3dn_unpacked.json"


class ArchiveError(ValueError):
    pass


class UnsafeArchiveError(ArchiveError):
    pass


def archive_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".zip", ".whl")):  # a wheel is a zip
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    raise ArchiveError(f"{path}: not a supported archive (expected .zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz)")


def default_folder(path: Path) -> str:
    """The folder an archive unpacks into by default: its name without the archive suffix."""
    name = path.name
    for suf in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".zip", ".whl", ".tar"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _check_name(archive: Path, name: str) -> PurePosixPath:
    if not name or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a drive letter, backslash or empty name")
    p = PurePosixPath(name)
    if p.is_absolute():
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in p.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} escapes the target folder ('..')")
    return p


def _inside(root: Path, p: Path) -> bool:
    root = os.path.normpath(root)
    p = os.path.normpath(p)
    return p == root or p.startswith(root + os.sep)


def _check_link(archive: Path, target_root: Path, member: PurePosixPath, link: str, hard: bool) -> None:
    if PurePosixPath(link).is_absolute():
        raise UnsafeArchiveError(f"{archive}: link {str(member)!r} -> {link!r} points to an absolute path")
    # Symlink targets are relative to the link's folder; tar hard-link targets to the archive root.
    base = target_root if hard else target_root / member.parent
    resolved = Path(os.path.normpath(base / link))
    if not _inside(target_root, resolved):
        raise UnsafeArchiveError(f"{archive}: link {str(member)!r} -> {link!r} escapes the target folder")


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_archive(archive: str | os.PathLike, target: str | os.PathLike = "/__k3dn_target__") -> int:
    """Validate every member of ``archive`` for unpacking under ``target``; returns the member count."""
    archive = Path(archive)
    target = Path(target)
    kind = archive_kind(archive)
    n = 0
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    p = _check_name(archive, info.filename)
                    if _zip_is_symlink(info):
                        _check_link(archive, target, p, zf.read(info).decode("utf-8", "replace"), hard=False)
                    n += 1
        else:
            with tarfile.open(archive) as tf:
                for m in tf.getmembers():
                    p = _check_name(archive, m.name)
                    if m.issym():
                        _check_link(archive, target, p, m.linkname, hard=False)
                    elif m.islnk():
                        _check_name(archive, m.linkname)
                        _check_link(archive, target, p, m.linkname, hard=True)
                    elif not (m.isfile() or m.isdir()):
                        raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device file or FIFO")
                    n += 1
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise ArchiveError(f"{archive}: corrupt or truncated archive ({e})") from e
    return n


def _extract_zip(archive: Path, dest: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in tqdm(zf.infolist(), desc=f"unpack {archive.name}", unit="file", disable=not progress):
            out = dest / info.filename
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if _zip_is_symlink(info):
                os.symlink(zf.read(info).decode("utf-8"), out)
                continue
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _extract_tar(archive: Path, dest: Path, progress: bool) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in tqdm(members, desc=f"unpack {archive.name}", unit="file", disable=not progress):
            # 'data' filter (Python >= 3.11.4) is a second line of defence after check_archive.
            tf.extract(m, dest, filter="data")


def _read_marker(folder: Path) -> dict | None:
    mk = folder / MARKER
    if not mk.is_file():
        return None
    try:
        return json.loads(mk.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _same_archive(marker: dict, archive: Path, st: os.stat_result) -> bool:
    if marker.get("archive") != archive.name or marker.get("size") != st.st_size:
        return False
    if marker.get("mtime_ns") == st.st_mtime_ns:
        return True
    # Touched but maybe identical (copied again): fall back to the content hash.
    return marker.get("sha256") == sha256_file(archive)


def unpack(
    archive: str | os.PathLike, dest: str | os.PathLike | None = None, folder: str | None = None, progress: bool = True
) -> Path:
    """Unpack ``archive`` into ``dest/folder`` (defaults: the archive's folder, its stem) safely and once.

    Returns the unpacked folder. Raises :class:`UnsafeArchiveError` for a hostile member and
    :class:`ArchiveError` for a corrupt archive or a target folder we did not create.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: archive not found")
    dest = Path(dest) if dest is not None else archive.parent
    folder = folder or default_folder(archive)
    _check_name(archive, folder)
    final = dest / folder
    partial = dest / f".{folder}.partial"
    st = archive.stat()

    if final.exists():
        marker = _read_marker(final)
        if marker is None:
            raise ArchiveError(
                f"{final}: exists but was not unpacked by k3dn (no {MARKER}); move it away or "
                f"remove it to unpack {archive.name}"
            )
        if _same_archive(marker, archive, st):
            return final
        raise ArchiveError(
            f"{final}: was unpacked from a different archive ({marker.get('archive')}, "
            f"sha256 {marker.get('sha256')}); remove it to unpack {archive}"
        )

    if partial.exists():
        shutil.rmtree(partial)  # an interrupted unpack of ours: start again
    n = check_archive(archive, partial.resolve() if partial.parent.exists() else partial)
    partial.mkdir(parents=True)
    try:
        if archive_kind(archive) == "zip":
            _extract_zip(archive, partial, progress)
        else:
            _extract_tar(archive, partial, progress)
        marker = {
            "archive": archive.name,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha256_file(archive),
            "members": n,
        }
        (partial / MARKER).write_text(json.dumps(marker, indent=1))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise ArchiveError(f"{archive}: unpacking failed ({e})") from e
    os.replace(partial, final)
    return final
