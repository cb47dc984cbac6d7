"""Deterministic crash injection for the crash suite: the agent SIGKILLs itself at a named step.

`PRINTSTATION_CRASH_AT="after-feed:3"` kills the process the 3rd time it passes the
`after-feed` step (`:N` defaults to 1). Several points may be armed, comma-separated. Without
the variable every call is a no-op costing one dict lookup. SIGKILL, not an exception: nothing
after the step runs, no `finally`, no flush, exactly like a power cut of the agent's process.
"""

from __future__ import annotations

import os
import signal
import threading
from enum import StrEnum

ENV = "PRINTSTATION_CRASH_AT"


class CrashPoint(StrEnum):
    """The steps of the card pipeline (and of recovery) where a crash can be injected."""

    BEFORE_FEED = "before-feed"                                   # intent and counter written, nothing sent
    AFTER_FEED = "after-feed"                                     # blank fed, the journal still says feeding
    AFTER_FED = "after-fed"                                       # the feed is in the journal and ledger
    AFTER_ENCODE = "after-encode"                                 # chip written, not read back
    AFTER_VERIFY = "after-verify"                                 # chip proved, no printing intent yet
    MID_PANELS = "mid-panels"                                     # the first panel printed, more to come
    BEFORE_EJECT = "before-eject"                                 # ejecting intent written, `Se` not sent
    AFTER_EJECT_BEFORE_JOURNAL = "after-eject-before-journal"     # card in the output, not yet recorded
    AFTER_PRINTED = "after-printed"                               # recorded printed (the next job claimed with it), outcome not delivered
    BEFORE_REJECT = "before-reject"                               # rejecting intent written, `Ser` not sent
    AFTER_REJECT_BEFORE_JOURNAL = "after-reject-before-journal"   # card in the reject box, not yet recorded
    # The outbox sender, not the card pipeline: upstream has answered a batch, the journal does not know yet.
    AFTER_BATCH_BEFORE_JOURNAL = "after-batch-before-journal"


class CrashConfigError(ValueError):
    """PRINTSTATION_CRASH_AT names an unknown step or a bad count."""


def parse(spec: str) -> dict[CrashPoint, int]:
    """`"after-feed:3,mid-panels"` -> {AFTER_FEED: 3, MID_PANELS: 1}. Raises CrashConfigError."""
    armed: dict[CrashPoint, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        try:
            point = CrashPoint(name)
        except ValueError:
            known = ", ".join(p.value for p in CrashPoint)
            raise CrashConfigError(f"{ENV}: unknown step {name!r}; known steps: {known}") from None
        if count and not (count.isdigit() and int(count) >= 1):
            raise CrashConfigError(f"{ENV}: {item!r}: the count after ':' must be a whole number from 1")
        armed[point] = int(count or 1)
    return armed


_armed = parse(os.environ.get(ENV, ""))
_passed: dict[CrashPoint, int] = {}
_lock = threading.Lock()  # two printer workers may pass the same step at once


def reached(point: CrashPoint) -> None:
    """Mark that the pipeline reached `point`; dies here if the point is armed for this pass."""
    if not _armed:
        return
    with _lock:
        _passed[point] = _passed.get(point, 0) + 1
        if _passed[point] == _armed.get(point):
            os.kill(os.getpid(), signal.SIGKILL)
