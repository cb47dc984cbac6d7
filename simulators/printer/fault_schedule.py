"""Faults planned in advance: `printstation simulate --faults FILE` (JSON or TOML).

Each entry names a printer, a card and an action of the control channel (simulators/printer/control.py),
with the action's own fields. `at_card` counts the cards that printer feeds after the simulator
starts (1 is the first); the action strikes when that card has left the feeder, before its chip
is on the reader, so a jam or an open cover hits the card in the middle of its sequence and a
chip fault hits that very card. JSON:

    {"faults": [{"printer": "p1", "at_card": 3, "action": "jam"},
                {"printer": "p1", "at_card": 5, "action": "cover-open", "for_s": 2}]}

TOML:

    [[faults]]
    printer = "p1"
    at_card = 3
    action = "jam"
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.printer.control import Action, ControlError, parse_action


class ScheduleError(Exception):
    """The fault schedule cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class ScheduledFault:
    printer: str
    at_card: int
    action: Action


def parse_schedule(data: Any, source: str) -> list[ScheduledFault]:
    """Entries from the decoded file. Raises ScheduleError naming `source` and the entry."""
    if not isinstance(data, dict) or not isinstance(data.get("faults"), list) or set(data) != {"faults"}:
        raise ScheduleError(f"{source}: expected one list named 'faults' of entries "
                            '{"printer": "p1", "at_card": N, "action": "..."}')
    entries = []
    for i, entry in enumerate(data["faults"], start=1):
        where = f"{source}: fault {i}"
        if not isinstance(entry, dict):
            raise ScheduleError(f"{where}: expected a table/object, got {entry!r}")
        printer, at_card = entry.get("printer"), entry.get("at_card")
        if not isinstance(printer, str) or not printer:
            raise ScheduleError(f"{where}: 'printer' must name a printer, e.g. \"p1\"")
        if not isinstance(at_card, int) or isinstance(at_card, bool) or at_card < 1:
            raise ScheduleError(f"{where}: 'at_card' must be a card number from 1, not {at_card!r}")
        try:
            action = parse_action(entry)
        except ControlError as e:
            raise ScheduleError(f"{where}: {e}") from None
        entries.append(ScheduledFault(printer, at_card, action))
    return entries


def load_schedule(path: Path) -> list[ScheduledFault]:
    """Read a schedule file: `.toml` as TOML, anything else as JSON.

    Raises ScheduleError when the file cannot be read or parsed, or an entry is wrong.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as e:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ScheduleError(f"cannot read the fault schedule {path}: {e}") from None
    return parse_schedule(data, str(path))


def by_printer(entries: list[ScheduledFault]) -> dict[str, dict[int, list[Action]]]:
    """printer -> card number -> actions, in file order."""
    plan: dict[str, dict[int, list[Action]]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        plan[e.printer][e.at_card].append(e.action)
    return {name: dict(cards) for name, cards in plan.items()}
