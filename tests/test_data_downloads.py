"""Downloads against a local HTTP server (127.0.0.1, Range support written here), and safe unpacking."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from k3dn.data import archives, downloads
from k3dn.data.archives import ArchiveError, UnsafeArchiveError, unpack
from k3dn.data.catalog import CatalogError, load_catalog
from k3dn.data.downloads import ChecksumMismatch, DownloadError, ManualDownloadRequired, download_http, fetch_dataset


# --------------------------------------------------------------------------------------------- server
class _State:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, list[int]] = {}  # path -> bytes to send before closing, one per request
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, *a):  # keep pytest output clean
        pass

    def do_GET(self):
        st = self.state
        with st.lock:
            st.requests.append((self.path, self.headers.get("Range")))
            cut = st.truncate.get(self.path, [])
            limit = cut.pop(0) if cut else None
        body = st.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        rng = self.headers.get("Range")
        start = 0
        if rng and not st.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if limit is not None:
            self.wfile.write(payload[:limit])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    state = _State()
    handler = type("H", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.timeout = 2
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    t.join(5)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


PAYLOAD = os.urandom(200_000)
FAST = dict(timeout=5, backoff=0.01, progress=False, chunk=16384)


# --------------------------------------------------------------------------------------------- http
def test_download_success_verified(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest, status = download_http(server.url + "/a.bin", tmp_path / "a.bin", _sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD and status == "verified"
    assert not (tmp_path / "a.bin.part").exists()
    # already there: verified again, no new request
    n = len(server.requests)
    assert download_http(server.url + "/a.bin", dest, _sha(PAYLOAD), **FAST)[1] == "verified"
    assert len(server.requests) == n


def test_truncated_transfer_is_retried_with_range(server, tmp_path):
    server.files["/t.bin"] = PAYLOAD
    server.truncate["/t.bin"] = [70_000]
    dest, _ = download_http(server.url + "/t.bin", tmp_path / "t.bin", _sha(PAYLOAD), retries=2, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/t.bin", None), ("/t.bin", "bytes=70000-")]


def test_interrupted_download_keeps_part_and_resumes_later(server, tmp_path):
    server.files["/r.bin"] = PAYLOAD
    server.truncate["/r.bin"] = [50_000, 30_000]
    target = tmp_path / "r.bin"
    with pytest.raises(DownloadError, match="80000 bytes kept"):
        download_http(server.url + "/r.bin", target, _sha(PAYLOAD), retries=1, **FAST)
    assert not target.exists()  # nothing that looks complete
    part = tmp_path / "r.bin.part"
    assert part.read_bytes() == PAYLOAD[:80_000]
    download_http(server.url + "/r.bin", target, _sha(PAYLOAD), retries=0, **FAST)
    assert target.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests[-1] == ("/r.bin", "bytes=80000-")


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.files["/g.bin"] = PAYLOAD
    server.ignore_range = True
    (tmp_path / "g.bin.part").write_bytes(b"x" * 1000)  # stale bytes that must not survive
    dest, _ = download_http(server.url + "/g.bin", tmp_path / "g.bin", _sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_verified(server, tmp_path):
    server.files["/c.bin"] = PAYLOAD
    (tmp_path / "c.bin.part").write_bytes(PAYLOAD)
    dest, _ = download_http(server.url + "/c.bin", tmp_path / "c.bin", _sha(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/c.bin", f"bytes={len(PAYLOAD)}-")]


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    server.files["/w.bin"] = PAYLOAD
    with pytest.raises(ChecksumMismatch, match="differs from the published"):
        download_http(server.url + "/w.bin", tmp_path / "w.bin", "0" * 64, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_http_404_fails_without_retries(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_http(server.url + "/missing", tmp_path / "m.bin", retries=3, **FAST)
    assert len(server.requests) == 1


def test_unknown_checksum_is_recorded_then_enforced(server, tmp_path):
    server.files["/u.bin"] = PAYLOAD
    lock = downloads.ChecksumLock(tmp_path)
    _, status = download_http(server.url + "/u.bin", tmp_path / "u.bin", None, lock=lock, rel="u.bin", **FAST)
    assert status == "recorded" and lock.read() == {"u.bin": _sha(PAYLOAD)}
    (tmp_path / "u.bin").unlink()
    server.files["/u.bin"] = PAYLOAD[::-1]  # the mirror changed its file
    with pytest.raises(ChecksumMismatch, match="recorded on first download"):
        download_http(server.url + "/u.bin", tmp_path / "u.bin", None, lock=lock, rel="u.bin", **FAST)
    assert not (tmp_path / "u.bin").exists()


# --------------------------------------------------------------------------------------------- registry
def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return buf.getvalue()


def _registry(tmp_path, url, sha):
    p = tmp_path / "datasets.yaml"
    p.write_text(f"""
schema: 1
datasets:
  toy:
    title: toy
    kind: download
    adapter: dpdd
    licence: MIT
    citation: none
    sources:
      - name: official
        role: official
        method: manual
        files: [{{path: toy.zip, url: "https://ln2.sync.com/dl/abc", sha256: {sha}, unpack: true}}]
      - name: mirror
        role: mirror
        method: http
        files: [{{path: toy.zip, url: "{url}", sha256: {sha}, unpack: true}}]
""")
    return p


def test_manual_download_message_and_mirror_fallback(server, tmp_path):
    z = _zip_bytes({"toy/test_c/source/a.png": b"1"})
    reg = _registry(tmp_path, server.url + "/gone.zip", _sha(z))
    dest = tmp_path / "raw"
    with pytest.raises(ManualDownloadRequired) as e:
        fetch_dataset("toy", dest, registry=reg, progress=False, retries=0, backoff=0)
    msg = str(e.value)
    assert "https://ln2.sync.com/dl/abc" in msg and str(dest / "toy.zip") in msg and _sha(z) in msg
    assert "HTTP 404" in msg  # why the mirror did not work
    # the mirror comes back: fetched from it and unpacked
    server.files["/gone.zip"] = z
    rep = fetch_dataset("toy", dest, registry=reg, progress=False, retries=0, backoff=0)
    assert rep.source == "mirror" and (dest / "toy" / "toy" / "test_c" / "source" / "a.png").read_bytes() == b"1"
    # the user put the official archive in place: verified, no network
    n = len(server.requests)
    rep = fetch_dataset("toy", dest, registry=reg, progress=False)
    assert rep.source == "official" and rep.files == {"toy.zip": "verified"} and len(server.requests) == n


def test_gdrive_refusal_becomes_manual(monkeypatch, tmp_path):
    import gdown
    from gdown.exceptions import FileURLRetrievalError

    def refuse(**kw):
        raise FileURLRetrievalError("Too many users have viewed or downloaded this file recently")

    monkeypatch.setattr(gdown, "download", refuse)
    with pytest.raises(ManualDownloadRequired, match=r"uc\?id=XYZ(.|\n)*save it as .*f\.zip"):
        downloads.download_gdrive("XYZ", tmp_path / "f.zip", progress=False)

    def ok(id, output, **kw):
        Path(output).write_bytes(b"drive")
        return output

    monkeypatch.setattr(gdown, "download", ok)
    dest, status = downloads.download_gdrive("XYZ", tmp_path / "f.zip", _sha(b"drive"), progress=False)
    assert dest.read_bytes() == b"drive" and status == "verified"


def test_generated_dataset_is_not_downloadable(tmp_path):
    with pytest.raises(DownloadError, match="not distributed.*generate it"):
        fetch_dataset("ddd_syn", tmp_path)


def test_repository_registry_is_valid():
    reg = load_catalog()
    assert {"dpdd", "pixel", "dpd_disp", "ddd_syn", "rdpd", "nyu_depth_v2_labeled", "synthia_sf", "synth"} <= set(reg)
    pix = reg["pixel"].sources[0]
    assert len(pix.files) == 72 and all(f.sha256 for f in pix.files)
    assert pix.files[0].url.endswith("d6a92620163cb462ff5b77a813bc5c03b0dab240/DP_data_pixel_4/001_left.png")
    assert reg["dpdd"].sources[0].role == "official" and reg["dpdd"].sources[0].method == "manual"


@pytest.mark.parametrize(
    "bad, match",
    [
        ("sha256: abc", "sha256 must be 64"),
        ("method: ftp", "method must be one of"),
        ("path: ../x.zip", "must be relative"),
        ("colour: red", "unknown key"),
    ],
)
def test_registry_errors_are_clear(tmp_path, bad, match):
    key = bad.split(":")[0]
    src = {
        "sha256": "        files: [{path: a.zip, url: 'https://x/a', sha256: abc}]",
        "method": "        method: ftp\n        files: [{path: a.zip, url: 'https://x/a'}]",
        "path": "        files: [{path: ../x.zip, url: 'https://x/a'}]",
        "colour": "        colour: red\n        files: [{path: a.zip, url: 'https://x/a'}]",
    }[key]
    method = "" if key == "method" else "        method: http\n"
    p = tmp_path / "r.yaml"
    p.write_text(
        "schema: 1\ndatasets:\n  d:\n    title: t\n    kind: download\n    adapter: null\n"
        "    licence: l\n    citation: c\n    sources:\n      - name: s\n        role: official\n" + method + src + "\n"
    )
    with pytest.raises(CatalogError, match=match) as e:
        load_catalog(p)
    assert str(p) in str(e.value) and "datasets.d" in str(e.value)


# --------------------------------------------------------------------------------------------- archives
def test_zip_path_escape_is_rejected(tmp_path):
    for name in ("../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:\\evil.txt"):
        a = tmp_path / "bad.zip"
        a.write_bytes(_zip_bytes({"ok.txt": b"ok", name: b"x"}))
        with pytest.raises(UnsafeArchiveError, match="bad.zip"):
            unpack(a, tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def _tar(path: Path, links: dict[str, str], files: dict[str, bytes]):
    with tarfile.open(path, "w") as tf:
        for n, b in files.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(b)
            tf.addfile(ti, io.BytesIO(b))
        for n, target in links.items():
            ti = tarfile.TarInfo(n)
            ti.type = tarfile.SYMTYPE
            ti.linkname = target
            tf.addfile(ti)


def test_tar_symlink_escape_rejected_inside_link_kept(tmp_path):
    bad = tmp_path / "bad.tar"
    _tar(bad, {"d/link": "../../outside"}, {"d/f.txt": b"f"})
    with pytest.raises(UnsafeArchiveError, match="escapes"):
        unpack(bad, tmp_path / "o1", progress=False)
    good = tmp_path / "good.tar"
    _tar(good, {"d/link": "f.txt"}, {"d/f.txt": b"f"})
    out = unpack(good, tmp_path / "o2", progress=False)
    assert (out / "d" / "link").is_symlink() and (out / "d" / "link").read_bytes() == b"f"


def test_unpack_is_idempotent_and_redoes_interrupted(tmp_path, monkeypatch):
    a = tmp_path / "set.zip"
    a.write_bytes(_zip_bytes({"x/1.txt": b"one", "x/2.txt": b"two"}))
    stale = tmp_path / ".set.partial"
    stale.mkdir()
    (stale / "junk").write_text("from an interrupted run")
    out = unpack(a, progress=False)
    assert out == tmp_path / "set" and (out / "x" / "2.txt").read_bytes() == b"two"
    assert not stale.exists() and not (out / "junk").exists()

    def boom(*a, **k):
        raise AssertionError("unpacked twice")

    monkeypatch.setattr(archives, "_extract_zip", boom)
    assert unpack(a, progress=False) == out  # no-op
    # a different archive under the same name is refused, not merged
    a.write_bytes(_zip_bytes({"x/1.txt": b"changed"}))
    with pytest.raises(ArchiveError, match="different archive"):
        unpack(a, progress=False)


def test_unpack_refuses_foreign_folder_and_corrupt_archive(tmp_path):
    a = tmp_path / "d.zip"
    a.write_bytes(_zip_bytes({"f": b"1"}))
    (tmp_path / "d").mkdir()
    with pytest.raises(ArchiveError, match="not unpacked by k3dn"):
        unpack(a, progress=False)
    c = tmp_path / "c.zip"
    c.write_bytes(_zip_bytes({"f": b"1" * 1000})[:50])
    with pytest.raises(ArchiveError, match="corrupt or truncated"):
        unpack(c, progress=False)
    assert not (tmp_path / "c").exists() and not (tmp_path / ".c.partial").exists()


def test_cli_download_manual_exit_code(server, tmp_path, capsys):
    from k3dn.cli import main

    z = _zip_bytes({"a.txt": b"1"})
    reg = _registry(tmp_path, server.url + "/none.zip", _sha(z))
    rc = main(["data", "--registry", str(reg), "download", "toy", "--dest", str(tmp_path / "raw"), "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 3 and "manual download required" in err and str(tmp_path / "raw" / "toy.zip") in err
    server.files["/none.zip"] = z
    assert main(["data", "--registry", str(reg), "download", "toy", "--dest", str(tmp_path / "raw")]) == 0
    assert "source mirror (mirror)" in capsys.readouterr().out
