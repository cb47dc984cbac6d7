"""`printstation hopper load|adjust|reconcile`: the blank ledger for the operator.

Works on the journal directly; the daemon may be running (SQLite's locking keeps one writer at
a time). `reconcile` compares the ledger with the printer's own sensors and counters when the
printer can be asked (the daemon not running), else with what the journal knows, and names
every disagreement with what to do about it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.config import ConfigError, PrinterConfig, StationConfig, load_config
from agent.journal import Journal, JournalError


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
    printer: str
    lot: str | None
    what: str
    remedy: str


@dataclass
class Reconciliation:
    lots: list[dict]
    printers: list[PrinterEvidence]
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.disagreements


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `printstation hopper`."""
    sub = parser.add_subparsers(dest="hopper_command", required=True, metavar="ACTION")
    load = sub.add_parser("load", help="record blanks put into a printer's hopper")
    adjust = sub.add_parser("adjust", help="correct the count by hand, with a reason")
    reconcile = sub.add_parser("reconcile", help="compare the ledger with the printer's sensors and counters")
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


def _movement(args: argparse.Namespace, movement: str, remaining: int, text: str) -> None:
    """Say what the ledger recorded: one JSON object with --json, a sentence otherwise."""
    if args.json:
        print(json.dumps({"printer": args.printer, "movement": movement, "quantity": args.quantity,
                          "lot": args.lot, "who": args.who, "remaining": remaining,
                          **({"reason": args.reason} if movement == "adjust" else {})}))
    else:
        print(f"{text}; {remaining} in the hopper by the ledger")


def run(args: argparse.Namespace) -> int:
    """0 done (reconcile: everything agrees), 1 reconcile found disagreements, 2 bad input."""
    try:
        config = load_config(args.config)
        names = [p.name for p in config.printers]
        if getattr(args, "printer", None) is not None and args.printer not in names:
            raise ValueError(f"no printer {args.printer!r} in {args.config} (printers: {', '.join(names)})")
        journal = Journal(config.journal, config.station_id, config.max_attempts)
    except (ConfigError, JournalError, ValueError) as exc:
        print(f"printstation hopper: {exc}", file=sys.stderr)
        return 2
    try:
        if args.hopper_command == "load":
            if args.quantity < 1:
                raise ValueError("--quantity must be at least 1 for a load")
            journal.load_blanks(args.printer, args.quantity, lot=args.lot, first_serial=args.first_serial,
                                last_serial=args.last_serial, who=args.who)
            _movement(args, "load", journal.blanks_remaining(args.printer),
                      f"{args.printer}: {args.quantity} blanks of lot {args.lot} loaded")
            return 0
        if args.hopper_command == "adjust":
            journal.adjust_blanks(args.printer, args.quantity, args.reason, args.who, lot=args.lot)
            _movement(args, "adjust", journal.blanks_remaining(args.printer),
                      f"{args.printer}: adjusted by {args.quantity:+d}")
            return 0
        result = reconcile(config, journal)
    except (JournalError, ValueError) as exc:
        print(f"printstation hopper: {exc}", file=sys.stderr)
        return 2
    finally:
        journal.close()
    if args.json:
        print(json.dumps({"agrees": result.agrees, "lots": result.lots,
                          "printers": [asdict(p) for p in result.printers],
                          "disagreements": [asdict(d) for d in result.disagreements]}))
    else:
        _show(result)
    return 0 if result.agrees else 1


def reconcile(config: StationConfig, journal: Journal) -> Reconciliation:
    """Compare the ledger with itself and with each printer; the printer is asked only if its link is free."""
    result = Reconciliation(lots=journal.ledger_balance(), printers=[ask_printer(p) for p in config.printers])
    for lot in result.lots:
        accounted = lot["printed"] + lot["spoiled"] + lot["in_printer"] + lot["remaining"]
        if not lot["balanced"]:
            result.disagreements.append(Disagreement(
                lot["printer"], lot["lot"],
                f"loaded {lot['loaded']} + adjusted {lot['adjusted']} != printed {lot['printed']} + spoiled "
                f"{lot['spoiled']} + in the printer {lot['in_printer']} + remaining {lot['remaining']} ({accounted})",
                "the journal is inconsistent: keep the journal file and call support"))
        if lot["remaining"] < 0:
            result.disagreements.append(Disagreement(
                lot["printer"], lot["lot"], f"{-lot['remaining']} more blanks fed than loaded",
                "record the load that was not recorded: printstation hopper load"))
    for evidence in result.printers:
        if evidence.asked:
            result.disagreements += _against_printer(journal, evidence)
    return result


def ask_printer(printer: PrinterConfig) -> PrinterEvidence:
    """Read the printer's card counter and sensors over its link; the daemon holding the link is no error."""
    from drivers.evolis import EvolisPrinter
    from drivers.link import open_link
    from drivers.printer_errors import PrinterError

    try:
        link = open_link(printer.link)
    except (PrinterError, OSError) as exc:
        return PrinterEvidence(printer.name, asked=False,
                               not_asked_because=f"the link is busy or gone (is the daemon running?): {exc}")
    device = EvolisPrinter(link)
    try:
        return PrinterEvidence(printer.name, asked=True, card_counter=device.counters().cards,
                               feeder_empty=device.feeder_empty(), card_inside=device.card_present())
    except PrinterError as exc:
        return PrinterEvidence(printer.name, asked=False, not_asked_because=f"the printer did not answer: {exc}")
    finally:
        device.close()


def _against_printer(journal: Journal, evidence: PrinterEvidence) -> list[Disagreement]:
    found = []
    name = evidence.printer
    remaining = journal.blanks_remaining(name)
    if evidence.feeder_empty and remaining > 0:
        found.append(Disagreement(name, None, f"the feeder is empty but the ledger counts {remaining} blanks",
                                  "count the blanks that are missing and record them: printstation hopper adjust"))
    if evidence.feeder_empty is False and remaining <= 0:
        found.append(Disagreement(name, None, "the feeder holds blanks the ledger does not count",
                                  "record the load: printstation hopper load"))
    in_printer = journal.cards_in_printer(name)
    if evidence.card_inside != (in_printer > 0):
        found.append(Disagreement(
            name, None, f"the printer {'holds' if evidence.card_inside else 'holds no'} card; the journal expects "
            f"{in_printer}", "start the daemon: it resolves the card from the printer's evidence"))
    expected = journal.expected_card_counter(name)
    if expected is not None and evidence.card_counter != expected:
        diff = (evidence.card_counter or 0) - expected
        what = (f"the printer counted {diff} card(s) the journal did not feed (test cards, another program)"
                if diff > 0 else f"the printer's card counter is {-diff} below the journal's (printer reset or replaced?)")
        found.append(Disagreement(name, None, what, "check the printer's history and record an adjustment"))
    return found


def _show(result: Reconciliation) -> None:
    for lot in result.lots:
        print(f"{lot['printer']} lot {lot['lot']}: loaded {lot['loaded']}, adjusted {lot['adjusted']:+d}, "
              f"printed {lot['printed']}, spoiled {lot['spoiled']}, in the printer {lot['in_printer']}, "
              f"remaining {lot['remaining']}")
    for p in result.printers:
        if p.asked:
            print(f"{p.printer}: card counter {p.card_counter}, feeder {'empty' if p.feeder_empty else 'has blanks'}, "
                  f"{'a card inside' if p.card_inside else 'no card inside'}")
        else:
            print(f"{p.printer}: not asked ({p.not_asked_because}); the journal's figures only")
    for d in result.disagreements:
        print(f"DISAGREES {d.printer}{' lot ' + d.lot if d.lot else ''}: {d.what}. Do: {d.remedy}")
    if result.agrees:
        print("the ledger and the printers agree")
