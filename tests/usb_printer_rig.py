"""A virtual printer in the test process, reached over USB: its UsbPort on a real Unix socket,
the real wire server and printer; pyusb on the host side through the relay backend.

Only the encoder reader is a recording stand-in, so these tests need no pcscd (the simulate
process tests in test_driver_on_simulator.py cover the real reader).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from simulators.chip.emulator import VirtualChip
from simulators.printer.server import EvolisServer, serve
from simulators.printer.link_bandwidth import LinkClock
from simulators.printer.machine import CardLeft, Identity, Printer, PrinterState
from simulators.printer.usb_port import VIRTUAL_PRODUCT_ID, VIRTUAL_VENDOR_ID, UsbIdentity, UsbPort
from tests.sim_printer_rig import RecordingReader

SERIAL = "SIMP00009"


@dataclass
class UsbRig:
    printer: Printer
    port: UsbPort
    cards: list[CardLeft] = field(default_factory=list)

    def url(self, serial: str = SERIAL) -> str:
        return f"usb://{VIRTUAL_VENDOR_ID:04x}:{VIRTUAL_PRODUCT_ID:04x}?serial={serial}&relay={self.port.path}"


@contextmanager
def usb_printer(folder: Path, *, blanks: int = 3, speed: float = 1000.0, clock: LinkClock | None = None) -> Iterator[UsbRig]:
    """Printer `p1` plugged in on `folder/p1.sock`; everything stopped and unplugged on exit."""
    stop = threading.Event()
    cards: list[CardLeft] = []
    printer = Printer("p1", PrinterState(hopper_remaining=blanks), reader=RecordingReader(), chip_type=VirtualChip,
                      persist=lambda state: None, on_card_left=cards.append, stop=stop,
                      identity=Identity(serial_number=SERIAL), speed=speed)
    printer.power_on()
    port = UsbPort(folder / "p1.sock", UsbIdentity(VIRTUAL_VENDOR_ID, VIRTUAL_PRODUCT_ID, "Evolis",
                                                   printer.identity.model, SERIAL), clock)
    port.plug()
    thread = threading.Thread(target=serve, args=(port, EvolisServer(printer), stop))
    thread.start()
    try:
        yield UsbRig(printer, port, cards)
    finally:
        stop.set()
        thread.join(timeout=10)
        port.close()
        printer.power_off()
        assert not thread.is_alive(), "the printer loop did not stop"
