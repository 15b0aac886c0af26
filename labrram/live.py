"""``labrram watch``: a live web page of a run store as it grows, served on this computer.

Labs program chips for hours, and the only view of a running job used to be the progress bar
of the terminal that started it. :func:`watch` serves a page that follows a run store from any
process — the array map of achieved against target filling in, the convergence curve, the
pulse and error histograms, pulses per second, the projected bench time and an estimate of what
is left, the faults recovered and the stop reason — and opens a finished run or a Monte Carlo
study store alike.

Design, and why:

* **Python's standard library, nothing else.** The server is :mod:`http.server`'s
  ``ThreadingHTTPServer`` in a daemon thread; the page is one static HTML file and one script
  shipped inside the package (``labrram/web/``), drawing on ``<canvas>`` with no framework, no
  CDN and nothing fetched at run time. A lab PC without internet access, or behind a proxy,
  shows the page; nothing is installed beyond labrram, and no server library's release cycle
  can break it. A dashboard framework (Bokeh, Panel) would bring a websocket server and a
  JavaScript bundle of several MB for what is one JSON document polled once a second.
* **The page polls one JSON endpoint** (``/api/state?rev=N``): the snapshot of
  :mod:`labrram.follow`, and the per-device maps (base64 float32) only when they changed since
  revision ``N``. Polling keeps the server stateless and survives a reload or a sleeping laptop.
  However many pages are open, the store is read at most once per ``interval`` seconds.
* **Read-only, no lock.** The follower never writes to the store, and reads a running one
  incrementally (:mod:`labrram.follow`), so watching costs the run nothing and cannot disturb
  it, and a store mid-checkpoint is read as it stands.
* **This computer only.** The server binds 127.0.0.1 and answers only requests addressed to
  ``127.0.0.1`` or ``localhost`` (a web page elsewhere cannot read the run through the user's
  browser by renaming a host). To watch from another machine, forward the port over SSH
  (``ssh -L 8787:127.0.0.1:8787 labpc``).
"""

from __future__ import annotations

import errno
import json
import math
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .follow import RunFollower, StudyFollower, follower
from .store import StoreError

__all__ = ["WatchError", "WatchServer", "watch", "HOST"]

#: the only address the page is served on
HOST = "127.0.0.1"
_STATIC = {"/": ("watch.html", "text/html; charset=utf-8"), "/watch.js": ("watch.js", "text/javascript; charset=utf-8")}


class WatchError(StoreError):
    """A watch that cannot start: no store to follow, or a port that cannot be had."""


def _finite(value: Any) -> Any:
    """NaN and infinities as null (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _static(name: str) -> bytes:
    return resources.files("labrram").joinpath("web", name).read_bytes()


class WatchServer:
    """A started watch: the page of one store on ``http://127.0.0.1:PORT/``.

    Use :func:`watch` to make one. ``url`` is the page's address; :meth:`close` stops the server
    (also on leaving a ``with`` block).

    Attributes
    ----------
    path : Path
        The store followed.
    url : str
        The page.
    requests : int
        State requests answered so far.
    """

    def __init__(self, follow: RunFollower | StudyFollower, port: int = 0, interval: float = 0.5) -> None:
        self.follower = follow
        self.path = follow.path
        self.interval = float(interval)
        self.requests = 0
        self._lock = threading.Lock()
        self._polled = -math.inf
        self._snapshot = follow.poll()  # a store that cannot be read fails here, before serving
        pages = {name: _static(file) for name, (file, _) in _STATIC.items()}
        try:
            self._httpd = ThreadingHTTPServer((HOST, int(port)), self._handler(pages))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise WatchError(f"port {port} on {HOST} is in use; choose another port (0: any free one)") from None
            if exc.errno == errno.EACCES:
                raise WatchError(f"port {port} on {HOST} needs privileges; choose a port above 1023 (0: any free one)") from None
            raise WatchError(f"cannot serve on {HOST}:{port} ({exc.strerror or exc})") from None
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://{HOST}:{self.port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name=f"labrram-watch-{self.port}", daemon=True)
        self._thread.start()

    # --- state -------------------------------------------------------------------------------
    def state(self, rev: int | None = None) -> dict[str, Any]:
        """The snapshot as it stands (read again when older than ``interval``), with the
        per-device maps when their revision differs from ``rev``."""
        with self._lock:
            if time.monotonic() - self._polled >= self.interval:
                self._snapshot = self.follower.poll()
                self._polled = time.monotonic()
            snap = dict(self._snapshot)
            if rev != snap.get("rev"):
                snap["maps"] = self.follower.maps()
            self.requests += 1
        return _finite(snap)

    def _handler(self, pages: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "labrram-watch"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                pass  # the terminal shows the URL, not a line per poll

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
                if host not in (HOST, "localhost"):
                    self._send(HTTPStatus.FORBIDDEN, b"this page is served to 127.0.0.1 / localhost only\n", "text/plain; charset=utf-8")
                    return
                parts = urlsplit(self.path)
                if parts.path in pages:
                    self._send(HTTPStatus.OK, pages[parts.path], _STATIC[parts.path][1])
                elif parts.path == "/api/state":
                    try:
                        rev = int(parse_qs(parts.query).get("rev", ["-1"])[0])
                    except ValueError:
                        rev = -1
                    try:
                        body = json.dumps(server.state(rev), allow_nan=False).encode()
                    except Exception as exc:  # the page shows it and keeps polling
                        body = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]}).encode()
                        self._send(HTTPStatus.INTERNAL_SERVER_ERROR, body, "application/json")
                        return
                    self._send(HTTPStatus.OK, body, "application/json")
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

        return Handler

    # --- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> "WatchServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WatchServer({str(self.path)!r}, url={self.url!r})"


def watch(path: str | Path, *, port: int = 0, interval: float = 0.5) -> WatchServer:
    """Serve a live page of the store at ``path`` on ``http://127.0.0.1:PORT/``.

    Parameters
    ----------
    path : str or Path
        A programming or characterization run store (running, stopped or complete), or a Monte
        Carlo study store. Read only: the store is never written to or locked.
    port : int
        TCP port on 127.0.0.1; 0 (default) takes any free one.
    interval : float
        Seconds: the store is read at most this often, however many pages poll it.

    Returns
    -------
    WatchServer
        Serving in a background thread; ``.url`` is the page, ``.state()`` the JSON it polls,
        ``.close()`` stops it.

    Raises
    ------
    WatchError
        When ``path`` is no store that can be followed, or the port cannot be had.
    """
    if not 0 <= int(port) <= 65535:
        raise WatchError(f"port must be 0..65535, got {port}")
    if not interval > 0:
        raise WatchError(f"interval must be > 0 s, got {interval}")
    try:
        return WatchServer(follower(path), port=port, interval=interval)
    except WatchError:
        raise
    except StoreError as exc:
        raise WatchError(str(exc)) from None
