"""`printstation simulate-ctl --state-dir DIR PRINTER ACTION [VALUE] [--for S] [--delay D] [--cards N]`.

Does something to a running virtual printer through its control channel (simulators/printer/control.py):

    simulate-ctl --state-dir DIR p1 jam            simulate-ctl --state-dir DIR p1 clear
    simulate-ctl --state-dir DIR p1 cover-open --for 5
    simulate-ctl --state-dir DIR p1 ribbon-end     simulate-ctl --state-dir DIR p1 ribbon-load 500
    simulate-ctl --state-dir DIR p1 hopper-empty   simulate-ctl --state-dir DIR p1 hopper-load 100
    simulate-ctl --state-dir DIR p1 overheat       simulate-ctl --state-dir DIR p1 link-drop --for 3
    simulate-ctl --state-dir DIR p1 garbage 16     simulate-ctl --state-dir DIR p1 slow --for 10 --delay 2
    simulate-ctl --state-dir DIR p1 command-error Se [--cards N: the next N times]
    simulate-ctl --state-dir DIR p1 chip-fault mute --cards 2
    simulate-ctl --state-dir DIR p1 empty-bins     simulate-ctl --state-dir DIR p1 status

Prints the simulator's JSON reply; exits 0 when it was done, 1 when refused, 2 when the
simulator cannot be reached or the request is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulators.printer.control import ActionName, ControlError, parse_action, send_request

# Actions whose VALUE is a number, and the request field it fills.
_NUMBER_VALUE = {ActionName.RIBBON_LOAD: "count", ActionName.HOPPER_LOAD: "count", ActionName.GARBAGE: "count"}
_TEXT_VALUE = {ActionName.COMMAND_ERROR: "command", ActionName.CHIP_FAULT: "fault"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `printstation simulate-ctl`."""
    parser.add_argument("--state-dir", type=Path, required=True, help="the simulator's state folder")
    parser.add_argument("printer", help="printer name, e.g. p1")
    parser.add_argument("action", choices=[a.value for a in ActionName], metavar="ACTION",
                        help="one of: " + ", ".join(a.value for a in ActionName))
    parser.add_argument("value", nargs="?", help="N for ribbon-load/hopper-load/garbage, CMD for command-error, "
                                                 "NAME for chip-fault")
    parser.add_argument("--for", dest="for_s", type=float, help="seconds (cover-open, link-drop, slow)")
    parser.add_argument("--delay", dest="delay_s", type=float, help="seconds each reply is held back (slow)")
    parser.add_argument("--cards", type=int, help="chip-fault: for the next N cards; command-error: the next N times")


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The control request for the command line. Raises ControlError for a wrong combination."""
    name = ActionName(args.action)
    request: dict[str, Any] = {"printer": args.printer, "action": name.value}
    if name in _NUMBER_VALUE:
        if args.value is None or not args.value.isdigit():
            raise ControlError(f"{name.value} needs a whole number, e.g. {name.value} 10")
        request[_NUMBER_VALUE[name]] = int(args.value)
    elif name in _TEXT_VALUE:
        if not args.value:
            raise ControlError(f"{name.value} needs a {_TEXT_VALUE[name]}")
        request[_TEXT_VALUE[name]] = args.value
    elif args.value is not None:
        raise ControlError(f"{name.value} takes no value ({args.value!r})")
    if args.for_s is not None:
        request["for_s"] = args.for_s
    if args.delay_s is not None:
        request["delay_s"] = args.delay_s
    if args.cards is not None:
        request["count" if name is ActionName.COMMAND_ERROR else "cards"] = args.cards
    parse_action(request)  # the same checks the simulator makes, before we bother it
    return request


def run(args: argparse.Namespace) -> int:
    try:
        request = build_request(args)
    except ControlError as e:
        print(f"simulate-ctl: {e}", file=sys.stderr)
        return 2
    devices = args.state_dir / "devices.json"
    try:
        socket_path = Path(json.loads(devices.read_text(encoding="utf-8"))["control"])
        reply = send_request(socket_path, request)
    except (OSError, ValueError, KeyError, ControlError) as e:
        print(f"simulate-ctl: cannot reach the simulator through {devices} ({e}); is `printstation simulate "
              f"--state-dir {args.state_dir}` running?", file=sys.stderr)
        return 2
    print(json.dumps(reply, indent=1, sort_keys=True))
    return 0 if reply.get("ok") else 1
