"""What the operators' page shows, from the station's status: plain words in the page's language,
times in the station's local time zone, no reason codes and no personal data (counts, printer
names and the texts of faults and alerts only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.core.local_time import local_date, local_number, local_time
from agent.core.messages import fault_message, word

# Printer reasons worth a line of their own on the page (the faults have theirs).
_SHOWN_REASONS = ("paused", "draining", "outside-print-window", "reader-unavailable")


@dataclass
class Problem:
    message: str
    remedy: str


@dataclass
class PrinterView:
    name: str
    state: str                 # the IPP word, for the page's colour
    state_words: str
    paused: bool
    problems: list[Problem] = field(default_factory=list)
    blanks: int = 0
    ribbon_left: str = "?"
    runs_out: str = ""
    printed_today: int = 0
    spoiled_today: int = 0
    safe_to_open: bool | None = None  # after pause or drain: the card is out (True) or not yet (False)


@dataclass
class AlertView:
    key: str
    severity: str
    printer: str | None
    message: str
    remedy: str
    since: str
    count: int | None
    acknowledged: bool


@dataclass
class PageView:
    lang: str
    station: str
    updated: str
    upstream_online: bool
    offline_since: str
    printers: list[PrinterView]
    storeroom: int | None
    hoppers: int | None
    office_runs_out: str
    jobs: dict[str, int]
    alerts: list[AlertView]
    held: list[dict] = field(default_factory=list)  # job_id, since (local), why (words)

    def w(self, key: str) -> str:
        return word(key, self.lang)

    def n(self, value: int | float | None) -> str:
        return local_number(value, self.lang)


def page_view(status: dict, alerts: list[dict], lang: str, *, offline_since: str | None, failed: int,
              held: list[dict] | None = None) -> PageView:
    printers = []
    for p in status["printers"]:
        problems = [Problem(*fault_message(code, lang)) for code in p["faults"]]
        problems += [Problem(*fault_message(r, lang)) for r in p["reasons"] if r in _SHOWN_REASONS]
        if p.get("blanks_low"):
            problems.append(Problem(*fault_message("blanks-empty" if p["blanks"] <= 0 else "blanks-low", lang)))
        forecast = p.get("blanks_forecast") or {}
        safe = None
        if p["paused"]:
            safe = p["state"] != "processing"
        printers.append(PrinterView(
            name=p["name"], state=p["state"], state_words=word(p["state"], lang), paused=p["paused"],
            problems=problems, blanks=p["blanks"], ribbon_left=local_number(p["ribbon_left"], lang),
            runs_out=local_date(forecast.get("date"), lang), printed_today=p["printed_today"],
            spoiled_today=p["spoiled_today"], safe_to_open=safe))
    stock = status.get("stock") or {}
    office = stock.get("office") or {}
    queue = status["queue"]
    return PageView(
        lang=lang, station=status["station"], updated=local_time(status["at"], lang),
        upstream_online=status["upstream"] == "online", offline_since=local_time(offline_since, lang),
        printers=printers, storeroom=stock.get("storeroom"), hoppers=stock.get("hoppers"),
        office_runs_out=local_date((office.get("run_out") or {}).get("date"), lang),
        jobs={"waiting": queue["waiting"], "in-printer": queue["in_printer"], "held": queue["held"], "failed": failed},
        alerts=[AlertView(a["key"], a["severity"], a["printer"], a["message"], a["remedy"], local_time(a["since"], lang),
                          a["count"], a["acknowledged"]) for a in alerts],
        held=[{"job_id": h["job_id"], "since": local_time(h["since"], lang), "why": h["reason"] or ""} for h in held or []],
    )
