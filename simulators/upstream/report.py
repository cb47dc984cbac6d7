"""`printstation upstream-sim report`: the centre's view of its stations, from the reference server's state folder.

Per station: when it last reported, each printer's state and reasons, blanks and ribbon
left, when they run out, the alerts it raised, and what it printed, spoiled and refused.
It reads `stations.json` and `outcomes.jsonl` only, so it works whether or not the server runs.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def station_views(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Each station's last report, recent alerts and outcome counts, by station id.

    Raises OSError when the state folder cannot be read (a missing file means no data yet).
    """
    try:
        stations = json.loads((state_dir / "stations.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        stations = {}
    except ValueError:
        stations = {}  # torn by a crash mid-write: the next telemetry rewrites it
    views: dict[str, dict[str, Any]] = {}
    for station, view in stations.items():
        report = view.get("last_report") or {}
        views[station] = {
            "last_at": view.get("last_at"),
            "reports": view.get("reports", 0),
            "printers": report.get("printers", []),
            "forecast": report.get("forecast"),
            "days": report.get("days", []),
            "alerts": report.get("alerts", []),
            "recent_alerts": view.get("recent", []),
            "outcomes": {},
            "rejections": {},
        }
    outcomes_path = state_dir / "outcomes.jsonl"
    if outcomes_path.exists():
        statuses: dict[str, Counter] = {}
        reasons: dict[str, Counter] = {}
        for line in outcomes_path.read_text(encoding="utf-8").splitlines():
            try:
                outcome = json.loads(line)["outcome"]
                station, status = str(outcome["station"]), str(outcome["status"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash was never acknowledged
            statuses.setdefault(station, Counter())[status] += 1
            if status == "rejected":
                reasons.setdefault(station, Counter())[str(outcome.get("reason"))] += 1
        for station, counts in statuses.items():
            view = views.setdefault(station, {"last_at": None, "reports": 0, "printers": [], "forecast": None,
                                              "days": [], "alerts": [], "recent_alerts": []})
            view["outcomes"] = dict(counts)
            view["rejections"] = dict(reasons.get(station, {}))
    return dict(sorted(views.items()))


def _run_out(forecast: dict | None) -> str:
    if not forecast:
        return "-"
    if forecast.get("date") is None:
        return "not in sight"
    return f"{forecast['date']} ({forecast['days']:.1f} d)"


def print_report(state_dir: Path, as_json: bool = False) -> int:
    """Print the report to stdout (tables, or one JSON document). Returns the exit status: 1 if unreadable."""
    try:
        views = station_views(state_dir)
    except OSError as exc:
        print(f"printstation upstream-sim report: cannot read {state_dir}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"stations": views}, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not views:
        console.print(f"No station has reported to {state_dir} yet.")
    for station, view in views.items():
        table = Table(title=f"station {station}: last report {view['last_at'] or 'never'}")
        for column in ("printer", "state", "reasons", "blanks", "ribbon", "blanks run out", "ribbon runs out"):
            table.add_column(column)
        for printer in view["printers"]:
            forecast = printer.get("forecast") or {}
            ribbon = (printer.get("ribbon") or {}).get("cards_left")
            table.add_row(
                str(printer.get("name")), str(printer.get("state")), " ".join(printer.get("reasons", [])) or "none",
                str((printer.get("blanks") or {}).get("remaining", "-")), "unknown" if ribbon is None else str(ribbon),
                _run_out(forecast.get("blanks")), _run_out(forecast.get("ribbon")),
            )
        console.print(table)
        station_forecast = (view["forecast"] or {}).get("blanks")
        console.print(f"  blanks for the station run out: {_run_out(station_forecast)}")
        for alert in view["alerts"]:
            where = f" {alert['printer']}" if alert.get("printer") else ""
            console.print(f"  alert{where}: {alert.get('kind')} ({alert.get('severity', 'warning')}) {alert.get('message', '')}")
        outcomes = ", ".join(f"{n} {status}" for status, n in sorted(view["outcomes"].items())) or "none"
        console.print(f"  outcomes: {outcomes}")
        if view["rejections"]:
            console.print("  refused jobs: " + ", ".join(f"{n} {reason}" for reason, n in sorted(view["rejections"].items())))
    return 0
