"""Links to a card printer: the base class and the serial link. A link moves bytes and frames
replies; it knows nothing of the command language. `drivers/link/url.py` opens one by URL:

    serial:///dev/ttyUSB0?baud=115200     pyserial, exclusive, 115200 baud unless told
    usb://0f49:1001?serial=SIMP00001       pyusb (drivers/link/usb.py): vendor id, optional
                                           product id (hex, `0x` optional), optional serial
    usb://0f49?serial=...&relay=/run/x.sock  the same through the relay backend to the virtual
                                           printer; without `relay`, PRINTSTATION_USB_RELAY
                                           (':'-separated sockets) names it, else real USB

A `trace` callback sees every byte: trace("tx", data) for each send, trace("rx", chunk) for
each chunk read, so a technician can switch on a byte log without touching the driver.
"""

from __future__ import annotations

import errno
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import serial

from drivers.printer_errors import LinkError, ProtocolError, ReplyTimeout

__all__ = ["Link", "LinkError", "ProtocolError", "ReplyTimeout", "SerialLink", "Trace"]

Trace = Callable[[str, bytes], None]

DEFAULT_BAUD = 115200
# The longest reply the language has is a few dozen characters; anything far longer
# without a terminator is noise on the line, not a reply still arriving.
MAX_REPLY = 1024
# Extra seconds a write may take beyond the line time of its bytes.
WRITE_MARGIN = 5.0

_TERMINATOR = re.compile(rb"[\r\x00\x06]")
# The ACK/NACK protocol (Programming Guide section 5, set by `Pem` or `Pcom`): a reply is a
# value followed by ACK, or NACK and one code character. They are passed up as the reply's last
# character (ACK) or its first two (NACK + code), for the dialect to read.
ACK = "\x06"
NACK = "\x15"
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")
# NUL padding (USB) and a stray LF (a printer ending lines with CR LF) before a reply.
_PADDING = b"\x00\n"


class Link(ABC):
    """A byte link to one printer. Replies end with CR or NUL on every transport."""

    # Whether input need be drained before a command only after trouble: true of a transport that
    # carries nothing but the printer's answers (USB: packets, no line noise), so that once an
    # answer came whole with nothing after it, nothing can be waiting. A serial line may pick up
    # noise at any time and is drained before every command (a local flush: it costs nothing).
    DRAIN_ONLY_AFTER_TROUBLE = False

    def __init__(self, device: str, trace: Trace | None) -> None:
        self.device = device
        self._trace = trace
        self._pending = bytearray()
        # The last command's answer came whole and nothing followed it. False from the start (a
        # host that died may have left an answer behind) and after any timeout or failure.
        self._settled = False

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Write all of `data` in one go. Raises LinkError if the link is closed or fails."""

    @abstractmethod
    def _read_some(self, timeout: float) -> bytes:
        """Block up to `timeout` s for input; return what is there (b"" when nothing came)."""

    @abstractmethod
    def _discard_input(self) -> None:
        """Drop whatever the transport holds unread."""

    @abstractmethod
    def close(self) -> None:
        """Release the device. Closing twice is harmless."""

    def transfer_seconds(self, size: int) -> float:
        """How long `size` bytes take on this link at its nominal rate (serial: 10 bits a byte)."""
        return 0.0

    def read_reply(self, timeout: float, *, patience: float | None = None,
                   on_overdue: Callable[[float], None] | None = None) -> str:
        """Read one reply (without its terminator) within `timeout` seconds.

        With `patience`, `on_overdue(seconds waited)` is called once when no reply has come after
        that long (the printer may have stopped answering); the wait goes on to `timeout`.
        NUL padding before a reply is skipped; the reply ends at the first CR or NUL; bytes
        after it stay for the next call. In the ACK/NACK protocol a reply ends at ACK, which is
        kept as its last character, or is NACK and its code. Raises ReplyTimeout when no complete reply comes in
        time, ProtocolError when the reply is not printable ASCII or runs past MAX_REPLY
        bytes, LinkError when the link fails.
        """
        started = time.monotonic()
        deadline = started + timeout
        overdue_at = started + patience if patience is not None and on_overdue is not None else None
        while True:
            reply = self._take_reply()
            if reply is not None:
                self._settled = not self._pending
                return reply
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                raise ReplyTimeout(self.device, timeout)
            if overdue_at is not None and now >= overdue_at:
                overdue_at = None
                on_overdue(now - started)  # type: ignore[misc]  # checked above
            chunk = self._read_some(min(left, overdue_at - now) if overdue_at is not None else left)
            if chunk and self._trace is not None:
                self._trace("rx", chunk)
            self._pending += chunk

    def reset_input(self) -> None:
        """Discard stale input: a late reply or noise must not be taken for the next answer.

        Called before each command; until that command's answer has come whole, input is unsettled."""
        self._pending.clear()
        if not (self._settled and self.DRAIN_ONLY_AFTER_TROUBLE):
            self._discard_input()
        self._settled = False

    def drain(self, *, quiet: float, most: float) -> int:
        """Drop input until none has come for `quiet` seconds, or `most` seconds have passed:
        for when the conversation is out of step and a late answer may still be on its way.
        Returns how many bytes were dropped."""
        dropped = len(self._pending)
        self._pending.clear()
        deadline = time.monotonic() + most
        while (left := deadline - time.monotonic()) > 0:
            chunk = self._read_some(min(quiet, left))
            if not chunk:
                break
            if self._trace is not None:
                self._trace("rx", chunk)
            dropped += len(chunk)
        self._settled = False
        return dropped

    def _take_reply(self) -> str | None:
        body = self._pending.lstrip(_PADDING)
        if body[:1] == NACK.encode():
            if len(body) < 2:
                self._pending = body
                return None
            code = body[1:2]
            self._pending = body[2:]
            if not _PRINTABLE.fullmatch(code):
                raise ProtocolError(f"the printer on {self.device} sent NACK with a code that is not text: {code!r}")
            return NACK + code.decode("ascii")
        end = _TERMINATOR.search(body)
        if end is None:
            if len(body) > MAX_REPLY:
                self._pending.clear()
                raise ProtocolError(f"the printer on {self.device} sent {len(body)} bytes without ending a reply")
            self._pending = body
            return None
        raw = bytes(body[: end.start()])
        acknowledged = body[end.start()] == 0x06
        self._pending = body[end.end() :]
        if len(raw) > MAX_REPLY:
            raise ProtocolError(f"the printer on {self.device} sent a reply of {len(raw)} bytes")
        if not _PRINTABLE.fullmatch(raw):
            raise ProtocolError(f"the printer on {self.device} sent a reply that is not text: {raw[:40]!r}")
        return raw.decode("ascii") + (ACK if acknowledged else "")

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialLink(Link):
    """A printer on a serial port (or a pty standing in for one), through pyserial."""

    def transfer_seconds(self, size: int) -> float:
        return size * 10 / self._baud

    def __init__(self, device: str, baud: int, *, trace: Trace | None = None) -> None:
        super().__init__(device, trace)
        self._baud = baud
        try:
            self._port: serial.Serial | None = serial.Serial(
                port=device, baudrate=baud, timeout=0, write_timeout=WRITE_MARGIN, exclusive=True
            )
        except serial.SerialException as e:
            raise LinkError(device, _open_failure(device, e)) from e

    def send(self, data: bytes) -> None:
        port = self._open_port()
        if self._trace is not None:
            self._trace("tx", data)
        # A panel is over half a megabyte: at a slow baud rate its line time dominates.
        allowed = WRITE_MARGIN + 2 * len(data) * 10 / self._baud
        try:
            if port.write_timeout != allowed:
                port.write_timeout = allowed
            port.write(data)
        except serial.SerialTimeoutException as e:
            raise LinkError(
                self.device,
                f"the printer on {self.device} stopped taking data (nothing moved for {allowed:.0f} s); "
                "check that it is switched on and not showing an error",
            ) from e
        except (serial.SerialException, OSError) as e:
            raise LinkError(self.device, _io_failure(self.device, e)) from e

    def _read_some(self, timeout: float) -> bytes:
        port = self._open_port()
        try:
            port.timeout = timeout
            # At least one byte (blocking up to the deadline), then whatever else has arrived.
            return port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as e:
            raise LinkError(self.device, _io_failure(self.device, e)) from e

    def _discard_input(self) -> None:
        port = self._open_port()
        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as e:
            raise LinkError(self.device, _io_failure(self.device, e)) from e

    def close(self) -> None:
        if self._port is not None:
            port, self._port = self._port, None
            port.close()

    def _open_port(self) -> serial.Serial:
        if self._port is None:
            raise LinkError(self.device, f"the link to the printer on {self.device} is closed")
        return self._port


def _open_failure(device: str, e: serial.SerialException) -> str:
    code = e.errno
    if code is None and isinstance(e.__context__, OSError):
        code = e.__context__.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return (
            f"cannot open the printer link {device}: no such device; check that the printer is "
            "switched on, its cable is plugged in, and the device path in the configuration is right"
        )
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"cannot open the printer link {device}: permission denied; the service user must be "
            "in the group that owns the device (usually dialout)"
        )
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
        return (
            f"cannot open the printer link {device}: another program is using it "
            "(is a second printstation or a vendor tool running?)"
        )
    return f"cannot open the printer link {device}: {e}"


def _io_failure(device: str, e: Exception) -> str:
    return (
        f"lost the link to the printer on {device} ({e}); check that the printer is switched on "
        "and its cable is plugged in"
    )
