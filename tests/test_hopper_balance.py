"""The hopper's running total (schema 5) agrees with the ledger it sums, after any sequence of
loads, feeds, spoils and adjustments, and on a journal upgraded from before it existed. The oracle
is the ledger's own SUM, asked of SQLite here, not the code under test."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.journal import Journal
from agent.journal.schema import MIGRATIONS, _statements

PRINTERS = ("p1", "p2")
LOTS = ("LOT-A", "LOT-B", "LOT-C")
move = st.one_of(
    st.tuples(st.just("load"), st.sampled_from(PRINTERS), st.sampled_from(LOTS), st.integers(1, 30)),
    st.tuples(st.just("feed"), st.sampled_from(PRINTERS), st.just(""), st.just(0)),
    st.tuples(st.just("adjust"), st.sampled_from(PRINTERS), st.sampled_from(("",) + LOTS), st.integers(-5, 5).filter(bool)),
)


def _oldest_lot_with_blanks(db: sqlite3.Connection, printer: str) -> str | None:
    """The feeder's next lot as the ledger itself says it (first in, first out)."""
    lots = db.execute("SELECT lot, SUM(quantity) FROM ledger WHERE printer = ? GROUP BY lot ORDER BY MIN(id)",
                      (printer,)).fetchall()
    return next((lot for lot, left in lots if left > 0), lots[-1][0] if lots else None)


def _agrees(journal: Journal, path) -> None:
    db = sqlite3.connect(path)
    try:
        for printer in PRINTERS:
            summed = db.execute("SELECT COALESCE(SUM(quantity), 0) FROM ledger WHERE printer = ?", (printer,)).fetchone()[0]
            assert journal.blanks_remaining(printer) == summed
            with journal._lock:
                assert journal._lot_in_feeder(journal._db, printer) == _oldest_lot_with_blanks(db, printer)
    finally:
        db.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(move, max_size=40))
def test_the_running_total_is_the_ledgers_sum_after_any_movements(tmp_path_factory, moves):
    path = tmp_path_factory.mktemp("balance") / "journal.db"
    journal = Journal(path, "st-1")
    journal.receive_blanks("LOT-A", 10_000)
    journal.receive_blanks("LOT-B", 10_000)
    journal.receive_blanks("LOT-C", 10_000)
    later = datetime.now(timezone.utc) + timedelta(days=1)
    for n, (kind, printer, lot, quantity) in enumerate(moves):
        if kind == "load":
            journal.load_blanks(printer, quantity, lot, who="op")
        elif kind == "adjust":
            journal.adjust_blanks(printer, quantity, "counted", "op", lot=lot or None)
        else:
            job_id = f"J-{n}"
            journal.add_leased(job_id, {"job_id": job_id}, not_after=later, lease_expires_at=later, priority=0)
            claimed = journal.claim_next(printer)
            assert claimed is not None
            journal.fed(claimed.job_id, claimed.attempt, printer)
            if n % 3 == 0:
                journal.spoiled(claimed.job_id, claimed.attempt, "chip-verify-failed")
    _agrees(journal, path)
    journal.close()


def test_a_journal_from_before_the_running_total_gets_it_from_its_ledger(tmp_path):
    path = tmp_path / "journal.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for script in MIGRATIONS[:4]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("INSERT INTO schema_version(version) VALUES (4)")
    for printer, lot, movement, quantity in [("p1", "LOT-A", "load", 20), ("p1", "LOT-A", "feed", -1),
                                             ("p1", "LOT-B", "load", 5), ("p2", None, "adjust", 3),
                                             ("p1", "LOT-A", "feed", -1)]:
        db.execute("INSERT INTO ledger(at, printer, lot, movement, quantity) VALUES ('2026-01-01T00:00:00Z', ?, ?, ?, ?)",
                   (printer, lot, movement, quantity))
    db.close()
    journal = Journal(path, "st-1")
    assert journal.blanks_remaining("p1") == 23 and journal.blanks_remaining("p2") == 3
    _agrees(journal, path)
    journal.close()
