"""Read-only views for operators and reports (status, events, morning report, support bundle).
"""

from __future__ import annotations

import json
from typing import Any

from agent.journal.db import JournalDb
from agent.journal.jobs import JobState


class Views(JournalDb):
    """What the operator tools read; nothing here writes."""

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

    def last_event_id(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM job_events").fetchone()[0]

    def subjects_held(self) -> list[dict]:
        """The `subject` of every job whose payload is still here: for scrubbing support bundles, never for output."""
        with self._lock:
            rows = self._db.execute("SELECT payload FROM job_payloads").fetchall()
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
                "SELECT job_id FROM jobs j WHERE state = ? AND EXISTS (SELECT 1 FROM job_payloads p WHERE p.job_id = j.job_id)"
                " ORDER BY priority DESC, received_at, job_id LIMIT ?", (JobState.LEASED.value, limit)
            ).fetchall()
        return [job_id for (job_id,) in rows]

    def payload(self, job_id: str) -> dict | None:
        """A job as received, or None once purged."""
        with self._lock:
            row = self._db.execute("SELECT payload FROM job_payloads WHERE job_id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def first_event_id_at(self, at: str) -> int | None:
        """The id of the first event at or after `at` (RFC 3339 UTC), through the time index."""
        with self._lock:
            row = self._db.execute("SELECT id FROM job_events WHERE at >= ? ORDER BY at, id LIMIT 1", (at,)).fetchone()
        return row[0] if row else None

    def privacy_report(self) -> dict[str, Any]:
        """What personal data the journal holds, for the support bundle: payloads only of jobs whose
        outcome upstream does not have yet, and no chip checks of acknowledged jobs (purged data is
        overwritten: the writer sets secure_delete)."""
        with self._lock:
            db = self._db
            acked = "SELECT job_id FROM outbox WHERE kind = 'outcome' AND delivered_at IS NOT NULL"
            return {
                "payloads_held": db.execute("SELECT COUNT(*) FROM job_payloads").fetchone()[0],
                "payloads_held_after_outcome_acknowledged": db.execute(
                    f"SELECT COUNT(*) FROM job_payloads WHERE job_id IN ({acked})").fetchone()[0],
                "chip_checks_held_after_outcome_acknowledged": db.execute(
                    f"SELECT COUNT(*) FROM attempts WHERE checks IS NOT NULL AND job_id IN ({acked})").fetchone()[0],
                "outcomes_acknowledged": db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE kind = 'outcome' AND delivered_at IS NOT NULL").fetchone()[0],
            }
