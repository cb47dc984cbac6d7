"""A virtual printer running in the test process on a real pty, opened by the test as a host.

The printer, its wire server, the pty, the state file and cards.jsonl are the real ones; only
the encoder reader is a recording stand-in, so these tests need no pcscd (the simulate-process
tests cover the real reader).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import serial

from simulators.printer.card_rebuild import CardPictures
from simulators.chip.emulator import VirtualChip
from simulators.printer.server import EvolisServer, FrameReader, LineFaults, serve
from simulators.printer.machine import Printer, PrinterState, Timings
from simulators.printer.pty_port import PtyPort
from simulators.simulate import CardLog, StateFile

PANEL_K = 82_296  # bytes of a depth-2 panel


def volts(reply: str) -> float:
    """A sensor reading (`Rse;<sensor>`), such as `5,00 Volts`, as a number of volts."""
    number, _, unit = reply.partition(" ")
    assert unit == "Volts", f"not a voltage: {reply!r}"
    return float(number.replace(",", "."))


@dataclass
class RecordingReader:
    """Stand-in for the printer's encoder reader: keeps the chip on it and what happened, in order."""

    remove_delay: float = 0.0
    chip: VirtualChip | None = None
    events: list[tuple[str, float]] = field(default_factory=list)

    def insert(self, chip: VirtualChip) -> None:
        self.chip = chip
        self.events.append(("insert", time.monotonic()))

    def remove(self) -> None:
        time.sleep(self.remove_delay)
        self.chip = None
        self.events.append(("remove", time.monotonic()))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@dataclass
class Rig:
    printer: Printer
    reader: RecordingReader
    host: serial.Serial
    cards_file: Path
    state_file: Path
    line: LineFaults
    port_path: str = ""  # the pty the printer answers on

    def ask(self, command: bytes) -> bytes:
        """Send raw bytes, return the reply without its CR (fails the test if none comes)."""
        self.host.write(command)
        return self.reply()

    def reply(self) -> bytes:
        raw = self.host.read_until(b"\r")
        assert raw.endswith(b"\r"), f"no complete reply, got {raw!r}"
        return raw[:-1]

    def cmd(self, text: str, data: bytes | None = None) -> str:
        """Send one framed command (with a `Db` payload if given), return the reply text."""
        frame = b"\x1b" + text.encode("ascii")
        if data is not None:
            frame += b";" + data
        return self.ask(frame + b"\r").decode("ascii")

    def cards(self) -> list[dict[str, Any]]:
        if not self.cards_file.exists():
            return []
        return [json.loads(line) for line in self.cards_file.read_text().splitlines()]

    def saved_state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())


@contextmanager
def running_printer(
    folder: Path,
    *,
    blanks: int = 5,
    speed: float = 1000.0,
    reader: RecordingReader | None = None,
    frames: FrameReader | None = None,
    timings: Timings = Timings(),
    pictures: bool = False,
    **printer_options: Any,
) -> Iterator[Rig]:
    """Start printer `p1` with state in `folder` (saved state wins over `blanks`); stop it on exit."""
    state_file = StateFile(folder / "printers" / "p1" / "state.json")
    state_file.path.parent.mkdir(parents=True, exist_ok=True)
    state: PrinterState = state_file.load(blanks)
    reader = reader if reader is not None else RecordingReader()
    card_pictures = CardPictures() if pictures else None
    stop = threading.Event()
    printer = Printer(
        "p1",
        state,
        reader=reader,
        chip_type=VirtualChip,
        persist=state_file.save,
        on_card_left=CardLog(folder / "cards.jsonl", card_pictures).append,
        stop=stop,
        timings=timings,
        speed=speed,
        **printer_options,
    )
    printer.power_on()
    port = PtyPort()
    line = LineFaults()
    thread = threading.Thread(target=serve, args=(port, EvolisServer(printer, frames, line), stop))
    thread.start()
    host = serial.Serial(port.path, timeout=5)
    try:
        yield Rig(printer, reader, host, folder / "cards.jsonl", state_file.path, line, port.path)
    finally:
        host.close()
        stop.set()
        thread.join(timeout=10)
        printer.power_off()
        port.close()
        if card_pictures is not None:
            card_pictures.close()
        assert not thread.is_alive(), "the printer loop did not stop"
