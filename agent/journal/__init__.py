"""The journal: the station's single source of truth, in SQLite (WAL, synchronous=FULL for every
intent; `fed` and acknowledgements ride to disk with the next one, see JournalDb._tx).

Every job transition is an appended event; the job row keeps the current state in step, in
the same transaction. The blank ledger is append-only. Messages for upstream go into the
outbox in the same transaction as the change they report, so nothing is reported that did
not happen, and nothing that happened goes unreported.

The parts, each in its own module: `db` (the connection), `jobs` (the state machine), `ledger`
(blanks), `outbox` (messages for upstream), `views` (what operators read), `retention`.
"""

from __future__ import annotations

from agent.journal.db import JournalError, stamp, utcnow
from agent.journal.jobs import (
    FINAL, IN_PRINTER, MAX_INTERRUPTIONS, TRANSITIONS, ActiveJob, ClaimedJob, JobBook, JobState, TransitionRefused,
    check_transition, counts_against_job,
)
from agent.journal.ledger import StoreroomShort
from agent.journal.outbox import OutboxMessage
from agent.journal.retention import Retention
from agent.journal.views import Views

__all__ = [
    "FINAL", "IN_PRINTER", "MAX_INTERRUPTIONS", "TRANSITIONS", "ActiveJob", "ClaimedJob", "Journal", "JournalError",
    "JobState", "OutboxMessage", "StoreroomShort", "TransitionRefused", "check_transition", "counts_against_job",
    "stamp", "utcnow",
]


class Journal(JobBook, Views, Retention):
    """The station's journal: jobs, ledger, outbox, views and retention over one connection."""
