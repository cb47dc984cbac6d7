"""Delivers the outbox upstream in order, with idempotency keys and capped exponential backoff with jitter."""

from __future__ import annotations

import random
import threading

import structlog

from agent.journal import Journal, JournalError
from agent.journal import stamp, utcnow
from agent.upstream.client import UpstreamClient, UpstreamOffContract, UpstreamRefused, UpstreamUnavailable

log = structlog.get_logger("outbox")

MAX_BACKOFF_S = 60.0
# Refusals about the station or the moment, not the message: keep it and try again later.
# (401/403: the token was refused, e.g. rotated at the centre; 408/429: timeout, too many requests.)
RETRY_LATER = frozenset({401, 403, 408, 429})


def backoff_delay(tries: int, *, base: float = 0.5, cap: float = MAX_BACKOFF_S) -> float:
    """Full-jitter exponential backoff: spreads many stations' retries after an outage."""
    return random.uniform(0, min(cap, base * 2 ** min(tries, 16)))


class OutboxSender:
    def __init__(self, journal: Journal, client: UpstreamClient, *, max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self.journal = journal
        self.client = client
        self.max_backoff_s = max_backoff_s
        self._alerted_off_contract = False  # one alert per spell of answers outside the contract

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._deliver_all(stop)
            except JournalError as exc:
                # What was delivered but not marked is sent again later: the idempotency key makes it harmless.
                log.error("outbox-paused", fault="journal-unwritable", error=str(exc),
                          remedy="free space on the journal's disk or make it writable")
                stop.wait(2.0)

    def _deliver_all(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            self.journal.outbox_ready.clear()  # before looking, so a message queued meanwhile wakes us
            message = self.journal.outbox_next()
            if message is None:
                self.journal.outbox_ready.wait(timeout=5.0)
                continue
            try:
                self.client.deliver(message.kind, message.job_id, message.idempotency_key, message.body)
            except (UpstreamUnavailable, UpstreamRefused) as exc:
                if isinstance(exc, UpstreamOffContract):
                    # Not an acknowledgement the contract knows (a redirect, HTML for JSON): the
                    # message was not received as far as the station can tell. Kept, sent again.
                    self._off_contract(message.kind, exc)
                elif isinstance(exc, UpstreamRefused) and exc.status not in RETRY_LATER:
                    log.error("outbox-message-refused", kind=message.kind, job_id=message.job_id, error=str(exc))
                    self.journal.outbox_refused(message.id, str(exc))
                    continue
                self.journal.outbox_failed(message.id, str(exc))
                failures += 1
                if failures == 1:
                    log.warning("outbox-waiting-for-upstream", error=str(exc), backlog=self.journal.outbox_backlog(),
                                remedy="check the network, and the station's token if upstream refuses it")
                stop.wait(backoff_delay(failures, cap=self.max_backoff_s))
                continue
            if failures:
                log.info("outbox-upstream-back", backlog=self.journal.outbox_backlog())
            failures = 0
            self.journal.outbox_delivered(message.id)
            self._alerted_off_contract = False

    def _off_contract(self, kind: str, exc: UpstreamOffContract) -> None:
        log.error("outbox-answer-off-contract", kind=kind, error=str(exc),
                  remedy="the message is kept and sent again; tell the centre that upstream answers outside its "
                         "contract (a proxy or a wrong upstream.url)")
        if not self._alerted_off_contract:
            self._alerted_off_contract = True
            self.journal.queue_report("alert", {"at": stamp(utcnow()), "alerts": [{
                "kind": "upstream-off-contract", "severity": "error",
                "message": f"upstream acknowledged a {kind} outside its contract (HTTP {exc.status}); "
                           "the station keeps it and sends it again"}]},
                key=f"off-contract:{stamp(utcnow())}")
