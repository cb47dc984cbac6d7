"""Put a VirtualChip on a vpcd slot of the real pcscd (docs/PROTOCOLS.md section 2).

The card is present on the reader while our socket to vpcd is connected: `insert`
connects and serves APDUs in a thread, `remove` closes the socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from simulators.chip.emulator import VirtualChip

# PC/SC part 3 ATR of a contactless card without historical bytes: 3B 80 80 01, TCK 01.
DEFAULT_ATR = bytes.fromhex("3B80800101")

# vpcd control codes (one-byte messages).
_POWER_OFF = 0
_POWER_ON = 1
_RESET = 2
_GET_ATR = 4

_CONNECT_TIMEOUT_S = 2.0
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only

# pcscd learns that a vpcd card left only by polling (every ~0.4 s). If a new card
# connects before pcscd has polled once with no card there, pcscd never sees the slot
# empty; after a transmit that failed because of the removal, it then shows the slot
# empty while the new card sits in it. So a new card waits until one poll has passed.
# The wait is per slot, whichever VpcdCard object last used it.
REMOVAL_SETTLE_S = 0.6
_last_removal: dict[tuple[str, int], float] = {}
_last_removal_lock = threading.Lock()

# The seam for fault injection: given the command APDU and the chip, return the response
# APDU to send, or None to send nothing (a mute card). The default asks the chip.
ApduHook = Callable[[bytes, VirtualChip], bytes | None]


def answer_normally(apdu: bytes, chip: VirtualChip) -> bytes | None:
    """The hook of a healthy card: the chip's own answer."""
    return chip.process_apdu(apdu)


class VpcdUnavailable(ConnectionError):
    """vpcd does not accept a card on this port: pcscd is down or has no vpcd driver for it."""


class VpcdCard:
    """One vpcd slot seen from the card's side."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.atr = DEFAULT_ATR  # b"": no answer to power-on (vpcd then shows no card at all)
        self._hook: ApduHook = answer_normally
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._chip: VirtualChip | None = None

    @property
    def chip(self) -> VirtualChip | None:
        """The chip on the reader now, or None."""
        return self._chip

    def set_apdu_hook(self, hook: ApduHook | None) -> None:
        """Answer APDUs through `hook` from now on (None: the healthy default).

        A hook (like an ATR of b"") belongs to one card: `remove` puts the healthy defaults back.
        """
        self._hook = hook or answer_normally

    def insert(self, chip: VirtualChip) -> None:
        """Connect `chip` to vpcd and serve it in a thread. A card already inserted is removed first.

        Returns at once, except within REMOVAL_SETTLE_S of a removal, which it waits out.
        Raises VpcdUnavailable if nothing listens on the port.
        """
        with self._lock:
            self._remove_locked()
            with _last_removal_lock:
                removed_at = _last_removal.get((self.host, self.port), float("-inf"))
            settle = removed_at + REMOVAL_SETTLE_S - time.monotonic()
            if settle > 0:
                time.sleep(settle)
            try:
                sock = socket.create_connection((self.host, self.port), timeout=_CONNECT_TIMEOUT_S)
            except OSError as e:
                raise VpcdUnavailable(f"no vpcd listening on {self.host}:{self.port}: {e}") from e
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._chip = sock, chip
            self._thread = threading.Thread(
                target=self._serve, args=(sock, chip), name=f"vpcd-card-{self.port}", daemon=True
            )
            self._thread.start()

    def remove(self) -> None:
        """Take the card off the reader; returns once the socket is closed and the thread ended.

        The next card answers normally again (default hook and ATR).
        """
        with self._lock:
            self._remove_locked()
            self._hook, self.atr = answer_normally, DEFAULT_ATR

    def remove_if(self, chip: VirtualChip) -> None:
        """`remove`, but only while `chip` is the one on the reader (a fault's timer must not
        take away the next card)."""
        with self._lock:
            if self._chip is not chip:
                return
            self._remove_locked()
            self._hook, self.atr = answer_normally, DEFAULT_ATR

    def _remove_locked(self) -> None:
        sock, thread = self._sock, self._thread
        self._sock = self._thread = self._chip = None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the serving thread out of recv
        except OSError:
            pass  # vpcd closed it first
        sock.close()
        with _last_removal_lock:
            _last_removal[(self.host, self.port)] = time.monotonic()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _serve(self, sock: socket.socket, chip: VirtualChip) -> None:
        try:
            while True:
                message = _read_frame(sock)
                if message is None:
                    return
                reply = self._answer(message, chip)
                if reply is not None:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return  # removed (socket shut down) or vpcd went away: the card is gone either way

    def _answer(self, message: bytes, chip: VirtualChip) -> bytes | None:
        if len(message) == 1:
            code = message[0]
            if code == _GET_ATR:
                return self.atr
            if code in (_POWER_ON, _RESET, _POWER_OFF):
                chip.reset()
            return None
        return self._hook(message, chip)


def _read_frame(sock: socket.socket) -> bytes | None:
    """One length-prefixed vpcd message; None when the peer closed the connection."""
    header = _read_exactly(sock, 2)
    if header is None:
        return None
    return _read_exactly(sock, int.from_bytes(header, "big"))


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    # TCP may deliver a frame in pieces: keep reading until it is whole.
    buf = bytearray()
    while len(buf) < n:
        if _QUICKACK is not None:
            # vpcd's socket uses Nagle; if our ACK is delayed (40 ms on Linux), vpcd holds
            # its next command until then. Linux clears quick-ACK mode, so set it each time.
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
