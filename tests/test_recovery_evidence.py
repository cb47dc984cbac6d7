"""Recovery settles an interrupted card from the printer's evidence (agent/station/recovery.py),
against the virtual printer on a pty. A `fed` commit does not wait for the disk: lost in a power
cut, the job reads `feeding`; whatever became of the card, the blank that left the hopper is
counted, and the printer's own hopper is the witness."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agent.journal import Journal, JobState, utcnow
from agent.station.recovery import recover
from drivers.evolis.printer import EvolisPrinter
from drivers.link.url import open_link
from tests.sim_printer_rig import running_printer


def _journal_with_one_job(tmp_path: Path) -> Journal:
    """Three blanks of one lot in printer p1's feeder, and job J1 leased."""
    journal = Journal(tmp_path / "journal.db", "st-1")
    journal.receive_blanks("LOT-1", 3)
    journal.load_blanks("p1", 3, "LOT-1")
    now = utcnow()
    journal.add_leased("J1", {"job_id": "J1"}, not_after=now + timedelta(days=1),
                       lease_expires_at=now + timedelta(hours=1), priority=0)
    return journal


def test_a_feed_whose_record_was_lost_and_whose_card_is_gone_is_counted_before_the_job_is_held(tmp_path: Path) -> None:
    journal = _journal_with_one_job(tmp_path)
    with running_printer(tmp_path / "sim", blanks=3) as rig:
        rig.host.close()
        printer = EvolisPrinter(open_link(f"serial://{rig.port_path}"))
        before = printer.counters().cards
        journal.claim_next("p1", card_counter=before)
        # The printer fed a blank and it left through the output (as on a power-up); the journal
        # never heard of the feed: the commit that would have said so was lost.
        printer.start_sequence()
        printer.feed_to_contactless()
        printer.eject()
        assert printer.counters().cards == before + 1 and not printer.card_present()
        outcomes = recover(journal, printer, "p1")
        printer.close()
        hopper = rig.saved_state()["hopper_remaining"]
    assert outcomes == [{"job_id": "J1", "was": "feeding", "now": "held"}]
    assert journal.job_state("J1") == JobState.HELD
    assert hopper == 2 and journal.blanks_remaining("p1") == 2, "the ledger counts the blank the printer fed"
    journal.close()


def test_a_card_half_printed_whose_printing_intent_was_lost_goes_to_the_reject_box(tmp_path: Path) -> None:
    # Neither `fed` nor the `printing` intent waits for the disk (agent/journal/jobs.py): after a
    # power cut in the middle of the panels the journal may read `feeding`. The card inside, with
    # its front partly printed, must go to the reject box and count as spoiled, never out as printed.
    from drivers.evolis.printer import Panel, panel_size

    journal = _journal_with_one_job(tmp_path)
    with running_printer(tmp_path / "sim", blanks=3) as rig:
        rig.host.close()
        printer = EvolisPrinter(open_link(f"serial://{rig.port_path}"))
        journal.claim_next("p1", card_counter=printer.counters().cards)
        printer.start_sequence()
        printer.feed_to_contactless()
        printer.front()
        printer.download(Panel("k", 2, b"\xff" * panel_size(2)))  # the journal heard of none of it
        outcomes = recover(journal, printer, "p1")
        inside_after = printer.card_present()
        printer.close()
        cards = rig.cards()
        hopper = rig.saved_state()["hopper_remaining"]
    assert outcomes == [{"job_id": "J1", "was": "feeding", "now": "leased"}], "spoiled, and the job waits for a fresh blank"
    assert not inside_after
    assert [(c["bin"], len(c["panels"])) for c in cards] == [("reject", 1)], "the printer's log: one card, to the reject box"
    assert hopper == 2 and journal.blanks_remaining("p1") == 2, "the blank is counted, as the printer's hopper says"
    journal.close()
