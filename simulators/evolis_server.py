"""The Evolis escape-command language on the printer's side (docs/PROTOCOLS.md section 1).

`FrameReader` cuts a byte stream into commands (partial reads, several commands in one read,
NUL padding, binary `Db` payloads taken by length). `EvolisServer` answers each command from a
`Printer`. `serve` runs the two over any `ByteLink`, so the pty here and a USB relay later share
them; the link alone decides the reply terminator. `LineFaults` is what a bad cable or a
confused firmware does to the conversation (garbage bytes, slow replies, commands that fail).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Protocol

from simulators.panel_compression import MAX_COMPRESSED, CompressedPanelError, expand_mono
from simulators.printer import Panel, Printer, PrinterRefused, PrinterStopped, Refusal, Side, Station

log = logging.getLogger(__name__)

ESC = 0x1B
CR = 0x0D

# Bytes of one panel by depth: 648 x 1016 dots at 1, 5, 6 or 7 bits a dot.
PANEL_BYTES = {2: 82_296, 32: 411_480, 64: 493_776, 128: 576_072}

MAX_HEADER = 64  # no command of ours is longer; beyond this the stream is garbage


@dataclass(frozen=True)
class Command:
    """One complete command: its name, its `;` parameters and, for `Db`, the panel bytes."""

    name: str
    params: tuple[str, ...]
    data: bytes | None = None


@dataclass(frozen=True)
class Malformed:
    """A command that could not be framed; it is answered with `ERR <refusal>`."""

    refusal: Refusal


Frame = Command | Malformed


class _Phase(Enum):
    IDLE = "idle"  # waiting for ESC; anything else is dropped
    HEADER = "header"  # between ESC and CR, or up to a `Db` payload
    PAYLOAD = "payload"  # taking the declared number of `Db` bytes
    TRAILER = "trailer"  # the CR after a payload
    DISCARD = "discard"  # dropping the rest of a bad command until the line goes quiet


class FrameReader:
    """Cuts a byte stream into frames.

    A `Db` payload must keep arriving: after `payload_timeout` seconds without a byte it is
    answered `ERR DATA LENGTH`. When a command is bad in a way that leaves its remaining length
    unknown (a payload longer than declared, an unknown depth, an endless header), the reader
    drops bytes until none has come for `settle` seconds and only then answers: the host waits
    for that answer before sending more, so everything before it belongs to the bad command.
    Then parsing starts again at the next ESC.
    """

    def __init__(self, payload_timeout: float = 1.0, settle: float = 0.1) -> None:
        self._payload_timeout = payload_timeout
        self._settle = settle
        self._phase = _Phase.IDLE
        self._header = bytearray()
        self._payload = bytearray()
        self._payload_size = 0
        self._db_params: tuple[str, ...] = ()
        self._payload_command = "Db"  # or "Dbc", whose payload is a compressed 1-bit panel
        self._discard_refusal = Refusal.DATA_LENGTH
        self._last_byte_at = 0.0

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
                j = data.find(ESC, i)
                if j < 0:
                    break
                self._start_header()
                i = j + 1
            elif phase is _Phase.HEADER:
                i = self._take_header(data, i, frames)
            elif phase is _Phase.PAYLOAD:
                take = min(self._payload_size - len(self._payload), n - i)
                self._payload += data[i : i + take]
                i += take
                if len(self._payload) == self._payload_size:
                    self._phase = _Phase.TRAILER
            elif phase is _Phase.TRAILER:
                if data[i] == CR:
                    frames.append(Command(self._payload_command, self._db_params, bytes(self._payload)))
                    self._payload.clear()
                    self._phase = _Phase.IDLE
                    i += 1
                else:
                    self._discard(Refusal.DATA_LENGTH)
            else:  # DISCARD: everything until the line is quiet
                break
        return frames

    def expire(self, now: float) -> list[Frame]:
        """Frames due to time alone: a stalled payload, or a discarded command once quiet."""
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
        self._phase = _Phase.HEADER

    def _discard(self, refusal: Refusal) -> None:
        self._header.clear()
        self._payload.clear()
        self._discard_refusal = refusal
        self._phase = _Phase.DISCARD

    def _take_header(self, data: bytes, i: int, frames: list[Frame]) -> int:
        """Consume header bytes from data[i:]; return the index of the first byte not taken."""
        n = len(data)
        while i < n:
            b = data[i]
            i += 1
            if b == CR:
                frames.append(self._command(bytes(self._header)))
                self._phase = _Phase.IDLE
                return i
            if b == ESC:
                # An unfinished command followed by a new one: the new one wins.
                self._header.clear()
                continue
            self._header.append(b)
            if len(self._header) > MAX_HEADER:
                self._discard(Refusal.UNKNOWN_COMMAND)
                return n
            if b == ord(";") and self._header.startswith(b"Db;") and self._header.count(b";") == 3:
                self._start_payload()
                return i
            if b == ord(";") and self._header.startswith(b"Dbc;") and self._header.count(b";") == 4:
                self._start_compressed_payload()
                return i
        return i

    def _start_payload(self) -> None:
        fields = self._header.decode("ascii", errors="replace").split(";")
        params = (fields[1], fields[2])
        try:
            size = PANEL_BYTES[int(params[1])]
        except (ValueError, KeyError):
            self._discard(Refusal.PARAMETER)
            return
        self._payload_command = "Db"
        self._db_params = params
        self._payload_size = size
        self._payload.clear()
        self._phase = _Phase.PAYLOAD

    def _start_compressed_payload(self) -> None:
        # `Dbc;<panel>;2;<length>;`: the length is of the compressed bytes (simulators/panel_compression.py).
        fields = self._header.decode("ascii", errors="replace").split(";")
        params = (fields[1], fields[2])
        if params[1] != "2" or not fields[3].isdigit() or not 0 < int(fields[3]) <= MAX_COMPRESSED:
            self._discard(Refusal.PARAMETER)
            return
        self._payload_command = "Dbc"
        self._db_params = params
        self._payload_size = int(fields[3])
        self._payload.clear()
        self._phase = _Phase.PAYLOAD

    @staticmethod
    def _command(header: bytes) -> Frame:
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            return Malformed(Refusal.UNKNOWN_COMMAND)
        name, *params = text.split(";")
        return Command(name, tuple(params))


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


_SIDES = {"Sr": Side.FRONT, "Sv": Side.BACK}
_STATIONS = {"Sic": Station.CONTACTLESS, "Sis": Station.CONTACT, "Si": Station.PRINT}


class EvolisServer:
    """Answers framed commands from one printer. Replies carry no terminator; the link adds it."""

    def __init__(self, printer: Printer, frames: FrameReader | None = None,
                 line_faults: LineFaults | None = None) -> None:
        self.printer = printer
        self.frames = frames if frames is not None else FrameReader()
        self.line_faults = line_faults if line_faults is not None else LineFaults()
        p = printer
        self._no_params: dict[str, Callable[[], str]] = {
            "Rfv": lambda: p.identity.firmware,
            "Rsn": lambda: p.identity.serial_number,
            "Rtp": lambda: p.identity.model,
            "Rr": p.ribbon_type,
            "Rst": self._status,
            "Ss": _ok(p.start_sequence),
            "Se": _ok(p.eject),
            "Ser": _ok(p.reject),
            "Scp": _ok(p.clean),
            "Srs": _ok(p.reset),
            "Sa": _ok(p.self_adjust),
            "St": _ok(p.test_card),
        }
        self._one_param: dict[str, dict[str, Callable[[], str]]] = {
            "Rco": {
                "c": lambda: str(p.counters().cards_inserted),
                "p": lambda: str(p.counters().panels_printed),
                "l": lambda: str(p.counters().ribbon_remaining),
            },
            "Rse": {
                "o": lambda: "1" if p.cover_open() else "0",
                "p": lambda: "1" if p.card_inside() else "0",
            },
            "Sk": {"f": lambda: "3" if p.feeder_empty() else "0"},
        }

    def answer(self, frame: Frame) -> str:
        """The reply to one frame (`OK`, a value, or `ERR <TEXT>`).

        Raises PrinterStopped when shutdown interrupts a movement: then nothing is answered.
        """
        if isinstance(frame, Malformed):
            return f"ERR {frame.refusal.value}"
        if self.line_faults.take_command_error(frame.name):
            return f"ERR {Refusal.COMMAND_FAILED.value}"
        try:
            return self._dispatch(frame)
        except PrinterRefused as e:
            return f"ERR {e.refusal.value}"

    def _dispatch(self, c: Command) -> str:
        if c.name in self._no_params:
            _expect(c, 0)
            return self._no_params[c.name]()
        if c.name in self._one_param:
            _expect(c, 1)
            choice = self._one_param[c.name].get(c.params[0])
            if choice is None:
                raise PrinterRefused(Refusal.PARAMETER)
            return choice()
        if c.name in _STATIONS:
            _expect(c, 0)
            self.printer.feed(_STATIONS[c.name])
            return "OK"
        if c.name in _SIDES:
            _expect(c, 0)
            self.printer.select_side(_SIDES[c.name])
            return "OK"
        if c.name == "Pr":
            _expect(c, 1)
            if not (c.params[0].isascii() and c.params[0].isalpha() and c.params[0].islower()):
                raise PrinterRefused(Refusal.PARAMETER)
            self.printer.set_ribbon_type(c.params[0])
            return "OK"
        if c.name == "Db":
            if c.data is None:  # `Db` ended by CR before its depth: no payload can follow
                raise PrinterRefused(Refusal.PARAMETER)
            try:
                panel = Panel(c.params[0])
            except ValueError:
                raise PrinterRefused(Refusal.PARAMETER) from None
            self.printer.print_panel(panel, int(c.params[1]), c.data)
            return "OK"
        if c.name == "Dbc":
            if c.data is None or c.params[0] not in ("k", "o"):  # only 1-bit panels have the compressed form
                raise PrinterRefused(Refusal.PARAMETER)
            try:
                data = expand_mono(c.data)
            except CompressedPanelError:
                raise PrinterRefused(Refusal.DATA_LENGTH) from None
            self.printer.print_panel(Panel(c.params[0]), 2, data)
            return "OK"
        raise PrinterRefused(Refusal.UNKNOWN_COMMAND)

    def _status(self) -> str:
        s = self.printer.status()
        return f"{s.info:08X};{s.warning:08X};{s.error:08X}"


def _ok(action: Callable[[], object]) -> Callable[[], str]:
    def run() -> str:
        action()
        return "OK"

    return run


def _expect(c: Command, count: int) -> None:
    if len(c.params) != count:
        raise PrinterRefused(Refusal.PARAMETER)


class ByteLink(Protocol):
    """Where the host's bytes come from and the replies go (a pty, later a USB relay)."""

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
            link.write(faults.take_garbage() + reply.encode("ascii") + link.terminator)
