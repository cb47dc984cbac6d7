"""How long the printer's link takes to carry bytes (docs/PROTOCOLS.md section 8).

A real printer cannot take a panel faster than its cable carries it: 576 KB of colour at
115200 baud is fifty seconds. The simulator charges that time on the printer's side of the
link, so a host sees it exactly where it would on real hardware: its write blocks (USB) or
the reply comes late (serial, once the pty's buffer is full).

The speed factor divides link time as it divides mechanical time: at speed N the whole
printer, cable included, is an N-times time-lapse of the real one, so the share of link time
in a card stays what it would be in the field.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Protocol

# A UART sends a start bit, 8 data bits and a stop bit for every byte.
BITS_A_BYTE_ON_SERIAL = 10
DEFAULT_BAUD = 115_200
# Waits shorter than this are carried over to the next bytes: sleeping a few microseconds per
# pty chunk would cost more in wake-ups than it models.
MIN_SLEEP_S = 0.002


class UsbSpeed(Enum):
    """Effective bulk throughput of a USB printer, bytes a second (assumption: typical, not measured).

    Full speed signals 12 Mbit/s, of which bulk transfers carry about 1 MB/s; high speed
    signals 480 Mbit/s, about 35 MB/s for one bulk endpoint.
    """

    FULL = "full"
    HIGH = "high"

    @property
    def bytes_per_second(self) -> float:
        return {UsbSpeed.FULL: 1_000_000.0, UsbSpeed.HIGH: 35_000_000.0}[self]

    @property
    def descriptor_speed(self) -> int:
        """The speed code libusb reports for a device (2 full, 3 high)."""
        return {UsbSpeed.FULL: 2, UsbSpeed.HIGH: 3}[self]


@dataclass(frozen=True)
class Bandwidth:
    """A link's throughput in bytes a second at real time."""

    bytes_per_second: float

    def __post_init__(self) -> None:
        if self.bytes_per_second <= 0:
            raise ValueError(f"a link carries more than 0 bytes a second, not {self.bytes_per_second}")

    @classmethod
    def serial(cls, baud: int) -> Bandwidth:
        """A serial line at `baud` (8N1: ten bits a byte). Raises ValueError for baud <= 0."""
        return cls(baud / BITS_A_BYTE_ON_SERIAL)

    @classmethod
    def usb(cls, speed: UsbSpeed) -> Bandwidth:
        return cls(speed.bytes_per_second)

    def seconds(self, size: int) -> float:
        """Real-time seconds to carry `size` bytes."""
        return size / self.bytes_per_second


class LinkClock:
    """Charges each chunk of bytes its line time, divided by the speed factor.

    A chunk is due when the previous one is done (`now` or later): bytes queue on a busy
    line, and a quiet line does not save up credit.
    """

    def __init__(self, bandwidth: Bandwidth, speed: float = 1.0, *,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be above 0, not {speed}")
        self.bandwidth = bandwidth
        self.speed = speed
        self._sleep = sleep
        self._done_at = 0.0
        self._lock = threading.Lock()
        self.bytes_carried = 0
        self.seconds_charged = 0.0  # line time so far (divided by the speed factor): the printer's, not the host's

    def charge(self, size: int) -> None:
        """Block until `size` more bytes have crossed the link."""
        with self._lock:
            now = time.monotonic()
            line_time = self.bandwidth.seconds(size) / self.speed
            self._done_at = max(self._done_at, now) + line_time
            self.bytes_carried += size
            self.seconds_charged += line_time
            wait = self._done_at - now
        if wait >= MIN_SLEEP_S:
            self._sleep(wait)


class ByteLink(Protocol):
    """The printer's side of a link (simulators.printer.server.ByteLink)."""

    terminator: bytes

    def read(self, timeout: float | None) -> bytes: ...

    def write(self, data: bytes) -> None: ...


class PacedLink:
    """A ByteLink whose incoming bytes reach the printer no faster than `clock` lets them."""

    def __init__(self, link: ByteLink, clock: LinkClock) -> None:
        self._link = link
        self.clock = clock
        self.terminator = link.terminator

    def read(self, timeout: float | None) -> bytes:
        """Bytes the host sent, after their line time; b"" when none came within `timeout`."""
        data = self._link.read(timeout)
        if data:
            self.clock.charge(len(data))
        return data

    def write(self, data: bytes) -> None:
        # Replies are a few bytes: their line time is below anything the model resolves.
        self._link.write(data)
