"""The journal's one connection: SQLite in WAL with synchronous=FULL (two kinds of commit do not
wait for the disk: see `_tx`), one writer under one lock.

Every part of the journal (jobs, ledger, outbox, views, retention) writes through `_tx`, so a
change and the message that reports it commit together or not at all.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Self

from agent.journal.schema import migrate


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JournalError(Exception):
    """The journal cannot be opened or written (disk full, read-only, corrupt)."""



class JournalDb:
    """One writer: every write goes through one connection under one lock."""

    _db: sqlite3.Connection

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
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction. `durable=False` for what a power cut may lose harmlessly: `fed` (the
        next intent carries it to disk; recovery settles a lost one from the card inside and the
        counter) and acknowledgements (the message goes again under its idempotency key). Its
        commit does not wait for the disk, so it does not hold the printers' commits behind an
        fsync; the next durable commit writes it to disk along with its own (WAL)."""
        with self._lock:
            try:
                if not durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._synchronous_full()
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
            finally:
                if not durable:
                    self._synchronous_full()
            if self._queued:
                self._queued = False
                self.outbox_ready.set()

    def _synchronous_full(self) -> None:
        """Back to FULL after a transaction that did not wait for the disk. Raises JournalError if
        the connection stays otherwise: every later intent would silently not wait either."""
        try:
            self._db.execute("PRAGMA synchronous=FULL")
            level = self._db.execute("PRAGMA synchronous").fetchone()[0]
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: cannot go back to synchronous=FULL: {exc}") from exc
        if level != 2:
            raise JournalError(f"journal {self.path}: synchronous is {level} after a transaction, not FULL (2)")

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to undo (SQLite already rolled back after a full disk)

    @classmethod
    def read_only(cls, path: Path, station: str = "") -> Self:
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


def purge_payload(db: sqlite3.Connection, job_id: str) -> None:
    """The signed job (NIK, name, photo, chip image) leaves the station; secure_delete zeroes it."""
    db.execute("DELETE FROM job_payloads WHERE job_id = ?", (job_id,))
