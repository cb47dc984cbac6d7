"""`printstation`: one command for the daemon, the simulators, the demo and the technicians' tools."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from agent.ops.control_client import DEFAULT_CONFIG, add_commands


def _run(args: argparse.Namespace) -> int:
    _leave_out_what_the_daemon_never_runs()
    from agent.core import freed_memory, logs
    from agent.core.config import ConfigError, load_config
    from agent.journal import JournalError
    from agent.station.daemon import Station

    freed_memory.share_arenas()  # before the daemon's threads start: a few heaps, not one a thread
    # Under systemd the output goes to journald: JSON lines, whether or not --log-json was given.
    logs.configure(json_output=args.log_json or logs.under_journald())
    try:
        station = Station(load_config(args.config))
    except ConfigError as exc:
        print(f"printstation: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG  # the unit does not restart on it: starting again cannot fix the file
    except JournalError as exc:
        print(f"printstation: {exc}", file=sys.stderr)
        return 1  # a journal that cannot be opened now may open later: the unit tries again
    return station.run()


def _leave_out_what_the_daemon_never_runs() -> None:
    """Libraries other packages load only because they are installed, which the daemon never uses,
    and would carry all day: rich (structlog's console tracebacks, 3 MB; the daemon draws no tables
    and writes plain tracebacks), httpx's command-line client (pygments, 1 MB) and trio (httpcore's
    locks for trio event loops, 2.7 MB; the station's HTTP client is synchronous and its page runs
    on asyncio; selenium, a test tool, installs it). A None entry in sys.modules makes an import
    fail as if the package were not installed, which is what those packages expect of a missing
    one (tests/test_daemon_imports.py reads the interpreter's import log of a running daemon).

    Nor does the daemon call numpy's linear algebra: OpenBLAS, loaded with numpy, would start a
    thread a core that spins at start-up (~0.1 s of CPU, and more while it waits for work)."""
    for unused in ("rich", "httpx._main", "trio"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


EXIT_BAD_CONFIG = 78  # EX_CONFIG (sysexits.h); the unit's RestartPreventExitStatus names it


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the station daemon")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"the station's TOML configuration (default {DEFAULT_CONFIG})")
    p.add_argument("--log-json", action="store_true", help="JSON log lines (for journald; automatic under systemd)")
    p.set_defaults(func=_run)


def _add_module(sub: argparse._SubParsersAction, name: str, help_text: str, module: str) -> None:
    """A subcommand whose arguments and body live in another module, imported only when used."""
    import importlib

    mod = importlib.import_module(module)
    p = sub.add_parser(name, help=help_text)
    mod.add_arguments(p)
    p.set_defaults(func=mod.run)


COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "print a batch on virtual hardware, end to end", "agent.tools.demo"),
    ("simulate", "run virtual card printers (ptys) with their chips on vpcd", "simulators.simulate"),
    ("simulate-ctl", "inject faults into running virtual printers (jam, cover-open, ...)", "simulators.simulate_ctl"),
    ("upstream-sim", "run the reference upstream issuance server", "simulators.upstream.server"),
    ("hopper", "blank ledger: load, adjust, reconcile with the printers", "agent.ops.hopper"),
    ("stock", "the storeroom: record deliveries of blanks from the centre", "agent.ops.stock_cli"),
    ("chip", "verify a chip image held as files, or dump the card at a printer's encoder station", "agent.ops.chip_cli"),
    ("bench", "measure utilisation, scaling, cost per card and footprint on virtual hardware", "agent.tools.bench"),
    ("web-pin", "make the line for [web] operator_pin_hash from the operator's PIN", "agent.ops.web_auth"),
]


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `wanted`, the other module commands are only named, not imported
    (importing the simulators costs a third of a second that `status` should not pay)."""
    parser = argparse.ArgumentParser(prog="printstation", description="e-KTP card print station agent")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    for name, help_text, module in COMMANDS:
        if wanted is None or wanted == name:
            _add_module(sub, name, help_text, module)
        else:
            sub.add_parser(name, help=help_text)
    add_commands(sub)  # status, events, pause, resume, drain, diagnose, config check, support-bundle, batch
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wanted = argv[0] if argv and not argv[0].startswith("-") else None
    args = build_parser(wanted).parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
