"""Resolves jobs caught between feed and printed from the printer's own evidence, never by guessing.

- card still inside the printer -> reject it, spoiled "interrupted", the job is retried;
- the final eject was sent and no card is inside -> the card left through the output: printed;
- the reject was sent and no card is inside -> the card is in the reject box: spoiled;
- a feed was intended, no card is inside and the card counter did not move (or the feed was
  never sent) -> nothing was fed, the job waits for its turn again; if it moved, the blank is
  counted fed before the job is held;
- anything else cannot be proved -> held, for a person to decide. Never a reprint without proof.
"""

from __future__ import annotations

from agent.station.crashpoints import CrashPoint, reached
from agent.journal import ActiveJob, Journal, JobState
from agent.journal.reasons import INTERRUPTED, Reason
from drivers.evolis.printer import EvolisPrinter


def recover(journal: Journal, printer: EvolisPrinter, printer_name: str) -> list[dict]:
    """Resolve every interrupted job of this printer; return what was decided, for the log.

    May raise PrinterError (the printer stopped answering) or JournalError; what was resolved
    before stays resolved, and the rest is resolved on the next call.
    """
    outcomes = []
    for job in journal.active_jobs(printer_name):
        outcomes.append({"job_id": job.job_id, "was": job.state.value, "now": _resolve(journal, printer, job)})
    return outcomes


def _resolve(journal: Journal, printer: EvolisPrinter, job: ActiveJob) -> str:
    inside = printer.card_present()
    if inside:
        if job.state is JobState.FEEDING:
            journal.fed(job.job_id, job.attempt, job.printer)
        journal.advance(job.job_id, JobState.REJECTING, reason=INTERRUPTED)
        reached(CrashPoint.BEFORE_REJECT)
        printer.reject()
        reached(CrashPoint.AFTER_REJECT_BEFORE_JOURNAL)
        return journal.spoiled(job.job_id, job.attempt, INTERRUPTED).value
    if job.state is JobState.EJECTING:
        journal.printed(job.job_id, job.attempt, printer.counters().cards)
        return JobState.PRINTED.value
    if job.state is JobState.REJECTING:
        return journal.spoiled(job.job_id, job.attempt, INTERRUPTED).value
    # The counter is written before the feed command is sent: no counter means no feed was sent.
    if job.state is JobState.FEEDING and (job.card_counter_before is None
                                          or printer.counters().cards == job.card_counter_before):
        journal.unclaim(job.job_id, job.attempt, reason=Reason.INTERRUPTED_BEFORE_FEED)
        return JobState.LEASED.value
    if job.state is JobState.FEEDING:
        # The counter moved: a blank left the hopper, whatever became of it (`fed` is not durable
        # by itself; lost in a power cut, the ledger would be a blank short).
        journal.fed(job.job_id, job.attempt, job.printer)
    journal.hold(job.job_id, f"no card inside after '{job.state.value}': cannot prove where the card went")
    return JobState.HELD.value
