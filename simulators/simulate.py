"""`printstation simulate`: virtual card printers on ptys, each with its chip reader on vpcd.

The state folder is the simulator's whole world as others see it (docs/PROTOCOLS.md section 5):
`devices.json` (where the printers are, written once everything listens and removed on a clean
exit), `dev/<name>` (each printer's serial device, a name that survives a link drop),
`control.sock` (the control channel, section 6), `cards.jsonl` (every card that left a printer),
`cards/` (each printed card rebuilt as a PNG) and `printers/<name>/state.json` (so a restart
continues with the same counters and hopper).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from smartcard import scard

from simulators.printer.card_rebuild import CardPictures
from simulators.chip.emulator import VirtualChip
from simulators.printer.control import ControlError, ControlServer, PrinterTarget, apply_action
from simulators.printer.server import ByteLink, EvolisServer, LineFaults, serve
from simulators.printer.fault_schedule import ScheduleError, by_printer, load_schedule
from simulators.printer.machine import (Capacities, CardLeft, DutyCycle, Equipment, Identity, Printer, PrinterState,
                                Timings, departure_line)
from simulators.printer.link_bandwidth import DEFAULT_BAUD, Bandwidth, LinkClock, PacedLink, UsbSpeed
from simulators.printer.pty_port import StablePort
from simulators.printer.usb_port import VIRTUAL_PRODUCT_ID, VIRTUAL_VENDOR_ID, UsbIdentity, UsbPort, relay_socket_path
from simulators.chip.vpcd import VpcdCard

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
    parser.add_argument("--serial-baud", type=int, default=DEFAULT_BAUD,
                        help=f"line rate of the serial link, bits a second (default {DEFAULT_BAUD})")
    parser.add_argument("--usb", action="store_true",
                        help="also offer each printer as a USB device, on a relay socket (devices.json: usb)")
    parser.add_argument("--usb-speed", choices=[s.value for s in UsbSpeed], default=UsbSpeed.FULL.value,
                        help="USB full speed (~1 MB/s) or high speed (~35 MB/s); default full")
    parser.add_argument("--options", default="contactless,smart,feeder,flip-over",
                        help="the printer model's options, comma-separated, from: contactless, smart, magnetic, "
                             "feeder, dual-feeder, flip-over, output-hopper, status-words "
                             "(default: contactless,smart,feeder,flip-over)")
    parser.add_argument("--status-words", action="store_true",
                        help="also answer `Rst` (the status words of newer firmware, in no revision of the guide)")
    parser.add_argument("--faults", type=Path, help="fault schedule, JSON or .toml (see simulators/printer/fault_schedule.py)")
    parser.add_argument("--hopper-capacity", type=int, help="blanks the feeder holds (default: no limit)")
    parser.add_argument("--output-capacity", type=int, help="cards the output hopper holds (default: no limit)")
    parser.add_argument("--reject-capacity", type=int, help="cards the reject box holds (default: no limit)")
    parser.add_argument("--ribbon-cards", type=int, help="cards a new printer's ribbon prints (saved state wins)")
    duty = DutyCycle()
    parser.add_argument("--head-heat-per-panel", type=float, default=duty.heat_per_panel,
                        help=f"head heat a panel adds (default {duty.heat_per_panel})")
    parser.add_argument("--head-cooling-per-s", type=float, default=duty.cooling_per_s,
                        help=f"head heat lost a printer second (default {duty.cooling_per_s})")
    parser.add_argument("--head-stop-at", type=float, default=duty.stop_at,
                        help=f"heat at which the printer stops to cool (default {duty.stop_at})")
    parser.add_argument("--head-resume-at", type=float, default=duty.resume_at,
                        help=f"heat at which it prints again (default {duty.resume_at})")


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
    """Replace `path` with `value` as JSON so that readers see the old file or the new, never half.

    Each writing thread has a temporary file of its own: two threads saving at once (a fault
    schedule and a command) must not rename each other's file away.

    No fsync: the virtual printer's memory must outlive its own process (a power cut here is
    SIGKILL), and the kernel keeps what was written for that. A real printer keeps its state in
    its own memory, not on the host's disk: fsyncs here would queue the agent's journal behind
    them and count in the bench as the agent's time."""
    tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


class CardLog:
    """`cards.jsonl`: one line per card that left a printer, written before the printer answers.

    With `pictures`, a card that received panels is rebuilt as `cards/<n>-<bin>.png` (n: its line
    number in cards.jsonl), named in its line as `png`; the file appears shortly after the line.
    """

    def __init__(self, path: Path, pictures: CardPictures | None = None) -> None:
        self._path = path
        self._pictures = pictures
        self._lock = threading.Lock()  # printers eject from their own threads
        self._lines = sum(1 for _ in open(path, "rb")) if path.exists() else 0

    def append(self, card: CardLeft) -> None:
        with self._lock:
            self._lines += 1
            png = None
            if self._pictures is not None and card.images:
                png = f"cards/{self._lines:06d}-{card.bin.value}.png"
            self._write(card, png)  # the line first: the witness does not wait on the picture
            if png is not None and self._pictures is not None:
                self._pictures.submit(self._path.parent / png, card.images)

    def replay(self, line: dict[str, Any]) -> bool:
        """Append the line of a card whose departure the printer's state recorded but the log
        missed (a power cut between the two); False when the log has it already."""
        with self._lock:
            if self._path.exists():
                for text in open(self._path, "rb"):
                    seen = json.loads(text)
                    if seen.get("blank_serial") == line["blank_serial"] and seen.get("printer") == line["printer"]:
                        return False
            self._lines += 1
            self._append({**line, "png": None})
            return True

    def _write(self, card: CardLeft, png: str | None) -> None:
        line = {**departure_line(card), "png": png, **(card.timing.as_json() if card.timing is not None else {})}
        self._append(line)

    def _append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)  # in the kernel before the printer answers: it outlives a SIGKILL
        finally:
            os.close(fd)


class StateFile:
    """`printers/<name>/state.json`, rewritten atomically on every change of the printer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saving = threading.Lock()

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
        # One save at a time, each of the state as it is then: the file on disk is never older
        # than a save that finished before.
        with self._saving:
            write_json_atomically(self.path, state.to_json())


class WatchedReader:
    """The printer's encoder reader: a vpcd slot, plus waiting until pcscd shows the change.

    pcscd learns of a card arriving or leaving only when it next polls the driver. A real card
    is on or off the reader when the printer answers, so the printer answers only once pcscd
    agrees (bounded by PCSCD_FOLLOW_S; past that, or without pcscd, it logs and goes on).

    Chip faults armed through the control channel strike the next cards put on the reader: each
    such card is a fresh vpcd card object handed to `simulators.chip.faults.apply_chip_fault`
    first, so the fault ends with the card and the next blank is healthy.
    """

    def __init__(self, card: VpcdCard, reader: str) -> None:
        self._healthy = card
        self._card = card
        self._reader = reader
        self._armed: list[list[Any]] = []  # [fault name, cards left], first armed strikes first

    def arm(self, fault: str, cards: int) -> None:
        """Give the next `cards` chips put on the reader `fault`. Raises ControlError when chip faults are missing."""
        if importlib.util.find_spec("simulators.chip.faults") is None:
            raise ControlError("chip faults are not built yet (simulators/chip/faults.py is missing)")
        from simulators.chip.faults import ChipFault

        if fault not in {f.value for f in ChipFault}:
            raise ControlError(f"no chip fault {fault!r}; chip faults are: {', '.join(f.value for f in ChipFault)}")
        if cards > 0:
            self._armed.append([fault, cards])

    def armed(self) -> dict[str, int]:
        return {name: left for name, left in self._armed}

    def insert(self, chip: VirtualChip) -> None:
        """Put `chip` on the reader. Raises VpcdUnavailable (an OSError) when vpcd is not there."""
        self._card = self._healthy
        if self._armed:
            from simulators.chip.faults import apply_chip_fault

            fault = self._armed[0]
            fault[1] -= 1
            if fault[1] <= 0:
                self._armed.pop(0)
            self._card = VpcdCard(self._healthy.port, self._healthy.host)
            apply_chip_fault(self._card, chip, fault[0])
            log.info("%s: chip fault %s on this card", self._reader, fault[0])
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
    port: StablePort
    thread: threading.Thread
    usb: UsbPort | None = None  # with --usb: the same printer as a USB device, served by usb_thread
    usb_thread: threading.Thread | None = None


def _equipment(args: argparse.Namespace) -> Equipment:
    """The printer model's options. Raises SimulateError naming an unknown one."""
    try:
        equipment = Equipment.parse(args.options)
    except ValueError as e:
        raise SimulateError(str(e)) from None
    if args.status_words:
        equipment = dataclasses.replace(equipment, status_words=True)
    return equipment


def _options(args: argparse.Namespace) -> tuple[Capacities, DutyCycle, dict[str, dict[int, list[Any]]]]:
    """Capacities, duty cycle and fault schedule from the options. Raises SimulateError."""
    if args.speed <= 0:
        raise SimulateError(f"--speed must be above 0, not {args.speed}")
    if args.serial_baud <= 0:
        raise SimulateError(f"--serial-baud must be above 0, not {args.serial_baud}")
    if args.cards < 0:
        raise SimulateError(f"--cards cannot be negative ({args.cards})")
    for option in ("hopper_capacity", "output_capacity", "reject_capacity", "ribbon_cards"):
        value = getattr(args, option)
        if value is not None and value < 0:
            raise SimulateError(f"--{option.replace('_', '-')} cannot be negative ({value})")
    if args.hopper_capacity is not None and args.cards > args.hopper_capacity:
        raise SimulateError(f"--cards {args.cards} do not fit a feeder of {args.hopper_capacity}")
    try:
        duty = DutyCycle(args.head_heat_per_panel, args.head_cooling_per_s, args.head_stop_at, args.head_resume_at)
    except ValueError as e:
        raise SimulateError(str(e)) from None
    schedule = {}
    if args.faults is not None:
        try:
            schedule = by_printer(load_schedule(args.faults))
        except ScheduleError as e:
            raise SimulateError(str(e)) from None
    capacities = Capacities(args.hopper_capacity, args.output_capacity, args.reject_capacity)
    return capacities, duty, schedule


def run(args: argparse.Namespace) -> int:
    """Run the virtual printers until SIGTERM or SIGINT (call it from the main thread).

    Returns 0 after a clean stop, 1 when a printer loop failed, 2 when the printers cannot start
    (bad options or fault schedule, more printers than vpcd slots, unreadable state, no pty).
    """
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="simulate: %(message)s")
    stop = threading.Event()
    try:
        capacities, duty, schedule = _options(args)
        equipment = _equipment(args)
        state_dir: Path = args.state_dir
        plans = plan_printers(state_dir, args.printers, args.first_slot, args.vpcd_port_base)
        unknown = set(schedule) - {p.name for p in plans}
        if unknown:
            raise SimulateError(f"the fault schedule names printers that do not run: {', '.join(sorted(unknown))}")
        devices = state_dir / "devices.json"
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "dev").mkdir(exist_ok=True)
        devices.unlink(missing_ok=True)  # a file left by a crash names ptys that are gone
        (state_dir / "cards.jsonl").touch()  # there from the start, for those who follow it
        states = []
        for plan in plans:
            plan.state_file.parent.mkdir(parents=True, exist_ok=True)
            states.append(StateFile(plan.state_file))
        loaded = [s.load(args.cards) for s in states]
        for state, state_file in zip(loaded, states):
            if args.ribbon_cards is not None and not state_file.path.exists():
                state.ribbon_remaining = args.ribbon_cards
    except (SimulateError, OSError) as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 2

    # Signal handlers can only be set from the main thread: run() belongs there.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    pictures = CardPictures()
    card_log = CardLog(state_dir / "cards.jsonl", pictures)
    for state in loaded:
        if state.pending_line is not None and card_log.replay(state.pending_line):
            log.warning("%s: the card log missed %s (power cut as it left); appended from the printer's state",
                        state.pending_line["printer"], state.pending_line["blank_serial"])
    running: list[_Running] = []
    targets: dict[str, PrinterTarget] = {}
    control: ControlServer | None = None
    failed = threading.Event()
    exit_code = 0
    try:
        for plan, state_file, state in zip(plans, states, loaded):
            reader = WatchedReader(VpcdCard(plan.vpcd_port), plan.reader)
            serial_clock = LinkClock(Bandwidth.serial(args.serial_baud), args.speed)
            usb_clock = LinkClock(Bandwidth.usb(UsbSpeed(args.usb_speed)), args.speed) if args.usb else None
            printer = Printer(
                plan.name,
                state,
                reader=reader,
                chip_type=VirtualChip,
                persist=state_file.save,
                on_card_left=card_log.append,
                stop=stop,
                identity=Identity(serial_number=f"SIMP{plan.slot + 1:05d}"),
                timings=Timings(),
                speed=args.speed,
                capacities=capacities,
                duty_cycle=duty,
                on_card_fed=_scheduled(plan.name, schedule.get(plan.name, {}), targets),
                link_seconds=_link_seconds(serial_clock, usb_clock),
                equipment=equipment,
            )
            state_file.save(state)
            printer.power_on()
            port = StablePort(state_dir / "dev" / plan.name)
            line = LineFaults()
            targets[plan.name] = PrinterTarget(printer, port, line, reader)
            thread = threading.Thread(
                target=_serve_until_stopped,
                args=(PacedLink(port, serial_clock), EvolisServer(printer, line_faults=line), stop, failed),
                name=f"printer-{plan.name}",
            )
            running.append(_Running(plan, printer, port, thread))
            thread.start()
            if args.usb:
                # A second port of the same printer: its own framing, one host at a time as on real ones.
                usb = UsbPort(
                    relay_socket_path(state_dir, plan.name),
                    UsbIdentity(VIRTUAL_VENDOR_ID, VIRTUAL_PRODUCT_ID, "Evolis", printer.identity.model,
                                printer.identity.serial_number, UsbSpeed(args.usb_speed)),
                    usb_clock,
                )
                running[-1].usb = usb
                usb.plug()
                running[-1].usb_thread = threading.Thread(
                    target=_serve_until_stopped,
                    args=(usb, EvolisServer(printer, line_faults=line), stop, failed),
                    name=f"printer-{plan.name}-usb",
                )
                running[-1].usb_thread.start()
                # With USB the host prints over USB: a link drop pulls that cable (the pty stays, for
                # a technician's serial console).
                targets[plan.name] = PrinterTarget(printer, usb, line, reader)
                log.info("%s also on USB %s", plan.name, usb.describe()["url"])
            log.info("%s on %s (%s), reader %s (vpcd port %d), %d blanks", plan.name, port.path, port.pty_path,
                     plan.reader, plan.vpcd_port, state.hopper_remaining)
        control = ControlServer(state_dir / "control.sock", targets, stop)
        control.start()
        write_json_atomically(
            devices,
            {
                "control": str(control.path),
                "printers": [
                    {"name": r.plan.name, "serial": r.port.path, "pty": r.port.pty_path, "reader": r.plan.reader,
                     "vpcd_port": r.plan.vpcd_port, **({"usb": r.usb.describe()} if r.usb is not None else {})}
                    for r in running
                ],
            },
        )
        stop.wait()
    except OSError as e:
        log.error("cannot start the printers: %s", e)
        exit_code = 2
    finally:
        stop.set()
        if control is not None:
            control.close()
        for r in running:
            r.thread.join()
            if r.usb_thread is not None:
                r.usb_thread.join()
            if r.usb is not None:
                r.usb.close()
            r.printer.power_off()
            r.port.close()
        pictures.close()
        (args.state_dir / "devices.json").unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 1 if failed.is_set() else exit_code


def _link_seconds(serial: LinkClock, usb: LinkClock | None) -> Callable[[], float]:
    """The seconds both cables of one printer have carried, for its own time accounting."""
    return lambda: serial.seconds_charged + (usb.seconds_charged if usb else 0.0)


def _scheduled(name: str, plan: dict[int, list[Any]], targets: dict[str, PrinterTarget]) -> Callable[[int], None]:
    """The printer's on_card_fed: applies what the schedule plans for that card (printer's thread)."""

    def on_card_fed(card: int) -> None:
        for action in plan.get(card, []):
            log.info("%s: card %d: scheduled %s", name, card, action.name.value)
            try:
                apply_action(targets[name], action)
            except ControlError as e:
                log.warning("%s: scheduled %s not done: %s", name, action.name.value, e)

    return on_card_fed


def _serve_until_stopped(port: ByteLink, server: EvolisServer, stop: threading.Event, failed: threading.Event) -> None:
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
