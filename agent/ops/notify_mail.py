"""The e-mail channel: each alert as a message over SMTP, sent by its own loop (STARTTLS when
the server offers it), retried a few times with backoff; a failure is logged with a remedy."""

from __future__ import annotations

import queue
import smtplib
import ssl
import threading
from email.message import EmailMessage

import structlog

log = structlog.get_logger("notify")

TIMEOUT_S = 15.0


class MailNotifier:
    def __init__(self, host: str, port: int, sender: str, to: tuple[str, ...], *, tries: int = 3,
                 backoff_s: float = 2.0) -> None:
        self.host, self.port, self.sender, self.to = host, port, sender, to
        self.tries = tries
        self.backoff_s = backoff_s
        self._queue: queue.Queue[EmailMessage] = queue.Queue()

    def queue(self, subject: str, body: str) -> None:
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail.set_content(body)
        self._queue.put(mail)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                mail = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._send(mail, stop)

    def _send(self, mail: EmailMessage, stop: threading.Event) -> None:
        for attempt in range(1, self.tries + 1):
            try:
                with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S) as smtp:
                    smtp.ehlo()
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=ssl.create_default_context())
                        smtp.ehlo()
                    smtp.send_message(mail)
                return
            except (OSError, smtplib.SMTPException) as exc:  # smtplib's errors, refused connections, TLS
                error = f"{type(exc).__name__}: {exc}"
                if attempt == self.tries:
                    log.error("notify-mail-failed", subject=mail["Subject"], tries=attempt, error=error,
                              remedy="check [notify] smtp_host and smtp_port, that the mail server is up and "
                                     "accepts mail from smtp_from to smtp_to; the alert stays on the page")
                    return
                log.warning("notify-mail-retry", tries=attempt, error=error)
                if stop.wait(self.backoff_s * 2 ** (attempt - 1)):
                    return
