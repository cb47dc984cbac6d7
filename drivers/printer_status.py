"""The printer's status words (`Rst`), decoded through tables into a typed status.

`Rst` answers `<info>;<warning>;<error>`: three 32-bit words in hex (docs/PROTOCOLS.md,
section 1 "Status"). Warnings block the next card; errors interrupted the card in progress.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.faults import Fault
from drivers.printer_errors import ProtocolError

# info word: bit -> PrinterStatus field
INFO_FLAGS: dict[int, str] = {
    0x01: "card_inside",
    0x02: "card_at_contactless",
    0x04: "card_at_print",
    0x08: "ribbon_low",
    0x10: "cleaning_recommended",
    0x20: "busy",
    0x40: "sequence_open",
}

WARNING_FAULTS: dict[int, Fault] = {
    0x01: Fault.FEEDER_EMPTY,
    0x02: Fault.HOPPER_FULL,
    0x04: Fault.REJECT_FULL,
    0x08: Fault.RIBBON_ENDED,
    0x10: Fault.RIBBON_MISSING,
    0x20: Fault.COVER_OPEN,
    0x40: Fault.HEAD_HOT,
    0x80: Fault.CLEANING_REQUIRED,
}

ERROR_FAULTS: dict[int, Fault] = {
    0x01: Fault.JAM,
    0x02: Fault.FEEDER_ERROR,
    0x04: Fault.RIBBON_WRONG,
    0x08: Fault.COVER_OPEN,
    0x10: Fault.HEAD_HOT,
    0x20: Fault.REJECT_FULL,
}

# The contract says 8 hex digits a word; a firmware that drops leading zeros still says the same.
_WORD = re.compile(r"[0-9A-Fa-f]{1,8}")


@dataclass(frozen=True)
class PrinterStatus:
    """One reading of the printer's sensors and conditions.

    `unknown_warnings` / `unknown_errors` keep bits this driver has no name for, so that a
    condition a newer firmware reports is never silently taken for "all clear".
    """

    card_inside: bool = False
    card_at_contactless: bool = False
    card_at_print: bool = False
    ribbon_low: bool = False
    cleaning_recommended: bool = False
    busy: bool = False
    sequence_open: bool = False
    faults: frozenset[Fault] = frozenset()
    job_interrupted: bool = False
    unknown_warnings: int = 0
    unknown_errors: int = 0

    @property
    def blocking(self) -> bool:
        """True when the printer cannot take the next card: any fault, named or not."""
        return bool(self.faults or self.unknown_warnings or self.unknown_errors)


def parse_status(reply: str) -> PrinterStatus:
    """Decode an `Rst` reply such as `00000041;00000000;00000000`.

    Raises ProtocolError when the reply is not three hex words joined by `;`.
    """
    fields = reply.split(";")
    if len(fields) != 3 or not all(_WORD.fullmatch(field) for field in fields):
        raise ProtocolError(f"status reply is not three hex words: {reply[:60]!r}")
    info, warning, error = (int(field, 16) for field in fields)
    flags = {name: bool(info & bit) for bit, name in INFO_FLAGS.items()}
    faults = {fault for bit, fault in WARNING_FAULTS.items() if warning & bit}
    faults |= {fault for bit, fault in ERROR_FAULTS.items() if error & bit}
    return PrinterStatus(
        **flags,
        faults=frozenset(faults),
        job_interrupted=error != 0,
        unknown_warnings=warning & ~_mask(WARNING_FAULTS),
        unknown_errors=error & ~_mask(ERROR_FAULTS),
    )


def _mask(table: dict[int, Fault]) -> int:
    mask = 0
    for bit in table:
        mask |= bit
    return mask
