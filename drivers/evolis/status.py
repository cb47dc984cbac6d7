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


# The vendor SDK's status (`Rpst`, read by libevolis's `evolis_status()`): config, information,
# warning and error words, 8 hex digits each, then optional extension words. Bits from the SDK's
# public headers (libevolis 9.4.1, evo-printers.h).
SDK_INFO_FLAGS: dict[int, str] = {
    0x08000000: "card_at_contactless",
    0x04000000: "card_at_smart",
    0x02000000: "card_at_print",
    0x00080000: "ribbon_low",
    0x00000100: "cleaning_recommended",
    0x00000001: "busy",
}
SDK_CARD_BITS = 0x40000000 | 0x20000000 | 0x10000000 | 0x08000000 | 0x04000000 | 0x02000000 | 0x01000000
SDK_INFO_CLEANING_MANDATORY = 0x00040000
SDK_WARNING_FAULTS: dict[int, Fault] = {
    0x08000000: Fault.REJECT_FULL,
    0x01000000: Fault.FEEDER_EMPTY,
    0x00200000: Fault.HEAD_HOT,  # WAR_COOLING
    0x00100000: Fault.HOPPER_FULL,
    0x00080000: Fault.RIBBON_ENDED,
    0x00020000: Fault.COVER_OPEN,
    0x00010000: Fault.RIBBON_MISSING,
    0x00008000: Fault.RIBBON_WRONG,  # WAR_UNSUPPORTED_RIBBON
    0x00000400: Fault.COVER_OPEN,  # WAR_REJECT_BOX_COVER_OPEN
    0x00000100: Fault.COVER_OPEN,  # WAR_FEEDER_OPEN
}
SDK_ERROR_FAULTS: dict[int, Fault] = {
    0x20000000: Fault.HEAD_HOT,
    0x08000000: Fault.FEEDER_ERROR,
    0x04000000: Fault.RIBBON_WRONG,  # ERR_RIBBON_ERROR
    0x02000000: Fault.COVER_OPEN,
    0x01000000: Fault.JAM,  # ERR_MECHANICAL
    0x00800000: Fault.REJECT_FULL,
    0x00400000: Fault.RIBBON_WRONG,  # ERR_BAD_RIBBON
    0x00200000: Fault.RIBBON_ENDED,
    0x00100000: Fault.HOPPER_FULL,
}
_SDK_WORDS = re.compile(r"(?:[0-9A-Fa-f]{8}){4,8}")


def parse_sdk_status(reply: str) -> PrinterStatus:
    """Decode an `Rpst` reply (32 to 64 hex digits). Raises ProtocolError for another shape."""
    if not _SDK_WORDS.fullmatch(reply):
        raise ProtocolError(f"Rpst reply is not four to eight 8-digit hex words: {reply[:60]!r}")
    _config, info, warning, error = (int(reply[i: i + 8], 16) for i in range(0, 32, 8))
    flags = {name: bool(info & bit) for bit, name in SDK_INFO_FLAGS.items() if name != "card_at_smart"}
    faults = {fault for bit, fault in SDK_WARNING_FAULTS.items() if warning & bit}
    faults |= {fault for bit, fault in SDK_ERROR_FAULTS.items() if error & bit}
    if info & SDK_INFO_CLEANING_MANDATORY:
        faults.add(Fault.CLEANING_REQUIRED)
    # Warnings the SDK lists that say nothing is wrong with the printer itself.
    informative = 0x02000000 | 0x04000000  # WAR_WAIT_CARD, WAR_CARD_ON_EJECT
    return PrinterStatus(
        **flags,
        card_inside=bool(info & SDK_CARD_BITS),
        faults=frozenset(faults),
        job_interrupted=error != 0,
        unknown_warnings=warning & ~_mask(SDK_WARNING_FAULTS) & ~informative,
        unknown_errors=error & ~_mask(SDK_ERROR_FAULTS),
    )
