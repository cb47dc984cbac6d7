"""The card pipeline in one process: a real `PrinterWorker` against the virtual printer on a real
pty, its encoder station handing the worker the virtual chip the printer holds there. No pcscd,
no agent process: a fast tier beside the process tests, proving the same things from the same
witnesses (the printer's card log and saved state, the chip written), not from the journal.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from agent.chip.icao9303 import Icao9303Profile
from agent.chip.passive_auth import TrustAnchors
from agent.core.config import PrinterConfig
from agent.journal import FINAL, Journal, JobState, utcnow
from agent.station.worker import PrinterWorker
from drivers.link.url import open_link
from simulators.pki import TestPki
from simulators.upstream.authority import Authority
from simulators.upstream.job_factory import JobFactory
from tests.station_rig import wait_until
from tests.in_process_reader import EncoderStation
from simulators.printer.machine import Fault
from tests.sim_printer_rig import Rig, running_printer


@contextmanager
def pipeline(tmp_path: Path, *, jobs: int, blanks: int, spoil_first_chip: bool = False,
             poison_first: bool = False, trace: Callable[[Rig, str, bytes], None] | None = None,
             hold_reason: Callable[[Journal, PrinterWorker], str | None] | None = None,
             head_clock: Callable[[], float] | None = None) -> Iterator[tuple]:
    """A worker printing `jobs` signed jobs on printer p1 with `blanks` blanks in its hopper; with
    `poison_first`, the first job's front image is not a PNG (as if intake had let it through);
    `trace` sees every byte the worker sends ("tx", before it goes) and receives ("rx");
    `hold_reason` stands for the station's reasons to hold the printer (print windows, stock);
    `head_clock` is the time by which the printer's head cools (its own clock by default)."""
    pki = TestPki.create(tmp_path / "pki")
    factory = JobFactory(jobs, Authority.load_or_create(tmp_path / "authority"), pki.signer, seed=11)
    journal = Journal(tmp_path / "journal.db", "in-process")
    journal.receive_blanks("LOT-1", blanks)
    journal.load_blanks("p1", blanks, "LOT-1")
    now = utcnow()
    for n, spec in enumerate(factory.specs):
        body = factory.job(spec.job_id)
        if poison_first and n == 0:
            body = {**body, "card": {**body["card"], "front_png": base64.b64encode(b"GIF89a not a png").decode()}}
        journal.add_leased(spec.job_id, body, not_after=now + timedelta(days=1),
                           lease_expires_at=now + timedelta(hours=1), priority=0)
    station = EncoderStation()
    if spoil_first_chip:
        station.spoil_next_chip()
    options = {"clock": head_clock} if head_clock is not None else {}
    with running_printer(tmp_path / "sim", blanks=blanks, speed=100000.0, reader=station, **options) as rig:
        rig.host.close()  # the worker is the host now
        opened = []

        def opener(url: str, trace=None):
            opened.append(url)
            return open_link(url, trace=trace)

        worker = PrinterWorker(
            PrinterConfig("p1", f"serial://{rig.port_path}", "in-process"),
            journal, Icao9303Profile(TrustAnchors.load([pki.csca_pem_path])),
            depth=2, card_wait_s=5.0, work=threading.Condition(), reader=station.host_reader(), link_opener=opener,
        )
        if trace is not None:
            worker.trace_sink = lambda direction, data: trace(rig, direction, data)
        if hold_reason is not None:
            worker.hold_reason = lambda: hold_reason(journal, worker)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), name="worker-p1")
        thread.start()
        try:
            yield journal, rig, factory, opened
        finally:
            stop.set()
            with worker.work:
                worker.work.notify_all()
            thread.join(timeout=30)
            journal.close()
        assert not thread.is_alive(), "the worker did not stop"


def test_every_job_prints_once_with_its_own_chip_and_every_blank_is_counted(tmp_path: Path) -> None:
    with pipeline(tmp_path, jobs=4, blanks=6) as (journal, rig, factory, opened):
        wait_until(lambda: all(journal.job_state(s.job_id) == JobState.PRINTED for s in factory.specs),
                   30, "4 jobs printed")
        cards = rig.cards()
        state = rig.saved_state()
    out = [c for c in cards if c["bin"] == "output"]
    assert len(out) == 4 and not [c for c in cards if c["bin"] != "output"], cards
    # Each card carries the chip of its own job: the document number the printer read off the chip.
    assert sorted(c["document_number"] for c in out) == sorted(s.document_number for s in factory.specs)
    assert state["hopper_remaining"] == 2  # 6 loaded = 4 printed + 0 spoiled + 2 remaining, by the printer
    assert opened == [f"serial://{rig.port_path}"]  # the link the worker was given, opened once


def test_a_chip_that_will_not_take_its_image_spoils_that_card_and_the_job_prints_on_the_next_blank(tmp_path: Path) -> None:
    with pipeline(tmp_path, jobs=1, blanks=3, spoil_first_chip=True) as (journal, rig, factory, _):
        wait_until(lambda: journal.job_state(factory.specs[0].job_id) == JobState.PRINTED, 30, "the job printed")
        cards = rig.cards()
    assert [c["bin"] for c in cards] == ["reject", "output"], cards
    assert cards[1]["document_number"] == factory.specs[0].document_number


def test_a_job_whose_card_image_will_not_decode_fails_alone_and_spends_no_blank(tmp_path: Path) -> None:
    with pipeline(tmp_path, jobs=2, blanks=3, poison_first=True) as (journal, rig, factory, _):
        first, second = (s.job_id for s in factory.specs)
        wait_until(lambda: journal.job_state(second) == JobState.PRINTED and journal.job_state(first) in FINAL,
                   30, "the good job printed and the bad one settled")
        cards = rig.cards()
        state = rig.saved_state()
    assert journal_state_of(tmp_path, first) == JobState.FAILED
    assert [(c["bin"], c["document_number"]) for c in cards] == [("output", factory.specs[1].document_number)]
    assert state["hopper_remaining"] == 2  # the bad job never fed a blank


def test_a_cover_opened_between_two_cards_is_caught_by_the_feed_and_spends_no_blank(tmp_path: Path) -> None:
    # After a card that ended well the worker starts the next without a status read; the cover,
    # opened on the printer just before the second feed is sent, must still stop that card.
    feeds, replies, refused = [], bytearray(), threading.Event()

    def open_the_cover_before_the_second_feed(rig: Rig, direction: str, data: bytes) -> None:
        if direction == "tx" and data == b"\x1bSic\r":
            feeds.append(data)
            if len(feeds) == 2:
                rig.printer.call(lambda: rig.printer.set_fault(Fault.COVER_OPEN, True))
        elif direction == "rx" and len(feeds) == 2:
            replies.extend(data)  # a reply may come in several chunks
            if replies.startswith(b"COVER OPEN\r"):  # the guide's refusal, to the feed itself
                refused.set()

    with pipeline(tmp_path, jobs=2, blanks=4, trace=open_the_cover_before_the_second_feed) as (journal, rig, factory, _):
        first, second = (s.job_id for s in factory.specs)
        assert refused.wait(30), "the second feed was not refused with the cover open"
        cards_while_open = rig.cards()
        rig.printer.call(lambda: rig.printer.set_fault(Fault.COVER_OPEN, False))
        wait_until(lambda: journal.job_state(second) == JobState.PRINTED, 30, "the second job printed once the cover closed")
        assert journal.job_state(first) == JobState.PRINTED
        cards = rig.cards()
        state = rig.saved_state()
    assert [c["document_number"] for c in cards_while_open] == [factory.specs[0].document_number]
    assert [(c["bin"], c["document_number"]) for c in cards] == [("output", s.document_number) for s in factory.specs]
    assert state["hopper_remaining"] == 2  # 4 loaded = 2 printed + 0 spoiled + 2 remaining, by the printer


def journal_state_of(tmp_path: Path, job_id: str) -> JobState | None:
    journal = Journal.read_only(tmp_path / "journal.db")
    try:
        return journal.job_state(job_id)
    finally:
        journal.close()


def _events(journal: Journal, job_id: str) -> list[tuple[str, str | None]]:
    return list(journal._db.execute("SELECT state, detail FROM job_events WHERE job_id = ? ORDER BY id", (job_id,)))


class _HotBeforeTheSecondFeed:
    """The head turns too hot just before the second feed goes out, and stays so (its clock
    stands still) until `cool()`; counts the feeds sent."""

    def __init__(self) -> None:
        self.feeds = 0
        self.head_time = 0.0

    def clock(self) -> float:
        return self.head_time

    def trace(self, rig: Rig, direction: str, data: bytes) -> None:
        if direction == "tx" and data == b"\x1bSic\r":
            self.feeds += 1
            if self.feeds == 2:
                rig.printer.call(rig.printer.overheat)

    def cool(self) -> None:
        self.head_time += 1e6


def test_a_head_cooling_before_a_card_holds_that_job_claimed_and_feeds_it_once_cooled(tmp_path: Path) -> None:
    # A printer without status words says its head is hot only by refusing the feed. The worker
    # tries the feed again and again, the job staying claimed: no journal write a try, no release
    # and claim again, and the card goes as soon as the head is cool.
    head = _HotBeforeTheSecondFeed()
    with pipeline(tmp_path, jobs=2, blanks=4, trace=head.trace, head_clock=head.clock) as (journal, rig, factory, _):
        first, second = (s.job_id for s in factory.specs)
        wait_until(lambda: head.feeds >= 2 and journal.job_state(second) == JobState.FEEDING, 30, "the hot head's refusal")
        events_at_refusal = _events(journal, second)
        wait_until(lambda: head.feeds >= 6, 30, "the refused feed tried again")
        assert _events(journal, second) == events_at_refusal, "a try wrote nothing to the journal"
        assert journal.job_state(second) == JobState.FEEDING
        cards_while_hot, state_while_hot = rig.cards(), rig.saved_state()
        head.cool()
        wait_until(lambda: journal.job_state(second) == JobState.PRINTED, 30, "the second job printed once cooled")
        cards, state, events = rig.cards(), rig.saved_state(), _events(journal, second)
    assert [state for state, _ in events].count("feeding") == 1, events  # claimed once, never sent back
    assert "leased" not in [state for state, _ in events][1:], events
    # The printer is the witness: one card out while hot, one blank gone; then both, and the
    # second card waited for the head (the printer charges it the cooling).
    assert [c["document_number"] for c in cards_while_hot] == [factory.specs[0].document_number]
    assert state_while_hot["hopper_remaining"] == 3
    assert [(c["bin"], c["document_number"]) for c in cards] == [("output", s.document_number) for s in factory.specs]
    assert cards[0]["modelled_s"]["cooling"] == 0 < cards[1]["modelled_s"]["cooling"]
    assert state["hopper_remaining"] == 2


def test_a_pause_while_the_head_cools_sends_the_claimed_job_back_unfed(tmp_path: Path) -> None:
    head = _HotBeforeTheSecondFeed()
    workers: list[PrinterWorker] = []

    def remember(journal: Journal, worker: PrinterWorker) -> str | None:
        workers[:] = [worker]
        return None

    with pipeline(tmp_path, jobs=2, blanks=4, trace=head.trace, head_clock=head.clock,
                  hold_reason=remember) as (journal, rig, factory, _):
        second = factory.specs[1].job_id
        wait_until(lambda: head.feeds >= 3, 30, "the hot head's refusal, tried again")
        [worker] = workers
        worker.paused.set()
        wait_until(lambda: journal.job_state(second) == JobState.LEASED, 30, "the job sent back on the pause")
        head.cool()
        feeds_paused = head.feeds
        cards_paused, state_paused = rig.cards(), rig.saved_state()
        worker.paused.clear()
        with worker.work:
            worker.work.notify_all()
        wait_until(lambda: journal.job_state(second) == JobState.PRINTED, 30, "the job printed once resumed")
        cards, events = rig.cards(), _events(journal, second)
    states = [state for state, _ in events]
    assert states[:3] == ["leased", "feeding", "leased"] and "feed-refused" in (events[2][1] or ""), events
    assert [c["document_number"] for c in cards_paused] == [factory.specs[0].document_number]
    assert state_paused["hopper_remaining"] == 3 and head.feeds > feeds_paused
    assert [(c["bin"], c["document_number"]) for c in cards] == [("output", s.document_number) for s in factory.specs]


def test_a_printer_paused_as_its_card_ends_feeds_no_next_card_and_the_job_claimed_with_that_card_waits(tmp_path: Path) -> None:
    # The commit that ends a good card claims the next job too. A pause that comes just before that
    # commit (here: pressed while the first card is ejecting) must still stop that job before any
    # byte moves for it.
    pressed: list[PrinterWorker] = []

    def pause_while_the_first_card_ejects(journal: Journal, worker: PrinterWorker) -> str | None:
        if not pressed and journal.job_state("J-000001") == JobState.EJECTING:
            pressed.append(worker)
            worker.paused.set()
        return None

    def events(journal: Journal, job_id: str) -> list[tuple[str, str | None]]:
        return list(journal._db.execute("SELECT state, detail FROM job_events WHERE job_id = ? ORDER BY id", (job_id,)))

    with pipeline(tmp_path, jobs=2, blanks=4, hold_reason=pause_while_the_first_card_ejects) as (journal, rig, factory, _):
        first, second = (s.job_id for s in factory.specs)
        assert first == "J-000001"
        wait_until(lambda: len(events(journal, second)) >= 3, 30, "the second job claimed with the first card, then sent back")
        cards_while_paused = rig.cards()
        state_while_paused = rig.saved_state()
        assert journal.job_state(second) == JobState.LEASED
        [worker] = pressed
        worker.paused.clear()
        with worker.work:
            worker.work.notify_all()
        wait_until(lambda: journal.job_state(second) == JobState.PRINTED, 30, "the second job printed once resumed")
        cards = rig.cards()
        second_events = events(journal, second)
    states = [state for state, _ in second_events]
    assert states[:3] == ["leased", "feeding", "leased"], second_events
    assert "interrupted-before-feed" in (second_events[2][1] or ""), second_events
    # The printer is the witness: one card out while paused, one blank gone from its hopper.
    assert [c["document_number"] for c in cards_while_paused] == [factory.specs[0].document_number]
    assert state_while_paused["hopper_remaining"] == 3
    assert [(c["bin"], c["document_number"]) for c in cards] == [("output", s.document_number) for s in factory.specs]
