"""One virtual card printer: hopper of counted blanks, card path, bins, ribbon and counters.

The printer moves cards in real time (each movement sleeps its duration divided by the speed
factor) and keeps its state the way a real printer keeps its non-volatile memory: every change
is handed to a `persist` callback before the command that caused it completes. It knows nothing
of the wire (see `server.py`) nor of files (see `simulate.py`): the chip of the blank at
the contactless station is presented through an `EncoderReader`, and every card that leaves is
reported through `on_card_left`.

Only the printer's own thread touches its state: others (the control channel, the fault
schedule) hand it actions through `call`, which it runs between commands and during movements.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Callable, Protocol

from simulators.printer.settings import Settings

log = logging.getLogger(__name__)

RIBBON_CARDS = 500  # a fresh YMCKO ribbon, in cards
RIBBON_LOW_AT = 50  # cards left when the printer starts warning
PANEL_BYTES_MONO = 648 * 1016 // 8  # one 1-bit panel
# Cards between two cleanings before the printer asks for one (`Rlr;r` "ERR NEED CLEANING").
# An assumption: the guide names the counter but not its value.
CLEANING_EVERY = 1000
FEEDER_WARNING_AT = 10  # blanks left when the feeder's warning sensor is uncovered (assumption)


class Chip(Protocol):
    """The chip embedded in a blank (simulators.chip.emulator.VirtualChip in the simulate process)."""

    def document_number(self) -> str | None: ...

    def to_json(self) -> dict[str, Any]: ...


class ChipType(Protocol):
    """Makes blank chips and restores written ones (the class VirtualChip itself)."""

    def __call__(self) -> Chip: ...

    def from_json(self, d: dict[str, Any]) -> Chip: ...


class EncoderReader(Protocol):
    """The contactless reader inside the printer (simulators.chip.vpcd.VpcdCard)."""

    def insert(self, chip: Any) -> None: ...

    def remove(self) -> None: ...


class Refusal(Enum):
    """Why the printer refused a command; the value is the whole reply on the wire.

    Where field code written against real Evolis printers compares a reply literally, that is
    the text (docs/PROTOCOLS.md "Replies": `ERROR CDE`, `ERROR PARAMETRES`, `FEEDER EMPTY`,
    `COVER OPEN`, `CARD JAM`, `HOPPER FULL`, `ERROR RIBBON`, `ERROR HEAD`, `ERROR TIME OUT`,
    `OPT NOT AVAILABLE`, `ERROR MAGN DATA`); the rest are assumptions, each starting with `ERR`,
    the prefix by which the vendor's SDK knows an error reply.
    """

    FEEDER_EMPTY = "FEEDER EMPTY"
    CARD_INSIDE = "ERR CARD INSIDE"
    NO_CARD = "ERR NO CARD"
    NO_SEQUENCE = "ERR NO SEQUENCE"
    PARAMETER = "ERROR PARAMETRES"
    UNKNOWN_COMMAND = "ERROR CDE"
    DATA_LENGTH = "ERR DATA LENGTH"
    COVER_OPEN = "COVER OPEN"
    JAM = "CARD JAM"
    RIBBON_ENDED = "ERROR RIBBON"
    HOPPER_FULL = "HOPPER FULL"
    REJECT_FULL = "ERR REJECT BOX FULL"
    COOLING = "ERROR HEAD"  # the head too hot to start a card: the field's "error on print head"
    COMMAND_FAILED = "ERR COMMAND FAILED"  # an injected command error (simulate-ctl command-error)
    MAGNETIC_DATA = "ERROR MAGN DATA"  # nothing to read on the track, or `Smw` with nothing downloaded
    TIMEOUT = "ERROR TIME OUT"  # a module or device that should answer did not (`Scom`, `Sds`)
    NOT_EQUIPPED = "OPT NOT AVAILABLE"  # a command of an option this printer does not have


class PrinterRefused(Exception):
    """The printer cannot do what was asked in its present state; nothing moved."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"printer refused the command: {refusal.value}")
        self.refusal = refusal


class PrinterStopped(Exception):
    """The simulator is shutting down; the movement under way was abandoned, no state changed."""


class Fault(Enum):
    """Conditions a test can inject; they stay until cleared (cooling is the head's heat, see DutyCycle)."""

    COVER_OPEN = "cover_open"
    JAM = "jam"


class Station(Enum):
    """Where a feed command takes the blank."""

    CONTACTLESS = "contactless"
    CONTACT = "contact"
    PRINT = "print"


class Side(Enum):
    FRONT = "front"
    BACK = "back"


class Panel(Enum):
    YELLOW = "y"
    MAGENTA = "m"
    CYAN = "c"
    BLACK = "k"
    OVERLAY = "o"


class Bin(Enum):
    OUTPUT = "output"
    REJECT = "reject"


@dataclass(frozen=True)
class Timings:
    """Seconds each movement takes at speed 1 (working assumptions, see shared PROTOCOLS.md section 8)."""

    feed: float = 3.0  # feeder to an encoder station
    move_to_print: float = 1.0
    colour_panel: float = 4.0  # each of y, m, c
    k_panel: float = 2.0
    o_panel: float = 2.0
    eject: float = 1.5
    reject: float = 1.5
    cleaning: float = 20.0
    self_adjust: float = 5.0
    reset: float = 2.0
    magnetic: float = 1.5  # one pass under the magnetic head
    motor: float = 0.5  # a motor command (`Mc`, `Mf`, `Mh`, `Mr`)

    def panel(self, panel: Panel) -> float:
        """Seconds to print one panel."""
        if panel is Panel.BLACK:
            return self.k_panel
        if panel is Panel.OVERLAY:
            return self.o_panel
        return self.colour_panel


@dataclass(frozen=True)
class DutyCycle:
    """The print head's heat, in arbitrary units: each panel adds heat, time takes it away.

    At `stop_at` the printer reports cooling and refuses new cards until the head is down to
    `resume_at` (hysteresis, so it does not flap). Time is the printer's time: real seconds
    times the speed factor. The defaults (an assumption, shared PROTOCOLS.md section 8) make a
    long colour batch stop for about four minutes after some twenty cards in a row; the
    short batches of the tests and the demo never reach it.
    """

    heat_per_panel: float = 1.0
    cooling_per_s: float = 0.12
    stop_at: float = 60.0
    resume_at: float = 30.0

    def __post_init__(self) -> None:
        if not (0 <= self.resume_at < self.stop_at) or self.heat_per_panel < 0 or self.cooling_per_s <= 0:
            raise ValueError("duty cycle: need 0 <= resume_at < stop_at, heat_per_panel >= 0, cooling_per_s > 0")


@dataclass(frozen=True)
class Capacities:
    """How many cards the feeder, the output hopper and the reject box hold; None is no limit."""

    hopper: int | None = None
    output: int | None = None
    reject: int | None = None


@dataclass(frozen=True)
class PanelImage:
    """The bytes of one panel as the host sent them, for rebuilding the card's picture."""

    side: Side
    panel: Panel
    depth: int
    data: bytes = field(repr=False)


@dataclass
class CardInside:
    """The blank that is somewhere on the card path, with what has been done to it.

    `images` is not saved: after a restart the picture of a half-printed card is lost, as the
    panels already are on the card, not in the printer's memory.
    """

    blank_serial: str
    chip: Chip
    position: Station
    panels: list[str] = field(default_factory=list)
    images: list[PanelImage] = field(default_factory=list)
    magnetic: dict[str, str] = field(default_factory=dict)  # track -> data written by `Smw`


@dataclass
class CardTiming:
    """The printer's own time spent on one card, so a benchmark can set the agent against it.

    mechanics: movements and printing (divided by the speed factor); link: panel transfer time
    not hidden behind printing; reader: waiting for pcscd to see the chip come and go; cooling:
    the head cooling down (duty cycle) before this card could start.
    """

    fed_at: datetime
    mechanics_s: float = 0.0
    reader_s: float = 0.0
    link_s: float = 0.0
    cooling_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"fed_at": self.fed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "modelled_s": {"mechanics": round(self.mechanics_s, 4), "link": round(self.link_s, 4),
                               "reader": round(self.reader_s, 4), "cooling": round(self.cooling_s, 4)}}


@dataclass(frozen=True)
class CardLeft:
    """One card leaving the printer: what a `cards.jsonl` line records."""

    at: datetime
    printer: str
    bin: Bin
    blank_serial: str
    document_number: str | None
    panels: tuple[str, ...]
    images: tuple[PanelImage, ...] = ()
    timing: CardTiming | None = None
    magnetic: tuple[tuple[str, str], ...] = ()


def departure_line(card: CardLeft) -> dict[str, Any]:
    """A departing card as its card-log line (cards.jsonl), without the picture's name."""
    return {
        "at": card.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "printer": card.printer,
        "bin": card.bin.value,
        "blank_serial": card.blank_serial,
        "document_number": card.document_number,
        "panels": list(card.panels),
        **({"magnetic": dict(card.magnetic)} if card.magnetic else {}),
    }


@dataclass(frozen=True)
class Counters:
    cards_inserted: int
    panels_printed: int
    ribbon_remaining: int


@dataclass(frozen=True)
class StatusWords:
    """The three `Rst` words (bits in docs/PROTOCOLS.md section 1, "Status")."""

    info: int
    warning: int
    error: int


@dataclass
class PrinterState:
    """Everything a printer remembers across a power cycle."""

    hopper_remaining: int
    next_blank_number: int = 1
    cards_inserted: int = 0
    panels_printed: int = 0
    ribbon_remaining: int = RIBBON_CARDS
    ribbon_type: str = "ymcko"
    output_count: int = 0  # cards ever ejected to the output hopper
    reject_count: int = 0  # cards ever ejected to the reject box
    blanks_loaded: int = -1  # blanks ever put in the feeder (-1: the first hopper; set below)
    blanks_unloaded: int = 0  # blanks taken back out of the feeder by hand
    output_in_bin: int = 0  # cards in the output hopper now (emptied by the operator)
    reject_in_bin: int = 0
    sequence_open: bool = False
    side: Side = Side.FRONT
    card: CardInside | None = None
    pending_line: dict[str, Any] | None = None  # the card-log line of the last card that left (see _card_left)
    cleanings: int = 0  # cleaning cycles run (`Rco;n`)
    cards_since_cleaning: int = 0
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        if self.blanks_loaded < 0:
            self.blanks_loaded = self.hopper_remaining

    def to_json(self) -> dict[str, Any]:
        """The state as JSON values; the chip is kept only for the card inside."""
        card = None
        if self.card is not None:
            card = {
                "blank_serial": self.card.blank_serial,
                "position": self.card.position.value,
                "panels": list(self.card.panels),
                "chip": self.card.chip.to_json(),
                "magnetic": dict(self.card.magnetic),
            }
        return {
            "hopper_remaining": self.hopper_remaining,
            "next_blank_number": self.next_blank_number,
            "cards_inserted": self.cards_inserted,
            "panels_printed": self.panels_printed,
            "ribbon_remaining": self.ribbon_remaining,
            "ribbon_type": self.ribbon_type,
            "output_count": self.output_count,
            "reject_count": self.reject_count,
            "blanks_loaded": self.blanks_loaded,
            "blanks_unloaded": self.blanks_unloaded,
            "output_in_bin": self.output_in_bin,
            "reject_in_bin": self.reject_in_bin,
            "sequence_open": self.sequence_open,
            "side": self.side.value,
            "card": card,
            "pending_line": self.pending_line,
            "cleanings": self.cleanings,
            "cards_since_cleaning": self.cards_since_cleaning,
            "settings": self.settings.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], chip_type: ChipType) -> PrinterState:
        """Restore a saved state; raises KeyError/ValueError when a field is missing or wrong."""
        card = None
        if d.get("card") is not None:
            c = d["card"]
            card = CardInside(
                blank_serial=str(c["blank_serial"]),
                chip=chip_type.from_json(c["chip"]),
                position=Station(c["position"]),
                panels=[str(p) for p in c["panels"]],
                magnetic={str(k): str(v) for k, v in dict(c.get("magnetic", {})).items()},
            )
        return cls(
            hopper_remaining=int(d["hopper_remaining"]),
            next_blank_number=int(d["next_blank_number"]),
            cards_inserted=int(d["cards_inserted"]),
            panels_printed=int(d["panels_printed"]),
            ribbon_remaining=int(d["ribbon_remaining"]),
            ribbon_type=str(d["ribbon_type"]),
            output_count=int(d["output_count"]),
            reject_count=int(d["reject_count"]),
            # Files written before these fields existed: every blank is where the counts say.
            blanks_loaded=int(d.get("blanks_loaded", int(d["hopper_remaining"]) + int(d["output_count"])
                                    + int(d["reject_count"]) + (card is not None))),
            blanks_unloaded=int(d.get("blanks_unloaded", 0)),
            output_in_bin=int(d.get("output_in_bin", d["output_count"])),
            reject_in_bin=int(d.get("reject_in_bin", d["reject_count"])),
            sequence_open=bool(d["sequence_open"]),
            side=Side(d["side"]),
            card=card,
            pending_line=d.get("pending_line"),
            cleanings=int(d.get("cleanings", 0)),
            cards_since_cleaning=int(d.get("cards_since_cleaning", 0)),
            settings=Settings.from_json(d.get("settings")),
        )


@dataclass(frozen=True)
class Identity:
    """What the printer says about itself (`Rfv`, `Rsn`, `Rtp`)."""

    firmware: str = "SIM-1.0.0"
    serial_number: str = "SIMP00001"
    model: str = "Primacy (virtual)"


@dataclass(frozen=True)
class Equipment:
    """The options a printer model has; a command of a missing option is refused.

    `status_words`: the vendor SDK's status words (`Rpst`, `Rsid`) and the older `Rst`, which
    are in neither revision of the guide (a capability the driver detects and never requires);
    off unless asked for.
    """

    contactless: bool = True  # contactless encoder station (`Sic`, `Poc`, `Roc`)
    smart: bool = True  # smart-card contact station (`Sis`, `Pos`, `Ros`, `Psm`, `Rsm`)
    magnetic: bool = False  # magnetic encoder (`Dm`, `Pm*`, `Rm*`, `Smr`, `Smw`)
    feeder: bool = True  # a feeder that answers `Sk`
    dual_feeder: bool = False  # two feeders and two output hoppers (`Piem`, `Riem`, `Sk;f` 1 and 2)
    flip_over: bool = True  # a duplex printer: the flip-over station (`Sv`, `Sds;<`)
    output_hopper: bool = False  # an output hopper module that answers `Sds;?`
    status_words: bool = False  # `Rpst`, `Rsid`, `Rst`

    @classmethod
    def parse(cls, text: str) -> Equipment:
        """Options named in `text` (`contactless,smart,magnetic,status-words`); the rest off.

        Raises ValueError naming an unknown option.
        """
        names = {f.replace("_", "-"): f for f in cls.__dataclass_fields__}
        chosen = {w.strip() for w in text.split(",") if w.strip()}
        unknown = chosen - set(names)
        if unknown:
            raise ValueError(f"no printer option {', '.join(sorted(unknown))}; options are {', '.join(sorted(names))}")
        return cls(**{field_name: name in chosen for name, field_name in names.items()})


class SupplyRefused(Exception):
    """An operator action the printer cannot take (more blanks than the feeder holds, ...)."""


class Printer:
    """A virtual card printer. Commands run one at a time; movements take real time.

    Every command method either completes (state persisted, chip presence updated) or raises
    PrinterRefused before anything moves, or PrinterStopped when shutdown interrupts a movement.
    Call command and operator methods from the printer's own thread only; other threads use `call`.
    """

    def __init__(
        self,
        name: str,
        state: PrinterState,
        *,
        reader: EncoderReader,
        chip_type: ChipType,
        persist: Callable[[PrinterState], None],
        on_card_left: Callable[[CardLeft], None],
        stop: threading.Event,
        identity: Identity = Identity(),
        timings: Timings = Timings(),
        speed: float = 1.0,
        capacities: Capacities = Capacities(),
        duty_cycle: DutyCycle = DutyCycle(),
        on_card_fed: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        link_seconds: Callable[[], float] = lambda: 0.0,
        equipment: Equipment | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be above 0, not {speed}")
        self.name = name
        self.identity = identity
        self._equipment = equipment if equipment is not None else Equipment()
        self._state = state
        self._reader = reader
        self._chip_type = chip_type
        self._persist = persist
        self._on_card_left = on_card_left
        self._on_card_fed = on_card_fed
        self._stop = stop
        self._timings = timings
        self._speed = speed
        self._capacities = capacities
        self._duty = duty_cycle
        self._clock = clock
        self._heat = 0.0
        self._heat_at = clock()
        self._cooling = False
        self._fed_this_run = 0
        self._faults: set[Fault] = set()
        self._fault_ends: dict[Fault, float] = {}
        self._busy = False
        self._chip_presented = False
        self._inbox: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._link_seconds = link_seconds
        self._timing: CardTiming | None = None
        self._cooling_owed_s = 0.0
        self._printing_until = 0.0   # monotonic time the panel now printing is done
        self._previous_panel_s = 0.0
        self._link_mark = 0.0        # link seconds when the last panel (or side) was taken
        # The five bitmaps of the guide's "General Working": volatile, as a real printer's are.
        self._bitmaps: dict[Panel, tuple[int, bytes]] = {}
        self._hang_until = 0.0

    @property
    def settings(self) -> Settings:
        """The parameter memory (`P` commands set it, `R` commands read it)."""
        return self._state.settings

    @property
    def equipment(self) -> Equipment:
        return self._equipment

    @property
    def timings(self) -> Timings:
        return self._timings

    def save(self) -> None:
        """Keep the state now (a parameter changed)."""
        self._save()

    def pause(self, seconds: float) -> None:
        """`Sdm` / `Sdu`: the printer sleeps; real time, as the host asked (not scaled by speed)."""
        self._wait_until(time.monotonic() + seconds)

    def feeder_low(self) -> bool:
        """The feeder's warning sensor (`Sk;w`): at or below FEEDER_WARNING_AT blanks."""
        return self._state.hopper_remaining <= FEEDER_WARNING_AT

    def sensor_active(self, sensor: str) -> bool:
        """What a sensor of `Rse` sees: `o` the cover open, `p` a card at the print position,
        `m` a card at the first fork (the magnetic head / feeder stop), `f` blanks in the
        feeder, `n` more blanks than the near-empty level, `b` a card in the exit slot, `c` a
        ribbon in front of the colour sensor, `r` the coded disk turning."""
        s = self._state
        if sensor == "o":
            return Fault.COVER_OPEN in self._faults
        if sensor == "n":
            return s.hopper_remaining > FEEDER_WARNING_AT
        if sensor == "b":
            return False  # the exit slot: a card drops to the output hopper and does not wait there
        if sensor == "p":
            return s.card is not None and s.card.position is Station.PRINT
        if sensor == "m":
            return s.card is not None and s.card.position is not Station.PRINT
        if sensor == "f":
            return s.hopper_remaining > 0
        if sensor == "c":
            return s.ribbon_remaining > 0
        return self._busy

    def cleaning_due(self) -> bool:
        return self._state.cards_since_cleaning >= CLEANING_EVERY

    def cleaning_counts(self) -> tuple[int, int]:
        """Cleanings run, and cards printed since the last one."""
        return self._state.cleanings, self._state.cards_since_cleaning

    # -- other threads ------------------------------------------------------------------------

    def call(self, action: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run `action` on the printer's thread (between commands or during a movement); return its result.

        Raises what `action` raised, or TimeoutError when the printer's thread did not get to it.
        """
        item = _Call(action)
        self._inbox.put(item)
        if not item.done.wait(timeout):
            raise TimeoutError(f"{self.name} did not take the action within {timeout:g} s")
        if item.error is not None:
            raise item.error
        return item.result

    def hang(self, for_s: float) -> None:
        """The printer stops answering and moving for `for_s` real seconds, as if frozen
        (a firmware hang; `kill -STOP` of the simulator): from the next moment its thread looks at
        nothing, the host's bytes wait unread, a movement under way stands still."""
        self._hang_until = time.monotonic() + for_s
        log.warning("%s: hangs for %g s", self.name, for_s)

    def run_pending(self) -> None:
        """Run the actions other threads handed in, and end timed faults that are due (printer's thread)."""
        while time.monotonic() < self._hang_until and not self._stop.is_set():
            self._stop.wait(min(0.05, self._hang_until - time.monotonic()))
        now = self._clock()
        for fault, ends in list(self._fault_ends.items()):
            if now >= ends:
                self.set_fault(fault, False)
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                item.result = item.action()
            except Exception as e:  # handed back to the caller, whose action it was
                item.error = e
            item.done.set()

    # -- power -------------------------------------------------------------------------

    def power_on(self) -> None:
        """Bring the printer up: a sequence does not survive a power cycle (a card left inside
        stays where it is, and a card left at the contactless station shows its chip again)."""
        if self._state.sequence_open:
            self._state.sequence_open = False
            self._save()
        card = self._state.card
        if card is not None and card.position is Station.CONTACTLESS:
            self._present_chip(card)

    def power_off(self) -> None:
        """Take the chip off the reader and save the state, with what the host wrote on the chip."""
        self._withdraw_chip()
        # The host writes the chip through the reader, unseen by the printer: save it now, as
        # the card leaving the station would. A killed simulator loses such writes in progress.
        self._save()

    # -- reading ---------------------------------------------------------------------------

    def counters(self) -> Counters:
        s = self._state
        return Counters(s.cards_inserted, s.panels_printed, s.ribbon_remaining)

    def ribbon_type(self) -> str:
        return self._state.ribbon_type

    def cover_open(self) -> bool:
        return Fault.COVER_OPEN in self._faults

    def card_inside(self) -> bool:
        return self._state.card is not None

    def feeder_empty(self) -> bool:
        return self._state.hopper_remaining == 0

    def cooling(self) -> bool:
        """True while the head is too hot to start a card (see DutyCycle)."""
        heat = self.head_heat()
        if self._cooling and heat <= self._duty.resume_at:
            self._cooling = False
            log.info("%s: head cooled down, ready again", self.name)
        elif not self._cooling and heat >= self._duty.stop_at:
            self._cooling = True
            self._owe_cooling(heat)
            log.info("%s: head too hot, cooling", self.name)
        return self._cooling

    def _owe_cooling(self, heat: float) -> None:
        """The head needs this long to cool; it is the printer's own time, charged to the next card."""
        rate = self._duty.cooling_per_s * self._speed
        if rate > 0:
            self._cooling_owed_s += max(0.0, heat - self._duty.resume_at) / rate

    def head_heat(self) -> float:
        """The head's heat now, after the cooling since it was last looked at."""
        now = self._clock()
        self._heat = max(0.0, self._heat - self._duty.cooling_per_s * (now - self._heat_at) * self._speed)
        self._heat_at = now
        return self._heat

    def snapshot(self) -> dict[str, Any]:
        """What a technician sees on the printer's panel: supplies, bins, faults, heat (JSON values)."""
        s = self._state
        return {
            "hopper_remaining": s.hopper_remaining,
            "ribbon_remaining": s.ribbon_remaining,
            "output_in_bin": s.output_in_bin,
            "reject_in_bin": s.reject_in_bin,
            "output_count": s.output_count,
            "reject_count": s.reject_count,
            "blanks_loaded": s.blanks_loaded,
            "blanks_unloaded": s.blanks_unloaded,
            "cards_inserted": s.cards_inserted,
            "card_inside": s.card.blank_serial if s.card is not None else None,
            "faults": sorted(f.value for f in self._faults),
            "cooling": self.cooling(),
            "head_heat": round(self.head_heat(), 2),
        }

    def status(self) -> StatusWords:
        """The three status words, computed from state and injected faults."""
        s = self._state
        info = warning = error = 0
        if s.card is not None:
            info |= 0x01
            if s.card.position is Station.CONTACTLESS:
                info |= 0x02
            elif s.card.position is Station.PRINT:
                info |= 0x04
        if 0 < s.ribbon_remaining <= RIBBON_LOW_AT:
            info |= 0x08
        if self._busy:
            info |= 0x20
        if s.sequence_open:
            info |= 0x40
        if s.hopper_remaining == 0:
            warning |= 0x01
        if self._output_full():
            warning |= 0x02
        if self._reject_full():
            warning |= 0x04
        if s.ribbon_remaining == 0:
            warning |= 0x08
        if Fault.COVER_OPEN in self._faults:
            warning |= 0x20
            if s.card is not None:
                error |= 0x08
        if self.cooling():
            warning |= 0x40
        if Fault.JAM in self._faults:
            error |= 0x01
        return StatusWords(info, warning, error)

    # -- faults and operator actions ---------------------------------------------------------

    def set_fault(self, fault: Fault, active: bool, for_s: float | None = None) -> None:
        """Inject or clear a fault (the technician opening the cover, a card jamming, ...).

        With `for_s`, the fault clears by itself after that many real seconds.
        """
        self._fault_ends.pop(fault, None)
        if active:
            self._faults.add(fault)
            if for_s is not None:
                self._fault_ends[fault] = self._clock() + for_s
        else:
            self._faults.discard(fault)
        log.info("%s: %s %s", self.name, fault.value, "on" if active else "off")

    def clear_faults(self) -> None:
        """The technician cleared the jam and closed the cover. A jammed card stays where it stuck."""
        for fault in list(self._faults):
            self.set_fault(fault, False)

    def overheat(self) -> None:
        """The head is suddenly too hot: the printer cools down before the next card."""
        self.head_heat()
        self._heat = max(self._heat, self._duty.stop_at)
        if not self._cooling:
            self._owe_cooling(self._heat)
        self._cooling = True

    def load_ribbon(self, cards: int) -> None:
        """A fresh ribbon good for `cards` cards. Raises SupplyRefused for a negative count."""
        if cards < 0:
            raise SupplyRefused(f"a ribbon cannot hold {cards} cards")
        self._state.ribbon_remaining = cards
        self._save()

    def end_ribbon(self) -> None:
        """The ribbon runs out now; the card being printed (if started) is finished."""
        self._state.ribbon_remaining = 0
        self._save()

    def load_blanks(self, count: int) -> None:
        """Put `count` more blanks in the feeder. Raises SupplyRefused beyond its capacity."""
        s = self._state
        if count < 1:
            raise SupplyRefused(f"load at least one blank, not {count}")
        cap = self._capacities.hopper
        if cap is not None and s.hopper_remaining + count > cap:
            raise SupplyRefused(f"the feeder holds {cap} blanks; it has {s.hopper_remaining}, so at most "
                                f"{cap - s.hopper_remaining} more fit")
        s.hopper_remaining += count
        s.blanks_loaded += count
        self._save()

    def unload_blanks(self) -> int:
        """Take every blank out of the feeder (it is empty now); returns how many came out."""
        s = self._state
        taken = s.hopper_remaining
        s.hopper_remaining = 0
        s.blanks_unloaded += taken
        self._save()
        return taken

    def empty_bins(self) -> None:
        """The operator takes the cards out of the output hopper and the reject box."""
        self._state.output_in_bin = 0
        self._state.reject_in_bin = 0
        self._save()

    # -- commands ----------------------------------------------------------------------------

    def set_ribbon_type(self, ribbon_type: str) -> None:
        self._state.ribbon_type = ribbon_type
        self._save()

    def start_sequence(self) -> None:
        """`Ss`: open a card sequence; the card comes from the feeder at the first side or panel.

        Refuses with CARD_INSIDE while a card from an earlier, ended sequence is still on the path.
        A card already taken in the open sequence (a bare `Sic` before `Ss`) stays, and `Ss` is OK.
        """
        if self._state.card is not None and not self._state.sequence_open:
            raise PrinterRefused(Refusal.CARD_INSIDE)
        if self._state.card is None:
            self._state.side = Side.FRONT
        # Not saved: nothing physical moved, and a sequence does not survive a power cycle
        # (power_on closes it), so the state on disk is the same either way. The next save has it.
        self._state.sequence_open = True

    def feed(self, station: Station) -> str:
        """`Sic`/`Sis`/`Si`/`Sib`: take one blank from the hopper to `station`; returns its serial.

        Outside a sequence the feed opens one (the guide: `Se` "indicates the end of a command
        started by a Ss, a Si or a Sr"). Refuses with COVER_OPEN, JAM, CARD_INSIDE, COOLING,
        FEEDER_EMPTY, RIBBON_ENDED, HOPPER_FULL or REJECT_FULL (warnings that block a new card),
        and NO_CARD when the insertion mode is manual (`Pmi;M`: this printer has no manual slot).
        """
        self._require_can_feed()
        if self.settings.get("insertion") == "M":
            raise PrinterRefused(Refusal.NO_CARD)
        if not self._state.sequence_open:
            self._state.sequence_open = True
            self._state.side = Side.FRONT
        seconds = self._timings.feed
        if station is Station.PRINT:
            seconds += self._timings.move_to_print
        self._timing = CardTiming(fed_at=datetime.now(timezone.utc), cooling_s=self._cooling_owed_s)
        self._cooling_owed_s = 0.0
        self._move(seconds)
        s = self._state
        serial = f"BLK-{self.name}-{s.next_blank_number:06d}"
        s.hopper_remaining -= 1
        s.next_blank_number += 1
        s.cards_inserted += 1
        s.cards_since_cleaning += 1
        s.card = CardInside(blank_serial=serial, chip=self._chip_type(), position=station)
        self._save()
        log.info("%s: %s fed to the %s station", self.name, serial, station.value)
        self._fed_this_run += 1
        if self._on_card_fed is not None:
            # Scheduled faults for this card strike here: after the feed, before the chip is shown.
            self._on_card_fed(self._fed_this_run)
        if station is Station.CONTACTLESS:
            self._present_chip(s.card)
        return serial

    def select_side(self, side: Side) -> None:
        """`Sr`/`Sv`: the following panels are for `side`; the card moves to the print position.

        With no card yet, the printer takes one from its feeder first (the guide's own example
        and the vendor's streams send `Ss`, `Sr`, panels, `Se` with no `Si`). Outside a sequence
        `Sr` opens one. Refuses as `feed` does, and with COVER_OPEN or JAM.
        """
        if self._state.card is None:
            self.feed(Station.PRINT)
        self._state.sequence_open = True
        card = self._require_card()
        self._require_mechanics()
        self._to_print_position(card)
        self._finish_printing()
        self._state.side = side
        self._previous_panel_s = 0.0  # the first panel of a side has nothing to hide its transfer behind
        self._link_mark = self._link_seconds()
        self._save()

    def download(self, panel: Panel, depth: int, data: bytes) -> None:
        """`Db`/`Dbc`/`Dbp`/`Dbpc`: the panel goes into the printer's bitmap memory and, in a
        sequence, is printed on the current side (a card is taken from the feeder if none is in).
        Outside a sequence nothing moves. Refuses as `print_panel` does.
        """
        self._bitmaps[panel] = (depth, data)
        if self._state.sequence_open or self._state.card is not None:
            self.print_panel(panel, depth, data)

    def print_from_memory(self, panel: Panel) -> None:
        """`Ssd;<p>` / `Sp;<p>`: print the panel held in bitmap memory, as if downloaded again.
        A panel never downloaded (or cleared) prints no ink."""
        depth, data = self._bitmaps.get(panel, (2, bytes(PANEL_BYTES_MONO)))
        if not self._state.sequence_open and self._state.card is None:
            self._state.sequence_open = True
        self.print_panel(panel, depth, data)

    def bitmap(self, panel: Panel) -> tuple[int, bytes]:
        """The bitmap memory of `panel` (depth, bytes); a blank 1-bit panel when none is held."""
        return self._bitmaps.get(panel, (2, bytes(PANEL_BYTES_MONO)))

    def set_bitmap(self, panel: Panel, depth: int, data: bytes) -> None:
        """Replace a bitmap in memory without printing (`Wcb`, `Wl`, `Wt`, `Wb`, `Dbmp`)."""
        self._bitmaps[panel] = (depth, data)

    def print_panel(self, panel: Panel, depth: int = 2, data: bytes = b"") -> None:
        """Print one panel on the current side of the card inside (`data` kept for the card's picture).

        With no card inside, the printer first takes one from its feeder. Refuses as `feed`
        does, with COVER_OPEN or JAM, and RIBBON_ENDED (no ribbon left for a card not yet started).
        """
        if self._state.card is None:
            self.feed(Station.PRINT)
        self._state.sequence_open = True
        card = self._require_card()
        self._require_mechanics()
        first_panel = not card.panels
        if first_panel and self._state.ribbon_remaining == 0:
            raise PrinterRefused(Refusal.RIBBON_ENDED)
        self._to_print_position(card)
        # Downloading a panel starts printing it once the previous one is done, and the answer
        # comes then: the next panel's bytes cross the link while this one prints.
        self._finish_printing()
        printing_s = self._timings.panel(panel) / self._speed
        self._printing_until = time.monotonic() + printing_s
        self._account_panel(printing_s)
        s = self._state
        card.panels.append(f"{s.side.value}:{panel.value}")
        if data:
            card.images.append(PanelImage(s.side, panel, depth, data))
        s.panels_printed += 1
        self.head_heat()
        self._heat += self._duty.heat_per_panel
        if first_panel:
            s.ribbon_remaining -= 1  # one ribbon panel set per card
        self._save()

    def end_sequence(self) -> None:
        """`Se`: end the sequence; the card inside (if any) is ejected to the output hopper.

        A sequence with no card in it just ends. Refuses with NO_CARD when there is neither a
        sequence nor a card, and with COVER_OPEN, JAM or HOPPER_FULL.
        """
        if self._state.card is None:
            if not self._state.sequence_open:
                raise PrinterRefused(Refusal.NO_CARD)
            self._state.sequence_open = False
            self._state.side = Side.FRONT
            self._save()
            return
        self.eject()

    def eject(self) -> None:
        """Eject the card inside to the output hopper, ending the sequence.

        Refuses with NO_CARD, COVER_OPEN, JAM or HOPPER_FULL.
        """
        card = self._require_card()
        self._require_mechanics()
        if self._output_full():
            raise PrinterRefused(Refusal.HOPPER_FULL)
        self._to_print_position(card)
        self._move(self._timings.eject)
        self._state.output_count += 1
        self._state.output_in_bin += 1
        self._card_left(card, Bin.OUTPUT)

    def reject(self) -> None:
        """`Ser` / `Seb`: eject the card to the reject box, wherever it is; ends the sequence.

        Refuses with NO_CARD, COVER_OPEN, JAM or REJECT_FULL.
        """
        card = self._require_card()
        self._require_mechanics()
        if self._reject_full():
            raise PrinterRefused(Refusal.REJECT_FULL)
        self._withdraw_chip()
        self._move(self._timings.reject)
        self._state.reject_count += 1
        self._state.reject_in_bin += 1
        self._card_left(card, Bin.REJECT)

    def insert_and_eject(self) -> None:
        """`Sie`: take a blank and eject it at once, to check the card path; it counts like any card."""
        self.feed(Station.PRINT)
        self.eject()

    def move_card(self, seconds: float) -> None:
        """`Mc`, `Mf`, `Mh`, `Mr`: a motor runs; refuses with COVER_OPEN or JAM."""
        self._require_mechanics()
        self._move(seconds)

    def write_magnetic(self, tracks: dict[str, str]) -> None:
        """`Smw`: encode the tracks downloaded with `Dm` on the card inside (one is taken if none is)."""
        if self._state.card is None:
            self.feed(Station.PRINT)
        card = self._require_card()
        self._require_mechanics()
        self._move(self._timings.magnetic)
        card.magnetic.update(tracks)
        self._save()

    def read_magnetic(self, track: str) -> str:
        """`Smr;<t>`: the track as encoded on the card inside. Refuses NO_CARD, or MAGNETIC when blank."""
        card = self._require_card()
        self._require_mechanics()
        self._move(self._timings.magnetic)
        if track not in card.magnetic:
            raise PrinterRefused(Refusal.MAGNETIC_DATA)
        return card.magnetic[track]

    def card_position(self) -> Station | None:
        """Where the card inside is (`Rlr;p`), or None with no card inside."""
        return self._state.card.position if self._state.card is not None else None

    def clean(self) -> None:
        """`Scp`: a cleaning cycle; refuses with CARD_INSIDE, COVER_OPEN or JAM."""
        self._maintenance(self._timings.cleaning)
        self._state.cleanings += 1
        self._state.cards_since_cleaning = 0
        self._save()

    def self_adjust(self) -> None:
        """`Sa`: self-adjustment; refuses with CARD_INSIDE, COVER_OPEN or JAM."""
        self._maintenance(self._timings.self_adjust)

    def reset(self) -> None:
        """`Srs`: software reset, "like when we restart it": closes the sequence, forgets the
        volatile settings and the bitmap memory, leaves any card where it is."""
        self._move(self._timings.reset)
        self._state.sequence_open = False
        self._state.settings.power_cycle()
        self._bitmaps.clear()
        self._save()

    def test_card(self) -> None:
        """`St` / `Stt`: feed a blank, print a YMCKO test front and eject it; it counts like any card."""
        self._require_can_feed()
        self.start_sequence()
        self.feed(Station.PRINT)
        for panel in Panel:
            self.print_panel(panel)
        self.eject()

    # -- internals ---------------------------------------------------------------------------

    def _maintenance(self, seconds: float) -> None:
        if self._state.card is not None:
            raise PrinterRefused(Refusal.CARD_INSIDE)
        self._require_mechanics()
        self._move(seconds)

    def _require_sequence(self) -> None:
        if not self._state.sequence_open:
            raise PrinterRefused(Refusal.NO_SEQUENCE)

    def _require_can_feed(self) -> None:
        self._require_mechanics()
        if self._state.card is not None:
            raise PrinterRefused(Refusal.CARD_INSIDE)
        if self.cooling():
            raise PrinterRefused(Refusal.COOLING)
        if self._state.hopper_remaining == 0:
            raise PrinterRefused(Refusal.FEEDER_EMPTY)
        if self._state.ribbon_remaining == 0:
            raise PrinterRefused(Refusal.RIBBON_ENDED)
        if self._output_full():
            raise PrinterRefused(Refusal.HOPPER_FULL)
        if self._reject_full():
            raise PrinterRefused(Refusal.REJECT_FULL)

    def _require_card(self) -> CardInside:
        if self._state.card is None:
            raise PrinterRefused(Refusal.NO_CARD)
        return self._state.card

    def _require_mechanics(self) -> None:
        if Fault.COVER_OPEN in self._faults:
            raise PrinterRefused(Refusal.COVER_OPEN)
        if Fault.JAM in self._faults:
            raise PrinterRefused(Refusal.JAM)

    def _output_full(self) -> bool:
        cap = self._capacities.output
        return cap is not None and self._state.output_in_bin >= cap

    def _reject_full(self) -> bool:
        cap = self._capacities.reject
        return cap is not None and self._state.reject_in_bin >= cap

    def _to_print_position(self, card: CardInside) -> None:
        if card.position is Station.PRINT:
            return
        # The chip must be gone from the reader before the movement is acknowledged.
        self._withdraw_chip()
        self._move(self._timings.move_to_print)
        card.position = Station.PRINT
        self._save()

    def _move(self, seconds: float) -> None:
        """Spend `seconds` of printer time; actions from other threads still run meanwhile."""
        self._finish_printing()
        if self._timing is not None:
            self._timing.mechanics_s += seconds / self._speed
        self._wait_until(time.monotonic() + seconds / self._speed)

    def _account_panel(self, printing_s: float) -> None:
        """The printer's own time for a panel: its printing, and the part of its transfer that no
        printing of the panel before could hide (what an infinitely quick host would still wait)."""
        link_now = self._link_seconds()
        transfer_s, self._link_mark = link_now - self._link_mark, link_now
        if self._timing is not None:
            self._timing.mechanics_s += printing_s
            self._timing.link_s += max(0.0, transfer_s - self._previous_panel_s)
        self._previous_panel_s = printing_s

    def _finish_printing(self) -> None:
        """Let the panel being printed finish before anything else moves."""
        self._wait_until(self._printing_until)

    def _wait_until(self, deadline: float) -> None:
        self._busy = True
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if self._stop.wait(min(left, MOVE_SLICE_S)):
                    raise PrinterStopped(f"{self.name} stopped during a movement")
                self.run_pending()
        finally:
            self._busy = False

    def _card_left(self, card: CardInside, bin_: Bin) -> None:
        s = self._state
        s.card = None
        s.sequence_open = False
        s.side = Side.FRONT
        timing, self._timing = self._timing, None
        left = CardLeft(
            at=datetime.now(timezone.utc),
            printer=self.name,
            bin=bin_,
            blank_serial=card.blank_serial,
            document_number=card.chip.document_number(),
            panels=tuple(card.panels),
            images=tuple(card.images),
            timing=timing,
            magnetic=tuple(sorted(card.magnetic.items())),
        )
        # One atomic step: the state, with the card gone and its card-log line in it, is the
        # commit; the line is appended after, and a start after a power cut in between appends
        # it then (simulate.replay_departures), so the log never shows a card twice nor loses one.
        s.pending_line = departure_line(left)
        self._save()
        self._on_card_left(left)
        log.info("%s: %s left to the %s (%d panels)", self.name, card.blank_serial, bin_.value, len(card.panels))

    def _present_chip(self, card: CardInside) -> None:
        started = time.monotonic()
        try:
            self._reader.insert(card.chip)
        except OSError as e:
            # A dead reader is a fault of the printer, not of the command: the host finds no
            # card on the reader and rejects it, as with real hardware.
            log.warning("%s: the encoder reader did not take the chip of %s: %s", self.name, card.blank_serial, e)
            return
        finally:
            if self._timing is not None:
                self._timing.reader_s += time.monotonic() - started
        self._chip_presented = True

    def _withdraw_chip(self) -> None:
        if self._chip_presented:
            started = time.monotonic()
            self._reader.remove()
            self._chip_presented = False
            if self._timing is not None:
                self._timing.reader_s += time.monotonic() - started

    def _save(self) -> None:
        self._persist(self._state)


MOVE_SLICE_S = 0.05  # how often a movement looks at actions handed in by other threads


@dataclass
class _Call:
    action: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
