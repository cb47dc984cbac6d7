"""The CLI side of the control socket: `status`, `events`, `pause|resume|drain`, `diagnose`, `config check`,
`support-bundle` and `batch`, each with `--json`.

Each asks the running daemon through its control socket; when the daemon is down, the
read-only commands read the journal instead (SQLite `mode=ro`), and say so.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("/etc/printstation/station.toml")
# A request that probes printers or waits for a drain may take minutes.
CALL_TIMEOUT_S = 400.0
FOLLOW_POLL_S = 1.0
# Exit codes beyond 0 (all well) and 1 (something needs attention).
EXIT_USAGE = 2
EXIT_DAEMON_DOWN = 3


class DaemonDown(Exception):
    """Nothing answers on the control socket: the service is stopped (or the path is wrong)."""


class DaemonRefused(Exception):
    """The daemon answered with an error (a wrong printer name, a batch already running)."""


class ControlClient:
    def __init__(self, path: Path, timeout: float = CALL_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one request and return its result. Raises DaemonDown or DaemonRefused."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonDown(f"no printstation service answers on {self.path} ({exc.strerror})") from None
            except PermissionError:
                raise DaemonDown(f"no permission to use {self.path}: run as a member of the printstation group") from None
            sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
        except socket.timeout:
            raise DaemonRefused(f"the service did not answer within {self.timeout:.0f} s") from None
        finally:
            sock.close()
        if not line:
            raise DaemonDown(f"the service on {self.path} closed the connection without an answer")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise DaemonRefused(answer.get("error", "unknown error"))
        return answer["result"]


# -- shared plumbing --------------------------------------------------------------------------

def _config(args: argparse.Namespace):
    from agent.core.config import load_config

    return load_config(args.config)


def _lang(config) -> str:
    from agent.core.messages import choose_language

    return choose_language(config.language if config else "id")


def _out(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, default=str) if args.json else text)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"printstation: {message}", file=sys.stderr)
    return code


def _with_config(body: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from agent.core.config import ConfigError
        from agent.journal import JournalError

        try:
            config = _config(args)
        except ConfigError as exc:
            return _fail(str(exc))
        try:
            return body(args, config)
        except DaemonRefused as exc:
            return _fail(str(exc), 1)
        except JournalError as exc:
            return _fail(f"{exc}. Fix: start the service (systemctl start printstation) or run as its user", EXIT_DAEMON_DOWN)
    return run


def _read_only_journal(config):
    from agent.journal import Journal

    return Journal.read_only(config.journal, config.station_id)


# -- status -------------------------------------------------------------------------------------

def _status(args: argparse.Namespace, config) -> int:
    from agent.ops.status import from_journal, render_text

    try:
        status = ControlClient(config.control_socket).call("status")
    except DaemonDown:
        journal = _read_only_journal(config)
        try:
            status = from_journal(journal, config.station_id, [p.name for p in config.printers], windows=config.windows,
                                  holidays=config.holidays, stock=config.stock).to_json()
        finally:
            journal.close()
    _out(args, status, render_text(status, _lang(config)))
    trouble = status["source"] != "daemon" or any(p["faults"] for p in status["printers"])
    return 1 if trouble else 0


# -- events -------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+)([smhd])")


def parse_since(text: str | None, now: datetime | None = None) -> tuple[int, str | None]:
    """`--since`: an event id (`1234`), a span back from now (`30m`, `2h`, `1d`) or a time (ISO 8601).

    Returns (event id to start after, earliest time or None). Raises ValueError for anything else.
    """
    if not text:
        return 0, None
    if text.isdigit():
        return int(text), None
    now = now or datetime.now(timezone.utc)
    m = _DURATION.fullmatch(text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        at = now - timedelta(**{unit: int(m.group(1))})
    else:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"--since {text!r}: give an event id, a span like 30m or 2h, or a time like 2026-05-01T07:30") from None
        if at.tzinfo is None:
            at = at.astimezone()  # the station's local time, as people read clocks
    from agent.journal import stamp

    return 0, stamp(at)


def _event_line(event: dict) -> str:
    detail = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("id", "job_id", "at", "state"))
    return f"{event['id']:>7} {event['at']} {event['job_id']:<12} {event['state']:<10} {detail}".rstrip()


def _first_event_before(config, earliest: str) -> int:
    """Where `--since TIME` starts, found through the journal's time index (a million jobs' events
    are not read one by one); 0, so every event is looked at, when the journal cannot be read."""
    from agent.journal import JournalError

    try:
        journal = _read_only_journal(config)
    except JournalError:
        return 0
    try:
        first = journal.first_event_id_at(earliest)
        return first - 1 if first is not None else journal.last_event_id()
    finally:
        journal.close()


def _events(args: argparse.Namespace, config) -> int:
    try:
        after, earliest = parse_since(args.since)
    except ValueError as exc:
        return _fail(str(exc))
    client = ControlClient(config.control_socket)
    journal = None
    if earliest is not None:
        after = max(after, _first_event_before(config, earliest))

    def fetch(since_id: int) -> list[dict]:
        nonlocal journal
        if journal is None:
            try:
                return client.call("events", since=since_id, limit=1000)
            except DaemonDown:
                journal = _read_only_journal(config)
        return journal.events(since_id, 1000)

    try:
        while True:
            batch = fetch(after)
            for event in batch:
                after = event["id"]
                if earliest is None or event["at"] >= earliest:
                    print(json.dumps(event) if args.json else _event_line(event), flush=True)
            if len(batch) == 1000:
                continue
            if not args.follow:
                return 0
            time.sleep(FOLLOW_POLL_S)
    finally:
        if journal is not None:
            journal.close()


# -- pause / resume / drain ------------------------------------------------------------------------

def _printer_command(cmd: str) -> Callable[[argparse.Namespace, Any], int]:
    def body(args: argparse.Namespace, config) -> int:
        from agent.core.messages import Alert, word

        try:
            result = ControlClient(config.control_socket).call(cmd, printer=args.printer)
        except DaemonDown as exc:
            return _fail(f"{exc}. Fix: start the service (systemctl start printstation); {cmd} acts on the running service",
                         EXIT_DAEMON_DOWN)
        lang = _lang(config)
        state = word(result["state"], lang)
        if cmd == "resume":
            text = f"{result['printer']}: {'dilanjutkan, sekarang' if lang == 'id' else 'resumed, now'} {state}"
        else:
            alert = Alert.PRINTER_PAUSED
            text = f"{result['printer']}: {alert.message(lang)} {alert.remedy(lang)}"
            if result["state"] == "processing":
                text += "\n" + Alert.PRINTER_DRAINING.message(lang)
            elif cmd == "drain":
                text += "\n" + word("safe-to-open", lang)
        _out(args, result, text)
        return 0
    return body


# -- diagnose -------------------------------------------------------------------------------------

def _diagnose(args: argparse.Namespace, config) -> int:
    from agent.ops.diagnose import (FaultReport, PrinterReport, attached_serial_links, attached_usb_printers, probe_link,
                                render_text)

    lang = _lang(config)
    wanted = [p for p in config.printers if args.printer in (None, p.name)]
    if args.printer and not wanted:
        return _fail(f"no printer named {args.printer!r} in {config.source}; it has {', '.join(p.name for p in config.printers)}")
    reports: list[PrinterReport] = []
    try:
        # The daemon holds the ports: it probes them itself, between two cards.
        answers = ControlClient(config.control_socket).call("diagnose", printer=args.printer, trace=args.trace)
        reports = [PrinterReport(**{**a, "faults": [FaultReport(**f) for f in a["faults"]]}) for a in answers]
    except DaemonDown:
        reports = [probe_link(p.name, p.link, lang, trace=args.trace) for p in wanted]
    if args.printer is None:
        reports += [probe_link(name, url, lang, trace=args.trace)
                    for name, url in attached_serial_links({p.link for p in config.printers})]
    usb = attached_usb_printers() if args.printer is None else []
    _out(args, {"printers": [r.to_json() for r in reports], "usb": usb}, render_text(reports, usb, lang))
    return 1 if any(r.faults or not r.reachable for r in reports) else 0


# -- config check ------------------------------------------------------------------------------------

def _config_check(args: argparse.Namespace) -> int:
    from agent.core.config import check_config_report
    from agent.ops.config_presence import MachinePresence

    problems, warnings = check_config_report(args.file, MachinePresence())
    result = {"file": str(args.file), "ok": not problems,
              "errors": [{"line": p.line, "message": str(p)} for p in problems], "warnings": warnings}
    text = "\n".join([*(str(p) for p in problems), *(f"warning: {w}" for w in warnings)]
                      + ([] if problems else [f"{args.file}: OK"]))
    _out(args, result, text)
    return 1 if problems else 0


# -- support bundle -----------------------------------------------------------------------------------

def _support_bundle(args: argparse.Namespace, config) -> int:
    from agent.journal import JournalError
    from agent.ops.status import from_journal
    from agent.ops.support_bundle import BundleParts, journal_extract, personal_terms, service_logs, write_bundle

    client = ControlClient(config.control_socket)
    terms: set[str] = set()
    journal = None
    try:
        journal = _read_only_journal(config)
        terms = personal_terms(journal)
    except JournalError:
        pass  # not readable by this user: the daemon's extract is scrubbed already
    try:
        try:
            status = client.call("status")
            extract = client.call("extract") if journal is None else journal_extract(journal)
        except DaemonDown:
            if journal is None:
                raise
            status = from_journal(journal, config.station_id, [p.name for p in config.printers], windows=config.windows,
                                  holidays=config.holidays, stock=config.stock).to_json()
            extract = journal_extract(journal)
    finally:
        if journal is not None:
            journal.close()
    logs = service_logs()
    for path in args.log_file or []:
        logs += f"\n==> {path} <==\n" + Path(path).read_text(errors="replace")
    stamp_ = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or Path.cwd() / f"printstation-support-{config.station_id}-{stamp_}.tar.gz"
    write_bundle(BundleParts(args.config, status, extract, logs, terms), output)
    _out(args, {"bundle": str(output)}, f"{output}")
    return 0


# -- batch -------------------------------------------------------------------------------------------

def _batch(args: argparse.Namespace, config) -> int:
    from agent.ops.batch import render_text

    client = ControlClient(config.control_socket)
    try:
        if args.follow:
            progress = client.call("batch")
            if progress is None:
                return _fail("no batch has run since the service started", 1)
        else:
            until = args.until.isoformat() if args.until else None
            progress = client.call("batch-start", cards=args.cards, until=until)
        if not args.detach:
            follow = _follow_with_bar if sys.stderr.isatty() and not args.json else _follow_with_lines
            progress = follow(client, progress, args.poll, _lang(config))
    except DaemonDown as exc:
        return _fail(f"{exc}. Fix: start the service (systemctl start printstation); a batch runs in the service",
                     EXIT_DAEMON_DOWN)
    if args.detach:
        _out(args, progress, f"batch started: {progress['target'] or 'all waiting'} cards")
        return 0
    report = progress["report"]
    _out(args, report, render_text(report, _lang(config)))
    return 0


def _follow_with_lines(client: ControlClient, progress: dict, poll: float, lang: str) -> dict:
    """Progress as plain lines, for logs and scripts (stderr is not a terminal)."""
    while not progress["finished"]:
        eta = f", eta {progress['eta']}" if progress.get("eta") else ""
        print(f"batch: {progress['done']}/{progress['target'] or 'all'} printed, {progress['spoiled']} spoiled, "
              f"{progress['cards_per_hour']} cards/h{eta}", file=sys.stderr, flush=True)
        time.sleep(poll)
        progress = client.call("batch")
    return progress


def _follow_with_bar(client: ControlClient, progress: dict, poll: float, lang: str) -> dict:
    """Progress as a bar with the cards done, the rate and the time left, for a person at a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    label = {"id": "Mencetak", "en": "Printing"}.get(lang, "Printing")
    spoiled = {"id": "rusak", "en": "spoiled"}.get(lang, "spoiled")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=progress["target"], extra="")
        while True:
            bar.update(task, completed=progress["done"],
                       extra=f"{spoiled} {progress['spoiled']} · {progress['cards_per_hour']}/h")
            if progress["finished"]:
                return progress
            time.sleep(poll)
            progress = client.call("batch")


def _until(text: str) -> datetime:
    """--until HH:MM (the next such local time) or an ISO time."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if m:
        now = datetime.now().astimezone()
        at = now.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.astimezone()


# -- registration ---------------------------------------------------------------------------------------

def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the operators' and technicians' commands to the `printstation` parser."""

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], int], *, config: bool = True):
        p = sub.add_parser(name, help=help_text)
        if config:
            p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"the station's TOML (default {DEFAULT_CONFIG})")
        p.add_argument("--json", action="store_true", help="one JSON document instead of text")
        p.set_defaults(func=func)
        return p

    command("status", "printers, stock, queue and reports to send, at a glance", _with_config(_status))
    p = command("events", "the journal's job events", _with_config(_events))
    p.add_argument("--follow", action="store_true", help="keep printing new events as they happen")
    p.add_argument("--since", help="an event id, a span back (30m, 2h, 1d) or a time (2026-05-01T07:30)")
    for name, help_text in (("pause", "stop a printer taking new cards (the card in progress finishes)"),
                            ("resume", "let a paused printer take cards again"),
                            ("drain", "pause a printer and wait until the card in progress has left it")):
        p = command(name, help_text, _with_config(_printer_command(name)))
        p.add_argument("printer", help="the printer's name in the configuration")
    p = command("diagnose", "probe the printers: identity, counters, ribbon, sensors, faults and remedies", _with_config(_diagnose))
    p.add_argument("--printer", help="only this printer")
    p.add_argument("--trace", action="store_true", help="show every byte sent and received")
    config_parser = sub.add_parser("config", help="configuration tools")
    config_sub = config_parser.add_subparsers(dest="config_command", required=True, metavar="TOOL")
    p = config_sub.add_parser("check", help="name every mistake in a configuration file, with its line and a fix")
    p.add_argument("file", type=Path)
    p.add_argument("--config", type=Path, help=argparse.SUPPRESS)  # every command takes it; FILE is what is checked
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.set_defaults(func=_config_check)
    p = command("support-bundle", "one .tar.gz for support: config, status, journal extract, logs, versions; no personal data",
                _with_config(_support_bundle))
    p.add_argument("--output", type=Path, help="where to write it (default: the current folder)")
    p.add_argument("--log-file", action="append", type=Path, help="a log file to include besides journald (repeatable)")
    p = command("batch", "print unattended now (windows or not), follow progress, then show the morning report",
                _with_config(_batch))
    p.add_argument("--cards", type=int, help="stop after this many printed cards (default: until the queue is empty)")
    p.add_argument("--until", type=_until, help="stop at this time (HH:MM local, or ISO 8601)")
    p.add_argument("--detach", action="store_true", help="start it and return; follow later with --follow")
    p.add_argument("--follow", action="store_true", help="follow the batch already running")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between progress lines (default 5)")
