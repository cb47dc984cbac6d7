#!/usr/bin/env python3
"""The gettext catalogs of every text people read: agent/locale/{id,en}/LC_MESSAGES/printstation.po.

    scripts/make-catalogs.py           add the keys the code has and the catalogs lack (every
                                       translation already there is kept), drop none
    scripts/make-catalogs.py --check   exit 1 naming the keys a catalog lacks (make test runs it)

A key names a text ("fault.jam.message"); the code's own text fills a new entry, and a
translator edits the msgstr. Each entry carries the English text as a comment for the translator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LANGS = ("id", "en")


def texts() -> dict[str, dict[str, str]]:
    """Every key with its text in each language, from the code's tables."""
    from agent.core import messages
    from agent.ops import batch, hopper_words, reason_words, report_html
    from drivers import faults

    found: dict[str, dict[str, str]] = {}
    for fault, by_lang in faults._TEXTS.items():
        found[f"fault.{fault.value}.message"] = {lang: t.message for lang, t in by_lang.items()}
        found[f"fault.{fault.value}.remedy"] = {lang: t.remedy for lang, t in by_lang.items()}
    for alert, by_lang in messages._ALERTS.items():
        found[f"alert.{alert.value}.message"] = {lang: t[0] for lang, t in by_lang.items()}
        found[f"alert.{alert.value}.remedy"] = {lang: t[1] for lang, t in by_lang.items()}
    for key, by_lang in messages._WORDS.items():
        found[f"word.{key}"] = dict(by_lang)
    for key, by_lang in reason_words._WORDS.items():
        found[f"reason.{key}"] = dict(by_lang)
    for key, by_lang in batch._REPORT_WORDS.items():
        found[f"report.{key}"] = dict(by_lang)
    for key, by_lang in report_html._WORDS.items():
        found[f"report-page.{key}"] = dict(by_lang)
    for key, by_lang in hopper_words._TEXTS.items():
        found[f"hopper.{key}"] = dict(by_lang)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report missing keys (exit 1 if any)")
    args = parser.parse_args()
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    from agent.core.catalog import catalog_path

    wanted = texts()
    missing = []
    for lang in LANGS:
        path = catalog_path(lang)
        if path.exists():
            with path.open("rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, domain="printstation", project="printstation", charset="utf-8")
        known = {m.id for m in catalog if m.id}
        for key in sorted(wanted):
            if key not in known:
                missing.append(f"{lang}: {key}")
                english = wanted[key].get("en", "")
                catalog.add(key, wanted[key].get(lang, english), auto_comments=[f"en: {english}"] if lang != "en" else [])
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                write_po(f, catalog, width=120, omit_header=False, sort_output=True)
    if args.check and missing:
        print("the catalogs lack these keys (run scripts/make-catalogs.py):\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    if not args.check:
        print(f"{len(wanted)} texts; {len(missing)} entries added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
