"""Alerts that reach a person: each alert the board raises goes out on every configured channel.

`Notifiers` is one listener for `AlertBoard.listeners` (called on the control panel's tick
thread): it only queues, never waits on a network or a process. The channels, each only when
`[notify]` configures it:

- webhook (`webhook_url`): a JSON POST per alert, queued in the journal's outbox and delivered by
  its own loop, so nothing is lost across a restart or while the receiver is down
  (agent/ops/notify_webhook.py);
- e-mail (`smtp_host` and `smtp_to`): over SMTP, in the station's language (agent/ops/notify_mail.py);
- desktop (`desktop = true`): notify-send, where a desktop session runs (agent/ops/notify_desktop.py).

What goes out is the alert's code, severity, printer name, count, time and its texts (what is
wrong, what to do) in the station's language: never personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
import threading

from agent.core.config import NotifyConfig
from agent.core.local_time import local_time
from agent.core.messages import word
from agent.journal import Journal
from agent.ops.alerts import ERROR, ActiveAlert
from agent.ops.notify_desktop import DesktopNotifier
from agent.ops.notify_mail import MailNotifier
from agent.ops.notify_webhook import WebhookNotifier

Loop = Callable[[threading.Event], None]

def _label(key: str, lang: str) -> str:
    return word(key, lang).capitalize()


@dataclass(frozen=True)
class Notice:
    """One alert as a person reads it: codes, counts, printer names and texts only."""

    station: str
    code: str
    severity: str
    printer: str | None
    since: str  # UTC, ISO 8601 with a Z (the webhook's field); the mail shows local time
    count: int | None
    message: str
    remedy: str
    language: str

    @classmethod
    def of(cls, alert: ActiveAlert, station: str, lang: str) -> Notice:
        message, remedy = alert.text(lang)
        since = alert.since.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(station, alert.code, alert.severity, alert.printer, since, alert.count, message, remedy, lang)

    def as_json(self) -> dict[str, object]:
        return {"station": self.station, "code": self.code, "severity": self.severity, "printer": self.printer,
                "since": self.since, "count": self.count, "message": self.message, "remedy": self.remedy,
                "language": self.language}

    @property
    def subject(self) -> str:
        where = f" ({self.printer})" if self.printer else ""
        return f"[{self.station}] {word('severity-error' if self.severity == ERROR else 'severity-warning', self.language)}: " \
               f"{self.message}{where}"

    @property
    def body(self) -> str:
        lang = self.language
        lines = [self.message, "", f"{word('remedy', lang).capitalize()}: {self.remedy}", "",
                 f"{_label('station', lang)}: {self.station}"]
        if self.printer:
            lines.append(f"{_label('printer', lang)}: {self.printer}")
        if self.count is not None:
            lines.append(f"{_label('count', lang)}: {self.count}")
        lines.append(f"{_label('since', lang)}: {local_time(self.since, lang)}")  # the station's clock, as on the page
        lines.append(f"({self.code})")
        return "\n".join(lines) + "\n"


class Notifiers:
    """The configured channels, as one board listener and the loops that deliver (run them on
    the station's threads: `loops()`)."""

    def __init__(self, station: str, lang: str, *, webhook: WebhookNotifier | None = None,
                 mail: MailNotifier | None = None, desktop: DesktopNotifier | None = None) -> None:
        self.station = station
        self.lang = lang
        self.webhook, self.mail, self.desktop = webhook, mail, desktop

    @classmethod
    def from_config(cls, config: NotifyConfig, lang: str, station: str, journal: Journal, *,
                    max_backoff_s: float = 60.0, mail_tries: int = 3, mail_backoff_s: float = 2.0) -> Notifiers:
        webhook = WebhookNotifier(config.webhook_url, journal, max_backoff_s=max_backoff_s) \
            if config.webhook_url else None
        mail = MailNotifier(config.smtp_host, config.smtp_port, config.smtp_from, config.smtp_to,
                            tries=mail_tries, backoff_s=mail_backoff_s) \
            if config.smtp_host and config.smtp_to else None
        desktop = DesktopNotifier() if config.desktop else None
        return cls(station, lang, webhook=webhook, mail=mail, desktop=desktop)

    def __call__(self, alert: ActiveAlert) -> None:
        """The board raised `alert`: queue it on every channel (quick; no network here)."""
        notice = Notice.of(alert, self.station, self.lang)
        if self.webhook is not None:
            self.webhook.queue(notice.as_json(), key=f"{alert.key}:{notice.since}")
        if self.mail is not None:
            self.mail.queue(notice.subject, notice.body)
        if self.desktop is not None:
            self.desktop.queue(notice.subject, notice.remedy, urgent=alert.severity == ERROR)

    def loops(self) -> list[tuple[str, Loop]]:
        """(thread name, loop) for each configured channel: each runs until its stop event is set."""
        found: list[tuple[str, Loop]] = []
        if self.webhook is not None:
            found.append(("notify-webhook", self.webhook.run))
        if self.mail is not None:
            found.append(("notify-mail", self.mail.run))
        if self.desktop is not None:
            found.append(("notify-desktop", self.desktop.run))
        return found
