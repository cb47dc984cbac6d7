"""A small TCP proxy on 127.0.0.1 that puts the network's faults between the agent and upstream.

Modes, switchable while it runs: `pass` (forward), `reset` (accept, then reset the connection),
`slow` (forward, each chunk held back `delay_s`), `refuse` (answer every request 503 without
asking upstream), `down` (nothing listens: connection refused). Every thread it starts ends on `close()`.
"""

from __future__ import annotations

import socket
import struct
import threading
from enum import StrEnum

_CHUNK = 65536


class Mode(StrEnum):
    PASS = "pass"
    RESET = "reset"
    SLOW = "slow"
    REFUSE = "refuse"
    DOWN = "down"


_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 58\r\n"
            b"Connection: close\r\n\r\n"
            b'{"error": "unavailable", "message": "proxy refuses (test)"}')


class FaultyProxy:
    def __init__(self, target_port: int, *, delay_s: float = 2.0) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.mode = Mode.PASS
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._accepting = self._start(self._accept_loop, self._listener)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode) -> None:
        """Switch faults; `down` closes the listening socket, leaving it reopens it on the same port."""
        if mode is Mode.DOWN and self.mode is not Mode.DOWN:
            self._listener.close()
            self._accepting.join()
            self._drop_all()
        elif mode is not Mode.DOWN and self.mode is Mode.DOWN:
            self._listener = self._listen(self.port)
            self._accepting = self._start(self._accept_loop, self._listener)
        elif mode is not Mode.PASS:
            self._drop_all()  # kept-alive connections must meet the new fault too
        self.mode = mode

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._drop_all()
        for thread in list(self._threads):
            thread.join(timeout=10)

    # -- internals ---------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(16)
        return sock

    def _start(self, target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _reset(sock)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: down or shutting down
            self.connections += 1
            mode = self.mode
            if mode is Mode.RESET:
                _reset(client)
                continue
            if mode is Mode.REFUSE:
                self._start(self._refuse, client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _reset(client)  # upstream itself is down: the agent sees the connection die
                continue
            self._track(client)
            self._track(upstream)
            self._start(self._pipe, client, upstream)
            self._start(self._pipe, upstream, client)

    def _refuse(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            client.recv(_CHUNK)
            client.sendall(_REFUSAL)
        except OSError:
            pass
        finally:
            client.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                data = source.recv(_CHUNK)
                if not data:
                    break
                if self.mode is Mode.SLOW and self._stop.wait(self.delay_s):
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a middlebox dropping the connection does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
