"""The webhook channel: a JSON POST per alert, retried from the journal's outbox.

The board's thread only writes the message into the outbox (kind "notify-webhook", one of the
journal's LOCAL_KINDS, so the upstream sender never picks it up); this module's loop delivers
the outbox's webhook messages in order, each with its Idempotency-Key, with capped backoff
while the receiver is down. A 4xx (but 408/429, and 401/403 which are about the token) is
refused for good: the message is kept, marked, and not sent again. The URL comes from
`[notify] webhook_url` at delivery time, so a corrected URL takes what is queued.
"""

from __future__ import annotations

import threading

import httpx
import structlog

from agent.journal import Journal, JournalError
from agent.upstream.sender import RETRY_LATER, backoff_delay

log = structlog.get_logger("notify")

KIND = "notify-webhook"
TIMEOUT_S = 10.0


class WebhookRefused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status = status


class WebhookNotifier:
    def __init__(self, url: str, journal: Journal, *, max_backoff_s: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.journal = journal
        self.max_backoff_s = max_backoff_s
        self.transport = transport
        self.ready = threading.Event()  # set when a message is queued: the loop looks again

    def queue(self, payload: dict, key: str) -> None:
        """Into the outbox (a quick local write); the loop sends it."""
        try:
            self.journal.queue_local(KIND, payload, key=f"notify:{key}")
        except JournalError as exc:
            log.error("notify-webhook-not-queued", code=payload.get("code"), error=str(exc),
                      remedy="free space on the journal's disk or make it writable; the alert stays on the page")
            return
        self.ready.set()

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=TIMEOUT_S, transport=self.transport,
                          headers={"User-Agent": "printstation-notify"}) as client:
            failures = 0
            while not stop.is_set():
                self.ready.clear()  # before looking, so a message queued meanwhile wakes us
                try:
                    message = self.journal.outbox_next(kinds=(KIND,))
                except JournalError as exc:
                    log.error("notify-webhook-paused", error=str(exc), remedy="free space on the journal's disk")
                    stop.wait(2.0)
                    continue
                if message is None:
                    self._wait(stop, 5.0)
                    continue
                try:
                    self._post(client, message.idempotency_key, message.body)
                except WebhookRefused as exc:
                    if exc.status in RETRY_LATER or not 400 <= exc.status < 500:  # 5xx, 3xx: later
                        failures = self._failed(message.id, str(exc), failures, stop)
                        continue
                    refusal = str(exc)
                    log.error("notify-webhook-refused", code=message.body.get("code"), error=refusal,
                              remedy="the receiver refuses the alert: check [notify] webhook_url and what the "
                                     "receiver expects; the message is kept in the journal")
                    self._mark(lambda: self.journal.outbox_refused(message.id, refusal))
                    continue
                except httpx.HTTPError as exc:
                    failures = self._failed(message.id, f"{type(exc).__name__}: {exc}", failures, stop)
                    continue
                if failures:
                    log.info("notify-webhook-back", backlog=self.journal.outbox_backlog(kinds=(KIND,)))
                failures = 0
                self._mark(lambda: self.journal.outbox_delivered(message.id))

    def _post(self, client: httpx.Client, key: str, body: dict) -> None:
        answer = client.post(self.url, json=body, headers={"Idempotency-Key": key})
        if not 200 <= answer.status_code < 300:
            raise WebhookRefused(answer.status_code, answer.text)

    def _failed(self, message_id: int, error: str, failures: int, stop: threading.Event) -> int:
        self._mark(lambda: self.journal.outbox_failed(message_id, error))
        failures += 1
        if failures == 1:
            log.warning("notify-webhook-waiting", error=error, backlog=self.journal.outbox_backlog(kinds=(KIND,)),
                        remedy="check that the webhook receiver ([notify] webhook_url) is up and reachable; "
                               "alerts are kept and sent when it answers")
        stop.wait(backoff_delay(failures, cap=self.max_backoff_s))
        return failures

    def _wait(self, stop: threading.Event, timeout: float) -> None:
        """Until a message is queued, the station stops, or `timeout`."""
        deadline = timeout
        while deadline > 0 and not stop.is_set() and not self.ready.is_set():
            self.ready.wait(0.5)
            deadline -= 0.5

    @staticmethod
    def _mark(write) -> None:
        try:
            write()
        except JournalError as exc:
            # Delivered but not marked: sent again later, the Idempotency-Key makes it harmless.
            log.error("notify-webhook-unmarked", error=str(exc), remedy="free space on the journal's disk")
