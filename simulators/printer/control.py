"""The virtual printers' control channel: what a technician (or a test) does to a printer.

A Unix socket in the simulator's state folder (its path is `control` in devices.json) takes
one JSON object a line and answers one JSON object a line (docs/PROTOCOLS.md section 6):

    {"printer": "p1", "action": "cover-open", "for_s": 5}
    -> {"ok": true, "printer": "p1", "action": "cover-open", "result": null, "status": {...}}
    -> {"ok": false, "error": "<plain words>"}

Every action runs on the printer's own thread (Printer.call), so it never races a command.
The same `Action` values come from the fault schedule (simulators/printer/fault_schedule.py).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Protocol

from simulators.printer.server import LineFaults
from simulators.printer.machine import Fault, Printer, SupplyRefused

log = logging.getLogger(__name__)

MAX_LINE = 4096
CLIENT_IDLE_S = 10.0  # a client that says nothing for this long is dropped
ACTION_TIMEOUT_S = 10.0


class ControlError(Exception):
    """A control request that cannot be carried out; the message says why and what to send instead."""


class ActionName(Enum):
    JAM = "jam"
    CLEAR = "clear"
    COVER_OPEN = "cover-open"
    RIBBON_END = "ribbon-end"
    RIBBON_LOAD = "ribbon-load"
    HOPPER_EMPTY = "hopper-empty"
    HOPPER_LOAD = "hopper-load"
    OVERHEAT = "overheat"
    LINK_DROP = "link-drop"
    GARBAGE = "garbage"
    SLOW = "slow"
    COMMAND_ERROR = "command-error"
    CHIP_FAULT = "chip-fault"
    EMPTY_BINS = "empty-bins"
    HANG = "hang"
    STATUS = "status"


# Which fields each action takes: required, then optional.
_FIELDS: dict[ActionName, tuple[frozenset[str], frozenset[str]]] = {
    ActionName.JAM: (frozenset(), frozenset()),
    ActionName.CLEAR: (frozenset(), frozenset()),
    ActionName.COVER_OPEN: (frozenset(), frozenset({"for_s"})),
    ActionName.RIBBON_END: (frozenset(), frozenset()),
    ActionName.RIBBON_LOAD: (frozenset({"count"}), frozenset()),
    ActionName.HOPPER_EMPTY: (frozenset(), frozenset()),
    ActionName.HOPPER_LOAD: (frozenset({"count"}), frozenset()),
    ActionName.OVERHEAT: (frozenset(), frozenset()),
    ActionName.LINK_DROP: (frozenset(), frozenset({"for_s"})),
    ActionName.GARBAGE: (frozenset({"count"}), frozenset()),
    ActionName.SLOW: (frozenset({"for_s", "delay_s"}), frozenset()),
    ActionName.COMMAND_ERROR: (frozenset({"command"}), frozenset({"count"})),
    ActionName.CHIP_FAULT: (frozenset({"fault"}), frozenset({"cards"})),
    ActionName.EMPTY_BINS: (frozenset(), frozenset()),
    ActionName.HANG: (frozenset({"for_s"}), frozenset()),
    ActionName.STATUS: (frozenset(), frozenset()),
}

LINK_DROP_DEFAULT_S = 3.0


@dataclass(frozen=True)
class Action:
    """One thing done to a printer, with its arguments (unused ones are None)."""

    name: ActionName
    count: int | None = None  # ribbon-load / hopper-load N, garbage N bytes, command-error times
    cards: int | None = None  # chip-fault: for the next N cards
    for_s: float | None = None  # cover-open, link-drop, slow: how long
    delay_s: float | None = None  # slow: each reply held back this long
    command: str | None = None  # command-error: the command name, e.g. Se
    fault: str | None = None  # chip-fault: the chip fault's name

    def to_json(self) -> dict[str, Any]:
        fields = {k: v for k, v in self.__dict__.items() if k != "name" and v is not None}
        return {"action": self.name.value, **fields}


def parse_action(d: dict[str, Any]) -> Action:
    """An Action from its JSON form (`{"action": "slow", "for_s": 5, "delay_s": 2}`).

    Raises ControlError naming the unknown action, or the missing, unknown or wrong field.
    """
    raw = d.get("action")
    try:
        name = ActionName(raw)
    except ValueError:
        known = ", ".join(a.value for a in ActionName)
        raise ControlError(f"unknown action {raw!r}; actions are: {known}") from None
    required, optional = _FIELDS[name]
    given = set(d) - {"action", "printer", "at_card"}
    if missing := required - given:
        raise ControlError(f"{name.value} needs {', '.join(sorted(missing))}")
    if extra := given - required - optional:
        raise ControlError(f"{name.value} takes no {', '.join(sorted(extra))}")
    values: dict[str, Any] = {}
    for key in given:
        value = d[key]
        if key in ("count", "cards"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ControlError(f"{name.value}: {key} must be a whole number from 0 up, not {value!r}")
        elif key in ("for_s", "delay_s"):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ControlError(f"{name.value}: {key} must be a number of seconds from 0 up, not {value!r}")
            value = float(value)
        elif not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
            raise ControlError(f"{name.value}: {key} must be a short text, not {value!r}")
        values[key] = value
    return Action(name, **values)


class Unpluggable(Protocol):
    """The printer's link as the control channel sees it (simulators.printer.pty_port.StablePort)."""

    def unplug(self, for_s: float) -> None: ...


class ChipFaultArming(Protocol):
    """The encoder reader's chip faults (simulators.simulate.WatchedReader)."""

    def arm(self, fault: str, cards: int) -> None: ...

    def armed(self) -> dict[str, int]: ...


@dataclass
class PrinterTarget:
    """Everything of one virtual printer that actions reach."""

    printer: Printer
    port: Unpluggable
    line: LineFaults
    chips: ChipFaultArming

    def status(self) -> dict[str, Any]:
        """The printer's panel plus the line's and the chip's armed faults (printer's thread)."""
        return {**self.printer.snapshot(), "line": self.line.snapshot(), "chip_faults": self.chips.armed()}


def apply_action(target: PrinterTarget, action: Action) -> Any:
    """Do `action` to the printer; call on the printer's thread. Returns a value for the reply or None.

    Raises ControlError when the printer cannot take it (e.g. more blanks than the feeder holds).
    """
    p, n = target.printer, action.name
    log.info("%s: control %s", p.name, json.dumps(action.to_json()))
    try:
        if n is ActionName.JAM:
            p.set_fault(Fault.JAM, True)
        elif n is ActionName.CLEAR:
            p.clear_faults()
            target.line.clear()
        elif n is ActionName.COVER_OPEN:
            p.set_fault(Fault.COVER_OPEN, True, action.for_s)
        elif n is ActionName.RIBBON_END:
            p.end_ribbon()
        elif n is ActionName.RIBBON_LOAD:
            p.load_ribbon(_given(action.count))
        elif n is ActionName.HOPPER_EMPTY:
            return {"blanks_taken_out": p.unload_blanks()}
        elif n is ActionName.HOPPER_LOAD:
            p.load_blanks(_given(action.count))
        elif n is ActionName.OVERHEAT:
            p.overheat()
        elif n is ActionName.LINK_DROP:
            target.port.unplug(action.for_s if action.for_s is not None else LINK_DROP_DEFAULT_S)
        elif n is ActionName.GARBAGE:
            target.line.garbage += _given(action.count)
        elif n is ActionName.SLOW:
            target.line.slow_until = time.monotonic() + _given(action.for_s)
            target.line.slow_delay = _given(action.delay_s)
        elif n is ActionName.COMMAND_ERROR:
            command = _given(action.command)
            target.line.command_errors[command] = target.line.command_errors.get(command, 0) + (
                action.count if action.count is not None else 1)
        elif n is ActionName.CHIP_FAULT:
            target.chips.arm(_given(action.fault), action.cards if action.cards is not None else 1)
        elif n is ActionName.EMPTY_BINS:
            p.empty_bins()
        elif n is ActionName.HANG:
            p.hang(_given(action.for_s))
    except SupplyRefused as e:
        raise ControlError(str(e)) from None
    return None


def _given(value: Any) -> Any:
    assert value is not None, "parse_action checks required fields"
    return value


# -- the socket -------------------------------------------------------------------------------

@contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """A name for `path` that fits a Unix socket address (108 bytes): through /proc for long ones."""
    if len(os.fsencode(str(path))) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class ControlServer:
    """Serves the control socket at `path` for `targets` (printer name -> target) until stopped.

    Raises OSError from the constructor when the socket cannot be made.
    """

    def __init__(self, path: Path, targets: dict[str, PrinterTarget], stop: threading.Event) -> None:
        self.path = path
        self._targets = targets
        self._stop = stop
        path.unlink(missing_ok=True)  # left by a crash
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _short_path(path) as address:
            self._sock.bind(address)
        os.chmod(path, 0o600)  # faults are for the technician who runs the simulator
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop serving (the stop event must be set) and remove the socket."""
        self._thread.join(timeout=5)
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self._converse(conn)

    def _converse(self, conn: socket.socket) -> None:
        conn.settimeout(CLIENT_IDLE_S)
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(MAX_LINE)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                reply = self.handle(line)
                try:
                    conn.sendall(json.dumps(reply).encode("utf-8") + b"\n")
                except OSError:
                    return
            if len(buffer) > MAX_LINE:
                conn.sendall(json.dumps({"ok": False, "error": f"request longer than {MAX_LINE} bytes"}).encode() + b"\n")
                return

    def handle(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ControlError("a request is one JSON object, e.g. {\"printer\": \"p1\", \"action\": \"status\"}")
            name = request.get("printer")
            target = self._targets.get(name) if isinstance(name, str) else None
            if target is None:
                raise ControlError(f"no printer {name!r}; printers: {', '.join(sorted(self._targets))}")
            action = parse_action(request)
            result = target.printer.call(lambda: (apply_action(target, action), target.status()), ACTION_TIMEOUT_S)
        except ValueError as e:  # json.JSONDecodeError is one
            return {"ok": False, "error": f"not a JSON line: {e}"}
        except (ControlError, TimeoutError) as e:
            return {"ok": False, "error": str(e)}
        value, status = result
        return {"ok": True, "printer": name, "action": action.name.value, "result": value, "status": status}


def send_request(path: Path, request: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    """Send one request to the control socket at `path`; return the reply object.

    Raises OSError when the simulator is not there, ControlError for a reply that is not JSON.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        with _short_path(path) as address:
            sock.connect(address)
        sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"the simulator answered something that is not JSON: {data[:80]!r}") from None
    if not isinstance(reply, dict):
        raise ControlError(f"the simulator answered {reply!r}, not an object")
    return reply
