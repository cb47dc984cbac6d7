"""The outbox: messages for upstream, queued in the same transaction as the change they report,
delivered in order by the sender, each with its idempotency key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.journal.db import JournalDb, purge_payload, stamp, utcnow


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    kind: str  # outcome | release | telemetry | alert | morning-report: the upstream client knows where each goes;
    # or one of LOCAL_KINDS, for the station's own channels
    job_id: str | None
    idempotency_key: str
    body: dict
    tries: int


# Kinds for the station's own channels, not for upstream (notify-webhook: agent/ops/notify_webhook.py).
# They share the outbox's durability and keys, but by default every reader below leaves them out:
# the upstream sender, its backlog and `route()` never see them.
LOCAL_KINDS = frozenset({"notify-webhook"})


def _kinds_clause(kinds: Collection[str] | None) -> tuple[str, list[str]]:
    """SQL for `kinds` (None: every kind for upstream, i.e. all but LOCAL_KINDS)."""
    chosen = sorted(LOCAL_KINDS if kinds is None else set(kinds))
    marks = ", ".join("?" * len(chosen))
    if kinds is None:
        return f"kind NOT IN ({marks})", chosen
    return (f"kind IN ({marks})", chosen) if chosen else ("0", [])


class Outbox(JournalDb):
    """Messages waiting for upstream, and their fate."""

    def _enqueue(self, db: sqlite3.Connection, kind: str, key: str, body: dict, at: str,
                 job_id: str | None = None) -> None:
        db.execute(
            "INSERT OR IGNORE INTO outbox(kind, idempotency_key, body, created_at, job_id) VALUES (?, ?, ?, ?, ?)",
            (kind, key, json.dumps(body, sort_keys=True), at, job_id),
        )
        self._queued = True

    def outbox_next(self, kinds: Collection[str] | None = None) -> OutboxMessage | None:
        """The oldest undelivered message of `kinds` (None: any kind for upstream, none of LOCAL_KINDS):
        delivery keeps the order in which things happened."""
        batch = self.outbox_batch(1, kinds)
        return batch[0] if batch else None

    def outbox_batch(self, limit: int, kinds: Collection[str] | None = None,
                     max_bytes: int | None = None) -> list[OutboxMessage]:
        """Up to `limit` undelivered messages of `kinds` (as `outbox_next`), oldest first; with
        `max_bytes`, no more than fit in that many bytes of body (but always the oldest one)."""
        where, args = _kinds_clause(kinds)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, job_id, idempotency_key, body, tries FROM outbox"
                f" WHERE delivered_at IS NULL AND refused_at IS NULL AND {where} ORDER BY id LIMIT ?", [*args, limit]
            ).fetchall()
        batch: list[OutboxMessage] = []
        size = 0
        for row in rows:
            size += len(row[4])
            if batch and max_bytes is not None and size > max_bytes:
                break
            batch.append(OutboxMessage(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5]))
        return batch

    def outbox_settled(self, delivered: Iterable[int] = (), refused: Mapping[int, str] | None = None,
                       failed: Mapping[int, str] | None = None, at: datetime | None = None) -> None:
        """What upstream made of a batch, in one transaction: `delivered` messages are marked so
        (an acknowledged outcome ends the station's need for personal data), `refused` ones are
        kept but not resent (as `outbox_refused`), `failed` ones stay queued with their error."""
        now = stamp(at or utcnow())
        # Not durable: lost in a power cut, the messages go again and upstream knows their keys.
        with self._tx(durable=False) as db:
            for message_id in delivered:
                db.execute("UPDATE outbox SET delivered_at = ? WHERE id = ?", (now, message_id))
                row = db.execute("SELECT kind, job_id FROM outbox WHERE id = ?", (message_id,)).fetchone()
                if row and row[0] == "outcome" and row[1]:
                    job_id = row[1]
                    # Upstream has it: the signed job (NIK, name, photo, chip image) and the chip's
                    # checks go; the outcome's copy of the checks goes with them.
                    purge_payload(db, job_id)
                    db.execute("UPDATE attempts SET checks = NULL WHERE job_id = ?", (job_id,))
                    db.execute("UPDATE outbox SET body = '{}' WHERE id = ?", (message_id,))
            for message_id, error in (refused or {}).items():
                db.execute("UPDATE outbox SET tries = tries + 1, last_error = ?, refused_at = ? WHERE id = ?",
                           (error[:500], now, message_id))
            for message_id, error in (failed or {}).items():
                db.execute("UPDATE outbox SET tries = tries + 1, last_error = ? WHERE id = ?", (error[:500], message_id))

    def outbox_delivered(self, message_id: int, at: datetime | None = None) -> None:
        """Upstream has the message. An acknowledged outcome ends the station's need for personal data."""
        self.outbox_settled(delivered=[message_id], at=at)

    def outbox_failed(self, message_id: int, error: str) -> None:
        self.outbox_settled(failed={message_id: error})

    def outbox_refused(self, message_id: int, error: str, at: datetime | None = None) -> None:
        """Upstream refuses this message for good: keep it (never lost), stop resending it, alert."""
        self.outbox_settled(refused={message_id: error}, at=at)

    def outbox_backlog(self, kinds: Collection[str] | None = None) -> int:
        """Undelivered messages of `kinds` (None: for upstream, as `outbox_next`)."""
        where, args = _kinds_clause(kinds)
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND refused_at IS NULL"
                                    f" AND {where}", args).fetchone()[0]

    def queue_report(self, kind: str, body: dict, key: str, at: datetime | None = None) -> None:
        """Queue a station report (e.g. the morning report) for upstream's telemetry endpoint."""
        now = stamp(at or utcnow())
        with self._tx() as db:
            self._enqueue(db, kind, f"{self.station}:{key}", body, now)

    def queue_local(self, kind: str, body: dict, key: str, at: datetime | None = None) -> bool:
        """Queue a message for one of the station's own channels (a kind of LOCAL_KINDS); False when
        a message with this key is queued already."""
        if kind not in LOCAL_KINDS:
            raise ValueError(f"{kind!r} is not a local outbox kind")
        now = stamp(at or utcnow())
        with self._tx() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO outbox(kind, idempotency_key, body, created_at) VALUES (?, ?, ?, ?)",
                (kind, f"{self.station}:{key}", json.dumps(body, sort_keys=True), now)).rowcount
        return bool(added)

    def outbox_summary(self) -> list[dict]:
        """Each outbox message's kind, job and delivery state, without its body."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, job_id, created_at, tries, last_error, delivered_at, refused_at FROM outbox ORDER BY id"
            ).fetchall()
        keys = ("id", "kind", "job_id", "created_at", "tries", "last_error", "delivered_at", "refused_at")
        return [dict(zip(keys, row)) for row in rows]
