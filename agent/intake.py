"""Leases jobs from upstream and lets into the journal only what the authority signed and the station can print."""

from __future__ import annotations

import random
import threading

import structlog

from agent.job import JobRejected, JobRejection, parse_job
from agent.job_signature import AuthorityKeys
from agent.journal import Journal, utcnow
from agent.upstream_client import UpstreamClient, UpstreamRefused, UpstreamUnavailable

log = structlog.get_logger("intake")


class Intake:
    """Keeps `prefetch` printable jobs in the journal, so printing goes on through an outage."""

    def __init__(self, journal: Journal, client: UpstreamClient, keys: AuthorityKeys, *, prefetch: int,
                 lease_max: int, wait_s: float, work: threading.Condition) -> None:
        self.journal = journal
        self.client = client
        self.keys = keys
        self.prefetch = prefetch
        self.lease_max = lease_max
        self.wait_s = wait_s
        self.work = work
        self.online = False

    def run(self, stop: threading.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            wanted = self.prefetch - self.journal.printable_count()
            if wanted <= 0:
                with self.work:
                    self.work.wait(timeout=5.0)  # woken when a printer claims a job
                continue
            try:
                lease = self.client.lease(min(wanted, self.lease_max), self.wait_s)
            except (UpstreamUnavailable, UpstreamRefused) as exc:
                if self.online or delay == 1.0:
                    log.warning("upstream-unreachable", error=str(exc), retry_in_s=round(delay, 1),
                                printable_jobs=self.journal.printable_count())
                self.online = False
                stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 60.0)
                continue
            if not self.online:
                log.info("upstream-online")
            self.online, delay = True, 1.0
            accepted = sum(self.accept(raw, lease.expires_at) for raw in lease.jobs)
            if accepted:
                with self.work:
                    self.work.notify_all()

    def accept(self, raw: object, lease_expires_at) -> bool:
        """Check one leased job; record it as printable, or as rejected with the reason reported upstream."""
        job_id = raw.get("job_id") if isinstance(raw, dict) else None
        if not isinstance(job_id, str) or not job_id or len(job_id) > 64 or not job_id.isprintable():
            log.error("job-without-usable-id", reason=JobRejection.MALFORMED.value)
            return False
        try:
            self.keys.verify(raw)
            job = parse_job(raw)
            if job.not_after <= utcnow():
                raise JobRejected(JobRejection.EXPIRED, f"the job's validity ended at {job.not_after.isoformat()}")
        except JobRejected as rejected:
            if self.journal.knows(job_id):
                log.warning("job-repeat-refused", job_id=job_id, reason=rejected.reason.value)
                return False
            log.warning("job-rejected", job_id=job_id, reason=rejected.reason.value, detail=rejected.message)
            self.journal.reject(job_id, rejected.reason.value, rejected.message)
            return False
        added = self.journal.add_leased(job.job_id, raw, not_after=job.not_after,
                                        lease_expires_at=lease_expires_at, priority=job.priority)
        if not added:
            log.warning("job-already-known", job_id=job.job_id)
        return added
