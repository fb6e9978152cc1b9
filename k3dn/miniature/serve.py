"""A static HTTP server for the miniature's stand-ins: ``GET /<host>/<path>`` serves ``<root>/<host>/<path>``.

Byte ranges (``Range: bytes=N-``) are honoured as a real file host does, so downloads resume exactly as in a
paper run. Bound to 127.0.0.1 only. With ``--parent PID`` the server exits once that process is gone, so an
interrupted workflow never leaves it running.

    python -m k3dn.miniature.serve --root resources/miniature/www --url http://127.0.0.1:8765/ --parent $$
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PING = "/__k3dn_miniature__"


def _handler(root: Path):
    root = root.resolve()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # one line per request on stderr, as a web server's access log
            sys.stderr.write(f"serve: {self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")

        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            if path == PING:
                body = str(root).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            target = (root / path.lstrip("/")).resolve()
            if root not in target.parents or not target.is_file():
                self.send_error(404, "Not Found")
                return
            size = target.stat().st_size
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0] or 0)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(size - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            with open(target, "rb") as f:
                f.seek(start)
                while block := f.read(1 << 20):
                    self.wfile.write(block)

    return Handler


def make_server(root, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server over ``root`` (port 0: any free port; see ``server.server_address``)."""
    return ThreadingHTTPServer((host, port), _handler(Path(root)))


_STARTED: dict[str, object] = {}


def _ping(url: str, timeout: float = 1.0) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + PING, timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


def start_server(root, url: str, log=None, wait: float = 20.0) -> None:
    """Start the server over ``root`` at ``url`` in its own process, tied to this one; return once it answers.
    A server of ours already answering there for the same root is reused."""
    import subprocess

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    served = _ping(url)
    if served is not None:
        if served == str(root):
            return
        raise RuntimeError(
            f"miniature.url {url}: another miniature server (serving {served}) answers there; "
            "stop it or choose another port"
        )
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "a") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "k3dn.miniature.serve", "--root", str(root), "--url", url, "--parent", str(os.getpid())],
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    _STARTED[url] = proc
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _ping(url, 0.5) == str(root):
            return
        if proc.poll() is not None:
            raise RuntimeError(
                f"miniature.url {url}: the server exited with {proc.returncode} (see {log}); is the "
                "port in use? Set miniature.url to a free port"
            )
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"miniature.url {url}: the server did not answer within {wait:.0f} s (see {log})")


def stop_server(url: str) -> None:
    proc = _STARTED.pop(url, None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except Exception:
            proc.kill()


def _watch_parent(pid: int, server: ThreadingHTTPServer) -> None:
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            server.shutdown()
            return
        except PermissionError:
            pass
        time.sleep(1.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/ (the miniature config's miniature.url)")
    p.add_argument("--parent", type=int, help="exit when this process is gone")
    args = p.parse_args(argv)
    u = urllib.parse.urlsplit(args.url)
    if u.hostname not in ("127.0.0.1", "localhost") or not u.port:
        print(f"error: {args.url}: the miniature server binds 127.0.0.1:<port> only", file=sys.stderr)
        return 2
    args.root.mkdir(parents=True, exist_ok=True)
    try:
        server = make_server(args.root, "127.0.0.1", u.port)
    except OSError as e:
        print(f"error: {args.url}: cannot listen ({e}); set miniature.url to a free port", file=sys.stderr)
        return 1
    if args.parent:
        threading.Thread(target=_watch_parent, args=(args.parent, server), daemon=True).start()
    print(f"serving {args.root} at {args.url}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
