"""`printstation`: one command for the daemon, the simulators, the demo and the technicians' tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from agent import logs
    from agent.config import ConfigError, load_config
    from agent.journal import JournalError
    from agent.station import Station

    logs.configure(json_output=args.log_json)
    try:
        station = Station(load_config(args.config))
    except (ConfigError, JournalError) as exc:
        print(f"printstation: {exc}", file=sys.stderr)
        return 2
    return station.run()


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the station daemon")
    p.add_argument("--config", type=Path, required=True, help="the station's TOML configuration")
    p.add_argument("--log-json", action="store_true", help="JSON log lines (for journald)")
    p.set_defaults(func=_run)


def _add_module(sub: argparse._SubParsersAction, name: str, help_text: str, module: str) -> None:
    """A subcommand whose arguments and body live in another module, imported only when used."""
    import importlib

    mod = importlib.import_module(module)
    p = sub.add_parser(name, help=help_text)
    mod.add_arguments(p)
    p.set_defaults(func=mod.run)


COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "print a batch on virtual hardware, end to end", "agent.demo"),
    ("simulate", "run virtual card printers (ptys) with their chips on vpcd", "simulators.simulate"),
    ("upstream-sim", "run the reference upstream issuance server", "simulators.upstream"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="printstation", description="e-KTP card print station agent")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    for name, help_text, module in COMMANDS:
        _add_module(sub, name, help_text, module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
