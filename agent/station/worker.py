"""One printer and its encoder reader: takes jobs from the journal and turns each into one card.

The journal is written before the printer is told anything, so that after a crash the
station knows what it was doing and can resolve it from the printer's own evidence
(agent/station/recovery.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from agent.station.card_render import CardImageError, CardPanels, CardRenderer
from agent.chip.encoder_station import (DEFAULT_CARD_BUDGET_S, StationTimeouts, checks_as_json, encode_and_verify,
                                        failure_checks)
from agent.chip.profile import ChipError, ChipExpectation, ChipFailure, ChipProfile
from agent.core.config import PrinterConfig
from agent.core import freed_memory
from agent.core.printer_snapshot import PrinterSnapshot
from agent.station.crashpoints import CrashPoint, reached
from agent.core.limits import DEFAULT_LIMITS, JobLimits
from agent.upstream.job import JobRejected
from agent.journal.reasons import Because, Reason
from agent.journal import ClaimedJob, Journal, JournalError, JobState, utcnow
from agent.station.recovery import recover
from agent.station.render_ahead import Prepared, RenderAhead, prepare
from agent.station.stage_clock import StageClock
from drivers.evolis.printer import EvolisPrinter, JobSettings
from drivers.faults import Fault
from drivers.link.base import Link
from drivers.link.url import open_link
from drivers.printer_errors import CommandRejected, PrinterError
from drivers.pcsc import PcscError, PcscReader

log = structlog.get_logger("printer")

# A printer fault seen while a card is inside: the card goes to the reject box with this reason.


@dataclass
class WorkerState:
    """What the station shows about one printer (status, diagnose)."""

    name: str
    state: str = "starting"        # idle | processing | stopped (IPP words)
    reasons: tuple[str, ...] = ()
    job_id: str | None = None
    printed: int = 0
    spoiled: int = 0
    faults: tuple[str, ...] = ()   # Fault values behind `reasons`, for operator texts
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    ribbon_left: int | None = None
    card_counter: int | None = None
    capabilities: dict[str, object] | None = None  # what the printer answers beyond the guide


class PrinterPaused(Exception):
    """The printer cannot take the next card until a condition clears."""

    def __init__(self, faults: frozenset[Fault], detail: str = "") -> None:
        super().__init__(", ".join(f.name for f in faults) or detail)
        self.faults = faults
        self.detail = detail


class ReaderLost(Exception):
    """The encoder reader (or pcscd) is gone: not the card's fault; the printer waits for it."""


READER_UNAVAILABLE = "reader-unavailable"


class LinkOpener(Protocol):
    def __call__(self, url: str, *, trace: Callable[[str, bytes], None] | None = None) -> Link: ...


# Ribbon and counters for the status screen and telemetry: fresh enough at this age, and not
# worth three queries between every two cards.
COUNTERS_EVERY_S = 30.0
# A card that just ended well vouches for the printer: the next card starts without the status
# read (on a printer without status words, five queries on the path between two cards). The
# feed's own refusal still tells a cover opened or a feeder emptied since; the ribbon left was
# read with the card. Never longer than this without a full status read.
VOUCHED_BY_LAST_CARD_S = 30.0
STATUS_POLL_WHILE_PAUSED_S = 0.5
# A condition no documented read shows (a hot head, a full bin, a jam) is learnt from the
# refusal of the command it stops; that command is tried again after this long, then longer.
REFUSED_RETRY_FIRST_S = 1.0
REFUSED_RETRY_MAX_S = 8.0
# ... except a condition that clears by itself within seconds (a head cooling down between two
# cards): its refused feed is tried again as often as a paused printer's status is read, so the
# end of a 27 s cooling costs at most that much printing, not a backoff step of up to 8 s.
CLEARS_BY_ITSELF = frozenset({Fault.HEAD_HOT})
# A feed refused for such a condition is tried again this often, the job staying claimed (a try is
# one command, no journal write): the head's end of cooling costs the card ~this much, not half
# a second and a claim and release a try. After COOLING_HOLD_MAX_S the job goes back as for any
# refusal, and the printer waits as above (other printers may take it meanwhile).
COOLING_PROBE_S = 0.1
COOLING_HOLD_MAX_S = 120.0
JOURNAL_UNWRITABLE = "journal-unwritable"


class PrinterWorker:
    def __init__(self, config: PrinterConfig, journal: Journal, profile: ChipProfile, *, depth: int,
                 card_wait_s: float, work: threading.Condition, language: str = "id",
                 card_budget_s: float = DEFAULT_CARD_BUDGET_S, render_ahead: RenderAhead | None = None,
                 limits: JobLimits = DEFAULT_LIMITS, reader: PcscReader | None = None,
                 link_opener: LinkOpener = open_link) -> None:
        """`reader` is the printer's encoder reader (default: the PC/SC reader named in `config`);
        `link_opener` opens `config.link` (default: by its URL scheme). Both are the worker's only
        ways to the hardware, so a test can hand it the simulator's own in the same process."""
        self.config = config
        self.limits = limits  # the same limits intake judged the job by
        self.render_ahead = render_ahead
        self.name = config.name
        self.journal = journal
        self.profile = profile
        self.renderer = render_ahead.renderer if render_ahead is not None else CardRenderer(depth)
        self.card_wait_s = card_wait_s
        self.timeouts = StationTimeouts(card_wait_s=card_wait_s, card_budget_s=card_budget_s)
        self.work = work
        self.language = language
        self.reader = reader if reader is not None else PcscReader(config.reader)
        self.link_opener = link_opener
        self.printer: EvolisPrinter | None = None
        self.reader_lost = False
        self.view = WorkerState(config.name)
        # Held around every exchange with the printer, so that `diagnose` through the control
        # socket can use the same link between two cards without interleaving commands.
        self.link_lock = threading.RLock()
        self.trace_sink: Callable[[str, bytes], None] | None = None
        # Set by the operator (pause, drain): no new card starts; the card in progress finishes.
        self.paused = threading.Event()
        # The station's other reasons to hold jobs (outside the print windows); None when free.
        self.hold_reason: Callable[[], str | None] = lambda: None
        # A card the printer would not take to the reject box (jam, cover open, box full): it is
        # rejected with its own reason once the printer is ready, rather than as "interrupted".
        self._stuck: tuple[str, int, str, list[dict] | None] | None = None
        self._counters_due = 0.0
        self._status_read_at = float("-inf")
        self._counter_after_good_card: int | None = None  # read after a card that ended well
        self._claimed_ahead: ClaimedJob | None = None  # the next job, claimed in the commit that ended a card
        self._stop = threading.Event()  # the station's, once run() has it
        self.job_settings = JobSettings(ribbon=config.ribbon, contrast=config.contrast)
        # Faults learnt from a refused command, kept until that command goes through.
        self._refused: frozenset[Fault] = frozenset()
        self._refused_wait = REFUSED_RETRY_FIRST_S
        self._alerted: frozenset[Fault] | None = None
        self._before_hang: tuple | None = None  # the view to go back to when a silent printer answers

    def snapshot(self) -> PrinterSnapshot:
        """This printer as last seen, for status, metrics, telemetry and the morning report."""
        v = self.view
        return PrinterSnapshot(v.name, v.state, tuple(v.reasons), tuple(v.faults), v.job_id, self.paused.is_set(),
                               v.printed, v.spoiled, v.model, v.serial, v.firmware, v.ribbon_left, v.card_counter,
                               v.capabilities)

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        delay = 1.0
        self._stop = stop
        while not stop.is_set():
            try:
                claimed = self._take_claimed_ahead()
                if claimed is None:
                    if self.printer is None:
                        self._connect()
                        delay = 1.0
                    claimed = self._claim_when_ready(stop)
                    if claimed is None:
                        continue
                with self.work:
                    self.work.notify_all()  # intake tops up the prefetch
                with self.link_lock:
                    try:
                        self._print(claimed)
                    except (PrinterError, PrinterPaused, ReaderLost, JournalError):
                        raise
                    except Exception as exc:  # noqa: BLE001 - one job the station cannot handle ends that job, not the thread
                        self._poisoned(claimed, exc)
            except CommandRejected as exc:
                # Refused outside a card (a stuck card's reject, recovery): wait for the condition
                # to clear, then try again.
                if exc.fault is not None:
                    self._note_refusal(frozenset({exc.fault}))
                else:
                    log.warning("printer-refused", printer=self.name, command=exc.command, reply=exc.reply)
                stop.wait(self._refused_wait)
                self._refused_wait = self._next_refused_wait()
            except PrinterError as exc:
                # Link lost, no answer, or garbage: reconnect; recovery then settles any card from evidence.
                self._drop_link(exc)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except PrinterPaused:
                stop.wait(self._refused_wait if self._refused else 1.0)
                if self._refused:
                    self._refused_wait = self._next_refused_wait()
            except ReaderLost:
                stop.wait(1.0)
            except JournalError as exc:
                # Nothing may move that the journal cannot record first: stop feeding until it can write.
                self._set_view("stopped", (JOURNAL_UNWRITABLE,))
                log.error("printer-paused", printer=self.name, fault=JOURNAL_UNWRITABLE, error=str(exc),
                          remedy="free space on the journal's disk or make it writable; printing resumes by itself")
                stop.wait(2.0)
        try:
            self._take_claimed_ahead()  # stopping: a job claimed with the last card goes back unfed
        except JournalError:
            pass  # recovery at the next start finds it claimed, not fed, and sends it back the same way
        if self.printer is not None:
            self.printer.close()

    def _claim_when_ready(self, stop: threading.Event) -> ClaimedJob | None:
        """The next job, claimed once the printer is ready, no card is left to settle and nothing
        holds the printer; None after waiting when there is nothing to do yet."""
        counter = self._vouched_by_last_card()
        if counter is None:
            self._wait_until_ready(stop)
        if self.reader_lost:
            self._wait_for_reader(stop)
        self._finish_stuck_reject()
        if self.journal.active_jobs(self.name):
            self._recover()  # a card was interrupted (fault, link): resolve it from evidence
            counter = None  # recovery may have moved a card
        hold = "paused" if self.paused.is_set() else self.hold_reason()
        if hold is not None:
            self._set_view("stopped", (hold,))
            with self.work:
                self.work.wait(timeout=5.0)  # woken by resume and by new jobs
            return None
        if counter is None:
            with self.link_lock:
                assert self.printer is not None  # connected above
                counter = self.printer.card_count()
        claimed = self.journal.claim_next(self.name, card_counter=counter)
        if claimed is None:
            self._counters_due = 0.0  # idle: the next look at the printer refreshes its counters
            if self.render_ahead is not None:
                self.render_ahead.forget_finished()  # before the heap is trimmed: their panels go too
            freed_memory.give_back()  # idle: what the last cards freed leaves the resident size
            self._set_view("idle")
            with self.work:
                self.work.wait(timeout=5.0)  # woken when intake adds jobs
        return claimed

    def _take_claimed_ahead(self) -> ClaimedJob | None:
        """The job the last card's commit claimed, unless the operator paused the printer or the
        station began to stop since: then it goes back to wait, no byte having moved for it. (The
        station's own holds were asked just before that commit; asked again now, a batch's target
        would count this very claim as a card in the printer.)"""
        claimed, self._claimed_ahead = self._claimed_ahead, None
        if claimed is None or not (self._stop.is_set() or self.paused.is_set()):
            return claimed
        why = "the station stopped before its feed" if self._stop.is_set() else "paused before its feed"
        self.journal.unclaim(claimed.job_id, claimed.attempt, reason=Because(Reason.INTERRUPTED_BEFORE_FEED, why))
        return None

    def _may_claim_with_card(self) -> bool:
        """Whether the commit that ends a good card may claim the next job too: nobody paused or
        holds the printer, the station is not stopping, and that card stands for a status read
        (the last full one within VOUCHED_BY_LAST_CARD_S), as it would before a claim of its own."""
        return (not self._stop.is_set() and not self.paused.is_set() and self.hold_reason() is None
                and time.monotonic() - self._status_read_at < VOUCHED_BY_LAST_CARD_S)

    def _connect(self) -> None:
        with self.link_lock:
            link = self.link_opener(self.config.link, trace=self._trace)
            printer = EvolisPrinter(link, on_unresponsive=self._unresponsive, on_responsive=self._responsive)
            identity = printer.identity()
            capabilities = printer.detect_capabilities()
            log.info("printer-connected", printer=self.name, model=identity.model, serial=identity.serial,
                     firmware=identity.firmware, **capabilities.as_json())
            self.view.model, self.view.serial, self.view.firmware = identity.model, identity.serial, identity.firmware
            self.view.capabilities = capabilities.as_json()
            self.printer = printer
            self._recover()

    def _unresponsive(self, command: str, waited: float) -> None:
        """A reply is overdue (twice the step's time): the printer is `not-responding` until it
        answers; if it never does within the step's timeout, the link is dropped and the card is
        settled from the printer's evidence once it is back, as after a crash."""
        self._before_hang = (self.view.state, self.view.reasons, self.view.job_id, self.view.faults)
        fault = Fault.NOT_RESPONDING
        self._set_view("stopped", (fault.ipp_reason,), job_id=self.view.job_id, faults=(fault.value,))
        log.error("printer-not-responding", printer=self.name, command=command, waited_s=round(waited, 1),
                  message=fault.message(self.language), remedy=fault.remedy(self.language))

    def _responsive(self, command: str) -> None:
        before, self._before_hang = self._before_hang, None
        if before is not None:
            self._set_view(before[0], before[1], job_id=before[2], faults=before[3])
        log.info("printer-responding-again", printer=self.name, command=command)

    def _trace(self, direction: str, data: bytes) -> None:
        sink = self.trace_sink
        if sink is not None:
            sink(direction, data)

    def _read_status(self):
        """The printer's status between two cards, and now and then its counters for the status screen."""
        assert self.printer is not None
        with self.link_lock:
            status = self.printer.status()
            self._status_read_at = now = time.monotonic()
            if now >= self._counters_due:
                counters = self.printer.counters()
                self.view.ribbon_left, self.view.card_counter = counters.ribbon_left, counters.cards
                self._counters_due = time.monotonic() + COUNTERS_EVERY_S
        return status

    def _recover(self) -> None:
        assert self.printer is not None
        with self.link_lock:
            for outcome in recover(self.journal, self.printer, self.name):
                log.warning("recovered", printer=self.name, **outcome)

    def _finish_stuck_reject(self) -> None:
        """Reject the card the printer refused to reject earlier, with the reason it had then."""
        stuck, self._stuck = self._stuck, None
        if stuck is None or self.printer is None:
            return
        with self.link_lock:
            if self.printer.card_present():
                self._reject(*stuck)
        self._cleared()
        # No card inside: someone took it out by hand; recovery settles the job from evidence.

    def _drop_link(self, exc: Exception) -> None:
        if self.printer is not None:
            self.printer.close()
            self.printer = None
        self._set_view("stopped", (Fault.LINK_LOST.ipp_reason,), faults=(Fault.LINK_LOST.value,))
        log.error("printer-link-lost", printer=self.name, error=str(exc),
                  message=Fault.LINK_LOST.message(self.language), remedy=Fault.LINK_LOST.remedy(self.language))

    def _vouched_by_last_card(self) -> int | None:
        """Once, right after a card that ended well, and within VOUCHED_BY_LAST_CARD_S of the last
        full status read: the card counter read with that card, which stands for the status read
        and the counter read before the next claim. None: read them."""
        counter, self._counter_after_good_card = self._counter_after_good_card, None
        if counter is None or time.monotonic() - self._status_read_at >= VOUCHED_BY_LAST_CARD_S:
            return None
        return counter

    def _wait_until_ready(self, stop: threading.Event) -> None:
        """Pause while the printer reports a blocking fault; resume by itself when it clears."""
        assert self.printer is not None
        status = self._read_status()
        if not status.blocking:
            if self._refused:
                self._alert(self._refused)  # still paused for what a refusal told; the next try is the probe
            elif self._alerted is not None:
                log.info("printer-resumed", printer=self.name)
                self._alerted = None
            return
        if Fault.FEEDER_EMPTY in status.faults:
            self._check_ledger(feeder_empty=True)
        self._alert(status.faults)
        while not stop.is_set():
            # The printer says when a fault starts, not when it clears: ask twice a second, so a
            # cooled head or a closed cover costs at most half a second of printing.
            stop.wait(STATUS_POLL_WHILE_PAUSED_S)
            status = self._read_status()
            if not status.blocking:
                log.info("printer-resumed", printer=self.name)
                self._alerted = None
                return
        raise PrinterPaused(status.faults)

    def _wait_for_reader(self, stop: threading.Event) -> None:
        """Pause this printer until pcscd lists its encoder reader again."""
        while not stop.is_set():
            try:
                self.reader.check()
            except PcscError as exc:
                self._set_view("stopped", (READER_UNAVAILABLE,))
                log.warning("printer-paused", printer=self.name, fault=READER_UNAVAILABLE, error=str(exc),
                            code=exc.code_name, remedy=exc.remedy)
                stop.wait(2.0)
                continue
            log.info("reader-back", printer=self.name, reader=self.config.reader)
            self.reader_lost = False
            return
        raise ReaderLost(self.config.reader)

    def _check_ledger(self, *, feeder_empty: bool) -> None:
        """The printer just said something of its feeder: hold the ledger against it.

        A feeder empty while the ledger counts blanks, or a card fed while it counted none, is a
        discrepancy: recorded (with the lot and both counts), shown in the status, alerted and
        reported upstream until someone counts the hopper (`hopper adjust`) or loads it.
        """
        remaining = self.journal.blanks_remaining(self.name)
        if feeder_empty and remaining > 0:
            kind, said, count = "feeder-empty-ledger-not", "the feeder is empty", remaining
        elif not feeder_empty and remaining < 0:
            kind, said, count = "fed-ledger-empty", "it fed a card", remaining + 1
        else:
            return
        if self.journal.record_discrepancy(self.name, kind, count, said) is not None:
            log.warning("ledger-discrepancy", printer=self.name, kind=kind, ledger_count=count, printer_said=said,
                        remedy="count the blanks in the hopper, then printstation hopper adjust")

    def _note_refusal(self, faults: frozenset[Fault]) -> None:
        """A command was refused for `faults`: pause, tell the operator once, try again later."""
        if not self._refused:
            self._refused_wait = REFUSED_RETRY_FIRST_S
        self._refused = faults
        if faults & CLEARS_BY_ITSELF:
            self._refused_wait = STATUS_POLL_WHILE_PAUSED_S
        self._alert(faults)

    def _next_refused_wait(self) -> float:
        """How long to wait before the refused command is tried again, the next time."""
        if self._refused & CLEARS_BY_ITSELF:
            return STATUS_POLL_WHILE_PAUSED_S
        return min(self._refused_wait * 2, REFUSED_RETRY_MAX_S)

    def _cleared(self) -> None:
        """The command that was refused went through: what stopped it has cleared."""
        if self._refused:
            log.info("printer-resumed", printer=self.name, cleared=sorted(f.value for f in self._refused))
        self._refused = frozenset()
        self._alerted = None
        self._refused_wait = REFUSED_RETRY_FIRST_S

    def _alert(self, faults: frozenset[Fault]) -> None:
        self._set_view("stopped", tuple(sorted(f.ipp_reason for f in faults)),
                       faults=tuple(sorted(f.value for f in faults)))
        if faults == self._alerted:
            return  # the operator has been told; the view stays as it is
        self._alerted = faults
        for fault in sorted(faults, key=lambda f: f.name):
            log.warning("printer-paused", printer=self.name, fault=fault.name.lower(),
                        message=fault.message(self.language), remedy=fault.remedy(self.language))

    def _set_view(self, state: str, reasons: tuple[str, ...] = (), job_id: str | None = None,
                  faults: tuple[str, ...] = ()) -> None:
        self.view.state, self.view.reasons, self.view.job_id, self.view.faults = state, reasons, job_id, faults

    # -- one card -----------------------------------------------------------------------------

    def _print(self, claimed: ClaimedJob) -> None:
        assert self.printer is not None
        printer = self.printer
        clock = StageClock()
        if not self._refused:
            self._set_view("processing", job_id=claimed.job_id)
        started = time.monotonic()
        try:
            with clock.stage("render"):
                prepared = self._prepared(claimed)
        except CardImageError as exc:
            log.error("card-image-unusable", job_id=claimed.job_id, reason=str(exc))
            self.journal.give_up(claimed.job_id, claimed.attempt, Because(Reason.BAD_CARD_IMAGE, str(exc)))
            return
        job, panels = prepared.job, prepared.panels
        reached(CrashPoint.BEFORE_FEED)
        try:
            with clock.stage("feed"):
                printer.apply_job_settings(self.job_settings)
                printer.start_sequence()
                try:
                    printer.feed_to_contactless()
                except CommandRejected as exc:
                    self._feed_once_cooled(printer, exc)
            reached(CrashPoint.AFTER_FEED)
        except CommandRejected as exc:
            # Nothing left the hopper: the job waits for the printer (or another one), no blank is counted.
            self.journal.unclaim(job.job_id, claimed.attempt, reason=Because(Reason.FEED_REFUSED, exc.reply))
            if self.render_ahead is not None:
                self.render_ahead.give_back(job.job_id, prepared)
            faults = frozenset({exc.fault}) if exc.fault else frozenset()
            if exc.fault is Fault.FEEDER_EMPTY:
                self._check_ledger(feeder_empty=True)
            self._note_refusal(faults)
            raise PrinterPaused(faults, exc.reply) from None
        self._cleared()
        self._set_view("processing", job_id=job.job_id)
        with clock.stage("journal"):
            self.journal.fed(job.job_id, claimed.attempt, self.name)
            if self.journal.blanks_remaining(self.name) < 0:
                self._check_ledger(feeder_empty=False)
        reached(CrashPoint.AFTER_FED)
        try:
            try:
                with clock.stage("chip"):
                    failure = self._encode_and_verify(job, claimed)
            except ReaderLost as exc:
                self.reader_lost = True
                log.error("reader-lost", printer=self.name, reader=self.config.reader, error=str(exc))
                failure = (READER_UNAVAILABLE, [])
                self._reject(job.job_id, claimed.attempt, *failure)
                raise
            if failure is not None:
                self._reject(job.job_id, claimed.attempt, failure[0], failure[1])
                return
            reached(CrashPoint.AFTER_VERIFY)
            with clock.stage("journal"):
                self.journal.advance(job.job_id, JobState.PRINTING)
            if self.render_ahead is not None:
                # The next cards render while this one's panels travel and print: not between two
                # cards nor during the chip exchange, where the render's CPU would slow the card.
                self.render_ahead.prepare_next()
            with clock.stage("panels"):
                self._send_panels(panels)
            with clock.stage("journal"):
                self.journal.advance(job.job_id, JobState.EJECTING)
            reached(CrashPoint.BEFORE_EJECT)
            with clock.stage("eject"):
                printer.eject()
            reached(CrashPoint.AFTER_EJECT_BEFORE_JOURNAL)
        except CommandRejected as exc:
            faults = frozenset({exc.fault}) if exc.fault else frozenset()
            self._alert(faults)
            if self._stuck is None:  # else the reject itself was refused: the card keeps its first reason
                reason = Because(Reason.PRINTER_FAULT, exc.fault.name.lower() if exc.fault else exc.reply)
                try:
                    self._reject(job.job_id, claimed.attempt, reason)
                except CommandRejected:
                    pass  # the card is stuck: rejected once the fault clears (_finish_stuck_reject)
            raise PrinterPaused(faults, exc.reply) from None
        with clock.stage("counters"):
            # The journal's evidence, and the ribbon for the status screen, metrics and reports
            # (two queries: the panel count the full `counters()` reads is not needed here).
            cards, ribbon_left = printer.card_count(), printer.ribbon_left()
        self.view.card_counter, self.view.ribbon_left = cards, ribbon_left
        with clock.stage("journal"):
            # The next job's claim rides in the same commit when it may: one wait for the disk.
            self._claimed_ahead = self.journal.printed(job.job_id, claimed.attempt, cards,
                                                       claim_next_for=self.name if self._may_claim_with_card() else None)
        reached(CrashPoint.AFTER_PRINTED)
        self.view.printed += 1
        # Claimed already, or else this card stands for the next claim's status and counter reads.
        self._counter_after_good_card = cards if self._claimed_ahead is None else None
        log.info("card-printed", printer=self.name, job_id=job.job_id, attempt=claimed.attempt,
                 seconds=round(time.monotonic() - started, 2), stages_ms=clock.as_ms())

    def _feed_once_cooled(self, printer: EvolisPrinter, refused: CommandRejected) -> None:
        """The feed was refused: for a head cooling by itself, try it again every COOLING_PROBE_S
        while the job stays claimed, and return once a blank is fed. Raises the refusal for any
        other condition, when the operator pauses or the station stops meanwhile, or once
        COOLING_HOLD_MAX_S have passed: the job then goes back unfed. (The feed opens the
        sequence if the refusal closed it: the guide's `Se` ends "a command started by a Ss,
        a Si or a Sr".)"""
        until = time.monotonic() + COOLING_HOLD_MAX_S
        while refused.fault in CLEARS_BY_ITSELF:
            self._note_refusal(frozenset({refused.fault}))  # the operator sees why it waits (once)
            if self._wait_with_link_free(COOLING_PROBE_S) or self.paused.is_set() or time.monotonic() >= until:
                break
            try:
                printer.feed_to_contactless()
                return
            except CommandRejected as again:
                refused = again
        raise refused

    def _wait_with_link_free(self, seconds: float) -> bool:
        """Wait (True if the station is stopping) with the printer's link free meanwhile: no card
        is inside, and the control socket's reads (a hopper count, a probe) need not wait for the
        head to cool. Called with the link lock held once, as the worker's loop holds it."""
        self.link_lock.release()
        try:
            return self._stop.wait(seconds)
        finally:
            self.link_lock.acquire()

    def _prepared(self, claimed: ClaimedJob) -> Prepared:
        """The claimed job parsed and as panels: from render-ahead when it has them (parsed once)."""
        if self.render_ahead is not None:
            return self.render_ahead.prepared(claimed.job_id)
        return prepare(self.journal, claimed.job_id, self.limits, self.renderer)

    def _poisoned(self, claimed: ClaimedJob, exc: Exception) -> None:
        """A job whose handling raised what nobody expected: it ends `failed`, reported upstream
        with the reason; its card, if one was fed, goes to the reject box and is counted."""
        reason = (Because(exc.reason, exc.message) if isinstance(exc, JobRejected)
                  else Because(Reason.STATION_ERROR, type(exc).__name__))
        log.error("job-failed-unhandled", printer=self.name, job_id=claimed.job_id, reason=reason,
                  remedy="the job is reported failed upstream; send a support bundle to the technician")
        state = self.journal.job_state(claimed.job_id)
        if state in (JobState.ENCODING, JobState.PRINTING, JobState.EJECTING, JobState.REJECTING):
            if self.printer is not None and self.printer.card_present():
                self._reject(claimed.job_id, claimed.attempt, Reason.STATION_ERROR)
            self.journal.fail(claimed.job_id, reason)
        elif state is JobState.FEEDING:
            self.journal.give_up(claimed.job_id, claimed.attempt, reason)

    def _encode_and_verify(self, job, claimed: ClaimedJob) -> tuple[str, list[dict]] | None:
        """Write the chip and prove it holds exactly this job's data. None when good, else (reason, checks).

        Raises ReaderLost when the reader or pcscd failed (not the card's fault).
        """
        expected = ChipExpectation(document_number=job.subject.document_number, nik=job.subject.nik, name=job.subject.name)
        try:
            verdict = encode_and_verify(self.reader, self.profile, job.chip_files, expected, utcnow(), self.timeouts,
                                        after_encode=lambda: reached(CrashPoint.AFTER_ENCODE))
        except ChipError as exc:
            # Mute, slow, removed, refused writes: one reason each, and the plain message as the check.
            return exc.failure.value, checks_as_json(failure_checks(exc))
        except PcscError as exc:
            # Classified by its PC/SC code in drivers/pcsc.py: whatever is left is the reader's or pcscd's.
            raise ReaderLost(f"{exc.message} ({exc.code_name}); {exc.remedy}") from exc
        if verdict.ok:
            return None
        return (verdict.failure or ChipFailure.UNREADABLE_FILE).value, checks_as_json(verdict.checks)

    def _send_panels(self, panels: CardPanels) -> None:
        assert self.printer is not None
        self.printer.front()
        for i, panel in enumerate(panels.front):
            self.printer.download(panel)
            if i == 0:
                reached(CrashPoint.MID_PANELS)
        if panels.back:
            self.printer.back()
            for panel in panels.back:
                self.printer.download(panel)

    def _reject(self, job_id: str, attempt: int, because: str | Because, checks: list[dict] | None = None) -> None:
        """Send the card to the reject box, then record it spoiled; the job retries on a fresh blank."""
        assert self.printer is not None
        reason = str(because)
        self.journal.advance(job_id, JobState.REJECTING, reason=reason)
        reached(CrashPoint.BEFORE_REJECT)
        self._stuck = (job_id, attempt, reason, checks)
        self.printer.reject()
        self._stuck = None
        reached(CrashPoint.AFTER_REJECT_BEFORE_JOURNAL)
        new_state = self.journal.spoiled(job_id, attempt, reason, checks)
        self.view.spoiled += 1
        self._counters_due = 0.0  # a spoiled card may have used ribbon: refresh before the next card
        log.warning("card-spoiled", printer=self.name, job_id=job_id, attempt=attempt, reason=reason,
                    next=new_state.value)
