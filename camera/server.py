"""`--serve HOST:PORT`: the upscaled stream as MJPEG over HTTP, with a small live page.

  /            an HTML page showing the stream fitted to the window (never enlarged), the halves of a
               --compare frame labelled, and the live stats (the same snapshot as the status line)
  /stream.mjpg multipart/x-mixed-replace JPEG stream; every client gets the newest frame
  /frame.jpg   the newest frame as one JPEG
  /stats       live numbers as JSON (polled by the page once a second); `connected` and `state` say
               whether the source is up (reconnecting, stalled, failed, ended ...)
  /metrics     the same numbers for Prometheus to scrape (text exposition format, source="NAME")

stdlib only (ThreadingHTTPServer, daemon threads). Each frame is JPEG-encoded once, by the stream
loop; slow clients skip frames rather than queue them.
"""
from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import numpy as np

from srx.camera.outputs import Output
from srx.camera.stats import LATE_S, prometheus_text, sources_stats
from srx.errors import SrxError, bind_failure
from srx.jsonout import json_text
from srx.words import host_port

log = logging.getLogger("srx")

BOUNDARY = "srxframe"


def send_mjpeg_parts(wfile: Any, next_jpeg: Callable[[int], tuple[int, bytes | None]], closed: Callable[[], bool]) -> None:
    """The parts of an MJPEG stream until `closed()` or the client goes away: each frame from
    `next_jpeg(after_seq)` (which waits up to a second for a newer one) with the boundary after it,
    not before: Chromium shows a part only once the next boundary comes, so a boundary sent with
    the following frame kept every frame on screen one frame late. A source that sends no new frame
    (it ended, or waits to reconnect) has its last one sent again each second, for the same reason."""
    seq = 0
    try:
        wfile.write(f"--{BOUNDARY}\r\n".encode())
        while not closed():
            seq, jpeg = next_jpeg(seq)
            if jpeg is None or closed():
                continue
            wfile.write(f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
            wfile.flush()
    except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
        pass  # the client went away


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>srx stream</title>
<style>
 html, body {{ margin: 0; padding: 0; background: #1e1e1e; color: #e0e0e0; font: 14px monospace; }}
 #frame {{ position: relative; display: inline-block; margin: 0; padding: 0; line-height: 0; }}
 #view {{ display: block; margin: 0; padding: 0; max-width: 100vw; max-height: calc(100vh - 4.2em);
          width: auto; height: auto; object-fit: contain; }}
 .half {{ position: absolute; top: 0; width: 50%; line-height: 1.4; text-align: center; pointer-events: none; }}
 .half span {{ background: rgba(0, 0, 0, 0.6); padding: 1px 6px; }}
 #stats {{ padding: 8px; white-space: pre; }}
</style></head>
<body>
<div id="frame"><img id="view" src="/stream.mjpg" alt="srx stream">{halves}</div>
<div id="stats">{title}</div>
<script>
const title = document.getElementById('stats').textContent;
async function poll() {{
  try {{
    const s = await (await fetch('/stats', {{cache: 'no-store'}})).json();
    const lat = s.latency_ms_p50 === null ? '-' : s.latency_ms_p50.toFixed(0) + ' / ' + s.latency_ms_p95.toFixed(0) + ' ms';
    document.getElementById('stats').textContent =
      title + '\\nout ' + s.fps_out.toFixed(2) + ' fps   in ' + s.fps_in.toFixed(2) + ' fps   frames ' + s.frames_out +
      '   dropped ' + s.dropped + '   latency p50/p95 ' + lat + (s.lag_s > {late} ? '   LATE ' + s.lag_s.toFixed(1) + ' s' : '') + (s.connected ? '' : '   ' + ({{failed: 'FAILED', ended: 'ended', stopped: 'stopped', starting: 'starting'}}[s.state] || 'NO SIGNAL'));
  }} catch (e) {{}}
  setTimeout(poll, 1000);
}}
poll();
</script>
</body></html>
"""


def parse_hostport(text: str) -> tuple[str, int]:
    """'HOST:PORT', ':PORT' or 'PORT' -> (host, port); the host defaults to 127.0.0.1 (local only). An
    IPv6 address goes in brackets: '[::1]:8080', '[::]:8080' (every interface, IPv4 too)."""
    text = str(text).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not port.isdigit() or not 0 <= int(port) <= 65535 or (":" in host and not bracketed) or "[" in host or "]" in host:
        raise SrxError(f"--serve {text!r}: expected HOST:PORT, :PORT or PORT with a port 0-65535 and an IPv6 address "
                       "in brackets (e.g. 127.0.0.1:8080 or [::1]:8080; 0.0.0.0:8080 or [::]:8080 to serve the network)")
    return host or "127.0.0.1", int(port)


#: the addresses that mean every interface of this machine
EVERY_INTERFACE = ("0.0.0.0", "::")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart right after a stop must not hit TIME_WAIT


class _Server6(_Server):
    """The server on an IPv6 address; on '::' IPv4 clients too, whatever the system's default."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        if self.server_address[0] == "::" and hasattr(socket, "IPV6_V6ONLY"):
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:  # a system without dual-stack sockets: IPv6 only, said by where()
                pass
        super().server_bind()


def _bind(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> _Server:
    """The HTTP server on host:port, or an SrxError that says why not (the port in use, most often)."""
    try:
        return (_Server6 if ":" in host else _Server)((host, port), handler)
    except OSError as exc:
        raise SrxError(f"cannot serve on {host_port(host, port)}: "
                       f"{bind_failure(exc, host, '--serve HOST:PORT', '--serve HOST:PORT')}") from None


def _serve_in_thread(httpd: _Server) -> threading.Thread:
    """Serve `httpd` on a daemon thread, started."""
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                              name="srx-http", daemon=True)
    thread.start()
    return thread


def _url(host: str, port: int) -> str:
    """A URL that reaches the server from this machine (for one on every interface, through loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{host_port(host, port)}/"


def where(httpd: _Server, host: str, port: int) -> str:
    """Where a server listens, in words for its start-up line: its URL, or for one on every interface
    that it does (so that no one checking what is exposed reads a loopback URL), with the URL that
    works here and the one other hosts use."""
    if host not in EVERY_INTERFACE:
        return f"at {_url(host, port)}"
    family = "IPv4"
    if host == "::":
        try:
            v6only = httpd.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        except (OSError, AttributeError):
            v6only = 1
        family = "IPv6 only" if v6only else "IPv4 and IPv6"
    name = socket.gethostname().strip()
    name = name if name and name != "localhost" else "THIS_HOST"
    return (f"on every interface of this machine ({host_port(host, port)}, {family}; no login: whoever reaches the "
            f"port sees it), at {_url(host, port)} here and http://{host_port(name, port)}/ from other hosts")


class _Handler(BaseHTTPRequestHandler):
    """What every srx request handler shares: HTTP/1.1, debug logging, whole replies and MJPEG headers."""

    protocol_version = "HTTP/1.1"
    head_only = False  # a HEAD request: headers as GET would send them, no body (uptime checkers use it)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
        self.head_only = True
        self.do_GET()  # type: ignore[attr-defined]

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("http %s: " + fmt, self.client_address[0], *args)

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not self.head_only:
            self.wfile.write(body)

    def _start_mjpeg(self) -> bool:
        """The headers of a multipart/x-mixed-replace stream; the connection closes when it ends.
        False for a HEAD request: no frames follow."""
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        return not self.head_only


#: the Content-Type of Prometheus' text exposition format
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MjpegServer(Output):
    """An Output that serves what it is given. `stats` is a callable returning the /stats dict."""

    def __init__(self, address: str, stats: Callable[[], dict[str, Any]] | None = None,
                 title: str = "srx stream", jpeg_quality: int = 90,
                 halves: tuple[str, str] | None = None, source: str = "stream") -> None:
        self.host, port = parse_hostport(address)
        self.stats = stats or (lambda: {})
        self.source = source  # the source label of its /metrics
        self.title = title
        self.halves = halves  # labels of the left and right half of a side-by-side (--compare) frame
        self.quality = int(jpeg_quality)
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        self.clients = 0
        self.httpd = _bind(self.host, port, self._handler())
        self.port = int(self.httpd.server_address[1])
        self.name = f"web {self.url}" if self.host not in EVERY_INTERFACE else f"web {host_port(self.host, self.port)}"
        self._thread = _serve_in_thread(self.httpd)
        self._said = False

    def started(self) -> None:
        """The start-up line, once the run has begun (bound before: a port taken refuses the run first)."""
        if not self._said:
            self._said = True
            log.info("serving the stream %s", where(self.httpd, self.host, self.port))

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    # -- Output --------------------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> bool:
        self.publish(frame)  # always: /frame.jpg and a client that joins later get the newest frame
        return True

    def publish(self, frame: np.ndarray) -> None:
        import cv2

        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return
        with self._cond:
            self._jpeg = buf.tobytes()
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(2.0)

    # -- HTTP ----------------------------------------------------------------------------------
    def run_stats(self) -> dict[str, Any]:
        """/stats: the source's numbers at the top (as the page reads them), and in the shape of a run
        of several sources (`total`, `sources` by name, `run`), so one collector reads both."""
        snap = self.stats()
        return {**snap, **sources_stats({self.source: dict(snap)})} if snap else {}

    def page(self) -> str:
        import html

        halves = "".join(f'<div class="half" style="left: {left}"><span>{html.escape(text)}</span></div>'
                         for left, text in zip(("0", "50%"), self.halves or ()))
        return PAGE.format(title=html.escape(self.title), halves=halves, late=LATE_S)

    def next_jpeg(self, after: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        with self._cond:
            if self._seq <= after and not self._closed:
                self._cond.wait(timeout)
            return self._seq, self._jpeg

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", server.page().encode())
                elif path == "/stats":
                    self._send(200, "application/json", json_text(server.run_stats(), None).encode())
                elif path == "/metrics":
                    self._send(200, PROMETHEUS_TYPE, prometheus_text(server.run_stats()).encode())
                elif path == "/frame.jpg":
                    _, jpeg = server.next_jpeg(-1, 0)
                    if jpeg is None:
                        self._send(503, "text/plain", b"no frame yet\n")
                    else:
                        self._send(200, "image/jpeg", jpeg)
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self._send(404, "text/plain", b"not found: try /, /stream.mjpg, /frame.jpg, /stats or /metrics\n")

            def _stream(self) -> None:
                if not self._start_mjpeg():
                    return
                with server._cond:
                    server.clients += 1
                try:
                    send_mjpeg_parts(self.wfile, server.next_jpeg, lambda: server._closed)
                finally:
                    with server._cond:
                        server.clients -= 1

        return Handler
