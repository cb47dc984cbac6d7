"""Retention: finished jobs whose reports upstream has are forgotten after `retention_days`.
"""

from __future__ import annotations

from datetime import datetime

from agent.journal.db import JournalDb, stamp
from agent.journal.jobs import FINAL


class Retention(JournalDb):
    """Forgets what is no longer needed; the ledger stays whole."""

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
            db.execute("DELETE FROM job_payloads WHERE job_id IN (SELECT job_id FROM purge)")  # a refused outcome's job
            gone = db.execute("DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM purge)").rowcount
        return gone
