"""`printstation stock receive|show`: the storeroom, where deliveries from the centre wait.

`receive` records a delivery (a lot and its count, optionally its serial range); `hopper load`
then moves blanks from here into a printer. `show` lists the storeroom by lot and the office's
forecast. Answers in the station's language, or one JSON object with `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.core.config import ConfigError, load_config
from agent.journal import Journal, JournalError

_TEXTS = {
    "received": {"id": "kiriman lot {lot}: {count} blangko masuk gudang; gudang kini menyimpan {lot_total} blangko "
                       "lot ini, {total} seluruhnya",
                 "en": "delivery of lot {lot}: {count} blanks into the storeroom; it now holds {lot_total} of this "
                       "lot, {total} in all"},
    "lot": {"id": "lot {lot}: diterima {received}, ke printer {to_hoppers}, dikoreksi {adjusted:+d}, di gudang {remaining}",
            "en": "lot {lot}: received {received}, to the printers {to_hoppers}, adjusted {adjusted:+d}, in the storeroom {remaining}"},
    "empty": {"id": "gudang kosong", "en": "the storeroom is empty"},
}


def _text(key: str, lang: str, **values: object) -> str:
    return _TEXTS[key]["en" if lang == "en" else "id"].format(**values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stock_command", required=True, metavar="ACTION")
    receive = sub.add_parser("receive", help="record a delivery of blanks from the centre into the storeroom")
    show = sub.add_parser("show", help="the storeroom by lot")
    for p in (receive, show):
        p.add_argument("--config", type=Path, required=True, help="the station's TOML configuration")
        p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    receive.add_argument("--lot", required=True, help="the delivery lot printed on the box")
    receive.add_argument("--count", type=int, required=True, help="blanks delivered")
    receive.add_argument("--first-serial", help="first blank serial of the delivery")
    receive.add_argument("--last-serial", help="last blank serial of the delivery")
    receive.add_argument("--who", default="operator", help="the person receiving it")


def run(args: argparse.Namespace) -> int:
    """0 done, 2 bad input or a journal that cannot be written."""
    try:
        config = load_config(args.config)
        journal = Journal(config.journal, config.station_id, config.max_attempts)
    except (ConfigError, JournalError) as exc:
        print(f"printstation stock: {exc}", file=sys.stderr)
        return 2
    lang = config.language
    try:
        if args.stock_command == "receive":
            lot_total = journal.receive_blanks(args.lot, args.count, args.first_serial, args.last_serial, who=args.who)
            total = journal.storeroom_remaining()
            if args.json:
                print(json.dumps({"movement": "receive", "lot": args.lot, "count": args.count,
                                  "first_serial": args.first_serial, "last_serial": args.last_serial, "who": args.who,
                                  "storeroom_lot": lot_total, "storeroom": total}))
            else:
                print(_text("received", lang, lot=args.lot, count=args.count, lot_total=lot_total, total=total))
            return 0
        lots = journal.storeroom_lots()
        if args.json:
            print(json.dumps({"storeroom": journal.storeroom_remaining(), "lots": lots}))
        else:
            for lot in lots:
                print(_text("lot", lang, **lot))
            if not lots:
                print(_text("empty", lang))
        return 0
    except (JournalError, ValueError) as exc:
        print(f"printstation stock: {exc}", file=sys.stderr)
        return 2
    finally:
        journal.close()
