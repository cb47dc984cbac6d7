"""The Evolis escape-command language on the printer's side (docs/PROTOCOLS.md section 1).

`FrameReader` cuts a byte stream into commands as the Programming Guide frames them (section 3:
start, fields, separator, stop, "the Start Character is not compulsory after the CR character";
NUL padding between commands; downloads taken by their length, never split). `EvolisServer`
answers each command through the printer's firmware (simulators/printer/firmware.py), as text
or, once `Pem`/`Pcom` set it, in the ACK/NACK protocol (guide section 5). `serve` runs the two
over any `ByteLink`, so the pty and the USB relay share them; the link decides the text
reply's terminator. `LineFaults` is what a bad cable or a confused firmware does to the
conversation (garbage bytes, slow replies, commands that fail).
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from simulators.printer.firmware import Command, Firmware
from simulators.printer.panel_compression import CompressedPanelError, expand_colour, expand_mono
from simulators.printer.machine import Printer, PrinterRefused, PrinterStopped, Refusal

log = logging.getLogger(__name__)

ESC = 0x1B
CR = 0x0D
SEMICOLON = 0x3B
NUL = 0x00
ACK = 0x06
NACK = 0x15

PANEL_LINES = 1016
PANEL_DOTS = 648
BITS = {2: 1, 32: 5, 64: 6, 128: 7}
# Bytes of one panel by depth: 648 x 1016 dots at 1, 5, 6 or 7 bits a dot.
PANEL_BYTES = {depth: PANEL_DOTS * PANEL_LINES * bits // 8 for depth, bits in BITS.items()}
MAX_COMPRESSED = 4 * PANEL_BYTES[128]  # beyond any compressed panel: the stream is garbage
MAX_BMP = 4 * 1024 * 1024
MAX_HEADER = 512  # the longest command with text (`Wt`, `Wb`, `Dm`); beyond this it is garbage

# NACK codes of the ACK/NACK protocol (guide section 5) for each refusal. The guide's codes:
# 1 command, 2 parameter, T time-out or mechanical, C cover open, F feeder, R ribbon,
# K/D/W magnetic. Which refusal takes which is an assumption (docs/PROTOCOLS.md).
NACK_CODES: dict[Refusal, str] = {
    Refusal.UNKNOWN_COMMAND: "1",
    Refusal.NOT_EQUIPPED: "1",
    Refusal.NO_SEQUENCE: "1",
    Refusal.PARAMETER: "2",
    Refusal.DATA_LENGTH: "2",
    Refusal.JAM: "T",
    Refusal.TIMEOUT: "T",
    Refusal.COOLING: "T",
    Refusal.HOPPER_FULL: "T",
    Refusal.REJECT_FULL: "T",
    Refusal.CARD_INSIDE: "T",
    Refusal.COMMAND_FAILED: "T",
    Refusal.COVER_OPEN: "C",
    Refusal.FEEDER_EMPTY: "F",
    Refusal.NO_CARD: "F",
    Refusal.RIBBON_ENDED: "R",
    Refusal.MAGNETIC_DATA: "D",
}


@dataclass(frozen=True)
class Malformed:
    """A command that could not be framed; it is answered with the refusal's text."""

    refusal: Refusal


Frame = Command | Malformed


class _Phase(Enum):
    IDLE = "idle"  # between commands: NUL padding, or the start of the next one
    HEADER = "header"  # the command's fields, up to its stop character or its download data
    PAYLOAD = "payload"  # taking the declared number of download bytes
    TRAILER = "trailer"  # the stop character after a download
    DISCARD = "discard"  # dropping the rest of a bad command until the line goes quiet


# Downloads: how many fields (after the name) come before the data.
_DOWNLOAD_FIELDS = {b"Db": 2, b"Dbc": 3, b"Dbp": 4, b"Dbpc": 4, b"Dbmp": 4}


class FrameReader:
    """Cuts a byte stream into frames.

    A download must keep arriving: after `payload_timeout` seconds without a byte it is
    answered `ERR DATA LENGTH`. When a command is bad in a way that leaves its remaining length
    unknown (data longer than declared, an unknown depth, an endless header), the reader drops
    bytes until none has come for `settle` seconds and only then answers: the host waits for
    that answer before sending more, so everything before it belongs to the bad command.

    Before the first stop character a command needs its start character (ESC): bytes before
    it are noise. After a stop character the start character may be left out (guide section 3).
    """

    def __init__(self, payload_timeout: float = 1.0, settle: float = 0.1) -> None:
        self._payload_timeout = payload_timeout
        self._settle = settle
        self._start, self._sep, self._end = ESC, SEMICOLON, CR
        self._phase = _Phase.IDLE
        self._after_end = False
        self._header = bytearray()
        self._payload = bytearray()
        self._payload_size = 0
        self._download: tuple[str, tuple[str, ...]] = ("Db", ())
        self._bmp_pending = False  # Dbmp: the size is in the file's own header
        self._maybe_first_line = False  # Dbc: a short count may be a first line (see _resolve_first_line)
        self._discard_refusal = Refusal.DATA_LENGTH
        self._last_byte_at = 0.0

    def set_framing(self, start: int, sep: int, end: int) -> None:
        """`Psc`: the characters that start, separate and end commands from the next one on."""
        self._start, self._sep, self._end = start, sep, end

    def feed(self, data: bytes, now: float) -> list[Frame]:
        """Take the next bytes of the stream; return the frames they complete, in order."""
        frames: list[Frame] = []
        frames.extend(self.expire(now))
        if data:
            self._last_byte_at = now
        i, n = 0, len(data)
        while i < n:
            phase = self._phase
            if phase is _Phase.IDLE:
                b = data[i]
                if b == NUL or b == self._end:
                    i += 1
                elif b == self._start:
                    self._start_header()
                    i += 1
                elif self._after_end:
                    self._start_header()  # no start character: allowed after a stop character
                else:
                    j = data.find(self._start, i)
                    if j < 0:
                        break
                    i = j
            elif phase is _Phase.HEADER:
                i = self._take_header(data, i, frames)
            elif phase is _Phase.PAYLOAD:
                i = self._take_payload(data, i)
            elif phase is _Phase.TRAILER:
                if data[i] == self._end:
                    name, params = self._download
                    frames.append(Command(name, params, bytes(self._payload)))
                    self._payload.clear()
                    self._phase = _Phase.IDLE
                    self._after_end = True
                    i += 1
                else:
                    self._discard(Refusal.DATA_LENGTH)
            else:  # DISCARD: everything until the line is quiet
                break
        return frames

    def expire(self, now: float) -> list[Frame]:
        """Frames due to time alone: a stalled download, or a discarded command once quiet."""
        due = self.deadline()
        if due is None or now < due:
            return []
        if self._phase is _Phase.PAYLOAD or self._phase is _Phase.TRAILER:
            self._payload.clear()
            self._phase = _Phase.IDLE
            return [Malformed(Refusal.DATA_LENGTH)]
        self._phase = _Phase.IDLE
        return [Malformed(self._discard_refusal)]

    def deadline(self) -> float | None:
        """When `expire` has something to say, or None while nothing is pending on time."""
        if self._phase is _Phase.PAYLOAD or self._phase is _Phase.TRAILER:
            return self._last_byte_at + self._payload_timeout
        if self._phase is _Phase.DISCARD:
            return self._last_byte_at + self._settle
        return None

    def _start_header(self) -> None:
        self._header.clear()
        self._maybe_first_line = False
        self._phase = _Phase.HEADER

    def _discard(self, refusal: Refusal) -> None:
        self._header.clear()
        self._payload.clear()
        self._discard_refusal = refusal
        self._phase = _Phase.DISCARD
        self._after_end = False

    def _take_header(self, data: bytes, i: int, frames: list[Frame]) -> int:
        """Consume header bytes from data[i:]; return the index of the first byte not taken."""
        n = len(data)
        while i < n:
            b = data[i]
            i += 1
            if b == self._end:
                frames.append(self._command(bytes(self._header)))
                self._phase = _Phase.IDLE
                self._after_end = True
                return i
            if b == self._start:
                # An unfinished command followed by a new one: the new one wins.
                self._start_header()
                continue
            if b == NUL and not self._header:
                continue  # padding before a command that left out its start character
            if self._maybe_first_line and self._resolve_first_line(b):
                return i
            self._header.append(b)
            if len(self._header) > MAX_HEADER:
                self._discard(Refusal.UNKNOWN_COMMAND)
                return n
            if b == self._sep and self._download_ready():
                return i
        return i

    def _download_ready(self) -> bool:
        """At a separator: True when the header so far announces download data (phase set)."""
        name, _, rest = bytes(self._header).partition(bytes([self._sep]))
        fields_before_data = _DOWNLOAD_FIELDS.get(name)
        if fields_before_data is None:
            return False
        fields = rest.split(bytes([self._sep]))[:-1]  # the header ends with a separator
        if name == b"Dbc" and len(fields) == 4:
            fields_before_data = 4  # the first line was settled by _resolve_first_line
        elif name == b"Dbc" and len(fields) == 3 and fields[2].isdigit() and int(fields[2]) < PANEL_LINES:
            # Section 4's `Dbc;p;levels;<bytes>;` or the definition page's
            # `Dbc;p;levels;<first line>;<bytes>;`? A whole compressed panel is at least 1016
            # bytes, so a smaller number may be a first line: digits and a separator next say so.
            self._maybe_first_line = True
            return False
        if len(fields) != fields_before_data:
            return False
        self._begin_download(name.decode("ascii"), tuple(f.decode("ascii", "replace") for f in fields))
        return True

    def _resolve_first_line(self, b: int) -> bool:
        """While a `Dbc` header may go on with a byte count: True when `b` settled it as data.

        A digit keeps it open; a separator after digits makes it the four-field form (handled
        by `_download_ready`); anything else means the count was the byte count and `b` is
        the first byte of the data.
        """
        if 0x30 <= b <= 0x39:
            return False
        head = bytes(self._header)
        third = _nth(head, self._sep, 4)  # the one after the count
        if b == self._sep and len(head) > third + 1:
            self._maybe_first_line = False
            return False
        self._maybe_first_line = False
        fields = tuple(f.decode("ascii", "replace") for f in head[:third].split(bytes([self._sep]))[1:])
        early = head[third + 1:] + bytes([b])
        self._begin_download("Dbc", fields)
        if self._phase is _Phase.PAYLOAD:
            self._payload += early[: self._payload_size]
            if len(self._payload) >= self._payload_size:
                self._phase = _Phase.TRAILER
        return True

    def _begin_download(self, name: str, fields: tuple[str, ...]) -> None:
        size = _download_size(name, fields)
        if size is None:
            self._discard(Refusal.PARAMETER)
            return
        self._download = (name, fields)
        self._payload.clear()
        self._bmp_pending = name == "Dbmp"
        self._payload_size = 6 if self._bmp_pending else size
        self._phase = _Phase.PAYLOAD

    def _take_payload(self, data: bytes, i: int) -> int:
        take = min(self._payload_size - len(self._payload), len(data) - i)
        self._payload += data[i : i + take]
        i += take
        if len(self._payload) == self._payload_size:
            if self._bmp_pending:
                # A BMP file says its own length in bytes 2..5 of its header.
                self._bmp_pending = False
                size = struct.unpack_from("<I", self._payload, 2)[0]
                if not self._payload.startswith(b"BM") or not 6 < size <= MAX_BMP:
                    self._discard(Refusal.DATA_LENGTH)
                    return i
                self._payload_size = size
                return i
            self._phase = _Phase.TRAILER
        return i

    def _command(self, header: bytes) -> Frame:
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            return Malformed(Refusal.UNKNOWN_COMMAND)
        name, *params = text.split(chr(self._sep))
        return Command(name, tuple(params))


def _nth(data: bytes, byte: int, n: int) -> int:
    """Index of the n-th occurrence of `byte` in `data` (n from 1)."""
    i = -1
    for _ in range(n):
        i = data.index(byte, i + 1)
    return i


def _download_size(name: str, fields: tuple[str, ...]) -> int | None:
    """Bytes of download data a header announces, or None when the header is wrong."""
    def number(text: str, low: int, high: int) -> int | None:
        return int(text) if text.isdigit() and low <= int(text) <= high else None

    depth = number(fields[1], 2, 128) if name != "Dbmp" else 2
    if depth not in BITS:
        return None
    if name == "Db":
        return PANEL_BYTES[depth]
    if name == "Dbmp":
        return MAX_BMP
    if name == "Dbp":  # panel; levels; first line; lines (at most 420)
        first, lines = number(fields[2], 0, PANEL_LINES - 1), number(fields[3], 1, 420)
        if first is None or lines is None or first + lines > PANEL_LINES:
            return None
        return lines * PANEL_DOTS * BITS[depth] // 8
    if name == "Dbc" and len(fields) == 3:
        return number(fields[2], 1, MAX_COMPRESSED)
    # Dbc with a first line, and Dbpc: panel; levels; first line; bytes
    if number(fields[2], 0, PANEL_LINES - 1) is None:
        return None
    return number(fields[3], 1, MAX_COMPRESSED)


@dataclass
class LineFaults:
    """Faults of the conversation rather than the mechanics; touched only on the printer's thread.

    - `garbage`: bytes of noise sent just before the next reply;
    - `slow_until` / `slow_delay`: until that monotonic time, each reply is held back `slow_delay` s;
    - `command_errors`: command name -> how many more times it answers `ERR COMMAND FAILED`
      without doing anything.
    """

    garbage: int = 0
    slow_until: float = 0.0
    slow_delay: float = 0.0
    command_errors: dict[str, int] = field(default_factory=dict)
    noise: random.Random = field(default_factory=lambda: random.Random(0x1B))

    def clear(self) -> None:
        self.garbage = 0
        self.slow_until = 0.0
        self.command_errors.clear()

    def take_command_error(self, name: str) -> bool:
        """True (and one fewer armed) when `name` must fail this time."""
        left = self.command_errors.get(name, 0)
        if left <= 0:
            return False
        if left == 1:
            del self.command_errors[name]
        else:
            self.command_errors[name] = left - 1
        return True

    def take_garbage(self) -> bytes:
        """The noise to send before the next reply (once)."""
        n, self.garbage = self.garbage, 0
        return self.noise.randbytes(n)

    def delay(self, now: float) -> float:
        return self.slow_delay if now < self.slow_until else 0.0

    def snapshot(self) -> dict[str, object]:
        return {"garbage": self.garbage, "slow_for_s": round(max(0.0, self.slow_until - time.monotonic()), 2),
                "slow_delay_s": self.slow_delay, "command_errors": dict(self.command_errors)}


class EvolisServer:
    """Answers framed commands from one port of one printer.

    `answer` gives the reply text (`OK`, a value, `ERR <TEXT>`); `encode` gives the bytes that
    go back: the text and the link's terminator, or in the ACK/NACK protocol the value (if
    any) followed by ACK, or NACK and its code (guide section 5).
    """

    def __init__(self, printer: Printer, frames: FrameReader | None = None,
                 line_faults: LineFaults | None = None) -> None:
        self.printer = printer
        self.frames = frames if frames is not None else FrameReader()
        self.line_faults = line_faults if line_faults is not None else LineFaults()
        self.firmware = Firmware(printer)
        self._framing = printer.settings.framing
        self.frames.set_framing(*self._framing)

    def answer(self, frame: Frame) -> str:
        """The reply to one frame (`OK`, a value, or `ERR <TEXT>`).

        Raises PrinterStopped when shutdown interrupts a movement: then nothing is answered.
        """
        if isinstance(frame, Malformed):
            return frame.refusal.value
        if self.line_faults.take_command_error(frame.name):
            return Refusal.COMMAND_FAILED.value
        try:
            command = _expanded(frame)
        except PrinterRefused as e:
            return e.refusal.value
        reply = self.firmware.answer(command)
        self.follow_framing()
        return reply

    def follow_framing(self) -> None:
        """Take up framing characters changed by `Psc` or `Srs` (on this port or another)."""
        framing = self.printer.settings.framing
        if framing != self._framing:
            self._framing = framing
            self.frames.set_framing(*framing)

    def encode(self, reply: str, terminator: bytes) -> bytes:
        """The bytes of `reply` on the wire, in the protocol the printer is in now."""
        if not self.printer.settings.errors.ack_nack:
            return reply.encode("ascii") + terminator
        refusal = next((r for r in Refusal if r.value == reply), None)
        if refusal is not None or reply.startswith("ERR"):
            code = NACK_CODES.get(refusal, "1") if refusal is not None else "1"
            return bytes([NACK]) + code.encode("ascii")
        value = b"" if reply == "OK" else reply.encode("ascii")
        return value + bytes([ACK])


def _expanded(frame: Command) -> Command:
    """A download as whole panel bytes (compressed or partial forms expanded), for the firmware.

    Raises PrinterRefused(DATA_LENGTH / PARAMETER) when the data does not make a panel.
    """
    if frame.name not in ("Dbc", "Dbp", "Dbpc") or frame.data is None:
        return frame
    panel, levels = frame.params[0], frame.params[1]
    depth = int(levels)
    bits = BITS[depth]
    line_bytes = PANEL_DOTS * bits // 8
    try:
        if frame.name == "Dbc" and len(frame.params) == 3:
            if depth == 2:
                data = expand_mono(frame.data)
            else:
                data = expand_colour(frame.data, bits)
            return Command(frame.name, (panel, levels), data)
        first = int(frame.params[2])
        if frame.name == "Dbp":
            lines = frame.data
        elif depth == 2:
            lines = expand_mono(frame.data, lines=None)
        else:
            lines = expand_colour(frame.data, bits, lines=None)
    except CompressedPanelError:
        raise PrinterRefused(Refusal.DATA_LENGTH) from None
    count = len(lines) // line_bytes
    if first + count > PANEL_LINES or len(lines) % line_bytes:
        raise PrinterRefused(Refusal.DATA_LENGTH)
    whole = bytes(first * line_bytes) + lines + bytes((PANEL_LINES - first - count) * line_bytes)
    return Command(frame.name, (panel, levels), whole)


class ByteLink(Protocol):
    """Where the host's bytes come from and the replies go (a pty, a USB relay)."""

    terminator: bytes

    def read(self, timeout: float | None) -> bytes:
        """Bytes the host sent, or b"" when none came within `timeout` seconds."""
        ...

    def write(self, data: bytes) -> None: ...


def serve(link: ByteLink, server: EvolisServer, stop: threading.Event, poll: float = 0.2) -> None:
    """Answer commands from `link` until `stop` is set; returns when stopped.

    `poll` bounds how long a read waits, so that `stop` is seen soon after it is set.
    """
    frames = server.frames
    faults = server.line_faults
    while not stop.is_set():
        server.printer.run_pending()
        server.follow_framing()
        due = frames.deadline()
        wait = poll if due is None else max(0.0, min(poll, due - time.monotonic()))
        data = link.read(wait)
        for frame in frames.feed(data, time.monotonic()):
            try:
                reply = server.answer(frame)
            except PrinterStopped:
                return
            if isinstance(frame, Command):
                log.debug("%s: %s -> %s", server.printer.name, frame.name, reply)
            delay = faults.delay(time.monotonic())
            if delay and stop.wait(delay):
                return
            link.write(faults.take_garbage() + server.encode(reply, link.terminator))
