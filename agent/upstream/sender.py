"""Delivers the outbox upstream in order, with idempotency keys and capped exponential backoff with jitter.

Messages go in batches (deliverOutbox, docs/upstream.openapi.yaml): up to MAX_BATCH at a time,
one request and one journal commit for the lot, each message with its own idempotency key and
its own answer. An upstream without the batch endpoint (404 or 405 on it) gets each message on
its own endpoint, one at a time, as before, and is asked again after BATCH_RETRY_S; a batch
refused whole for another reason (400, 413, ...) goes one message at a time, so each gets its
own endpoint's verdict. Order: upstream handles a batch in order; only a message it answers
"later" (5xx, or a status of RETRY_LATER, which the reference upstream never does per message)
is kept and sent again after the ones behind it in that batch.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog

from agent.journal import Journal, JournalError, OutboxMessage
from agent.journal import stamp, utcnow
from agent.upstream.client import (MAX_BATCH, UpstreamClient, UpstreamOffContract, UpstreamRefused,
                                   UpstreamUnavailable, batchable)

log = structlog.get_logger("outbox")

MAX_BACKOFF_S = 60.0
# Refusals about the station or the moment, not the message: keep it and try again later.
# (401/403: the token was refused, e.g. rotated at the centre; 408/429: timeout, too many requests.)
RETRY_LATER = frozenset({401, 403, 408, 429})
# Bodies in one batch: well under the 1 MiB a request may carry (the oldest message always goes, alone if need be).
MAX_BATCH_BYTES = 512 * 1024
# An upstream that answered 404 or 405 on the batch endpoint is sent one message at a time this long.
BATCH_RETRY_S = 600.0
# Woken by a message just queued, the sender waits this long before it looks: the printer whose
# card ended starts its next card undisturbed (an outcome's request cost it up to 10 ms), and
# messages queued meanwhile share the request.
GATHER_S = 0.05


def backoff_delay(tries: int, *, base: float = 0.5, cap: float = MAX_BACKOFF_S) -> float:
    """Full-jitter exponential backoff: spreads many stations' retries after an outage."""
    return random.uniform(0, min(cap, base * 2 ** min(tries, 16)))


class OutboxSender:
    def __init__(self, journal: Journal, client: UpstreamClient, *, max_backoff_s: float = MAX_BACKOFF_S,
                 batch_max: int = MAX_BATCH, answered: Callable[[], None] | None = None) -> None:
        """`batch_max`: messages per batch (1..MAX_BATCH); `answered` is called once upstream has
        answered a batch, before the journal records it (the crash suite kills the agent there)."""
        self.journal = journal
        self.client = client
        self.max_backoff_s = max_backoff_s
        self.batch_max = max(1, min(batch_max, MAX_BATCH))
        self._answered = answered or (lambda: None)
        self._alerted_off_contract = False  # one alert per spell of answers outside the contract
        self._one_by_one_until = 0.0  # time.monotonic(): upstream has no batch endpoint until then
        self._one_by_one_left = 0  # messages to send on their own after a batch was refused whole

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
            batching = not self._one_by_one_left and time.monotonic() >= self._one_by_one_until
            messages = self.journal.outbox_batch(self.batch_max if batching else 1, max_bytes=MAX_BATCH_BYTES)
            if not messages:
                if self.journal.outbox_ready.wait(timeout=5.0):
                    # A card just ended: its printer starts the next one first, and what else is
                    # queued meanwhile goes in the same request.
                    stop.wait(GATHER_S)
                continue
            run = _batchable_run(messages) if batching else []
            trouble = self._send_batch(run) if run else self._send_one(messages[0])
            if trouble is None and not run and self._one_by_one_left:
                self._one_by_one_left -= 1
            if trouble is not None:
                failures += 1
                if failures == 1:
                    log.warning("outbox-waiting-for-upstream", error=trouble, backlog=self.journal.outbox_backlog(),
                                remedy="check the network, and the station's token if upstream refuses it")
                stop.wait(backoff_delay(failures, cap=self.max_backoff_s))
                continue
            if failures:
                log.info("outbox-upstream-back", backlog=self.journal.outbox_backlog())
            failures = 0

    def _send_one(self, message: OutboxMessage) -> str | None:
        """Deliver one message on its kind's own endpoint; the error when upstream cannot take it now."""
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
                return None
            self.journal.outbox_failed(message.id, str(exc))
            return str(exc)
        self.journal.outbox_delivered(message.id)
        self._alerted_off_contract = False
        return None

    def _send_batch(self, run: list[OutboxMessage]) -> str | None:
        """Deliver `run` in one request and record what upstream made of each message in one
        commit; the error when upstream cannot take them now (None, too, when upstream took none
        of them but would take them one at a time: the next ones then go so)."""
        try:
            results = self.client.deliver_batch([(m.kind, m.job_id, m.idempotency_key, m.body) for m in run])
        except (UpstreamUnavailable, UpstreamRefused) as exc:
            if isinstance(exc, UpstreamOffContract):
                self._off_contract(f"batch of {len(run)} messages", exc)
            elif isinstance(exc, UpstreamRefused) and exc.status not in RETRY_LATER:
                # The request refused whole, so no message was judged: each goes on its own endpoint.
                if exc.status in (404, 405):
                    self._one_by_one_until = time.monotonic() + BATCH_RETRY_S
                    log.info("outbox-batch-unsupported", status=exc.status, retry_in_s=BATCH_RETRY_S,
                             remedy="none needed: each message goes on its own endpoint, one at a time")
                else:
                    self._one_by_one_left = len(run)
                    log.warning("outbox-batch-refused", messages=len(run), error=str(exc),
                                remedy="none needed: these messages go one at a time, each on its own endpoint")
                return None
            error = str(exc)
            self.journal.outbox_settled(failed={m.id: error for m in run})
            return error
        self._answered()
        delivered: list[int] = []
        refused: dict[int, str] = {}
        failed: dict[int, str] = {}
        for message, result in zip(run, results):
            if result.status == 200:
                delivered.append(message.id)
            elif result.status < 500 and result.status not in RETRY_LATER:
                log.error("outbox-message-refused", kind=message.kind, job_id=message.job_id, error=result.error)
                refused[message.id] = result.error
            else:
                failed[message.id] = result.error
        self.journal.outbox_settled(delivered, refused, failed)
        log.debug("outbox-batch-delivered", messages=len(run), refused=len(refused), kept=len(failed))
        if failed:
            return next(iter(failed.values()))
        self._alerted_off_contract = False
        return None

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


def _batchable_run(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """The oldest messages up to the first that may not go in a batch (it then goes on its own)."""
    run: list[OutboxMessage] = []
    for message in messages:
        if not batchable(message.kind, message.job_id):
            break
        run.append(message)
    return run
