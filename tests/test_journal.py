"""The journal: states, events, attempts, ledger and outbox move together, on disk."""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone

import pytest

from agent.upstream.client import route
from agent.journal import Journal, JobState

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.db", "st-1", max_attempts=2)
    yield j
    j.close()


def add(journal, job_id="J1", lease_s=3600, priority=0):
    return journal.add_leased(job_id, {"job_id": job_id, "subject": {"nik": "3174011505900001"}},
                              not_after=NOW + timedelta(days=2), lease_expires_at=NOW + timedelta(seconds=lease_s),
                              priority=priority, at=NOW)


def test_journal_file_is_readable_by_owner_only(journal):
    assert stat.S_IMODE(os.stat(journal.path).st_mode) == 0o600


def test_journal_uses_wal_and_full_sync(journal):
    db = sqlite3.connect(journal.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_same_job_is_recorded_once(journal):
    assert add(journal) is True
    assert add(journal) is False
    assert journal.count_by_state() == {"leased": 1}


def test_claim_writes_intent_before_anything_else(journal):
    add(journal)
    claimed = journal.claim_next("p1", at=NOW)
    assert (claimed.job_id, claimed.attempt, claimed.printer) == ("J1", 1, "p1")
    assert journal.count_by_state() == {"feeding": 1}
    assert [e["state"] for e in journal.events()] == ["leased", "feeding"]


def test_higher_priority_job_is_claimed_first(journal):
    add(journal, "LOW", priority=0)
    add(journal, "HIGH", priority=5)
    assert journal.claim_next("p1", at=NOW).job_id == "HIGH"


def test_job_with_expired_lease_is_never_started(journal):
    add(journal, lease_s=10)
    assert journal.claim_next("p1", at=NOW + timedelta(seconds=11)) is None
    assert journal.count_by_state() == {"expired": 1}
    message = journal.outbox_next()
    assert message.kind == "release" and message.job_id == "J1"
    assert route(message.kind, "st-1", message.job_id) == ("POST", "/v1/stations/st-1/leases/release")
    assert message.body == {"job_ids": ["J1"], "reason": "lease-expired"}


def test_feed_moves_ledger_and_state_together(journal):
    journal.receive_blanks("LOT-A", 10, at=NOW)
    journal.load_blanks("p1", 10, lot="LOT-A", at=NOW)
    add(journal)
    claimed = journal.claim_next("p1", at=NOW)
    journal.fed(claimed.job_id, claimed.attempt, "p1", at=NOW)
    assert journal.blanks_remaining("p1") == 9
    assert journal.count_by_state() == {"encoding": 1}


def test_printed_job_queues_one_outcome_with_its_attempts(journal):
    add(journal)
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    journal.spoiled(c.job_id, c.attempt, "chip-hash-mismatch")
    c2 = journal.claim_next("p1", at=NOW)
    assert c2.attempt == 2
    journal.fed(c2.job_id, c2.attempt, "p1")
    journal.printed(c2.job_id, c2.attempt, card_counter=7)
    message = journal.outbox_next()
    assert message.idempotency_key == "st-1:J1:outcome"
    assert message.body["status"] == "printed"
    assert [a["result"] for a in message.body["attempts"]] == ["spoiled", "printed"]
    assert message.body["attempts"][0]["reason"] == "chip-hash-mismatch"
    assert journal.outbox_ready.is_set()


def test_job_fails_after_the_attempt_limit(journal):
    add(journal)
    for _ in range(2):
        c = journal.claim_next("p1", at=NOW)
        journal.fed(c.job_id, c.attempt, "p1")
        state = journal.spoiled(c.job_id, c.attempt, "chip-bad-signature")
    assert state is JobState.FAILED
    assert journal.claim_next("p1", at=NOW) is None
    assert journal.outbox_next().body["status"] == "failed"


def test_acknowledged_outcome_purges_personal_data(journal):
    add(journal)
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    journal.printed(c.job_id, c.attempt, 1)
    message = journal.outbox_next()
    journal.outbox_delivered(message.id)
    assert journal._db.execute("SELECT COUNT(*) FROM job_payloads WHERE job_id='J1'").fetchone()[0] == 0
    assert journal.payload("J1") is None
    assert journal.outbox_next() is None


def test_an_acknowledged_outcome_leaves_no_personal_byte_in_the_file(tmp_path):
    """The NIK, the chip checks and the outcome's copy of them are gone from the database file
    itself (secure_delete overwrites freed cells), not only from what a query returns."""
    journal = Journal(tmp_path / "journal.db", "st-1", max_attempts=3)
    assert journal._db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    nik = "3174019988770011"
    journal.add_leased("J1", {"job_id": "J1", "subject": {"nik": nik}, "photo": "FACE" * 500},
                       not_after=NOW + timedelta(days=2), lease_expires_at=NOW + timedelta(hours=1), priority=0, at=NOW)
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    journal.spoiled(c.job_id, c.attempt, "chip-wrong-subject",
                    checks=[{"name": "subject", "verdict": "bad", "reason": "MARKER-CHECK-7788"}])
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    journal.printed(c.job_id, c.attempt, 1)
    message = journal.outbox_next()
    assert "MARKER-CHECK-7788" in str(message.body)
    journal.outbox_delivered(message.id)
    report = journal.privacy_report()
    assert report["payloads_held"] == 0 and report["chip_checks_held_after_outcome_acknowledged"] == 0
    journal.close()  # the last connection checkpoints the WAL into the file
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.db"))
    for secret in (nik.encode(), b"FACEFACE", b"MARKER-CHECK-7788"):
        assert secret not in raw, secret


def test_ledger_is_append_only(journal):
    journal.receive_blanks("LOT-A", 5)
    journal.load_blanks("p1", 5, lot="LOT-A")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        journal._db.execute("UPDATE ledger SET quantity = 50")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        journal._db.execute("DELETE FROM ledger")


def test_committed_work_survives_reopening(tmp_path):
    j = Journal(tmp_path / "j.db", "st-1")
    add(j)
    j.claim_next("p1", at=NOW)
    j.close()
    again = Journal(tmp_path / "j.db", "st-1")
    assert [a.job_id for a in again.active_jobs("p1")] == ["J1"]
    again.close()


def test_journal_newer_than_the_agent_is_refused(tmp_path):
    from agent.journal import JournalError

    j = Journal(tmp_path / "j.db", "st-1")
    j._db.execute("UPDATE schema_version SET version = 99")
    j.close()
    with pytest.raises(JournalError, match="newer than this agent"):
        Journal(tmp_path / "j.db", "st-1")


def fed_card(journal, job_id="J1"):
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    return c


def test_feeds_come_out_of_the_oldest_lot_first_and_every_lot_balances(journal):
    journal.receive_blanks("OLD", 1, at=NOW)
    journal.receive_blanks("NEW", 5, at=NOW)
    journal.load_blanks("p1", 1, lot="OLD", at=NOW)
    journal.load_blanks("p1", 5, lot="NEW", at=NOW)
    add(journal, "J1")
    add(journal, "J2")
    c1 = fed_card(journal)
    journal.spoiled(c1.job_id, c1.attempt, "chip-mute")
    c2 = fed_card(journal)
    journal.printed(c2.job_id, c2.attempt, 2)
    fed_card(journal)  # J2's card is still in the printer
    journal.adjust_blanks("p1", -1, "blank found bent", "siti")
    lots = {lot["lot"]: lot for lot in journal.ledger_balance()}
    assert (lots["OLD"]["spoiled"], lots["OLD"]["remaining"]) == (1, 0)
    assert {k: lots["NEW"][k] for k in ("loaded", "adjusted", "printed", "in_printer", "remaining")} == \
        {"loaded": 5, "adjusted": -1, "printed": 1, "in_printer": 1, "remaining": 2}
    assert all(lot["balanced"] for lot in lots.values())
    spoil = journal._db.execute("SELECT lot, quantity, reason FROM ledger WHERE movement = 'spoil'").fetchall()
    assert spoil == [("OLD", 0, "chip-mute")]


def test_adjustment_without_reason_is_refused(journal):
    with pytest.raises(ValueError, match="reason"):
        journal.adjust_blanks("p1", 3, "", "siti")


def test_renewed_lease_keeps_a_job_printable_and_a_lost_one_is_never_started(journal):
    add(journal, "J1", lease_s=60)
    add(journal, "J2", lease_s=60)
    assert journal.leases_to_renew(NOW + timedelta(seconds=120)) == ["J1", "J2"]
    journal.leases_renewed(["J1"], NOW + timedelta(hours=2))
    assert journal.lease_lost("J2", "not-leased") is True
    assert journal.claim_next("p1", at=NOW + timedelta(seconds=90)).job_id == "J1"
    assert journal.claim_next("p1", at=NOW + timedelta(seconds=90)) is None
    assert journal.count_by_state() == {"feeding": 1, "expired": 1}


def test_surplus_jobs_are_released_upstream_in_the_same_transaction(journal):
    for n in range(4):
        add(journal, f"J{n}")
    assert journal.release_surplus(keep=1, reason="cover lowered", at=NOW) == ["J1", "J2", "J3"]
    messages = journal._db.execute("SELECT kind, job_id, body FROM outbox ORDER BY id").fetchall()
    assert [m[:2] for m in messages] == [("release", "J1"), ("release", "J2"), ("release", "J3")]
    assert journal.count_by_state() == {"leased": 1, "released": 3}


def test_held_job_raises_an_alert_for_upstream(journal):
    add(journal)
    fed_card(journal)
    journal.hold("J1", "no card inside after 'printing'")
    message = journal.outbox_next()
    assert message.kind == "alert" and message.body["alerts"][0]["job_id"] == "J1"


def test_write_on_a_full_disk_is_a_journal_error_and_commits_nothing(journal):
    from agent.journal import JournalError

    add(journal)
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages}")  # stands in for a full disk: no page can be added
    with pytest.raises(JournalError, match="cannot be written"):
        journal.adjust_blanks("p1", 500, "x" * 100_000, "siti")
    assert journal.blanks_remaining("p1") == 0 and journal.count_by_state() == {"leased": 1}


def test_history_older_than_the_retention_is_forgotten_once_upstream_has_it(journal):
    old, recent = NOW - timedelta(days=500), NOW
    for job_id, at in (("OLD", old), ("PENDING", old), ("NEW", recent)):
        journal.add_leased(job_id, {"job_id": job_id}, not_after=at + timedelta(days=2),
                           lease_expires_at=at + timedelta(hours=1), priority=0, at=at)
        c = journal.claim_next("p1", at=at)
        journal.fed(c.job_id, c.attempt, "p1", at=at)
        journal.printed(c.job_id, c.attempt, 1, at=at)
    for message in journal.outbox_summary():
        if message["job_id"] != "PENDING":
            journal.outbox_delivered(message["id"])
    assert journal.purge_history(NOW - timedelta(days=400)) == 1
    left = {row[0] for row in journal._db.execute("SELECT job_id FROM jobs")}
    assert left == {"PENDING", "NEW"}, "only the old job whose outcome upstream has is forgotten"
    assert journal._db.execute("SELECT COUNT(*) FROM job_events WHERE job_id = 'OLD'").fetchone()[0] == 0
    assert journal._db.execute("SELECT COUNT(*) FROM ledger WHERE job_id = 'OLD'").fetchone()[0] == 1, "the ledger stays"


def test_cards_lost_to_the_station_do_not_use_up_the_jobs_attempts(journal):
    add(journal)
    for _ in range(4):  # max_attempts is 2: four interruptions, a jam among them, and it goes on
        c = journal.claim_next("p1", at=NOW)
        journal.fed(c.job_id, c.attempt, "p1")
        assert journal.spoiled(c.job_id, c.attempt, "interrupted" if c.attempt != 2 else "printer-fault:jam") \
            is JobState.LEASED
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    assert journal.spoiled(c.job_id, c.attempt, "chip-hash-mismatch") is JobState.LEASED
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    assert journal.spoiled(c.job_id, c.attempt, "chip-mute") is JobState.FAILED, "two of the job's own: done"


def test_a_loop_of_interruptions_ends_at_its_own_cap(journal):
    from agent.journal import MAX_INTERRUPTIONS

    add(journal)
    states = []
    for _ in range(MAX_INTERRUPTIONS):
        c = journal.claim_next("p1", at=NOW)
        journal.fed(c.job_id, c.attempt, "p1")
        states.append(journal.spoiled(c.job_id, c.attempt, "interrupted"))
    assert states[-1] is JobState.FAILED and all(s is JobState.LEASED for s in states[:-1])
    assert journal.outbox_next().body["reason"] == "too-many-interruptions"


def test_a_journal_of_schema_2_gains_the_outbox_job_id_and_keeps_its_messages(tmp_path):
    """Upgrading in the field: an outcome queued by the previous release is still delivered, and
    acknowledging it still purges that job's personal data (schema 3 names the job in the outbox)."""
    from agent.journal.schema import MIGRATIONS, _statements

    path = tmp_path / "journal.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for script in MIGRATIONS[:2]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("INSERT INTO schema_version(version) VALUES (2)")
    db.execute("INSERT INTO jobs(job_id, state, not_after, lease_expires_at, payload, received_at, updated_at)"
               " VALUES ('J-OLD', 'printed', '2030-01-01T00:00:00Z', '2030-01-01T00:00:00Z', '{\"nik\": \"1\"}',"
               " '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
    db.execute("INSERT INTO outbox(kind, method, path, idempotency_key, body, created_at) VALUES"
               " ('outcome', 'PUT', '/v1/jobs/J-OLD/outcome', 'st-1:J-OLD:outcome', '{}', '2026-01-01T00:00:00Z')")
    db.close()
    journal = Journal(path, "st-1")
    assert journal._db.execute("SELECT version FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    message = journal.outbox_next()
    # Migrations 3 and 4 keep the message and learn its job from the URL it was queued with.
    assert message is not None and message.kind == "outcome" and message.job_id == "J-OLD"
    assert message.idempotency_key == "st-1:J-OLD:outcome"
    assert route(message.kind, "st-1", message.job_id) == ("PUT", "/v1/jobs/J-OLD/outcome")
    assert journal.payload("J-OLD") == {"nik": "1"}, "migration 6 moves the job out of `jobs`, whole"
    journal.outbox_delivered(message.id)
    assert journal._db.execute("SELECT COUNT(*) FROM job_payloads WHERE job_id = 'J-OLD'").fetchone()[0] == 0
    journal.close()


def test_no_move_leaves_a_final_state(journal):
    """The state machine, not each caller, keeps a printed job from going back into a printer."""
    from agent.journal import TransitionRefused

    add(journal)
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1")
    journal.printed(c.job_id, c.attempt, 1)
    with pytest.raises(TransitionRefused, match="from printed to printing"):
        journal.advance("J1", JobState.PRINTING)
    assert journal.job_state("J1") is JobState.PRINTED
    assert journal.claim_next("p1", at=NOW) is None


def test_the_journal_holds_no_url_and_every_kind_it_queues_has_a_route(journal):
    columns = {row[1] for row in journal._db.execute("PRAGMA table_info(outbox)")}
    assert "path" not in columns and "method" not in columns, columns
    add(journal, lease_s=10)
    journal.claim_next("p1", at=NOW + timedelta(seconds=11))  # expired: a release
    journal.queue_report("telemetry", {"at": "x"}, "telemetry:x")
    journal.queue_report("morning-report", {"at": "x"}, "morning:x")
    for message in journal.outbox_summary():
        method, path = route(message["kind"], "st-1", message["job_id"])
        assert path.startswith("/v1/") and method in ("POST", "PUT")
    with pytest.raises(ValueError, match="no upstream route"):
        route("gossip", "st-1", None)


def test_a_reason_is_joined_and_split_in_one_place_and_keeps_the_form_upstream_knows():
    from agent.chip.profile import ChipFailure
    from agent.journal.reasons import Because, Reason, reason_code

    assert str(Because(Reason.PRINTER_FAULT, "jam")) == "printer-fault:jam"
    assert str(Because(Reason.BAD_CARD_IMAGE, "front.png 0 bytes")) == "bad-card-image: front.png 0 bytes"
    assert str(Because(ChipFailure.HASH_MISMATCH)) == "chip-hash-mismatch"
    for because in (Because(Reason.PRINTER_FAULT, "jam"), Because(Reason.STATION_ERROR, "KeyError"),
                    Because(ChipFailure.HASH_MISMATCH)):
        assert reason_code(str(because)) == because.code.value
    assert reason_code(None) == "unknown"


def test_a_held_job_is_decided_by_a_person_and_never_left_between(journal):
    for job_id in ("H1", "H2", "H3"):
        add(journal, job_id)
        c = journal.claim_next("p1", at=NOW)
        journal.fed(c.job_id, c.attempt, "p1", at=NOW)
        journal.hold(job_id, "no card inside after 'printing'")
    assert [h["job_id"] for h in journal.held_jobs()] == ["H1", "H2", "H3"]
    assert journal.decide_held("H1", "print-again") == JobState.LEASED
    assert journal.decide_held("H2", "printed") == JobState.PRINTED
    assert journal.decide_held("H3", "cancel") == JobState.FAILED
    assert journal.held_jobs() == []
    with pytest.raises(ValueError, match="not held"):
        journal.decide_held("H2", "print-again")  # printed stays printed: never a second card
    with pytest.raises(ValueError, match="no decision"):
        journal.decide_held("H1", "shred")
    outcomes = {m["job_id"]: m for m in journal.outbox_summary() if m["kind"] == "outcome"}
    assert set(outcomes) == {"H2", "H3"}  # the released one is not final: nothing claimed upstream yet
    assert journal.claim_next("p1", at=NOW).job_id == "H1", "printed again on a fresh blank"


def test_the_commit_that_ends_a_card_can_claim_the_next_job_with_the_counter_it_read(journal):
    add(journal, "J1")
    add(journal, "J2")
    c = journal.claim_next("p1", at=NOW, card_counter=7)
    journal.fed(c.job_id, c.attempt, "p1", at=NOW)
    nxt = journal.printed(c.job_id, c.attempt, 8, at=NOW, claim_next_for="p1")
    assert journal.job_state("J1") == JobState.PRINTED
    assert nxt is not None and nxt.job_id == "J2" and journal.job_state("J2") == JobState.FEEDING
    [active] = journal.active_jobs("p1")
    assert active.card_counter_before == 8, "the counter after this card is the evidence for the next feed"
    assert journal.printed(nxt.job_id, nxt.attempt, 9, at=NOW, claim_next_for="p1") is None  # nothing left


def test_a_commit_that_does_not_wait_for_the_disk_leaves_the_connection_at_full_sync(journal):
    # fed and upstream's acknowledgements commit without waiting for the disk; the intents after
    # them must still wait, so the connection goes back to FULL whether the transaction held or not.
    add(journal)
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1", at=NOW)
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    with pytest.raises(RuntimeError):
        with journal._tx(durable=False):
            raise RuntimeError("a failure inside the transaction")
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_a_card_state_change_does_not_write_the_job_again(journal):
    # SQLite writes a row whole: the signed job (hundreds of KB of faces) lives in a row of its own,
    # so a card's five state changes write a few pages to the WAL, not the job five times.
    journal.add_leased("J1", {"job_id": "J1", "card": {"front_png": "A" * 400_000}},
                       not_after=NOW + timedelta(days=2), lease_expires_at=NOW + timedelta(hours=1), priority=0, at=NOW)
    journal._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = journal.path.with_name(journal.path.name + "-wal")
    assert wal.stat().st_size == 0
    c = journal.claim_next("p1", at=NOW)
    journal.fed(c.job_id, c.attempt, "p1", at=NOW)
    journal.advance("J1", JobState.PRINTING, at=NOW)
    journal.advance("J1", JobState.EJECTING, at=NOW)
    journal.printed("J1", c.attempt, 1, at=NOW)
    assert wal.stat().st_size < 200_000, f"{wal.stat().st_size} bytes of WAL for five state changes"
    assert journal.payload("J1")["card"]["front_png"] == "A" * 400_000


def test_a_job_claimed_whose_feed_has_not_happened_is_no_card_in_the_printer(journal):
    # The next card's claim rides in the commit that ends a card: between two cards the journal
    # holds a `feeding` job whose feed the printer's counter shows has not happened yet.
    add(journal)
    journal.claim_next("p1", at=NOW, card_counter=5)
    assert journal.cards_in_printer("p1", card_counter=5) == 0, "the counter has not moved: nothing fed"
    assert journal.cards_in_printer("p1", card_counter=6) == 1, "it moved: the blank may be inside"
    assert journal.cards_in_printer("p1") == 1, "without the printer's word, it may be"
