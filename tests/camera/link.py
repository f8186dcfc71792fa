"""A network link between srx and an RTSP server, for the tests: a TCP proxy on loopback that
passes the RTSP connection (and the video interleaved in it, over TCP) both ways, notes the
`Transport:` each SETUP asks for, and can make the link poor: `rate` caps what goes to the client
(bytes a second; None: as fast as it comes; what waits is queued in the link, none lost), `delay`
and `jitter` hold what the server sends that many seconds (plus up to `jitter` more, in order),
`drop_udp` points the server's RTP packets of a UDP
session at a port where nothing listens (a NAT or firewall that lets the RTSP connection through
but not the video)."""
from __future__ import annotations

import collections
import random
import re
import socket
import threading
import time


class Link:
    def __init__(self, server_port: int, drop_udp: bool = False) -> None:
        self.server_port, self.drop_udp = server_port, drop_udp
        self.rate: float | None = None
        self.delay, self.jitter = 0.0, 0.0
        self.transports: list[str] = []  # each SETUP's Transport header, as the client sent it
        self._listen = socket.socket()
        self._listen.bind(("127.0.0.1", 0))
        self._listen.listen(8)
        self.port = self._listen.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "clip") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self._closed.set()
        self._listen.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.server_port))
            self._sockets += [client, server]
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket) -> None:
        """Client to server: the RTSP requests, their SETUP transports noted (and rewritten)."""
        while True:
            try:
                data = client.recv(65536)
                if not data:
                    break
                for found in re.findall(rb"Transport: ([^\r\n]*)", data):
                    self.transports.append(found.decode())
                if self.drop_udp:  # the server sends the video to a port of this host where nothing listens
                    data = re.sub(rb"client_port=\d+-\d+", b"client_port=9-10", data)
                server.sendall(data)
            except OSError:
                break
        for s in (client, server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        """Server to client: what the server sends is taken at once (the server never waits, as a
        camera would not for a Wi-Fi bridge's queue) and passed on at most `rate` bytes a second."""
        queue: collections.deque[tuple[float, bytes]] = collections.deque()
        ready = threading.Condition()
        due = [0.0]

        def send() -> None:
            while True:
                with ready:
                    while not queue:
                        ready.wait()
                    at, data = queue.popleft()
                time.sleep(max(0.0, at - time.monotonic()))
                if not data:
                    break
                for i in range(0, len(data), 4096):
                    piece = data[i:i + 4096]
                    if self.rate:
                        time.sleep(len(piece) / self.rate)
                    try:
                        client.sendall(piece)
                    except OSError:
                        return
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        threading.Thread(target=send, daemon=True).start()
        while True:
            try:
                data = server.recv(65536)
            except OSError:
                data = b""
            due[0] = max(due[0], time.monotonic() + self.delay + random.uniform(0.0, self.jitter))
            with ready:
                queue.append((due[0], data))
                ready.notify()
            if not data:
                break
