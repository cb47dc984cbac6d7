"""Leases jobs from upstream and lets into the journal only what the authority signed and the station can print.

Store and forward: the station holds enough leased jobs to print through a configured outage,
renews their leases while it is online, and hands back the jobs it will not print.
"""

from __future__ import annotations

import math
import random
import threading
from datetime import timedelta

import structlog

from agent.chip.profile import ChipExpectation, ChipProfile, Verdict
from agent.core.config import UpstreamConfig
from agent.core.limits import DEFAULT_LIMITS, JobLimits
from agent.upstream.job import Job, JobRejected, JobRejection, parse_job, valid_job_id
from agent.upstream.signature import AuthorityKeys
from agent.journal import Journal, JournalError, utcnow
from agent.upstream.client import UpstreamClient, UpstreamOffContract, UpstreamRefused, UpstreamUnavailable

log = structlog.get_logger("intake")

RENEW_BATCH = 100  # the most job ids upstream takes in one renew request
SURPLUS_RELEASE_REASON = "more jobs held than the station's outage cover"
UNRECORDED_RELEASE_REASON = "leased to the station but not recorded by it (it stopped or its journal failed first)"


def prefetch_for(config: UpstreamConfig, printers: int) -> int:
    """Jobs to hold: enough for `outage_hours` of printing on every printer, and never fewer than `prefetch`."""
    return max(config.prefetch, math.ceil(config.outage_hours * config.cards_per_hour * printers))


def refill_at(prefetch: int, lease_max: int) -> int:
    """How many jobs short of the prefetch intake waits to be before it asks upstream for more:
    half a lease, but at most a quarter of the prefetch (a prefetch sized for an outage still
    covers three quarters of it at worst), and at least one: a busy station asks once for several
    jobs, not once a card, and never waits with nothing to print."""
    return max(1, min(lease_max // 2, prefetch // 4))


class Intake:
    """Keeps up to `prefetch` printable jobs in the journal, so printing goes on through an outage;
    tops up once `refill_at` jobs are missing."""

    def __init__(self, journal: Journal, client: UpstreamClient, keys: AuthorityKeys, *, prefetch: int,
                 lease_max: int, wait_s: float, work: threading.Condition, renew_margin_s: float = 900.0,
                 limits: JobLimits = DEFAULT_LIMITS, retry_max_s: float = 60.0,
                 profile: ChipProfile | None = None) -> None:
        self.journal = journal
        self.profile = profile  # judges each job's chip image before a blank is spent on it
        self.retry_max_s = retry_max_s
        self.limits = limits
        self.client = client
        self.keys = keys
        self.prefetch = prefetch
        self.lease_max = lease_max
        self.refill_at = refill_at(prefetch, lease_max)
        self.wait_s = wait_s
        self.work = work
        self.renew_margin_s = renew_margin_s
        self.online = False
        # On start and after any journal fault: ask upstream which leases this station holds.
        self.reconcile_due = True

    def run(self, stop: threading.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                if self.reconcile_due:
                    self.reconcile_leases()
                self.release_surplus()
                self.renew_due()
                wanted = self.shortfall()
                if not wanted:
                    with self.work:
                        self.work.wait(timeout=min(5.0, self.renew_margin_s / 2))  # woken when a printer claims a job
                    continue
                lease = self.client.lease(min(wanted, self.lease_max), self.wait_s)
            except (UpstreamUnavailable, UpstreamRefused) as exc:
                if isinstance(exc, UpstreamOffContract) and exc.job_ids:
                    self._hand_back(list(exc.job_ids), str(exc))
                if isinstance(exc, UpstreamRefused):
                    # An answer outside the contract may still have leased jobs to us: ask which.
                    self.reconcile_due = True
                if self.online or delay == 1.0:
                    log.warning("upstream-unreachable", error=str(exc), retry_in_s=round(delay, 1),
                                printable_jobs=self.journal.printable_count())
                self.online = False
                stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.retry_max_s)
                continue
            except JournalError as exc:
                log.error("intake-paused", fault="journal-unwritable", error=str(exc),
                          remedy="free space on the journal's disk or make it writable")
                self.reconcile_due = True
                stop.wait(2.0)
                continue
            if not self.online:
                log.info("upstream-online")
            self.online, delay = True, 1.0
            try:
                accepted = sum(self.accept_safely(raw, lease.expires_at) for raw in lease.jobs)
            except JournalError as exc:
                # Not recorded, so not ours to print: hand back what could not be recorded, as soon
                # as upstream can be asked which leases it counts as ours.
                log.error("intake-paused", fault="journal-unwritable", error=str(exc))
                self.reconcile_due = True
                stop.wait(2.0)
                continue
            if accepted:
                with self.work:
                    self.work.notify_all()

    def shortfall(self) -> int:
        """Jobs to ask upstream for now: what the prefetch lacks, once `refill_at` or more are
        missing; else 0. Raises JournalError."""
        wanted = self.prefetch - self.journal.printable_count()
        return wanted if wanted >= self.refill_at else 0

    def _hand_back(self, job_ids: list[str], why: str) -> None:
        """Release jobs a lease answer carried but the station could not take (never drop them silently)."""
        unknown = [j for j in job_ids if not self.journal.knows(j)]
        log.error("lease-answer-off-contract", jobs=len(job_ids), error=why[:200])
        if not unknown:
            return
        try:
            released = self.client.release(unknown, "the lease answer was outside the contract; not recorded")
        except (UpstreamUnavailable, UpstreamRefused) as exc:
            log.warning("lease-release-failed", jobs=len(unknown), error=str(exc))  # reconciled later
            return
        log.warning("leases-released", jobs=len(released), reason="lease answer outside the contract")

    def reconcile_leases(self) -> None:
        """Release every job upstream says this station holds but the journal does not know.

        Raises UpstreamUnavailable / UpstreamRefused (tried again on the next round) or JournalError.
        """
        try:
            held = self.client.held_leases()
        except UpstreamRefused as exc:
            # An upstream that cannot list leases: the leases run out there instead.
            log.warning("leases-not-listed", error=str(exc))
            self.reconcile_due = False
            return
        unknown = [job_id for job_id in held if not self.journal.knows(job_id)]
        if unknown:
            released = self.client.release(unknown, UNRECORDED_RELEASE_REASON)
            log.warning("leases-released", count=len(released), job_ids=released, reason=UNRECORDED_RELEASE_REASON)
        self.reconcile_due = False

    def renew_due(self) -> None:
        """Renew the leases that run out within the margin; jobs upstream says are gone are never started.

        Raises UpstreamUnavailable / UpstreamRefused (offline: the leases stay as they are) or JournalError.
        """
        due = self.journal.leases_to_renew(utcnow() + timedelta(seconds=self.renew_margin_s))
        for start in range(0, len(due), RENEW_BATCH):
            renewal = self.client.renew(due[start:start + RENEW_BATCH])
            if renewal.renewed:
                self.journal.leases_renewed(renewal.renewed, renewal.expires_at)
            for job_id, reason in renewal.lost.items():
                if self.journal.lease_lost(job_id, reason):
                    log.warning("lease-lost", job_id=job_id, reason=reason)

    def release_surplus(self) -> None:
        """Hand back jobs beyond what the station holds for an outage (e.g. after the cover was lowered)."""
        if self.journal.printable_count() > self.prefetch + self.lease_max:
            released = self.journal.release_surplus(self.prefetch, SURPLUS_RELEASE_REASON)
            log.info("jobs-released", count=len(released), reason=SURPLUS_RELEASE_REASON)

    def accept_safely(self, raw: object, lease_expires_at) -> bool:
        """`accept`, but whatever one job raises (beyond the journal failing) ends that job alone:
        rejected upstream as malformed, with the reason, and intake goes on."""
        try:
            return self.accept(raw, lease_expires_at)
        except JournalError:
            raise
        except Exception as exc:  # noqa: BLE001 - one hostile job must not stop the station
            job_id = raw.get("job_id") if isinstance(raw, dict) else None
            log.error("job-unreadable", job_id=job_id if valid_job_id(job_id) else None, error=type(exc).__name__)
            if valid_job_id(job_id) and not self.journal.knows(job_id):
                self.journal.reject(job_id, JobRejection.MALFORMED.value,
                                    f"the station could not read the job ({type(exc).__name__})")
            return False

    def judge_chip(self, job: Job) -> None:
        """Refuse a job whose chip image the station could never pass (raises JobRejected): an
        unknown profile, a security object that does not cover or sign what the image holds, a
        subject that is not the job's. Only what fails on the card itself may cost a blank."""
        if self.profile is None:
            return
        if job.chip_profile != self.profile.name:
            raise JobRejected(JobRejection.BAD_CHIP_IMAGE,
                              f"chip profile {job.chip_profile[:40]!r} is not one this station has ({self.profile.name})")
        expected = ChipExpectation(document_number=job.subject.document_number, nik=job.subject.nik,
                                   name=job.subject.name)
        verdict = self.profile.judge_image(job.chip_files, expected, utcnow())
        if verdict.failure is not None:
            bad = next(c for c in verdict.checks if c.verdict is Verdict.BAD)
            raise JobRejected(JobRejection.BAD_CHIP_IMAGE, f"{verdict.failure.value}: {bad.name} {bad.reason}"[:300])

    def accept(self, raw: object, lease_expires_at) -> bool:
        """Check one leased job; record it as printable, or as rejected with the reason reported upstream."""
        job_id = raw.get("job_id") if isinstance(raw, dict) else None
        if not valid_job_id(job_id):  # no id to report under: it would not fit the outcome's URL
            log.error("job-without-usable-id", reason=JobRejection.MALFORMED.value)
            return False
        try:
            kept = self.keys.verify(raw)
            job = parse_job(raw, self.limits)
            if job.not_after <= utcnow():
                raise JobRejected(JobRejection.EXPIRED, f"the job's validity ended at {job.not_after.isoformat()}")
            self.judge_chip(job)
        except JobRejected as rejected:
            if self.journal.knows(job_id):
                log.warning("job-repeat-refused", job_id=job_id, reason=rejected.reason.value)
                return False
            log.warning("job-rejected", job_id=job_id, reason=rejected.reason.value, detail=rejected.message)
            self.journal.reject(job_id, rejected.reason.value, rejected.message)
            return False
        added = self.journal.add_leased(job.job_id, kept, not_after=job.not_after,
                                        lease_expires_at=lease_expires_at, priority=job.priority)
        if not added:
            log.warning("job-already-known", job_id=job.job_id)
        return added
