"""`printstation chip verify|dump`: a technician's tools for chip images held as files.

`verify DIR` judges a chip image from files named as ICAO test data names them (`EF_SOD.bin`,
`EF_DG1.bin`, ...), with the same passive authentication the station runs on every card.
`dump --printer NAME DIR` reads the card at a printer's encoder station into such files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from agent.core.private_file import write_private  # a chip image is personal data: owner only

DEFAULT_CONFIG = Path("/etc/printstation/station.toml")

# Exit codes: the image is trusted; it is not (a check bad or undecided); the tool could not run.
EXIT_TRUSTED, EXIT_NOT_TRUSTED, EXIT_ERROR = 0, 1, 2

_DG_FILE = re.compile(r"EF_DG([0-9]{1,2})\.bin")


class ChipToolError(Exception):
    """The tool cannot do what was asked; the message says why and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands of `printstation chip`."""
    sub = parser.add_subparsers(dest="chip_command", required=True, metavar="ACTION")
    verify = sub.add_parser("verify", help="judge a chip image held as files (EF_SOD.bin, EF_DG1.bin, ...)")
    verify.add_argument("dir", type=Path, metavar="DIR", help="folder with EF_SOD.bin and the data groups")
    verify.add_argument("--trust", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                        help="CSCA certificate(s) to trust (PEM or DER); without one the chain is unknown")
    verify.add_argument("--at", metavar="TIME", help="judge as of this time (ISO 8601, UTC if no zone; default now)")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    dump = sub.add_parser("dump", help="write the card at a printer's encoder station to files")
    dump.add_argument("--printer", required=True, metavar="NAME", help="the printer, by its name in the configuration")
    dump.add_argument("dir", type=Path, metavar="DIR", help="folder to write EF_COM.bin, EF_SOD.bin, EF_DG1.bin, ... into")
    dump.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"the station's configuration (default {DEFAULT_CONFIG})")
    dump.add_argument("--json", action="store_true", help="print {printer, dir, files} as one JSON object")


def run(args: argparse.Namespace) -> int:
    """Run `chip verify` or `chip dump`; returns the exit code."""
    try:
        if args.chip_command == "verify":
            return _verify(args)
        return _dump(args)
    except ChipToolError as exc:
        print(f"printstation chip {args.chip_command}: {exc}", file=sys.stderr)
        return EXIT_ERROR


# -- verify --------------------------------------------------------------------------------


def file_name(ef: str) -> str:
    """The file name of an elementary file in a chip image folder: "EF.DG1" -> "EF_DG1.bin"."""
    return ef.replace(".", "_") + ".bin"


def read_image(folder: Path) -> tuple[bytes, dict[int, bytes]]:
    """EF.SOD and the data groups (by number) of a chip image folder. Raises ChipToolError."""
    if not folder.is_dir():
        raise ChipToolError(f"{folder} is not a folder. Give the folder that holds EF_SOD.bin")
    sod = folder / file_name("EF.SOD")
    if not sod.is_file():
        raise ChipToolError(f"{folder} has no EF_SOD.bin: without the security object nothing can be judged")
    data_groups = {}
    for path in sorted(folder.iterdir()):
        if m := _DG_FILE.fullmatch(path.name):
            data_groups[int(m.group(1))] = path.read_bytes()
    return sod.read_bytes(), data_groups


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ChipToolError(f"--at {text!r} is not a time. Write it as 2026-11-29 or 2026-11-29T10:00:00Z") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _verify(args: argparse.Namespace) -> int:
    from agent.chip.icao9303 import failure_of
    from agent.chip.passive_auth import TrustAnchorError, TrustAnchors, passive_authentication
    from agent.chip.profile import Verdict

    at = _parse_time(args.at)
    sod, data_groups = read_image(args.dir)
    try:
        anchors = TrustAnchors.load(args.trust)
    except TrustAnchorError as exc:
        raise ChipToolError(f"{exc}. Give the CSCA certificate as a PEM or DER file") from None
    checks = list(passive_authentication(sod, data_groups, anchors, at))
    if not args.trust:
        # Offline, "no anchor given" is a question left open, not a chain found bad.
        checks = [replace(c, verdict=Verdict.UNKNOWN, reason="no trust anchor given: pass --trust with the CSCA certificate")
                  if c.name == "chain" else c for c in checks]
    failure = failure_of(checks)
    trusted = all(c.verdict in (Verdict.GOOD, Verdict.ABSENT) for c in checks)
    verdict = "good" if trusted else ("bad" if failure else "unknown")
    if args.json:
        print(json.dumps({
            "dir": str(args.dir), "at": at.isoformat(), "verdict": verdict,
            "failure": failure.value if failure else None,
            "checks": [{"name": c.name, "verdict": c.verdict.value, "reason": c.reason} for c in checks],
        }))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{c.name:<{width}}  {c.verdict.value:<7}  {c.reason}")
        print(f"verdict: {verdict}" + (f" ({failure.value})" if failure else ""))
    return EXIT_TRUSTED if trusted else EXIT_NOT_TRUSTED


# -- dump ----------------------------------------------------------------------------------


def _dump(args: argparse.Namespace) -> int:
    from agent.chip.icao9303 import APPLICATION_ID, FILE_IDS
    from agent.core.config import ConfigError, load_config
    from drivers.iso7816 import FileAccess, FileNotFound, Iso7816Error
    from drivers.pcsc import CardNotPresent, PcscError, PcscReader, ReaderBusy

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise ChipToolError(str(exc)) from None
    printers = {p.name: p for p in config.printers}
    if args.printer not in printers:
        raise ChipToolError(f"no printer {args.printer!r} in {args.config}; its printers are: {', '.join(printers)}")
    reader = PcscReader(printers[args.printer].reader)
    written: list[str] = []
    try:
        reader.wait_for_card(min(config.chip.card_wait_s, 3.0))
        with reader.connect(exclusive=True, budget_s=config.chip.card_budget_s) as session:
            access = FileAccess(session)
            access.select_application(APPLICATION_ID)
            args.dir.mkdir(parents=True, exist_ok=True)
            for ef, fid in FILE_IDS.items():
                try:
                    content = access.read_file(fid)
                except FileNotFound:
                    continue
                if content:
                    write_private(args.dir / file_name(ef), content)
                    written.append(file_name(ef))
    except CardNotPresent:
        raise ChipToolError(f"no card at the encoder station of {args.printer} (reader '{reader.name}'). "
                            "Have the printer hold a card there, then try again") from None
    except ReaderBusy:
        raise ChipToolError(f"the reader of {args.printer} is in use (the station is encoding). "
                            f"Pause the printer first, then try again") from None
    except PcscError as exc:
        raise ChipToolError(f"{exc.message}. {exc.remedy}") from None
    except Iso7816Error as exc:
        raise ChipToolError(f"the card does not read as an ICAO 9303 chip: {exc.message}") from None
    finally:
        reader.close()
    if args.json:
        print(json.dumps({"printer": args.printer, "dir": str(args.dir), "files": written}))
    else:
        print(f"{len(written)} files from {args.printer} in {args.dir}: {', '.join(written) or 'none (a blank chip)'}")
    return 0
