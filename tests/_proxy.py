"""A TCP proxy in front of the test PostgreSQL that can freeze: it keeps accepting and keeps every
socket open, but stops forwarding bytes, as a stalled network path or a hung middlebox does.
TCP keepalives still get answered (by this process's kernel), so only timeouts can end the wait.

    with FreezingProxy("127.0.0.1", 5432, freeze_on=b"COPY") as proxy:
        url = proxy.url(db_url)   # the same database, through the proxy

``freeze_on``: a connection freezes (both directions) once the client has sent bytes containing
it, after forwarding them to the server: the server runs the statement, its answer never arrives.
``freeze()`` freezes every connection from then on, new ones included (they are accepted, and
their startup packet is never forwarded: the connect timeout's case).
"""

from __future__ import annotations

import socket
import threading
import time

from sqlalchemy.engine import make_url


class FreezingProxy:
    def __init__(self, host: str, port: int, *, freeze_on: bytes | None = None):
        self.target = (host, port)
        self.freeze_on = freeze_on
        self.frozen_connections = 0
        self.connections = 0
        self.client_bytes = bytearray()  # everything the clients sent, in arrival order
        self.first_connected_at: float | None = None  # time.monotonic() of the first connection
        self._frozen_all = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FreezingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def url(self, url: str) -> str:
        """``url`` pointing at this proxy instead of the server."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def sent(self, pattern: bytes) -> int:
        """How many times the clients sent ``pattern`` (a statement's text, say)."""
        with self._lock:
            return bytes(self.client_bytes).count(pattern)

    def freeze(self) -> None:
        self._frozen_all.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
                self.connections += 1
                if self.first_connected_at is None:
                    self.first_connected_at = time.monotonic()
            frozen = threading.Event()
            if self._frozen_all.is_set():
                frozen.set()
            threading.Thread(target=self._pump, args=(client, server, frozen, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, frozen, False), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket, frozen: threading.Event,
              from_client: bool) -> None:
        seen = b""  # the tail of what the client sent, so a pattern split across reads is found
        try:
            while not self._closed.is_set():
                if self._frozen_all.is_set():
                    frozen.set()
                if frozen.is_set():  # hold everything: read nothing more, forward nothing
                    self._closed.wait(0.05)
                    continue
                source.settimeout(0.05)
                try:
                    data = source.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    destination.shutdown(socket.SHUT_WR)
                    return
                destination.sendall(data)
                if from_client:
                    with self._lock:
                        self.client_bytes += data
                if from_client and self.freeze_on is not None:
                    seen = (seen + data)[-(len(self.freeze_on) + 65536):]
                    if self.freeze_on in seen:
                        with self._lock:
                            self.frozen_connections += 1
                        frozen.set()
        except OSError:
            return
