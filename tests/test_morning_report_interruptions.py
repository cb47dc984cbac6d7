"""The morning report counts the cards the station itself lost (crash, power cut, full disk:
`interrupted`) apart from the others, in both languages; a real journal on disk feeds it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.core.printer_snapshot import PrinterSnapshot
from agent.ops.batch import BatchRunner, render_text
from agent.journal import Journal


def test_interrupted_cards_are_counted_apart(tmp_path):
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    journal = Journal(tmp_path / "journal.db", "st-1", max_attempts=3)
    journal.receive_blanks("LOT-1", 10)
    journal.load_blanks("p1", 10, lot="LOT-1")
    runner = BatchRunner(journal, "st-1", tmp_path / "reports", "id")
    runner.start(None, None, now=start)
    journal.add_leased("J1", {"job_id": "J1"}, not_after=start + timedelta(days=1),
                       lease_expires_at=start + timedelta(hours=1), priority=0)
    for reason in ("interrupted", "interrupted", "chip-mute"):
        c = journal.claim_next("p1")
        journal.fed(c.job_id, c.attempt, "p1")
        journal.spoiled(c.job_id, c.attempt, reason)
    c = journal.claim_next("p1")
    assert c is not None, "interruptions did not use up the citizen's attempts"
    journal.fed(c.job_id, c.attempt, "p1")
    journal.printed(c.job_id, c.attempt, 1)
    report = runner.finish("queue-empty", [PrinterSnapshot("p1", "idle", ribbon_left=100)], {"p1": 6}).to_json()
    journal.close()
    assert (report["printed"], report["spoiled"], report["interrupted"]) == (1, 3, 2)
    assert "terputus oleh stasiun" in render_text(report, "id") and ": 2" in render_text(report, "id")
    assert "interrupted by the station" in render_text(report, "en")
