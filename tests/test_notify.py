"""Alerts that reach a person: a real alert board, a real journal on disk, a loopback webhook
receiver and a local SMTP server. Each alert arrives once per channel, in Indonesian with its
remedy, without personal data; a webhook receiver that is down (or the station restarted
meanwhile) gets the alert later, once, under the same Idempotency-Key."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

from agent.core.config import NotifyConfig
from agent.core.messages import fault_message
from agent.core.printer_snapshot import PrinterSnapshot
from agent.journal import Journal
from agent.ops.alerts import AlertBoard, Condition, conditions_of
from agent.ops.notify import Notifiers
from agent.ops.notify_webhook import KIND
from tests.station_rig import wait_until

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
STATION = "st-notify"
NIK, NAME = "3174011505900001", "SITI RAHAYU"  # fed nowhere: must appear nowhere
WEBHOOK_FIELDS = {"station", "code", "severity", "printer", "since", "count", "message", "remedy", "language"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A webhook receiver on 127.0.0.1: answers `statuses` in turn (then 200), records every request."""

    def __init__(self, port: int = 0, statuses: tuple[int, ...] = ()) -> None:
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.requests.append({"key": self.headers.get("Idempotency-Key"), "status": status,
                                          "raw": raw.decode(), "body": json.loads(raw)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def accepted(self) -> list[dict]:
        return [r for r in list(self.requests) if r["status"] == 200]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Mailbox:
    """aiosmtpd's handler: records each message received."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        self.raw.append(envelope.content.decode("utf-8", "replace"))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@contextmanager
def running(notifiers: Notifiers) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(stop,), name=name) for name, loop in notifiers.loops()]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
            assert not t.is_alive(), f"{t.name} did not stop"


def notifiers_for(journal: Journal, *, webhook_url: str | None = None, smtp_port: int | None = None) -> Notifiers:
    config = NotifyConfig(webhook_url=webhook_url, smtp_host="127.0.0.1" if smtp_port else None,
                          smtp_port=smtp_port or 25, smtp_from="station@example.test",
                          smtp_to=("operator@example.test",))
    return Notifiers.from_config(config, "id", STATION, journal, max_backoff_s=0.2, mail_backoff_s=0.1)


def jammed(name: str = "p1") -> PrinterSnapshot:
    return PrinterSnapshot(name, "stopped", ("media-jam-error",), ("jam",))


def stopped_and_low() -> list[Condition]:
    return conditions_of([jammed()], None, upstream_online=True, held_jobs=0, upstream_offline_after_s=60) + [
        Condition("blanks-low", "warning", "p1", 22)]


def sentinel() -> list[Condition]:
    """A later, different alert: once it has arrived, anything queued before it has too (order is kept)."""
    return stopped_and_low() + [Condition("cover_open", "error", "p2")]


def test_each_alert_reaches_the_webhook_and_the_mailbox_once_in_indonesian_with_its_remedy(tmp_path: Path):
    journal = Journal(tmp_path / "journal.db", STATION)
    receiver = Receiver()
    try:
        with smtp_server() as (mailbox, smtp_port):
            notifiers = notifiers_for(journal, webhook_url=receiver.url, smtp_port=smtp_port)
            board = AlertBoard(repeat_after_s=3600)
            board.listeners.append(notifiers)
            with running(notifiers):
                for second in range(5):  # seen every tick: raised once
                    board.update(stopped_and_low(), T0 + timedelta(seconds=second))
                board.update(stopped_and_low()[:1], T0 + timedelta(seconds=5))  # low stock goes away...
                board.update(stopped_and_low(), T0 + timedelta(seconds=6))      # ...and back soon: collapsed
                board.update(sentinel(), T0 + timedelta(seconds=7))
                wait_until(lambda: len(receiver.accepted) == 3 and len(mailbox.messages) == 3, 30,
                           "three alerts on the webhook and in the mailbox")
                wait_until(lambda: journal.outbox_backlog(kinds=(KIND,)) == 0, 10, "the webhook's outbox delivered")
    finally:
        receiver.stop()
        journal.close()

    jam_text, low_text = fault_message("jam", "id"), fault_message("blanks-low", "id")
    assert "macet" in jam_text[0] and "Blangko" in low_text[0], "the station's Indonesian texts"

    posts = [r["body"] for r in receiver.accepted]
    assert [(p["code"], p["printer"]) for p in posts] == [("jam", "p1"), ("blanks-low", "p1"), ("cover_open", "p2")]
    jam, low = posts[0], posts[1]
    for post in posts:
        assert set(post) == WEBHOOK_FIELDS and post["station"] == STATION and post["language"] == "id"
    assert (jam["message"], jam["remedy"], jam["severity"], jam["count"]) == (*jam_text, "error", None)
    assert (low["message"], low["remedy"], low["severity"], low["count"]) == (*low_text, "warning", 22)
    assert jam["since"] == "2026-12-02T12:00:00Z"
    keys = [r["key"] for r in receiver.accepted]
    assert all(keys) and len(set(keys)) == 3, "each alert its own Idempotency-Key"

    jam_mail, low_mail = mailbox.messages[0], mailbox.messages[1]
    for mail, (message, remedy) in ((jam_mail, jam_text), (low_mail, low_text)):
        assert mail["From"] == "station@example.test" and mail["To"] == "operator@example.test"
        assert message in mail["Subject"] and STATION in mail["Subject"]
        body = mail.get_body().get_content()
        assert message in body and remedy in body and "Yang harus dilakukan" in body, body
    assert "GANGGUAN" in jam_mail["Subject"] and "(p1)" in jam_mail["Subject"]
    assert "PERINGATAN" in low_mail["Subject"] and "Jumlah: 22" in low_mail.get_body().get_content()

    for raw in [r["raw"] for r in receiver.requests] + mailbox.raw:
        assert NIK not in raw and NAME.lower() not in raw.lower(), "no personal data in any message"


def test_a_webhook_receiver_that_is_down_gets_the_alert_later_once_even_across_a_restart(tmp_path: Path):
    port = free_port()  # nothing listens yet: connections are refused
    url = f"http://127.0.0.1:{port}/alerts"
    journal = Journal(tmp_path / "journal.db", STATION)
    notifiers = notifiers_for(journal, webhook_url=url)
    board = AlertBoard()
    board.listeners.append(notifiers)
    with running(notifiers):
        board.update(stopped_and_low()[:1], T0)
        wait_until(lambda: any(m["kind"] == KIND and m["tries"] >= 2 for m in journal.outbox_summary()), 30,
                   "the webhook tried and failed")
        assert journal.outbox_next() is None and journal.outbox_backlog() == 0, "the upstream sender never sees it"
    journal.close()  # the station stops with the alert undelivered

    receiver = Receiver(port, statuses=(500, 500))  # up again, failing twice more
    journal = Journal(tmp_path / "journal.db", STATION)
    try:
        notifiers = notifiers_for(journal, webhook_url=url)
        with running(notifiers):
            wait_until(lambda: receiver.accepted, 30, "the alert delivered after the restart")
            wait_until(lambda: journal.outbox_backlog(kinds=(KIND,)) == 0, 10, "marked delivered")
        assert [r["status"] for r in receiver.requests] == [500, 500, 200]
        assert len({r["key"] for r in receiver.requests}) == 1, "the same Idempotency-Key each time"
        [delivered] = receiver.accepted
        assert delivered["body"]["code"] == "jam" and "macet" in delivered["body"]["message"]
    finally:
        receiver.stop()
        journal.close()


def test_a_webhook_refusal_is_kept_and_not_sent_again(tmp_path: Path):
    receiver = Receiver(statuses=(400,))
    journal = Journal(tmp_path / "journal.db", STATION)
    try:
        notifiers = notifiers_for(journal, webhook_url=receiver.url)
        board = AlertBoard()
        board.listeners.append(notifiers)
        with running(notifiers):
            board.update(stopped_and_low()[:1], T0)
            board.update(sentinel()[:1] + sentinel()[-1:], T0 + timedelta(seconds=1))
            wait_until(lambda: receiver.accepted, 30, "the next alert delivered")
        assert [(r["status"], r["body"]["code"]) for r in receiver.requests] == [(400, "jam"), (200, "cover_open")]
        [refused] = [m for m in journal.outbox_summary() if m["refused_at"]]
        assert refused["kind"] == KIND and "400" in refused["last_error"]
    finally:
        receiver.stop()
        journal.close()


def test_channels_not_configured_run_nothing(tmp_path: Path):
    journal = Journal(tmp_path / "journal.db", STATION)
    try:
        notifiers = Notifiers.from_config(NotifyConfig(), "id", STATION, journal)
        assert notifiers.loops() == []
        board = AlertBoard()
        board.listeners.append(notifiers)
        board.update(stopped_and_low(), T0)
        assert journal.outbox_summary() == []
    finally:
        journal.close()
