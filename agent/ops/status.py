"""The station at a glance: printers with state and reasons, blanks, ribbon, queue, reports to send, forecast.

Built live inside the daemon (answering the control socket), or from the journal alone,
read-only, when the daemon is down: the same shape either way, with `source` saying which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from agent.core.config import StockConfig
from agent.journal import Journal, JobState, stamp
from agent.core.local_time import local_date, local_time
from agent.core.messages import fault_message, word
from agent.core.print_windows import PrintWindow
from agent.upstream.stock_forecast import PrintCalendar, StockPicture, stock_picture
from agent.upstream.forecast import schedule_for


@dataclass
class PrinterStatus:
    name: str
    state: str                              # idle | processing | stopped | unknown
    reasons: list[str] = field(default_factory=list)  # IPP printer-state-reasons, and paused / outside-print-window
    faults: list[str] = field(default_factory=list)   # Fault values (jam, cover_open, ...)
    job_id: str | None = None
    paused: bool = False
    blanks: int = 0                         # from the ledger
    ribbon_left: int | None = None          # cards, from the printer (unknown from the journal alone)
    printed_today: int = 0
    spoiled_today: int = 0
    model: str | None = None
    serial: str | None = None
    blanks_forecast: dict | None = None     # agent.upstream.stock_forecast.RunOut.as_json(): the station's one forecast
    blanks_low: bool = False                # the hopper will be empty within its next print window, or few are left
    discrepancies: list[dict] = field(default_factory=list)  # the ledger against what the printer said


@dataclass
class StationStatus:
    station: str
    source: str                             # daemon | journal
    at: str
    printers: list[PrinterStatus]
    queue: dict[str, int]                   # waiting, in_printer, held
    outbox_backlog: int
    upstream: str                           # online | offline | unknown
    window: dict                            # {"open": bool, "opens_at": str | None}
    batch: dict | None = None
    stock: dict | None = None               # storeroom, hoppers, the office's forecast (StockPicture.as_json())
    alerts: list[dict] | None = None        # the alert board (agent.ops.alerts), in the station's language; daemon only

    def to_json(self) -> dict:
        return asdict(self)


def local_midnight_utc(now: datetime) -> str:
    """Today's start in the station's local time, as a journal timestamp."""
    local = now.astimezone()
    return stamp(local.replace(hour=0, minute=0, second=0, microsecond=0))


def printer_from_journal(journal: Journal, name: str, now: datetime, picture: StockPicture) -> PrinterStatus:
    """What the journal alone says of one printer: blanks, today's cards, forecast."""
    today = [a for a in journal.attempts_since(local_midnight_utc(now)) if a["printer"] == name]
    status = PrinterStatus(name=name, state="unknown", blanks=journal.blanks_remaining(name),
                           printed_today=sum(a["result"] == "printed" for a in today),
                           spoiled_today=sum(a["result"] == "spoiled" for a in today))
    with_stock(status, picture)
    return status


def with_stock(status: PrinterStatus, picture: StockPicture) -> PrinterStatus:
    """Fill a printer's blanks, forecast, low flag and discrepancies from the station's one forecast."""
    hopper = picture.hoppers.get(status.name)
    if hopper is not None:
        status.blanks = hopper.remaining
        status.blanks_forecast = hopper.run_out.as_json()
        status.blanks_low = hopper.low
    status.discrepancies = [d for d in picture.discrepancies if d["printer"] == status.name]
    return status


def queue_counts(journal: Journal) -> dict[str, int]:
    counts = journal.count_by_state()
    return {"waiting": counts.get(JobState.LEASED.value, 0),
            "in_printer": sum(counts.get(s.value, 0) for s in (JobState.FEEDING, JobState.ENCODING, JobState.PRINTING,
                                                               JobState.EJECTING, JobState.REJECTING)),
            "held": counts.get(JobState.HELD.value, 0)}


def from_journal(journal: Journal, station: str, printers: list[str], now: datetime | None = None,
                 windows: tuple[PrintWindow, ...] = (), holidays: frozenset = frozenset(),
                 stock: StockConfig | None = None) -> StationStatus:
    """The status as the journal last recorded it (the daemon is down); `windows` and `holidays`
    are the configured print calendar."""
    now = now or datetime.now(timezone.utc)
    names = list(dict.fromkeys([*printers, *journal.ledger_printers()]))
    picture = stock_picture(journal, names, PrintCalendar(schedule_for(windows), frozenset(holidays)),
                            stock or StockConfig(), now)
    return StationStatus(
        station=station, source="journal", at=stamp(now),
        printers=[printer_from_journal(journal, n, now, picture) for n in names],
        queue=queue_counts(journal), outbox_backlog=journal.outbox_backlog(), upstream="unknown",
        window={"open": None, "opens_at": None}, stock=picture.as_json(),
    )


def render_text(status: dict, lang: str) -> str:
    """The status screen for people, in `lang`: one block a printer, what is wrong and what to do."""
    w = lambda key: word(key, lang)  # noqa: E731 - a short alias keeps the lines readable
    lines = [f"{status['station']}  ({w('source-' + status['source'])}, {local_time(status['at'], lang)})"]
    window = status["window"]
    if window.get("open") is not None:
        opens = f" -> {local_time(window['opens_at'], lang)}" if window.get("opens_at") else ""
        lines.append(f"{w('window')}: {w('open' if window['open'] else 'closed')}{opens}")
    for p in status["printers"]:
        ribbon = "?" if p["ribbon_left"] is None else p["ribbon_left"]
        # The reasons' codes stay in --json; the lines below say each in words, with what to do.
        lines.append(f"{w('printer')} {p['name']}: {w(p['state'])}"
                     + (f" [{p['job_id']}]" if p.get("job_id") else ""))
        lines.append(f"  {w('blanks')} {p['blanks']}, {w('ribbon')} {ribbon}, "
                     f"{w('printed')} {p['printed_today']}, {w('spoiled')} {p['spoiled_today']}")
        if p.get("blanks_forecast") and p["blanks_forecast"].get("date"):
            lines.append(f"  {w('forecast')}: {w('blanks')} -> {local_date(p['blanks_forecast']['date'], lang)}")
        codes = [*p["faults"], *[r for r in p["reasons"] if r in ("paused", "draining", "outside-print-window",
                                                                   "reader-unavailable")]]
        if p.get("blanks_low"):
            codes.append("blanks-empty" if p["blanks"] <= 0 else "blanks-low")
        for d in p.get("discrepancies", []):
            lines.append(f"  ! {fault_message('ledger-discrepancy', lang)[0]} "
                         f"({w('ledger-says')} {d['ledger_count']}, {w('printer-says')}: {d['printer_said']})")
            lines.append(f"    {w('remedy')}: {fault_message('ledger-discrepancy', lang)[1]}")
        for code in codes:
            message, remedy = fault_message(code, lang)
            lines.append(f"  ! {message}")
            if remedy:
                lines.append(f"    {w('remedy')}: {remedy}")
    stock = status.get("stock")
    if stock:
        office = stock["office"]
        run_out = office["run_out"]
        lines.append(f"{w('office-stock')}: {w('storeroom')} {stock['storeroom']}, {w('hoppers')} {stock['hoppers']}"
                     + (f" -> {local_date(run_out['date'], lang)} ({run_out['print_days']} {w('print-days')})"
                        if run_out.get("date") else ""))
        if office["low"]:
            message, remedy = fault_message("office-stock-low", lang)
            lines.append(f"  ! {message}")
            lines.append(f"    {w('remedy')}: {remedy}")
    q = status["queue"]
    lines.append(f"{w('queue')}: {q['waiting']} {w('waiting')}, {q['in_printer']} {w('in-printer')}, {q['held']} {w('held')}; "
                 f"{w('outbox')}: {status['outbox_backlog']}; {w('upstream')}: {w(status['upstream'])}")
    if status["source"] == "journal":
        message, remedy = fault_message("daemon-down", lang)
        lines.append(f"! {message} {remedy}")
    if status.get("batch"):
        b = status["batch"]
        lines.append(f"batch: {b['done']}/{b['target'] or 'all'}" + (f" eta {b['eta']}" if b.get("eta") else ""))
    return "\n".join(lines)
