"""The morning report as a page worth opening: printable HTML with its charts drawn in SVG (no
script, no network): cards per hour, spoiled cards by reason, faults and how long each lasted,
stock and the run-out dates. Times in the station's local time zone, reasons in plain words,
no personal data (the report holds counts, printer names and reason codes only).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from agent.core.catalog import translate
from agent.core.messages import fault_message, word
from agent.ops.reason_words import reason_words
from agent.core.local_time import local_date, local_number, local_time

_ENV = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
                   autoescape=select_autoescape(["html"]))

_WORDS = {
    "title": {"id": "Laporan pagi", "en": "Morning report"},
    "ended": {"id": "Selesai", "en": "Ended"},
    "because": {"id": "karena", "en": "because"},
    "printed-of": {"id": "{printed} kartu tercetak dari target {target}", "en": "{printed} cards printed of a target of {target}"},
    "printed-n": {"id": "{printed} kartu tercetak", "en": "{printed} cards printed"},
    "spoiled-n": {"id": "{spoiled} kartu rusak", "en": "{spoiled} cards spoiled"},
    "interrupted-n": {"id": "{n} di antaranya karena stasiun terputus (tidak dihitung ke batas percobaan warga)",
                      "en": "{n} of them lost to the station's own interruptions (not counted toward a citizen's attempts)"},
    "per-hour": {"id": "Kartu tercetak per jam", "en": "Cards printed per hour"},
    "by-reason": {"id": "Kartu rusak menurut alasan", "en": "Spoiled cards by reason"},
    "faults": {"id": "Gangguan dan lamanya", "en": "Faults and how long they lasted"},
    "stock": {"id": "Persediaan blangko", "en": "Blank stock"},
    "minutes": {"id": "menit", "en": "min"},
    "still-open": {"id": "belum selesai", "en": "not over"},
    "reports-waiting": {"id": "laporan belum terkirim ke pusat", "en": "reports still to send upstream"},
}


def _t(key: str, lang: str, **values: object) -> str:
    lang = "en" if lang == "en" else "id"
    return translate(f"report-page.{key}", lang, _WORDS[key][lang]).format(**values)


def _bars(rows: list[tuple[str, float]], unit: str = "", width: int = 560, bar_h: int = 22) -> Markup:
    """A horizontal bar chart: one labelled bar a row, its value at the end."""
    if not rows:
        return Markup("")
    top = max(v for _, v in rows) or 1.0
    label_w, value_w = 230, 70
    span = width - label_w - value_w
    parts = [f'<svg class="chart" role="img" width="{width}" height="{bar_h * len(rows) + 4}" '
             f'viewBox="0 0 {width} {bar_h * len(rows) + 4}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(rows):
        y = i * bar_h + 2
        w = max(1.0, span * value / top)
        shown = f"{value:g}{(' ' + unit) if unit else ''}"
        parts.append(f'<text x="0" y="{y + 15}" font-size="13">{escape(label if len(label) <= 34 else label[:33] + "…")}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 7}" fill="#2f6db5"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="13">{escape(shown)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _hour_label(stamp: str) -> str:
    """The local hour a card came out in ("22:00"), the chart's label."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%H:00")
    except ValueError:
        return stamp


def render_html(report: dict, lang: str, printed_at: list[str] | None = None) -> str:
    """The report as one HTML document. `printed_at`: the end times of its printed cards (for the
    cards-per-hour chart; the report's own `cards_per_hour` is used when absent)."""
    per_hour: dict[str, int] = dict(report.get("cards_per_hour") or {})
    for stamp in printed_at or []:
        hour = _hour_label(stamp)
        per_hour[hour] = per_hour.get(hour, 0) + 1
    reasons = sorted(((reason_words(r, lang), n) for r, n in report["spoiled_reasons"].items()), key=lambda x: -x[1])
    faults = []
    for span in report["faults"]:
        message, remedy = fault_message(span["fault"], lang)
        minutes = round((span.get("seconds") or 0.0) / 60.0, 1)
        faults.append({"printer": span["printer"], "message": message, "remedy": remedy,
                       "started": local_time(span["started_at"], lang), "minutes": minutes,
                       "open": span.get("ended_at") is None})
    printers = []
    for name, p in report["printers"].items():
        printers.append({"name": name, "printed": p["printed"], "spoiled": p["spoiled"], "blanks": p["blanks_left"],
                         "ribbon": "?" if p.get("ribbon_left") is None else p["ribbon_left"],
                         "runs_out": local_date((p.get("blanks_forecast") or {}).get("date"), lang)})
    stock = report.get("stock") or {}
    office = (stock.get("office") or {}).get("run_out") or {}
    target = report.get("target")
    summary = (_t("printed-of", lang, printed=local_number(report["printed"], lang), target=local_number(target, lang)) if target
               else _t("printed-n", lang, printed=local_number(report["printed"], lang)))
    return _ENV.get_template("report.html").render(
        lang=lang, t=lambda key, **v: _t(key, lang, **v), w=lambda key: word(key, lang),
        n=lambda value: local_number(value, lang),
        station=report["station"], started=local_time(report["started_at"], lang), ended=local_time(report["ended_at"], lang),
        because=reason_words(report["ended_because"], lang), summary=summary,
        spoiled=_t("spoiled-n", lang, spoiled=local_number(report["spoiled"], lang)),
        interrupted=_t("interrupted-n", lang, n=report["interrupted"]) if report.get("interrupted") else "",
        per_hour=_bars(sorted(per_hour.items())), reasons=_bars(reasons), reason_rows=reasons,
        fault_chart=_bars([(f"{f['printer']}: {f['message']}", f["minutes"]) for f in faults], _t("minutes", lang)),
        faults=faults, printers=printers, stock_chart=_bars([(p["name"], float(p["blanks"] or 0)) for p in printers]),
        storeroom=stock.get("storeroom"), hoppers=stock.get("hoppers"), office_runs_out=local_date(office.get("date"), lang),
        outbox=report["outbox_backlog"])
