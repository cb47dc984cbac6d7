"""The printer's encoder station seen from both sides, in one process: the virtual printer puts the
blank's chip there (`insert`/`remove`, as it does on vpcd), and the worker reaches it through a
reader with the PC/SC reader's methods (`host_reader()`), its APDUs answered by that very chip.

Only the transport is missing (pcscd, vpcd and their timing); the chip, the printer and the
agent's chip work are the real ones. The process tests cover the real reader.
"""

from __future__ import annotations

import threading
from typing import Any

from smartcard import scard

from drivers.pcsc import CardNotPresent, CardRemoved
from simulators.chip.emulator import VirtualChip

UPDATE_BINARY = 0xD6
MEMORY_FAILURE = b"\x65\x81"  # ISO 7816-4: the chip's memory would not take the write


class EncoderStation:
    """What the virtual printer sees as its reader; `host_reader()` is what the agent sees."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.chip: VirtualChip | None = None
        self._spoil_next = False
        self.spoiled: VirtualChip | None = None
        self.inserted = 0

    # -- the printer's side -----------------------------------------------------------------

    def insert(self, chip: VirtualChip) -> None:
        with self._changed:
            self.chip = chip
            self.inserted += 1
            if self._spoil_next:
                self._spoil_next, self.spoiled = False, chip
            self._changed.notify_all()

    def remove(self) -> None:
        with self._changed:
            self.chip = None
            self._changed.notify_all()

    # -- the test's side --------------------------------------------------------------------

    def spoil_next_chip(self) -> None:
        """The next blank's chip refuses every write with 6581 (memory failure)."""
        with self._changed:
            self._spoil_next = True

    def host_reader(self) -> HostReader:
        return HostReader(self)

    def wait_for(self, present: bool, timeout: float) -> VirtualChip | None:
        with self._changed:
            self._changed.wait_for(lambda: (self.chip is not None) == present, timeout)
            return self.chip


class HostReader:
    """The PC/SC reader's methods that the worker uses, over the station's chip."""

    name = "in-process"

    def __init__(self, station: EncoderStation) -> None:
        self.station = station

    def wait_for_card(self, timeout: float) -> None:
        if self.station.wait_for(True, timeout) is None:
            raise CardNotPresent(f"no card on reader '{self.name}' within {timeout:.1f} s", scard.SCARD_E_TIMEOUT)

    def check(self) -> None:
        pass

    def connect(self, exclusive: bool = True, *, budget_s: float | None = None, **_: Any) -> Session:
        chip = self.station.chip
        if chip is None:
            raise CardNotPresent(f"no card on reader '{self.name}'", scard.SCARD_E_NO_SMARTCARD)
        chip.reset()
        return Session(self.station, chip)

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class Session:
    def __init__(self, station: EncoderStation, chip: VirtualChip) -> None:
        self.station, self.chip = station, chip

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        if self.station.chip is not self.chip:
            raise CardRemoved("the card left the reader 'in-process'", scard.SCARD_W_REMOVED_CARD)
        if self.chip is self.station.spoiled and len(apdu) > 1 and apdu[1] == UPDATE_BINARY:
            response = MEMORY_FAILURE
        else:
            response = self.chip.process_apdu(bytes(apdu))
        return response[:-2], int.from_bytes(response[-2:], "big")

    def close(self) -> None:
        pass
