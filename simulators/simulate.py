"""`printstation simulate`: virtual card printers on ptys, each with its chip reader on vpcd.

The state folder is the simulator's whole world as others see it (docs/PROTOCOLS.md section 5):
`devices.json` (where the printers are, written once everything listens and removed on a clean
exit), `cards.jsonl` (every card that left a printer) and `printers/<name>/state.json` (so a
restart continues with the same counters and hopper).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartcard import scard

from simulators.chip import VirtualChip
from simulators.evolis_server import EvolisServer, serve
from simulators.printer import CardLeft, Identity, Printer, PrinterState, Timings
from simulators.pty_port import PtyPort
from simulators.vpcd_card import VpcdCard

log = logging.getLogger("simulate")

VPCD_PORT_BASE = 35963
# Debian 12's vpcd keeps one state array per loaded copy of its library: two slots a copy.
# scripts/setup-vpcd-slots.sh loads a second copy, named "Virtual PCD B" (docs/PROTOCOLS.md section 2).
VPCD_READER_COPIES = ("Virtual PCD", "Virtual PCD B")
VPCD_SLOTS = 2 * len(VPCD_READER_COPIES)
PCSCD_FOLLOW_S = 5.0  # pcscd polls vpcd about every 0.4 s; beyond this it is not following


class SimulateError(Exception):
    """The simulator cannot start as asked; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `printstation simulate`."""
    parser.add_argument("--state-dir", type=Path, required=True, help="folder for devices.json, cards.jsonl, printers/")
    parser.add_argument("--printers", type=int, default=1, help=f"virtual printers to start (at most {VPCD_SLOTS})")
    parser.add_argument("--cards", type=int, default=100, help="blanks in a new printer's hopper (saved state wins)")
    parser.add_argument("--speed", type=float, default=1.0, help="mechanics run this many times faster than real")
    parser.add_argument("--vpcd-port-base", type=int, default=VPCD_PORT_BASE, help="TCP port of vpcd slot 0")
    parser.add_argument("--first-slot", type=int, default=0, help="vpcd slot of the first printer")


@dataclass(frozen=True)
class PrinterPlan:
    """Where one virtual printer lives: its name, its vpcd slot and port, its state file."""

    name: str
    slot: int
    vpcd_port: int
    state_file: Path

    @property
    def reader(self) -> str:
        return f"{VPCD_READER_COPIES[self.slot // 2]} 00 {self.slot % 2:02d}"


def plan_printers(state_dir: Path, count: int, first_slot: int, port_base: int) -> list[PrinterPlan]:
    """The printers to start. Raises SimulateError when vpcd has no slot for one of them."""
    if count < 1:
        raise SimulateError(f"--printers must be at least 1, not {count}")
    if first_slot < 0 or first_slot + count > VPCD_SLOTS:
        raise SimulateError(
            f"vpcd offers {VPCD_SLOTS} working slots (0..{VPCD_SLOTS - 1}); "
            f"{count} printer(s) from slot {first_slot} do not fit"
        )
    plans = []
    for i in range(count):
        name = f"p{i + 1}"
        slot = first_slot + i
        plans.append(PrinterPlan(name, slot, port_base + slot, state_dir / "printers" / name / "state.json"))
    return plans


def write_json_atomically(path: Path, value: Any) -> None:
    """Replace `path` with `value` as JSON so that readers see the old file or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CardLog:
    """`cards.jsonl`: one line per card that left a printer, on disk before the printer answers."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()  # printers eject from their own threads

    def append(self, card: CardLeft) -> None:
        line = {
            "at": card.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "printer": card.printer,
            "bin": card.bin.value,
            "blank_serial": card.blank_serial,
            "document_number": card.document_number,
            "panels": list(card.panels),
        }
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


class StateFile:
    """`printers/<name>/state.json`, rewritten atomically on every change of the printer."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, blanks: int) -> PrinterState:
        """The saved state, or a new printer with `blanks` in its hopper when none is saved.

        Raises SimulateError when the saved state cannot be read.
        """
        if not self.path.exists():
            return PrinterState(hopper_remaining=blanks)
        try:
            return PrinterState.from_json(json.loads(self.path.read_text(encoding="utf-8")), VirtualChip)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SimulateError(f"cannot read the printer state {self.path}: {e}") from e

    def save(self, state: PrinterState) -> None:
        write_json_atomically(self.path, state.to_json())


class WatchedReader:
    """The printer's encoder reader: a vpcd slot, plus waiting until pcscd shows the change.

    pcscd learns of a card arriving or leaving only when it next polls the driver. A real card
    is on or off the reader when the printer answers, so the printer answers only once pcscd
    agrees (bounded by PCSCD_FOLLOW_S; past that, or without pcscd, it logs and goes on).
    """

    def __init__(self, card: VpcdCard, reader: str) -> None:
        self._card = card
        self._reader = reader

    def insert(self, chip: VirtualChip) -> None:
        """Put `chip` on the reader. Raises VpcdUnavailable (an OSError) when vpcd is not there."""
        self._card.insert(chip)
        self._await_presence(True)

    def remove(self) -> None:
        self._card.remove()
        self._await_presence(False)

    def _await_presence(self, present: bool) -> None:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            log.warning("%s: pcscd not reachable (%s); not waiting for it", self._reader,
                        scard.SCardGetErrorMessage(hresult))
            return
        try:
            if not _pcscd_shows(context, self._reader, present, time.monotonic() + PCSCD_FOLLOW_S):
                log.warning("%s: pcscd does not show the card %s", self._reader, "inserted" if present else "removed")
        finally:
            scard.SCardReleaseContext(context)


def _pcscd_shows(context: int, reader: str, present: bool, deadline: float) -> bool:
    known = scard.SCARD_STATE_UNAWARE  # the first call answers at once with the current state
    while True:
        timeout_ms = 0 if known == scard.SCARD_STATE_UNAWARE else int(max(0.0, deadline - time.monotonic()) * 1000)
        hresult, states = scard.SCardGetStatusChange(context, timeout_ms, [(reader, known)])
        if hresult != scard.SCARD_S_SUCCESS:
            return False  # timed out, or the reader is unknown to pcscd
        event = states[0][1]
        if bool(event & scard.SCARD_STATE_PRESENT) == present:
            return True
        if time.monotonic() >= deadline:
            return False
        known = event & ~scard.SCARD_STATE_CHANGED


@dataclass
class _Running:
    plan: PrinterPlan
    printer: Printer
    port: PtyPort
    thread: threading.Thread


def run(args: argparse.Namespace) -> int:
    """Run the virtual printers until SIGTERM or SIGINT (call it from the main thread).

    Returns 0 after a clean stop, 1 when a printer loop failed, 2 when the printers cannot start
    (bad options, more printers than vpcd slots, unreadable state, no pty).
    """
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="simulate: %(message)s")
    stop = threading.Event()
    try:
        if args.speed <= 0:
            raise SimulateError(f"--speed must be above 0, not {args.speed}")
        if args.cards < 0:
            raise SimulateError(f"--cards cannot be negative ({args.cards})")
        state_dir: Path = args.state_dir
        plans = plan_printers(state_dir, args.printers, args.first_slot, args.vpcd_port_base)
        devices = state_dir / "devices.json"
        state_dir.mkdir(parents=True, exist_ok=True)
        devices.unlink(missing_ok=True)  # a file left by a crash names ptys that are gone
        card_log = CardLog(state_dir / "cards.jsonl")
        (state_dir / "cards.jsonl").touch()  # there from the start, for those who follow it
        states = []
        for plan in plans:
            plan.state_file.parent.mkdir(parents=True, exist_ok=True)
            states.append(StateFile(plan.state_file))
        loaded = [s.load(args.cards) for s in states]
    except (SimulateError, OSError) as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 2

    # Signal handlers can only be set from the main thread: run() belongs there.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    running: list[_Running] = []
    failed = threading.Event()
    exit_code = 0
    try:
        for plan, state_file, state in zip(plans, states, loaded):
            printer = Printer(
                plan.name,
                state,
                reader=WatchedReader(VpcdCard(plan.vpcd_port), plan.reader),
                chip_type=VirtualChip,
                persist=state_file.save,
                on_card_left=card_log.append,
                stop=stop,
                identity=Identity(serial_number=f"SIMP{plan.slot + 1:05d}"),
                timings=Timings(),
                speed=args.speed,
            )
            state_file.save(state)
            printer.power_on()
            port = PtyPort()
            thread = threading.Thread(
                target=_serve_until_stopped,
                args=(port, EvolisServer(printer), stop, failed),
                name=f"printer-{plan.name}",
            )
            running.append(_Running(plan, printer, port, thread))
            thread.start()
            log.info("%s on %s, reader %s (vpcd port %d), %d blanks", plan.name, port.path, plan.reader,
                     plan.vpcd_port, state.hopper_remaining)
        write_json_atomically(
            devices,
            {
                "printers": [
                    {"name": r.plan.name, "serial": r.port.path, "reader": r.plan.reader, "vpcd_port": r.plan.vpcd_port}
                    for r in running
                ]
            },
        )
        stop.wait()
    except OSError as e:
        log.error("cannot start the printers: %s", e)
        exit_code = 2
    finally:
        stop.set()
        for r in running:
            r.thread.join()
            r.printer.power_off()
            r.port.close()
        (args.state_dir / "devices.json").unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 1 if failed.is_set() else exit_code


def _serve_until_stopped(port: PtyPort, server: EvolisServer, stop: threading.Event, failed: threading.Event) -> None:
    try:
        serve(port, server, stop)
    except Exception:
        # A simulator bug must end the process visibly, not leave a printer that never answers.
        log.exception("%s: the printer loop failed", server.printer.name)
        failed.set()
        stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.simulate", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
