"""`--serve HOST:PORT` with several sources: an index page of every camera, one MJPEG path each.

  /                       the index: every camera with its live numbers, and the totals
  /cam/NAME/              one camera at its natural size, with its numbers
  /cam/NAME/stream.mjpg   that camera's multipart/x-mixed-replace JPEG stream (newest frame first)
  /cam/NAME/frame.jpg     its newest frame as one JPEG
  /stats                  live numbers as JSON: {"total": {...}, "sources": {NAME: {...}}}
  /metrics                each camera's numbers for Prometheus to scrape (labelled source="NAME")

Browsers open at most six connections to one host, and each MJPEG stream holds one, so the index
embeds the live streams for up to four cameras and, past that, reloads each camera's frame.jpg
a few times a second (the per-camera pages always show the stream). Each frame is JPEG-encoded
once, by the stream loop; slow clients skip frames rather than queue them. stdlib only.
"""
from __future__ import annotations

import html
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Sequence
from urllib.parse import unquote

import numpy as np

from srx.camera.outputs import Output
from srx.camera.server import (EVERY_INTERFACE, PROMETHEUS_TYPE, _Handler, _bind, _serve_in_thread, _url,
                               parse_hostport, send_mjpeg_parts, where)
from srx.camera.stats import LATE_S, prometheus_text, sources_stats
from srx.jsonout import json_text
from srx.words import host_port

log = logging.getLogger("srx")

#: cameras the index embeds as live MJPEG; more are shown as frame.jpg refreshed by the page
MJPEG_IN_INDEX = 4

_STYLE = """
 html, body { margin: 0; padding: 0; background: #1e1e1e; color: #e0e0e0; font: 14px monospace; }
 h1 { font-size: 14px; margin: 0; padding: 8px; font-weight: normal; white-space: pre; }
 .grid { display: flex; flex-wrap: wrap; gap: 8px; padding: 0 8px 8px 8px; align-items: flex-start; }
 .cam { margin: 0; }
 .cam img { display: block; max-width: 100%; }
 .cam img:not([src]) { width: 320px; height: 180px; background: #2a2a2a; }
 .cam figcaption { padding: 4px 0; white-space: pre-wrap; overflow-wrap: anywhere; width: 0; min-width: 100%; }
 a { color: #9cdcfe; }
"""

_SCRIPT = """
const refresh = %(refresh)s;
function line(s) {
  if (!s) return '';
  const lat = s.latency_ms_p50 === null ? '-' : s.latency_ms_p50.toFixed(0) + ' / ' + s.latency_ms_p95.toFixed(0) + ' ms';
  return 'out ' + s.fps_out.toFixed(2) + ' fps   in ' + s.fps_in.toFixed(2) + ' fps   frames ' + s.frames_out +
    '   dropped ' + s.dropped + '   latency p50/p95 ' + lat + (s.lag_s > %(late)s ? '   LATE ' + s.lag_s.toFixed(1) + ' s' : '') + (s.connected ? '' : '   ' + ({failed: 'FAILED', ended: 'ended', stopped: 'stopped', starting: 'starting'}[s.state] || 'NO SIGNAL'));
}
async function poll() {
  try {
    const s = await (await fetch('/stats', {cache: 'no-store'})).json();
    const t = s.total;
    document.getElementById('total').textContent = %(title)s + '\\n' + t.sources + ' cameras   out ' +
      t.fps_out.toFixed(2) + ' fps   frames ' + t.frames_out + '   dropped ' + t.dropped;
    for (const [name, one] of Object.entries(s.sources)) {
      const el = document.getElementById('stats-' + name);
      if (el) el.textContent = name + '\\n' + line(one);
    }
  } catch (e) {}
  setTimeout(poll, 1000);
}
function reload() {
  for (const img of document.querySelectorAll('img[data-frame]')) {
    const next = new Image();
    next.onload = () => { img.src = next.src; };
    next.src = img.dataset.frame + '?t=' + Date.now();
  }
  setTimeout(reload, 250);
}
poll();
if (refresh) reload();
"""


def _page(title: str, names: Sequence[str], single: bool) -> str:
    live = single or len(names) <= MJPEG_IN_INDEX
    tiles = []
    for name in names:
        q = html.escape(name, quote=True)
        img = (f'<img src="/cam/{q}/stream.mjpg" alt="{q}">' if live
               else f'<img data-frame="/cam/{q}/frame.jpg" alt="">')  # its src set once a frame loads: no broken image
        link = "" if single else f'<a href="/cam/{q}/">{q}</a> <a href="/cam/{q}/stream.mjpg">mjpeg</a>'
        tiles.append(f'<figure class="cam">{img}<figcaption><div id="stats-{q}">{q}</div>{link}</figcaption></figure>')
    script = _SCRIPT % {"refresh": "false" if live else "true", "title": json.dumps(title), "late": LATE_S}
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head>\n<body>\n<h1 id=\"total\">{html.escape(title)}</h1>\n"
            f'<div class="grid">{"".join(tiles)}</div>\n<script>{script}</script>\n</body></html>\n')


class Channel(Output):
    """One camera's output into the server: write() encodes the frame once for every viewer."""

    def __init__(self, server: "MultiMjpegServer", name: str) -> None:
        self.server, self.cam = server, name
        self.name = f"web {server.url}cam/{name}/"
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self.clients = 0

    def write(self, frame: np.ndarray) -> bool:
        import cv2

        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.server.quality])
        if ok:
            with self._cond:
                self._jpeg = buf.tobytes()
                self._seq += 1
                self._cond.notify_all()
        return True

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def started(self) -> None:
        self.server.started()

    def next_jpeg(self, after: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        with self._cond:
            if self._seq <= after and not self.server.closed:
                self._cond.wait(timeout)
            return self._seq, self._jpeg


class MultiMjpegServer:
    """The web server of a multi-source stream; `channel(name)` is each camera's Output.
    `stats()` returns {"total": {...}, "sources": {name: snapshot}} for /stats."""

    def __init__(self, address: str, names: Sequence[str], stats: Callable[[], dict[str, Any]] | None = None,
                 title: str = "srx cameras", jpeg_quality: int = 90) -> None:
        self.host, port = parse_hostport(address)
        self.names = list(names)
        self.stats = stats or (lambda: {"total": {}, "sources": {}})
        self.title = title
        self.quality = int(jpeg_quality)
        self.closed = False
        self.httpd = _bind(self.host, port, self._handler())
        self.port = int(self.httpd.server_address[1])
        self.channels = {name: Channel(self, name) for name in self.names}
        self._thread = _serve_in_thread(self.httpd)
        self._said = False

    def started(self) -> None:
        """The start-up line, once the run has begun (its first camera's channel says so)."""
        if not self._said:
            self._said = True
            log.info("serving %d cameras %s", len(self.names), where(self.httpd, self.host, self.port))

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    def channel(self, name: str) -> Channel:
        return self.channels[name]

    def describe(self) -> str:
        return f"web {self.url}" if self.host not in EVERY_INTERFACE else f"web {host_port(self.host, self.port)}"

    def discard(self) -> None:
        """The run did not start (a backend or an output was refused after the bind): the port let go of."""
        self.close()

    def close(self) -> None:
        self.closed = True
        for ch in self.channels.values():
            ch.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(2.0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = unquote(self.path.split("?", 1)[0])
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", _page(server.title, server.names, False).encode())
                    return
                if path == "/stats":
                    self._send(200, "application/json", json_text(server.stats(), None).encode())
                    return
                if path == "/metrics":
                    self._send(200, PROMETHEUS_TYPE, prometheus_text(server.stats()).encode())
                    return
                parts = path.strip("/").split("/")
                if len(parts) in (2, 3) and parts[0] == "cam" and parts[1] in server.channels:
                    ch = server.channels[parts[1]]
                    what = parts[2] if len(parts) == 3 else ""
                    if what in ("", "index.html"):
                        page = _page(f"{server.title}: {ch.cam}", [ch.cam], True)
                        self._send(200, "text/html; charset=utf-8", page.encode())
                        return
                    if what == "frame.jpg":
                        _, jpeg = ch.next_jpeg(-1, 0)
                        if jpeg is None:
                            self._send(503, "text/plain", b"no frame yet\n")
                        else:
                            self._send(200, "image/jpeg", jpeg)
                        return
                    if what == "stream.mjpg":
                        self._stream(ch)
                        return
                cams = ", ".join(f"/cam/{n}/" for n in server.names)
                self._send(404, "text/plain", f"not found: try /, /stats, /metrics, a camera's page ({cams}) or "
                                              f"its stream.mjpg or frame.jpg under it\n".encode())

            def _stream(self, ch: Channel) -> None:
                if not self._start_mjpeg():
                    return
                with ch._cond:
                    ch.clients += 1
                try:
                    send_mjpeg_parts(self.wfile, ch.next_jpeg, lambda: server.closed)
                finally:
                    with ch._cond:
                        ch.clients -= 1

        return Handler


def multi_stats(stats: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """/stats for `stats` ({name: StreamStats}): each source's snapshot and the totals."""

    def snapshot() -> dict[str, Any]:
        return sources_stats({name: st.snapshot() for name, st in stats.items()})

    return snapshot
