"""`printstation hopper load|adjust|reconcile`: the blank ledger for the operator.

Works on the journal directly; the daemon may be running (SQLite's locking keeps one writer at
a time). `load` moves blanks from the storeroom (`printstation stock receive`) into a printer's
hopper; `adjust` records a count by hand. `reconcile` asks every printer what it says of its
feeder and card counter (through the service while it runs, over the printer's link when it is
stopped) and never calls a printer in agreement that it could not ask.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.core.config import ConfigError, PrinterConfig, StationConfig, load_config
from agent.journal import Journal, JournalError, StoreroomShort
from agent.ops.hopper_words import text


@dataclass(frozen=True)
class PrinterEvidence:
    """What the printer itself says, or why it could not be asked."""

    printer: str
    asked: bool
    card_counter: int | None = None
    feeder_empty: bool | None = None
    card_inside: bool | None = None
    not_asked_because: str | None = None


@dataclass(frozen=True)
class Disagreement:
    """The ledger and a printer (or the ledger and itself) disagree: what (`what_key` and its
    `values`, agent/ops/hopper_words.py) and what to do (`remedy_key`)."""

    printer: str
    lot: str | None
    what_key: str
    remedy_key: str
    values: dict[str, Any] = field(default_factory=dict)

    def what_in(self, lang: str) -> str:
        return text(self.what_key, lang, **self.values)

    def remedy_in(self, lang: str) -> str:
        return text(self.remedy_key, lang)

    @property
    def what(self) -> str:  # English: `--json` and the discrepancy records
        return self.what_in("en")

    @property
    def remedy(self) -> str:
        return self.remedy_in("en")

    def as_json(self) -> dict[str, Any]:
        return {"printer": self.printer, "lot": self.lot, "what": self.what, "remedy": self.remedy}


@dataclass
class Reconciliation:
    lots: list[dict]
    printers: list[PrinterEvidence]
    disagreements: list[Disagreement] = field(default_factory=list)
    ledger_remaining: dict[str, int] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        """True only when every printer was asked and nothing disagrees."""
        return not self.disagreements and all(p.asked for p in self.printers)

    def printer_verdicts(self) -> list[dict[str, Any]]:
        """The `printers` of `reconcile --json`: one verdict a printer, `agree` null when not asked."""
        out = []
        for p in self.printers:
            found = [d for d in self.disagreements if d.printer == p.printer]
            says = ({"feeder_empty": p.feeder_empty, "card_counter": p.card_counter, "card_inside": p.card_inside}
                    if p.asked else {})
            out.append({
                "printer": p.printer, "checked": p.asked, "ledger_remaining": self.ledger_remaining.get(p.printer, 0),
                "printer_says": says, "agree": (not found) if p.asked else None,
                "reason": "; ".join(d.what for d in found) if found else (None if p.asked else p.not_asked_because),
                # The fields of the earlier contract, kept for scripts written against it.
                "asked": p.asked, "card_counter": p.card_counter, "feeder_empty": p.feeder_empty,
                "card_inside": p.card_inside, "not_asked_because": p.not_asked_because,
            })
        return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `printstation hopper`."""
    sub = parser.add_subparsers(dest="hopper_command", required=True, metavar="ACTION")
    load = sub.add_parser("load", help="move blanks from the storeroom into a printer's hopper")
    adjust = sub.add_parser("adjust", help="correct the count by hand, with a reason")
    reconcile = sub.add_parser("reconcile", help="ask the printers and compare what they say with the ledger")
    for p in (load, adjust, reconcile):
        p.add_argument("--config", type=Path, required=True, help="the station's TOML configuration")
    for p in (load, adjust):
        p.add_argument("--printer", required=True, help="printer name, as in the configuration")
        p.add_argument("--who", required=True, help="the person doing it")
    load.add_argument("--quantity", type=int, required=True, help="blanks loaded")
    load.add_argument("--lot", required=True, help="the delivery lot printed on the box")
    load.add_argument("--first-serial", help="first blank serial of the range loaded")
    load.add_argument("--last-serial", help="last blank serial of the range loaded")
    adjust.add_argument("--quantity", type=int, required=True, help="+N found, -N missing or damaged")
    adjust.add_argument("--reason", required=True, help="why the count changes, in plain words")
    adjust.add_argument("--lot", help="the lot concerned (default: the lot in the feeder)")
    for p in (load, adjust, reconcile):
        p.add_argument("--json", action="store_true", help="print the result as one JSON object")




def run(args: argparse.Namespace) -> int:
    """0 done (reconcile: every printer asked and agreeing), 1 reconcile found disagreements or
    could not ask a printer, 2 bad input or a load the storeroom cannot cover."""
    try:
        config = load_config(args.config)
        names = [p.name for p in config.printers]
        if getattr(args, "printer", None) is not None and args.printer not in names:
            raise ValueError(f"no printer {args.printer!r} in {args.config} (printers: {', '.join(names)})")
        journal = Journal(config.journal, config.station_id, config.max_attempts)
    except (ConfigError, JournalError, ValueError) as exc:
        print(f"printstation hopper: {exc}", file=sys.stderr)
        return 2
    lang = config.language
    try:
        if args.hopper_command == "load":
            if args.quantity < 1:
                raise ValueError("--quantity must be at least 1 for a load")
            journal.load_blanks(args.printer, args.quantity, lot=args.lot, first_serial=args.first_serial,
                                last_serial=args.last_serial, who=args.who)
            remaining, storeroom = journal.blanks_remaining(args.printer), journal.storeroom_remaining(args.lot)
            _movement(args, "load", remaining, storeroom,
                      text("loaded", lang, printer=args.printer, quantity=args.quantity, lot=args.lot,
                           remaining=remaining, storeroom=storeroom))
            return 0
        if args.hopper_command == "adjust":
            journal.adjust_blanks(args.printer, args.quantity, args.reason, args.who, lot=args.lot)
            remaining = journal.blanks_remaining(args.printer)
            _movement(args, "adjust", remaining, journal.storeroom_remaining(),
                      text("adjusted", lang, printer=args.printer, quantity=args.quantity, reason=args.reason,
                           remaining=remaining))
            return 0
        result = reconcile(config, journal, ask_through_service(config))
    except StoreroomShort as exc:
        message = text("short", lang, held=exc.held, lot=exc.lot, wanted=exc.wanted)
        if args.json:
            print(json.dumps({"error": "storeroom-short", "message": message, "lot": exc.lot, "wanted": exc.wanted,
                              "storeroom": exc.held}))
        print(f"printstation hopper: {message}", file=sys.stderr)
        return 2
    except (JournalError, ValueError) as exc:
        print(f"printstation hopper: {exc}", file=sys.stderr)
        return 2
    finally:
        journal.close()
    if args.json:
        print(json.dumps({"agree": result.agrees, "printers": result.printer_verdicts(),
                          "agrees": result.agrees, "lots": result.lots,
                          "disagreements": [d.as_json() for d in result.disagreements]}))
    else:
        _show(result, lang)
    return 0 if result.agrees else 1


def _movement(args: argparse.Namespace, movement: str, remaining: int, storeroom: int, sentence: str) -> None:
    """Say what the ledger recorded: one JSON object with --json, a sentence otherwise."""
    if args.json:
        print(json.dumps({"printer": args.printer, "movement": movement, "quantity": args.quantity,
                          "lot": args.lot, "who": args.who, "remaining": remaining, "storeroom": storeroom,
                          **({"reason": args.reason} if movement == "adjust" else {})}))
    else:
        print(sentence)


Ask = Callable[[PrinterConfig], PrinterEvidence]


def reconcile(config: StationConfig, journal: Journal, ask: Ask | None = None) -> Reconciliation:
    """Compare the ledger with itself and with what each printer says when asked through `ask`.

    A feeder found empty while the ledger counts blanks is recorded as a discrepancy too, so the
    status shows it until someone counts the blanks (`hopper adjust`) or loads some.
    """
    ask = ask or ask_printer
    result = Reconciliation(lots=journal.ledger_balance(), printers=[ask(p) for p in config.printers])
    for lot in result.lots:
        accounted = lot["printed"] + lot["spoiled"] + lot["in_printer"] + lot["remaining"]
        if not lot["balanced"]:
            result.disagreements.append(Disagreement(
                lot["printer"], lot["lot"], "lot-sums", "do-call-support",
                {k: lot[k] for k in ("loaded", "adjusted", "printed", "spoiled", "in_printer", "remaining")}
                | {"accounted": accounted}))
    # A lot below zero while the printer's hopper as a whole is not is a card counted against the
    # wrong lot (blanks put in before their load was recorded); only the printer's total can be short.
    totals: dict[str, int] = {}
    for lot in result.lots:
        totals[lot["printer"]] = totals.get(lot["printer"], 0) + lot["remaining"]
    for printer, total in totals.items():
        if total < 0:
            result.disagreements.append(Disagreement(
                printer, None, "fed-more-than-loaded", "do-count-and-adjust", {"count": -total}))
    for evidence in result.printers:
        result.ledger_remaining[evidence.printer] = journal.blanks_remaining(evidence.printer)
        if evidence.asked:
            result.disagreements += against_printer(journal, evidence)
    return result


def ask_through_service(config: StationConfig) -> Ask:
    """Ask through the running service (it owns the links), or over the link when it is stopped."""
    from agent.ops.control_client import ControlClient, DaemonDown, DaemonRefused

    client = ControlClient(config.control_socket)
    answers: dict[str, PrinterEvidence] | None = None

    def ask(printer: PrinterConfig) -> PrinterEvidence:
        nonlocal answers
        if answers is None:
            try:
                answers = {e["printer"]: PrinterEvidence(**e) for e in client.call("reconcile")}
            except DaemonDown:
                answers = {}
            except DaemonRefused as exc:
                return PrinterEvidence(printer.name, asked=False, not_asked_because=f"the service did not answer: {exc}")
        if printer.name in answers:
            return answers[printer.name]
        return ask_printer(printer)

    return ask


def ask_printer(printer: PrinterConfig) -> PrinterEvidence:
    """Read the printer's card counter and sensors over its link; a link held by another program is no error."""
    from drivers.evolis.printer import EvolisPrinter
    from drivers.link.url import open_link
    from drivers.printer_errors import PrinterError

    try:
        link = open_link(printer.link)
    except (PrinterError, OSError, ValueError) as exc:
        return PrinterEvidence(printer.name, asked=False,
                               not_asked_because=f"the link is busy or gone (is the service running?): {exc}")
    device = EvolisPrinter(link)
    try:
        return read_evidence(device, printer.name)
    except PrinterError as exc:
        return PrinterEvidence(printer.name, asked=False, not_asked_because=f"the printer did not answer: {exc}")
    finally:
        device.close()


def read_evidence(device: Any, name: str) -> PrinterEvidence:
    """What a connected printer (drivers.evolis.printer.EvolisPrinter) says. Raises PrinterError."""
    device.identity()  # in step with the printer before believing its answers
    capabilities = device.detect_capabilities()
    status = device.status()
    from drivers.faults import Fault

    empty = Fault.FEEDER_EMPTY in status.faults if capabilities.feeder_sensor or capabilities.status_words else None
    return PrinterEvidence(name, asked=True, card_counter=device.counters().cards, feeder_empty=empty,
                           card_inside=status.card_inside)


def against_printer(journal: Journal, evidence: PrinterEvidence) -> list[Disagreement]:
    found = []
    name = evidence.printer
    remaining = journal.blanks_remaining(name)
    if evidence.feeder_empty and remaining > 0:
        found.append(Disagreement(name, None, "feeder-empty-ledger-not", "do-count-and-adjust",
                                  {"remaining": remaining}))
        journal.record_discrepancy(name, "feeder-empty-ledger-not", remaining, "the feeder is empty")
    if evidence.feeder_empty is False and remaining <= 0:
        found.append(Disagreement(name, None, "feeder-has-blanks-ledger-empty", "do-count-and-adjust"))
        journal.record_discrepancy(name, "feeder-has-blanks-ledger-empty", remaining, "the feeder has blanks")
    in_printer = journal.cards_in_printer(name, evidence.card_counter)
    if evidence.card_inside is not None and evidence.card_inside != (in_printer > 0):
        found.append(Disagreement(name, None, "card-inside-unexpected" if evidence.card_inside else "card-missing",
                                  "do-start-service", {"in_printer": in_printer}))
    expected = journal.expected_card_counter(name)
    if expected is not None and evidence.card_counter is not None and evidence.card_counter != expected:
        diff = evidence.card_counter - expected
        found.append(Disagreement(name, None, "counter-above" if diff > 0 else "counter-below", "do-check-history",
                                  {"count": abs(diff)}))
    return found


def _show(result: Reconciliation, lang: str) -> None:
    for lot in result.lots:
        print(text("lot-line", lang, **lot))
    for p in result.printers:
        if p.asked:
            feeder = text("feeder-empty" if p.feeder_empty else "feeder-has-blanks", lang)
            inside = text("card-inside" if p.card_inside else "no-card-inside", lang)
            print(text("says", lang, printer=p.printer, counter=p.card_counter, feeder=feeder, inside=inside,
                       remaining=result.ledger_remaining.get(p.printer)))
        else:
            print(text("not-asked", lang, printer=p.printer, why=p.not_asked_because))
    for d in result.disagreements:
        print(text("disagrees", lang, where=d.printer + (f" lot {d.lot}" if d.lot else ""), what=d.what_in(lang),
                   remedy=d.remedy_in(lang)))
    if result.agrees:
        print(text("agree", lang))
