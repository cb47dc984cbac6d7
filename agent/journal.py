"""The journal: the station's single source of truth, in SQLite (WAL, synchronous=FULL).

Every job transition is an appended event; the job row keeps the current state in step, in
the same transaction. The blank ledger is append-only. Messages for upstream go into the
outbox in the same transaction as the change they report, so nothing is reported that did
not happen, and nothing that happened goes unreported.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.journal_schema import migrate


class JobState(StrEnum):
    LEASED = "leased"
    FEEDING = "feeding"
    ENCODING = "encoding"
    PRINTING = "printing"
    EJECTING = "ejecting"
    REJECTING = "rejecting"  # the card is being sent to the reject box; the reason is in the event
    PRINTED = "printed"
    SPOILED = "spoiled"  # an event of one card attempt; the job itself goes on to a retry or fails
    FAILED = "failed"
    HELD = "held"
    REJECTED = "rejected"
    RELEASED = "released"
    EXPIRED = "expired"


# States in which a card of this job may be inside a printer.
IN_PRINTER = (JobState.FEEDING, JobState.ENCODING, JobState.PRINTING, JobState.EJECTING, JobState.REJECTING)
FINAL = (JobState.PRINTED, JobState.FAILED, JobState.REJECTED, JobState.RELEASED, JobState.EXPIRED)


# The allowed moves of a job (a state may also be entered again, e.g. a recovery settling it twice).
# No move leaves a final state: that is what keeps a printed job from being printed again.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.LEASED: frozenset({JobState.FEEDING, JobState.HELD, JobState.FAILED, JobState.REJECTED,
                                JobState.RELEASED, JobState.EXPIRED}),
    JobState.HELD: frozenset({JobState.LEASED, JobState.PRINTED, JobState.FAILED, JobState.RELEASED,
                              JobState.EXPIRED}),
    **{s: frozenset({*IN_PRINTER, JobState.LEASED, JobState.HELD, JobState.PRINTED, JobState.FAILED})
       for s in IN_PRINTER},
    **{s: frozenset() for s in FINAL},
}


class TransitionRefused(ValueError):
    """A move the job's state machine does not allow (a defect in the caller, never bad input)."""


def check_transition(job_id: str, before: JobState, after: JobState) -> None:
    """Raise TransitionRefused unless a job may go from `before` to `after`."""
    if after is not before and after not in TRANSITIONS.get(before, frozenset()):
        raise TransitionRefused(f"job {job_id} cannot go from {before.value} to {after.value}")


# Cards of one job the station may lose to its own faults before it gives the job up.
MAX_INTERRUPTIONS = 10


def counts_against_job(reason: str | None) -> bool:
    """True for a spoiled card the job's own data caused (a chip failure): those count toward
    the job's attempt limit. Interruptions, printer faults and station errors do not."""
    return reason is not None and reason.startswith("chip-")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    payload: dict
    attempt: int
    printer: str


@dataclass(frozen=True)
class ActiveJob:
    """A job caught with a card possibly in a printer (for crash recovery)."""

    job_id: str
    state: JobState
    printer: str
    attempt: int
    card_counter_before: int | None


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    kind: str
    method: str
    path: str
    idempotency_key: str
    body: dict
    tries: int


class JournalError(Exception):
    """The journal cannot be opened or written (disk full, read-only, corrupt)."""


class StoreroomShort(ValueError):
    """A load larger than the storeroom holds of that lot; nothing was moved."""

    def __init__(self, lot: str, wanted: int, held: int) -> None:
        super().__init__(f"the storeroom holds {held} blanks of lot {lot}, fewer than the {wanted} to load; "
                         f"record the delivery first (printstation stock receive --lot {lot} --count N)")
        self.lot, self.wanted, self.held = lot, wanted, held


class Journal:
    """One writer: every write goes through one connection under one lock."""

    def __init__(self, path: Path, station: str, max_attempts: int = 3) -> None:
        self.path = Path(path)
        self.station = station
        self.max_attempts = max_attempts
        self._lock = threading.RLock()
        # Set after a commit that queued a message for upstream: the sender wakes at once.
        self.outbox_ready = threading.Event()
        self._queued = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Personal data lives here until upstream has the outcome: owner only.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Purged personal data is overwritten with zeros, not left in free pages (SQLite's
            # default is off; some distributions build it on: the journal does not rely on that).
            self._db.execute("PRAGMA secure_delete=ON")
            # The WAL shrinks back after each checkpoint: on a small disk, a full disk shows at the next write.
            self._db.execute("PRAGMA journal_size_limit=0")
            with self._tx() as db:
                migrate(db)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path} cannot be written: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._queued = False
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise JournalError(f"journal {self.path} cannot be written: {exc}") from exc
                raise
            if self._queued:
                self._queued = False
                self.outbox_ready.set()

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to undo (SQLite already rolled back after a full disk)

    # -- events -------------------------------------------------------------------------

    def _event(self, db: sqlite3.Connection, job_id: str, state: JobState, at: str, **detail: Any) -> None:
        db.execute(
            "INSERT INTO job_events(job_id, at, state, detail) VALUES (?, ?, ?, ?)",
            (job_id, at, state.value, json.dumps(detail, sort_keys=True) if detail else None),
        )

    def _set_state(self, db: sqlite3.Connection, job_id: str, state: JobState, at: str, **detail: Any) -> None:
        row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is not None:
            check_transition(job_id, JobState(row[0]), state)
        db.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?", (state.value, at, job_id))
        self._event(db, job_id, state, at, **detail)

    def _enqueue(self, db: sqlite3.Connection, kind: str, method: str, path: str, key: str, body: dict, at: str,
                 job_id: str | None = None) -> None:
        db.execute(
            "INSERT OR IGNORE INTO outbox(kind, method, path, idempotency_key, body, created_at, job_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, method, path, key, json.dumps(body, sort_keys=True), at, job_id),
        )
        self._queued = True

    # -- intake -------------------------------------------------------------------------

    def knows(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is not None

    def add_leased(self, job_id: str, payload: dict, *, not_after: datetime, lease_expires_at: datetime,
                   priority: int, at: datetime | None = None) -> bool:
        """Record a newly leased, verified job. False if the journal already knows it."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs(job_id, state, priority, not_after, lease_expires_at, payload, received_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, JobState.LEASED.value, priority, stamp(not_after), stamp(lease_expires_at),
                 json.dumps(payload), now, now),
            )
            if cur.rowcount == 0:
                return False
            self._event(db, job_id, JobState.LEASED, now)
            return True

    def reject(self, job_id: str, reason: str, message: str, at: datetime | None = None) -> None:
        """Record a job the station refuses to print, and report it upstream."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO jobs(job_id, state, priority, not_after, lease_expires_at, payload, received_at, updated_at)"
                " VALUES (?, ?, 0, ?, ?, NULL, ?, ?)",
                (job_id, JobState.REJECTED.value, now, now, now, now),
            )
            db.execute("UPDATE jobs SET state = ?, reason = ?, payload = NULL, updated_at = ? WHERE job_id = ?",
                       (JobState.REJECTED.value, reason, now, job_id))
            self._event(db, job_id, JobState.REJECTED, now, reason=reason, message=message)
            body = {"station": self.station, "status": "rejected", "reason": reason, "message": message, "attempts": []}
            self._enqueue(db, "outcome", "PUT", f"/v1/jobs/{job_id}/outcome", f"{self.station}:{job_id}:outcome", body, now,
                      job_id=job_id)

    def leases_to_renew(self, expiring_before: datetime) -> list[str]:
        """Printable jobs whose lease runs out before `expiring_before`, soonest first."""
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT job_id FROM jobs WHERE state = ? AND lease_expires_at < ? ORDER BY lease_expires_at, job_id",
                (JobState.LEASED.value, stamp(expiring_before)),
            )]

    def leases_renewed(self, job_ids: list[str], lease_expires_at: datetime) -> None:
        """Upstream extended these leases."""
        with self._tx() as db:
            db.executemany("UPDATE jobs SET lease_expires_at = ? WHERE job_id = ? AND state = ?",
                           [(stamp(lease_expires_at), job_id, JobState.LEASED.value) for job_id in job_ids])

    def lease_lost(self, job_id: str, reason: str, at: datetime | None = None) -> bool:
        """Upstream says this station no longer holds the job: never start it. False if it was under way already."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or row[0] != JobState.LEASED.value:
                return False
            db.execute("UPDATE jobs SET reason = ?, payload = NULL WHERE job_id = ?", (reason, job_id))
            self._set_state(db, job_id, JobState.EXPIRED, now, reason=reason)
            return True

    def release_surplus(self, keep: int, reason: str, at: datetime | None = None) -> list[str]:
        """Hand back the printable jobs beyond the `keep` this station will print first; returns their ids."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            surplus = [r[0] for r in db.execute(
                "SELECT job_id FROM jobs WHERE state = ? ORDER BY priority DESC, received_at, job_id LIMIT -1 OFFSET ?",
                (JobState.LEASED.value, keep),
            ).fetchall()]
            for job_id in surplus:
                self._finish(db, job_id, JobState.RELEASED, now, reason=reason)
            return surplus

    # -- the card pipeline -----------------------------------------------------------------

    def claim_next(self, printer: str, at: datetime | None = None, card_counter: int | None = None) -> ClaimedJob | None:
        """Take the next printable job for `printer` and write the intent before any byte moves.

        `card_counter` is the printer's card counter read just before: the evidence recovery
        compares with, to know whether the feed that follows happened. Jobs whose lease or
        validity ran out are marked expired on the way.
        """
        now_dt = at or utcnow()
        now = stamp(now_dt)
        with self._tx() as db:
            for job_id, lease_expires_at, not_after in db.execute(
                "SELECT job_id, lease_expires_at, not_after FROM jobs WHERE state = ? ORDER BY priority DESC, received_at, job_id",
                (JobState.LEASED.value,),
            ).fetchall():
                if lease_expires_at <= now or not_after <= now:
                    reason = "lease-expired" if lease_expires_at <= now else "job-expired"
                    self._finish(db, job_id, JobState.EXPIRED, now, reason=reason)
                    continue
                attempt = db.execute("SELECT COUNT(*) FROM attempts WHERE job_id = ?", (job_id,)).fetchone()[0] + 1
                db.execute("UPDATE jobs SET printer = ? WHERE job_id = ?", (printer, job_id))
                db.execute(
                    "INSERT INTO attempts(job_id, n, printer, card_counter_before, started_at) VALUES (?, ?, ?, ?, ?)",
                    (job_id, attempt, printer, card_counter, now),
                )
                self._set_state(db, job_id, JobState.FEEDING, now, printer=printer, attempt=attempt)
                payload = json.loads(db.execute("SELECT payload FROM jobs WHERE job_id = ?", (job_id,)).fetchone()[0])
                return ClaimedJob(job_id, payload, attempt, printer)
        return None

    def unclaim(self, job_id: str, attempt: int, reason: str, at: datetime | None = None) -> None:
        """No card was fed for this attempt (feeder empty, printer fault before feeding): back to leased."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute("DELETE FROM attempts WHERE job_id = ? AND n = ?", (job_id, attempt))
            self._set_state(db, job_id, JobState.LEASED, now, reason=reason)

    def fed(self, job_id: str, attempt: int, printer: str, lot: str | None = None, at: datetime | None = None) -> None:
        """A blank left the hopper for this job: the ledger and the state move together.

        Without `lot`, the blank is counted against the oldest lot still in the feeder (first in, first out).
        """
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "INSERT INTO ledger(at, printer, lot, movement, quantity, job_id, attempt) VALUES (?, ?, ?, 'feed', -1, ?, ?)",
                (now, printer, lot or self._lot_in_feeder(db, printer), job_id, attempt),
            )
            db.execute("UPDATE attempts SET fed = 1 WHERE job_id = ? AND n = ?", (job_id, attempt))
            self._set_state(db, job_id, JobState.ENCODING, now, attempt=attempt)

    def advance(self, job_id: str, state: JobState, at: datetime | None = None, **detail: Any) -> None:
        """Record the intent to enter `state` (printing, ejecting) before the printer is told."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            self._set_state(db, job_id, state, now, **detail)

    def spoiled(self, job_id: str, attempt: int, reason: str, checks: list[dict] | None = None,
                at: datetime | None = None) -> JobState:
        """The card went to the reject box. Retry on a fresh blank, or give up after the limit.

        Returns the job's new state (leased for a retry, failed when out of attempts).
        """
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET result = 'spoiled', reason = ?, checks = ?, ended_at = ? WHERE job_id = ? AND n = ?",
                (reason, json.dumps(checks) if checks else None, now, job_id, attempt),
            )
            self._event(db, job_id, JobState.SPOILED, now, attempt=attempt, reason=reason)
            feed = db.execute("SELECT printer, lot FROM ledger WHERE movement = 'feed' AND job_id = ? AND attempt = ?",
                              (job_id, attempt)).fetchone()
            if feed is not None:
                db.execute(
                    "INSERT INTO ledger(at, printer, lot, movement, quantity, job_id, attempt, reason)"
                    " VALUES (?, ?, ?, 'spoil', 0, ?, ?, ?)",
                    (now, feed[0], feed[1], job_id, attempt, reason),
                )
            # Only what the job's own card did counts toward its limit (a chip that would not take
            # or verify the job's data); a card lost to the station (a crash, a power cut, a full
            # disk, a printer fault, a lost reader) is the station's, capped apart so a loop ends.
            spoils = db.execute("SELECT reason FROM attempts WHERE job_id = ? AND result = 'spoiled'", (job_id,)).fetchall()
            own = sum(1 for (why,) in spoils if counts_against_job(why))
            if own >= self.max_attempts:
                self._finish(db, job_id, JobState.FAILED, now, reason="too-many-spoiled-cards")
                return JobState.FAILED
            if len(spoils) - own >= MAX_INTERRUPTIONS:
                self._finish(db, job_id, JobState.FAILED, now, reason="too-many-interruptions")
                return JobState.FAILED
            self._set_state(db, job_id, JobState.LEASED, now, retry_after=reason)
            return JobState.LEASED

    def printed(self, job_id: str, attempt: int, card_counter: int | None, at: datetime | None = None) -> None:
        """The card left through the output: the job is done, and upstream will hear of it."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET result = 'printed', card_counter_after = ?, ended_at = ? WHERE job_id = ? AND n = ?",
                (card_counter, now, job_id, attempt),
            )
            self._finish(db, job_id, JobState.PRINTED, now)

    def give_up(self, job_id: str, attempt: int, reason: str, at: datetime | None = None) -> None:
        """The job cannot be printed at all (e.g. its card image is unusable); no blank was used."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute("DELETE FROM attempts WHERE job_id = ? AND n = ?", (job_id, attempt))
            self._finish(db, job_id, JobState.FAILED, now, reason=reason)

    def fail(self, job_id: str, reason: str, at: datetime | None = None) -> None:
        """End a job `failed` (reported upstream), keeping its card attempts as they are."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            self._finish(db, job_id, JobState.FAILED, now, reason=reason)

    def job_state(self, job_id: str) -> JobState | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return JobState(row[0]) if row else None

    def hold(self, job_id: str, reason: str, at: datetime | None = None) -> None:
        """The station cannot prove what happened to this job's card: a person decides."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute("UPDATE jobs SET reason = ? WHERE job_id = ?", (reason, job_id))
            self._set_state(db, job_id, JobState.HELD, now, reason=reason)
            held = db.execute("SELECT COUNT(*) FROM job_events WHERE job_id = ? AND state = ?",
                              (job_id, JobState.HELD.value)).fetchone()[0]
            alert = {"kind": "job-held", "job_id": job_id, "reason": reason,
                     "remedy": "look for the card in the output tray and the reject box, then decide the job"}
            self._enqueue(db, "alert", "POST", f"/v1/stations/{self.station}/telemetry",
                          f"{self.station}:{job_id}:held:{held}", {"at": now, "alerts": [alert]}, now)

    def _finish(self, db: sqlite3.Connection, job_id: str, state: JobState, now: str, reason: str | None = None) -> None:
        db.execute("UPDATE jobs SET reason = ? WHERE job_id = ?", (reason, job_id))
        self._set_state(db, job_id, state, now, **({"reason": reason} if reason else {}))
        attempts = [
            {"n": n, "printer": printer, "result": result or "interrupted", "reason": why,
             "checks": json.loads(checks) if checks else []}
            for n, printer, result, why, checks in db.execute(
                "SELECT n, printer, result, reason, checks FROM attempts WHERE job_id = ? ORDER BY n", (job_id,)
            )
        ]
        if state in (JobState.EXPIRED, JobState.RELEASED):
            # Not printed and never will be here: the lease goes back, no outcome is claimed.
            self._enqueue(db, "release", "POST", f"/v1/stations/{self.station}/leases/release",
                          f"{self.station}:{job_id}:release", {"job_ids": [job_id], "reason": reason or state.value}, now,
                          job_id=job_id)
            db.execute("UPDATE jobs SET payload = NULL WHERE job_id = ?", (job_id,))
            return
        status = "printed" if state is JobState.PRINTED else "failed"
        body: dict[str, Any] = {"station": self.station, "status": status, "attempts": attempts}
        if reason:
            body["reason"] = reason
        if state is JobState.PRINTED:
            body["printed_at"] = now
        self._enqueue(db, "outcome", "PUT", f"/v1/jobs/{job_id}/outcome", f"{self.station}:{job_id}:outcome", body, now,
                      job_id=job_id)

    # -- recovery -------------------------------------------------------------------------

    def active_jobs(self, printer: str) -> list[ActiveJob]:
        """Jobs of `printer` caught between feed and printed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT j.job_id, j.state, a.n, a.card_counter_before FROM jobs j"
                " JOIN attempts a ON a.job_id = j.job_id AND a.n = (SELECT MAX(n) FROM attempts WHERE job_id = j.job_id)"
                f" WHERE j.printer = ? AND j.state IN ({','.join('?' * len(IN_PRINTER))})",
                (printer, *[s.value for s in IN_PRINTER]),
            ).fetchall()
        return [ActiveJob(job_id, JobState(state), printer, n, counter) for job_id, state, n, counter in rows]

    # -- ledger -----------------------------------------------------------------------------

    def receive_blanks(self, lot: str, quantity: int, first_serial: str | None = None, last_serial: str | None = None,
                       who: str = "operator", at: datetime | None = None) -> int:
        """A delivery from the centre goes into the storeroom; returns what the storeroom holds of `lot` now.

        Raises ValueError for a quantity below 1 or an empty lot name.
        """
        if quantity < 1 or not lot.strip():
            raise ValueError("a delivery needs a lot name and at least one blank")
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "INSERT INTO storeroom(at, lot, movement, quantity, first_serial, last_serial, who)"
                " VALUES (?, ?, 'receive', ?, ?, ?, ?)", (now, lot, quantity, first_serial, last_serial, who))
            return self._storeroom_of(db, lot)

    def _storeroom_of(self, db: sqlite3.Connection, lot: str) -> int:
        return db.execute("SELECT COALESCE(SUM(quantity), 0) FROM storeroom WHERE lot = ?", (lot,)).fetchone()[0]

    def storeroom_remaining(self, lot: str | None = None) -> int:
        """Blanks in the storeroom: of one lot, or of all."""
        with self._lock:
            if lot is not None:
                return self._storeroom_of(self._db, lot)
            return self._db.execute("SELECT COALESCE(SUM(quantity), 0) FROM storeroom").fetchone()[0]

    def storeroom_lots(self) -> list[dict]:
        """Per lot: received, moved into hoppers, adjusted, and what the storeroom still holds."""
        with self._lock:
            rows = self._db.execute(
                "SELECT lot,"
                " SUM(CASE WHEN movement = 'receive' THEN quantity ELSE 0 END),"
                " -SUM(CASE WHEN movement = 'to-hopper' THEN quantity ELSE 0 END),"
                " SUM(CASE WHEN movement = 'adjust' THEN quantity ELSE 0 END),"
                " SUM(quantity) FROM storeroom GROUP BY lot ORDER BY MIN(id)").fetchall()
        return [{"lot": lot, "received": received, "to_hoppers": moved, "adjusted": adjusted, "remaining": remaining}
                for lot, received, moved, adjusted, remaining in rows]

    def load_blanks(self, printer: str, quantity: int, lot: str, first_serial: str | None = None,
                    last_serial: str | None = None, who: str = "operator", at: datetime | None = None) -> None:
        """Move `quantity` blanks of `lot` from the storeroom into `printer`'s hopper.

        Raises StoreroomShort (a ValueError) when the storeroom holds fewer of that lot, with the
        numbers; nothing moves then. A load also settles the printer's open ledger discrepancies.
        """
        now = stamp(at or utcnow())
        with self._tx() as db:
            held = self._storeroom_of(db, lot)
            if quantity > held:
                raise StoreroomShort(lot, quantity, held)
            db.execute(
                "INSERT INTO storeroom(at, lot, movement, quantity, printer, first_serial, last_serial, who)"
                " VALUES (?, ?, 'to-hopper', ?, ?, ?, ?, ?)", (now, lot, -quantity, printer, first_serial, last_serial, who))
            db.execute(
                "INSERT INTO ledger(at, printer, lot, movement, quantity, first_serial, last_serial, who)"
                " VALUES (?, ?, ?, 'load', ?, ?, ?, ?)",
                (now, printer, lot, quantity, first_serial, last_serial, who),
            )
            self._resolve(db, printer, f"{quantity} blanks loaded by {who}", now)

    def adjust_blanks(self, printer: str, quantity: int, reason: str, who: str, lot: str | None = None,
                      at: datetime | None = None) -> None:
        """Correct the count by hand (+/-N), with the reason and the person, e.g. a blank found bent.

        Raises ValueError for a zero quantity or a missing reason or person: an adjustment must be explained.
        """
        if quantity == 0 or not reason.strip() or not who.strip():
            raise ValueError("an adjustment needs a quantity other than 0, a reason and who made it")
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "INSERT INTO ledger(at, printer, lot, movement, quantity, reason, who) VALUES (?, ?, ?, 'adjust', ?, ?, ?)",
                (now, printer, lot or self._lot_in_feeder(db, printer), quantity, reason, who),
            )
            self._resolve(db, printer, f"adjusted by {quantity:+d} by {who}: {reason}", now)

    # -- discrepancies: the ledger against what the printer says ------------------------------

    def record_discrepancy(self, printer: str, kind: str, ledger_count: int, printer_said: str,
                           at: datetime | None = None) -> int | None:
        """Note that the ledger and the printer disagree; None when the same one is already open."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            if db.execute("SELECT 1 FROM discrepancies WHERE printer = ? AND kind = ? AND resolved_at IS NULL",
                          (printer, kind)).fetchone():
                return None
            cursor = db.execute(
                "INSERT INTO discrepancies(at, printer, lot, kind, ledger_count, printer_said) VALUES (?, ?, ?, ?, ?, ?)",
                (now, printer, self._lot_in_feeder(db, printer), kind, ledger_count, printer_said))
            return cursor.lastrowid

    def open_discrepancies(self, printer: str | None = None) -> list[dict]:
        """Disagreements not yet settled by a count (`hopper adjust`) or a load, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, printer, lot, kind, ledger_count, printer_said FROM discrepancies"
                " WHERE resolved_at IS NULL AND (? IS NULL OR printer = ?) ORDER BY id", (printer, printer)).fetchall()
        keys = ("id", "at", "printer", "lot", "kind", "ledger_count", "printer_said")
        return [dict(zip(keys, row)) for row in rows]

    def _resolve(self, db: sqlite3.Connection, printer: str, resolution: str, now: str) -> None:
        db.execute("UPDATE discrepancies SET resolved_at = ?, resolution = ? WHERE printer = ? AND resolved_at IS NULL",
                   (now, resolution, printer))

    # -- use over time (the forecast's input) ---------------------------------------------

    def feeds_between(self, since: str, until: str, printer: str | None = None) -> int:
        """Blanks fed (printed, spoiled or in the printer) in [since, until), by one printer or all."""
        with self._lock:
            if printer is None:
                return self._db.execute("SELECT COUNT(*) FROM ledger WHERE movement = 'feed' AND at >= ? AND at < ?",
                                        (since, until)).fetchone()[0]
            return self._db.execute(
                "SELECT COUNT(*) FROM ledger WHERE printer = ? AND movement = 'feed' AND at >= ? AND at < ?",
                (printer, since, until)).fetchone()[0]

    def stock_balance(self) -> list[dict]:
        """Per lot, at this moment: received = storeroom + hoppers + in the printer + printed + spoiled - adjusted.

        `adjusted` is the net of every adjustment (storeroom and hoppers; negative: blanks found
        missing). `balanced` says the equation holds with printed, spoiled and in-printer counted
        from the card attempts, not from the ledger's own sums.
        """
        store = {row["lot"]: row for row in self.storeroom_lots()}
        per_lot: dict[str, dict] = {}
        for row in self.ledger_balance():
            lot = row["lot"] or ""
            entry = per_lot.setdefault(lot, {"lot": lot, "hoppers": 0, "in_printer": 0, "printed": 0, "spoiled": 0,
                                             "hopper_adjusted": 0})
            entry["hoppers"] += row["remaining"]
            entry["in_printer"] += row["in_printer"]
            entry["printed"] += row["printed"]
            entry["spoiled"] += row["spoiled"]
            entry["hopper_adjusted"] += row["adjusted"]
        out = []
        for lot in dict.fromkeys([*store, *per_lot]):
            s = store.get(lot, {"received": 0, "adjusted": 0, "remaining": 0})
            h = per_lot.get(lot, {"hoppers": 0, "in_printer": 0, "printed": 0, "spoiled": 0, "hopper_adjusted": 0})
            adjusted = s["adjusted"] + h["hopper_adjusted"]
            accounted = s["remaining"] + h["hoppers"] + h["in_printer"] + h["printed"] + h["spoiled"] - adjusted
            out.append({"lot": lot, "received": s["received"], "storeroom": s["remaining"], "hoppers": h["hoppers"],
                        "in_printer": h["in_printer"], "printed": h["printed"], "spoiled": h["spoiled"],
                        "adjusted": adjusted, "balanced": accounted == s["received"]})
        return out

    def _lot_in_feeder(self, db: sqlite3.Connection, printer: str) -> str | None:
        """The oldest lot of `printer` with blanks left: feeders take blanks first in, first out."""
        lots = db.execute(
            "SELECT lot, SUM(quantity) FROM ledger WHERE printer = ? GROUP BY lot ORDER BY MIN(id)", (printer,)
        ).fetchall()
        for lot, remaining in lots:
            if remaining > 0:
                return lot
        return lots[-1][0] if lots else None

    def ledger_balance(self) -> list[dict]:
        """Per printer and lot: loaded, adjusted, printed, spoiled, in the printer, remaining.

        `balanced` is loaded + adjusted == printed + spoiled + in_printer + remaining, where printed,
        spoiled and in_printer are counted from the card attempts the feeds belong to, not from the ledger sum.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT l.printer, l.lot,"
                " SUM(CASE WHEN l.movement = 'load' THEN l.quantity ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'adjust' THEN l.quantity ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'feed' AND a.result = 'printed' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'feed' AND a.result = 'spoiled' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'feed' AND a.result IS NULL THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN l.movement = 'spoil' THEN 1 ELSE 0 END),"
                " SUM(l.quantity)"
                " FROM ledger l LEFT JOIN attempts a ON a.job_id = l.job_id AND a.n = l.attempt"
                " GROUP BY l.printer, l.lot ORDER BY l.printer, MIN(l.id)"
            ).fetchall()
        balance = []
        for printer, lot, loaded, adjusted, printed, spoiled, in_printer, spoil_rows, remaining in rows:
            balance.append({
                "printer": printer, "lot": lot, "loaded": loaded, "adjusted": adjusted, "printed": printed,
                "spoiled": spoiled, "in_printer": in_printer, "remaining": remaining,
                "balanced": loaded + adjusted == printed + spoiled + in_printer + remaining and spoil_rows == spoiled,
            })
        return balance

    def cards_in_printer(self, printer: str) -> int:
        """Jobs of `printer` whose card may be inside it now (0 or 1 when all is well)."""
        with self._lock:
            return self._db.execute(
                f"SELECT COUNT(*) FROM jobs WHERE printer = ? AND state IN ({','.join('?' * len(IN_PRINTER))})",
                (printer, *[s.value for s in IN_PRINTER]),
            ).fetchone()[0]

    def expected_card_counter(self, printer: str) -> int | None:
        """The printer's card counter after the last feed the journal knows of; None before any feed."""
        with self._lock:
            row = self._db.execute(
                "SELECT card_counter_before FROM attempts WHERE printer = ? AND fed = 1 AND card_counter_before IS NOT NULL"
                " ORDER BY started_at DESC, rowid DESC LIMIT 1", (printer,),
            ).fetchone()
        return row[0] + 1 if row else None

    def blanks_remaining(self, printer: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(SUM(quantity), 0) FROM ledger WHERE printer = ?", (printer,)).fetchone()[0]

    # -- outbox -----------------------------------------------------------------------------

    def outbox_next(self) -> OutboxMessage | None:
        """The oldest undelivered message: delivery keeps the order in which things happened."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, kind, method, path, idempotency_key, body, tries FROM outbox WHERE delivered_at IS NULL AND refused_at IS NULL ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return OutboxMessage(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])

    def outbox_delivered(self, message_id: int, at: datetime | None = None) -> None:
        """Upstream has the message. An acknowledged outcome ends the station's need for personal data."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute("UPDATE outbox SET delivered_at = ? WHERE id = ?", (now, message_id))
            row = db.execute("SELECT kind, job_id FROM outbox WHERE id = ?", (message_id,)).fetchone()
            if row and row[0] == "outcome" and row[1]:
                job_id = row[1]
                # Upstream has it: the signed job (NIK, name, photo, chip image) and the chip's
                # checks go; the outcome's copy of the checks goes with them.
                db.execute("UPDATE jobs SET payload = NULL WHERE job_id = ?", (job_id,))
                db.execute("UPDATE attempts SET checks = NULL WHERE job_id = ?", (job_id,))
                db.execute("UPDATE outbox SET body = '{}' WHERE id = ?", (message_id,))

    def outbox_failed(self, message_id: int, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET tries = tries + 1, last_error = ? WHERE id = ?", (error[:500], message_id))

    def outbox_refused(self, message_id: int, error: str, at: datetime | None = None) -> None:
        """Upstream refuses this message for good: keep it (never lost), stop resending it, alert."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute("UPDATE outbox SET tries = tries + 1, last_error = ?, refused_at = ? WHERE id = ?",
                       (error[:500], now, message_id))

    def privacy_report(self) -> dict[str, Any]:
        """What personal data the journal holds, for the support bundle: payloads only of jobs whose
        outcome upstream does not have yet, and no chip checks of acknowledged jobs (purged data is
        overwritten: the writer sets secure_delete)."""
        with self._lock:
            db = self._db
            acked = "SELECT job_id FROM outbox WHERE kind = 'outcome' AND delivered_at IS NOT NULL"
            return {
                "payloads_held": db.execute("SELECT COUNT(*) FROM jobs WHERE payload IS NOT NULL").fetchone()[0],
                "payloads_held_after_outcome_acknowledged": db.execute(
                    f"SELECT COUNT(*) FROM jobs WHERE payload IS NOT NULL AND job_id IN ({acked})").fetchone()[0],
                "chip_checks_held_after_outcome_acknowledged": db.execute(
                    f"SELECT COUNT(*) FROM attempts WHERE checks IS NOT NULL AND job_id IN ({acked})").fetchone()[0],
                "outcomes_acknowledged": db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE kind = 'outcome' AND delivered_at IS NOT NULL").fetchone()[0],
            }

    def outbox_backlog(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND refused_at IS NULL").fetchone()[0]

    # -- views ------------------------------------------------------------------------------

    def count_by_state(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())

    def printable_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (JobState.LEASED.value,)).fetchone()[0]

    def events(self, since_id: int = 0, limit: int = 1000) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, job_id, at, state, detail FROM job_events WHERE id > ? ORDER BY id LIMIT ?", (since_id, limit)
            ).fetchall()
        return [{"id": i, "job_id": j, "at": a, "state": s, **(json.loads(d) if d else {})} for i, j, a, s, d in rows]

    # -- read-only views for operators (status, events, morning report, support bundle) ---------

    @classmethod
    def read_only(cls, path: Path, station: str = "") -> Journal:
        """Open the journal for reading only (SQLite `mode=ro`), e.g. while the daemon is down.

        Raises JournalError when it does not exist or cannot be read. Writing through it fails.
        """
        journal = cls.__new__(cls)
        journal.path, journal.station, journal.max_attempts = Path(path), station, 0
        journal._lock = threading.RLock()
        journal.outbox_ready = threading.Event()
        journal._queued = False
        try:
            journal._db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=False)
            journal._db.execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {path}: {exc}") from exc
        return journal

    def attempts_since(self, since: str) -> list[dict]:
        """Card attempts that ended at or after `since` (RFC 3339 UTC): printer, result, reason, times."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, n, printer, result, reason, started_at, ended_at FROM attempts"
                " WHERE ended_at >= ? ORDER BY ended_at", (since,)
            ).fetchall()
        keys = ("job_id", "attempt", "printer", "result", "reason", "started_at", "ended_at")
        return [dict(zip(keys, row)) for row in rows]

    def ledger_printers(self) -> list[str]:
        """Every printer the blank ledger knows."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT printer FROM ledger ORDER BY printer")]

    def ledger_entries(self, limit: int = 1000) -> list[dict]:
        """The newest ledger movements (no personal data in the ledger), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, printer, lot, movement, quantity, first_serial, last_serial, job_id, reason, who"
                " FROM ledger ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        keys = ("id", "at", "printer", "lot", "movement", "quantity", "first_serial", "last_serial", "job_id", "reason", "who")
        return [dict(zip(keys, row)) for row in reversed(rows)]

    def outbox_summary(self) -> list[dict]:
        """Each outbox message's kind, key and delivery state, without its body."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, path, created_at, tries, last_error, delivered_at, refused_at FROM outbox ORDER BY id"
            ).fetchall()
        keys = ("id", "kind", "path", "created_at", "tries", "last_error", "delivered_at", "refused_at")
        return [dict(zip(keys, row)) for row in rows]

    def last_event_id(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM job_events").fetchone()[0]

    def queue_report(self, kind: str, body: dict, key: str, at: datetime | None = None) -> None:
        """Queue a station report (e.g. the morning report) for upstream's telemetry endpoint."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            self._enqueue(db, kind, "POST", f"/v1/stations/{self.station}/telemetry", f"{self.station}:{key}", body, now)

    def subjects_held(self) -> list[dict]:
        """The `subject` of every job whose payload is still here: for scrubbing support bundles, never for output."""
        with self._lock:
            rows = self._db.execute("SELECT payload FROM jobs WHERE payload IS NOT NULL").fetchall()
        subjects = []
        for (payload,) in rows:
            try:
                subject = json.loads(payload).get("subject")
            except (ValueError, AttributeError):
                continue
            if isinstance(subject, dict):
                subjects.append(subject)
        return subjects

    def peek_printable(self, limit: int) -> list[str]:
        """The next printable jobs' ids in claim order, without claiming them (for rendering ahead)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE state = ? AND payload IS NOT NULL"
                " ORDER BY priority DESC, received_at, job_id LIMIT ?", (JobState.LEASED.value, limit)
            ).fetchall()
        return [job_id for (job_id,) in rows]

    def payload(self, job_id: str) -> dict | None:
        """A job as received, or None once purged."""
        with self._lock:
            row = self._db.execute("SELECT payload FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def first_event_id_at(self, at: str) -> int | None:
        """The id of the first event at or after `at` (RFC 3339 UTC), through the time index."""
        with self._lock:
            row = self._db.execute("SELECT id FROM job_events WHERE at >= ? ORDER BY at, id LIMIT 1", (at,)).fetchone()
        return row[0] if row else None

    def purge_history(self, before: datetime) -> int:
        """Forget finished jobs last touched before `before` whose reports upstream has (or refused):
        their events, attempts and delivered messages. The blank ledger is kept whole (it is the
        audit trail and grows by a row or two a card). Returns how many jobs were forgotten."""
        cutoff = stamp(before)
        finished = ",".join("?" * len(FINAL))
        with self._tx() as db:
            db.execute("DELETE FROM outbox WHERE (delivered_at IS NOT NULL OR refused_at IS NOT NULL) AND created_at < ?",
                       (cutoff,))
            db.execute("CREATE TEMP TABLE IF NOT EXISTS purge(job_id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM purge")
            db.execute(
                f"INSERT INTO purge SELECT job_id FROM jobs WHERE state IN ({finished}) AND updated_at < ?"
                " AND job_id NOT IN (SELECT job_id FROM outbox"
                " WHERE job_id IS NOT NULL AND delivered_at IS NULL AND refused_at IS NULL)",
                (*[s.value for s in FINAL], cutoff),
            )
            db.execute("DELETE FROM job_events WHERE job_id IN (SELECT job_id FROM purge)")
            db.execute("DELETE FROM attempts WHERE job_id IN (SELECT job_id FROM purge)")
            gone = db.execute("DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM purge)").rowcount
        return gone
