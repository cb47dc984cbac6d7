"""Jobs: the state machine (`JobState` and the moves it allows) and every transition, each an appended
event with the job row kept in step in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from agent.journal.reasons import Because, Reason, reason_code
from agent.journal.db import purge_payload, stamp, utcnow
from agent.journal.ledger import Ledger
from agent.journal.outbox import Outbox


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
    return reason is not None and reason_code(str(reason)).startswith("chip-")


@dataclass(frozen=True)
class ClaimedJob:
    """A job taken for a printer: its body is read only when render-ahead did not have it parsed
    (`Journal.payload`), so a claim does not read and parse ~700 KB on the way to the printer."""

    job_id: str
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



class JobBook(Outbox, Ledger):
    """Jobs from lease to final state; their cards feed the ledger and their outcomes the outbox."""

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

    def knows(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is not None

    def add_leased(self, job_id: str, payload: dict | str, *, not_after: datetime, lease_expires_at: datetime,
                   priority: int, at: datetime | None = None) -> bool:
        """Record a newly leased, verified job: `payload` as a dict, or as the JSON text intake
        kept from the signature check (not encoded again). False if the journal already knows it."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs(job_id, state, priority, not_after, lease_expires_at, received_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, JobState.LEASED.value, priority, stamp(not_after), stamp(lease_expires_at), now, now),
            )
            if cur.rowcount == 0:
                return False
            db.execute("INSERT INTO job_payloads(job_id, payload) VALUES (?, ?)", (job_id, payload if isinstance(payload, str) else json.dumps(payload)))
            self._event(db, job_id, JobState.LEASED, now)
            return True

    def reject(self, job_id: str, reason: str, message: str, at: datetime | None = None) -> None:
        """Record a job the station refuses to print, and report it upstream."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO jobs(job_id, state, priority, not_after, lease_expires_at, received_at, updated_at)"
                " VALUES (?, ?, 0, ?, ?, ?, ?)",
                (job_id, JobState.REJECTED.value, now, now, now, now),
            )
            db.execute("UPDATE jobs SET state = ?, reason = ?, updated_at = ? WHERE job_id = ?",
                       (JobState.REJECTED.value, reason, now, job_id))
            purge_payload(db, job_id)
            self._event(db, job_id, JobState.REJECTED, now, reason=reason, message=message)
            body = {"station": self.station, "status": "rejected", "reason": reason, "message": message, "attempts": []}
            self._enqueue(db, "outcome", f"{self.station}:{job_id}:outcome", body, now,
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
            db.execute("UPDATE jobs SET reason = ? WHERE job_id = ?", (reason, job_id))
            purge_payload(db, job_id)
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

    def claim_next(self, printer: str, at: datetime | None = None, card_counter: int | None = None) -> ClaimedJob | None:
        """Take the next printable job for `printer` and write the intent before any byte moves.

        `card_counter` is the printer's card counter read just before: the evidence recovery
        compares with, to know whether the feed that follows happened. Jobs whose lease or
        validity ran out are marked expired on the way.
        """
        now = stamp(at or utcnow())
        with self._tx() as db:
            return self._claim(db, printer, now, card_counter)

    def _claim(self, db: sqlite3.Connection, printer: str, now: str, card_counter: int | None) -> ClaimedJob | None:
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
            return ClaimedJob(job_id, attempt, printer)
        return None

    def unclaim(self, job_id: str, attempt: int, reason: str | Because, at: datetime | None = None) -> None:
        """No card was fed for this attempt (feeder empty, printer fault before feeding): back to leased."""
        reason = str(reason)
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute("DELETE FROM attempts WHERE job_id = ? AND n = ?", (job_id, attempt))
            self._set_state(db, job_id, JobState.LEASED, now, reason=reason)

    def fed(self, job_id: str, attempt: int, printer: str, lot: str | None = None, at: datetime | None = None) -> None:
        """A blank left the hopper for this job: the ledger and the state move together.

        Without `lot`, the blank is counted against the oldest lot still in the feeder (first in, first out).
        """
        now = stamp(at or utcnow())
        # Not durable by itself: the next durable intent (ejecting, or rejecting) takes this with
        # it. Lost in a power cut before that, the job reads `feeding` with the card inside, which
        # recovery settles exactly as it settles `encoding`: fed, rejected, counted spoiled.
        with self._tx(durable=False) as db:
            db.execute(
                "INSERT INTO ledger(at, printer, lot, movement, quantity, job_id, attempt) VALUES (?, ?, ?, 'feed', -1, ?, ?)",
                (now, printer, lot or self._lot_in_feeder(db, printer), job_id, attempt),
            )
            db.execute("UPDATE attempts SET fed = 1 WHERE job_id = ? AND n = ?", (job_id, attempt))
            self._set_state(db, job_id, JobState.ENCODING, now, attempt=attempt)

    def advance(self, job_id: str, state: JobState, at: datetime | None = None, **detail: Any) -> None:
        """Record the intent to enter `state` (printing, ejecting, rejecting) before the printer is told.

        `printing` does not wait for the disk: recovery settles a card inside the printer the same
        from `feeding`, `encoding` or `printing` (rejected, counted spoiled) and holds the job when
        no card is inside after any of them, so losing it in a power cut changes nothing, and the
        `ejecting` or `rejecting` intent that follows is durable and takes it along. One wait for
        the disk less on every card's critical path."""
        now = stamp(at or utcnow())
        with self._tx(durable=state is not JobState.PRINTING) as db:
            self._set_state(db, job_id, state, now, **detail)

    def spoiled(self, job_id: str, attempt: int, reason: str | Because, checks: list[dict] | None = None,
                at: datetime | None = None) -> JobState:
        """The card went to the reject box. Retry on a fresh blank, or give up after the limit.

        Returns the job's new state (leased for a retry, failed when out of attempts).
        """
        reason = str(reason)
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
                self._finish(db, job_id, JobState.FAILED, now, reason=Reason.TOO_MANY_SPOILED)
                return JobState.FAILED
            if len(spoils) - own >= MAX_INTERRUPTIONS:
                self._finish(db, job_id, JobState.FAILED, now, reason=Reason.TOO_MANY_INTERRUPTIONS)
                return JobState.FAILED
            self._set_state(db, job_id, JobState.LEASED, now, retry_after=reason)
            return JobState.LEASED

    def printed(self, job_id: str, attempt: int, card_counter: int | None, at: datetime | None = None, *,
                claim_next_for: str | None = None) -> ClaimedJob | None:
        """The card left through the output: the job is done, and upstream will hear of it.

        With `claim_next_for`, the same commit claims that printer's next job (as `claim_next`,
        the counter after this card standing as the counter before the next): one wait for the
        disk between two cards, not two. Returns the job claimed, if any."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET result = 'printed', card_counter_after = ?, ended_at = ? WHERE job_id = ? AND n = ?",
                (card_counter, now, job_id, attempt),
            )
            self._finish(db, job_id, JobState.PRINTED, now)
            return self._claim(db, claim_next_for, now, card_counter) if claim_next_for is not None else None

    def give_up(self, job_id: str, attempt: int, reason: str | Because, at: datetime | None = None) -> None:
        """The job cannot be printed at all (e.g. its card image is unusable); no blank was used."""
        reason = str(reason)
        now = stamp(at or utcnow())
        with self._tx() as db:
            db.execute("DELETE FROM attempts WHERE job_id = ? AND n = ?", (job_id, attempt))
            self._finish(db, job_id, JobState.FAILED, now, reason=reason)

    def fail(self, job_id: str, reason: str | Because, at: datetime | None = None) -> None:
        """End a job `failed` (reported upstream), keeping its card attempts as they are."""
        reason = str(reason)
        now = stamp(at or utcnow())
        with self._tx() as db:
            self._finish(db, job_id, JobState.FAILED, now, reason=reason)

    def held_jobs(self) -> list[dict]:
        """Jobs held for a person to decide: id, since when and why (no personal data)."""
        with self._lock:
            rows = self._db.execute("SELECT job_id, updated_at, reason FROM jobs WHERE state = ? ORDER BY updated_at",
                                    (JobState.HELD.value,)).fetchall()
        return [{"job_id": j, "since": since, "reason": why} for j, since, why in rows]

    def decide_held(self, job_id: str, decision: str, who: str = "operator", at: datetime | None = None) -> JobState:
        """A person's decision on a held job, once they have looked in the output tray and the reject
        box: `print-again` (the card is in neither: back to `leased`, a fresh blank), `printed` (the
        card is in the output tray: `printed`, reported upstream) or `cancel` (`failed`, reported
        upstream). Raises ValueError for another decision or a job that is not held."""
        targets = {"print-again": JobState.LEASED, "printed": JobState.PRINTED, "cancel": JobState.FAILED}
        if decision not in targets:
            raise ValueError(f"no decision {decision!r}: {', '.join(targets)}")
        now = stamp(at or utcnow())
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or row[0] != JobState.HELD.value:
                raise ValueError(f"job {job_id} is not held" + (f" (it is {row[0]})" if row else " (no such job)"))
            state = targets[decision]
            if state is JobState.LEASED:
                self._set_state(db, job_id, state, now, decided_by=who, decision=decision)
            else:
                self._finish(db, job_id, state, now, reason=f"decided-by-{who}: {decision}")
            return state

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
            self._enqueue(db, "alert", f"{self.station}:{job_id}:held:{held}", {"at": now, "alerts": [alert]}, now)

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
            self._enqueue(db, "release", f"{self.station}:{job_id}:release", {"job_ids": [job_id], "reason": reason or state.value}, now,
                          job_id=job_id)
            purge_payload(db, job_id)
            return
        status = "printed" if state is JobState.PRINTED else "failed"
        body: dict[str, Any] = {"station": self.station, "status": status, "attempts": attempts}
        if reason:
            body["reason"] = reason
        if state is JobState.PRINTED:
            body["printed_at"] = now
        self._enqueue(db, "outcome", f"{self.station}:{job_id}:outcome", body, now,
                      job_id=job_id)

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

    def cards_in_printer(self, printer: str, card_counter: int | None = None) -> int:
        """Jobs of `printer` whose card may be inside it now (0 or 1 when all is well). With the
        printer's `card_counter`, a job claimed whose feed has not happened (`feeding`, the counter
        where the claim read it: the next card's claim rides in the commit that ends a card) is not."""
        return sum(1 for job in self.active_jobs(printer)
                   if not (job.state is JobState.FEEDING and card_counter is not None
                           and job.card_counter_before == card_counter))
