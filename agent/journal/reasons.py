"""Why a card was spoiled or a job given up: a code from an enum, carried whole, with its detail.

The station's own codes are `Reason`; the chip's are `agent.chip.profile.ChipFailure`, a refused
job's `agent.upstream.job.JobRejection`: all three are StrEnums whose values travel the same way.
A reason is joined into its text in one place (`Because.__str__`, what the journal stores and
upstream hears) and split in one place (`reason_code`, for the metrics and the reports).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    INTERRUPTED = "interrupted"  # the card in the printer when the agent died: nobody can say it is good
    INTERRUPTED_BEFORE_FEED = "interrupted-before-feed"
    PRINTER_FAULT = "printer-fault"  # detail: the fault (jam, cover_open) or the printer's reply
    FEED_REFUSED = "feed-refused"  # detail: the printer's reply; no blank left the hopper
    BAD_CARD_IMAGE = "bad-card-image"
    STATION_ERROR = "station-error"  # detail: the kind of error nobody expected
    TOO_MANY_SPOILED = "too-many-spoiled-cards"
    TOO_MANY_INTERRUPTIONS = "too-many-interruptions"


# Kept for the callers that name the one code they need.
INTERRUPTED = Reason.INTERRUPTED


@dataclass(frozen=True)
class Because:
    """A reason code and its detail (which may quote the printer, never personal data)."""

    code: StrEnum
    detail: str = ""

    def __str__(self) -> str:
        if not self.detail:
            return self.code.value
        # "printer-fault:jam" is the form upstream has always had; every other detail follows ": ".
        separator = ":" if self.code is Reason.PRINTER_FAULT else ": "
        return f"{self.code.value}{separator}{self.detail}"


def reason_code(text: str | None) -> str:
    """The code of a reason's text, its detail left out ("unknown" for none)."""
    return (text or "unknown").split(":", 1)[0].strip() or "unknown"
