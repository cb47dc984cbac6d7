"""The chip work on one card at a printer's encoder station: wait, connect, encode, verify.

Every step has a time limit, and every failure comes out as one of two kinds: the card's
(ChipError: the card is spoiled) or the reader's (PcscError: the printer pauses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from agent.chip.profile import Check, ChipError, ChipExpectation, ChipFailure, ChipProfile, ChipVerdict, Verdict
from drivers.pcsc import DEFAULT_APDU_TIMEOUT_S, CardMute, CardNotPresent, CardRemoved, CardTooSlow, PcscReader

# Writing and reading back a chip of a few kilobytes takes about a second on a real
# contactless reader; a card still busy after this long is a slow chip, spoiled.
DEFAULT_CARD_BUDGET_S = 20.0


@dataclass(frozen=True)
class StationTimeouts:
    """How long each step at the encoder station may take."""

    card_wait_s: float = 10.0  # from the printer's "card at the station" to the reader seeing it
    card_budget_s: float = DEFAULT_CARD_BUDGET_S  # connect, encode and verify together
    apdu_timeout_s: float = DEFAULT_APDU_TIMEOUT_S  # one command; longer and failed is a mute card


def encode_and_verify(reader: PcscReader, profile: ChipProfile, files: dict[str, bytes] | None,
                      expected: ChipExpectation, at: datetime, timeouts: StationTimeouts = StationTimeouts(),
                      after_encode: Callable[[], None] = lambda: None) -> ChipVerdict:
    """Wait for the card, connect exclusively, write `files` (None: pre-encoded stock, read only),
    call `after_encode` (the crash tests stop the agent there), read the chip back and judge it at `at`.

    Raises ChipError when the card is at fault (CHIP_MUTE when no card answers in time or it
    goes silent, CHIP_SLOW, CHIP_REMOVED, WRITE_FAILED); PcscError subclasses
    ReaderUnavailable, PcscServiceUnavailable and ReaderBusy (or a bare PcscError) when the
    reader or pcscd is: those are no reason to spoil a card.
    """
    try:
        reader.wait_for_card(timeouts.card_wait_s)
    except CardNotPresent as exc:
        # The printer says the card is at the station; a chip that never answers power-on
        # looks exactly like this to PC/SC (vpcd and contactless readers show no card).
        raise ChipError(ChipFailure.CHIP_MUTE, f"no chip answered on the reader: {exc.message}") from exc
    try:
        with reader.connect(exclusive=True, budget_s=timeouts.card_budget_s,
                            apdu_timeout_s=timeouts.apdu_timeout_s) as session:
            if files is not None:
                profile.encode(session, files)
            after_encode()
            return profile.verify(session, expected, at)
    except CardNotPresent as exc:
        raise ChipError(ChipFailure.CHIP_MUTE, exc.message) from exc
    except CardRemoved as exc:
        raise ChipError(ChipFailure.CHIP_REMOVED, exc.message) from exc
    except CardTooSlow as exc:
        raise ChipError(ChipFailure.CHIP_SLOW, exc.message) from exc
    except CardMute as exc:  # refused power-up at connect (the profile maps its own transmits)
        raise ChipError(ChipFailure.CHIP_MUTE, exc.message) from exc


def failure_checks(error: ChipError) -> tuple[Check, ...]:
    """The checks to record for a card that failed before it could be judged: one, named "chip"."""
    return (Check("chip", Verdict.BAD, error.message),)


def checks_as_json(checks: tuple[Check, ...] | list[Check]) -> list[dict[str, str]]:
    """Checks as the journal and upstream keep them: [{"name", "verdict", "reason"}, ...]."""
    return [{"name": c.name, "verdict": c.verdict.value, "reason": c.reason} for c in checks]
