"""The Evolis escape-command language (docs/PROTOCOLS.md, section 1), over any Link.

One command at a time: discard stale input, send `ESC fields CR`, wait for the reply with
the command's own timeout. The dialect never knows which transport carries it.

The printer's state comes from the reads the Programming Guide documents (`Rse;o` the cover
sensor, `Rlr;p` where the card is, `Sk;f` the feeder, `Rcr` the ribbon's end mark, `Rlr;r`
cleaning, `Rco` counters). The status words `Rst` of newer firmware are a capability found at
connect (`detect_capabilities`) and used only when the printer answers them. A printer left in
the ACK/NACK protocol (guide section 5) is understood as well as one answering in text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from drivers.faults import Fault
from drivers.link.base import ACK, NACK, Link
from drivers.evolis.panels import MonoForms
from drivers.printer_errors import CommandRejected, LinkError, PrinterError, ProtocolError, ReplyTimeout
from drivers.evolis.status import PrinterStatus, parse_sdk_status, parse_status

# The errors live in drivers.printer_errors; they are offered here too because callers of the
# dialect catch them beside it.
__all__ = [
    "Capabilities",
    "CardPosition",
    "CommandRejected",
    "Counters",
    "JobSettings",
    "EvolisPrinter",
    "LinkError",
    "Panel",
    "PrinterError",
    "PrinterIdentity",
    "ProtocolError",
    "ReplyTimeout",
    "Timeouts",
    "panel_size",
]

PANEL_WIDTH = 648  # dots a line
PANEL_LINES = 1016
DEPTH_BITS: dict[int, int] = {2: 1, 32: 5, 64: 6, 128: 7}
PANEL_NAMES = ("y", "m", "c", "k", "o")
# K (black resin) and O (overlay) are on/off: always sent at depth 2.
MONO_PANELS = ("k", "o")

ESC = b"\x1b"
CR = b"\r"

# Refusals, mapped to a Fault where they name a printer condition. Field code written against
# real printers compares these replies (docs/PROTOCOLS.md "Replies"): the older whole-word
# answers (`FEEDER EMPTY`, `CARD JAM`...), `ERROR ...` and `ERR ...`. Others (`ERROR CDE`,
# `ERROR PARAMETRES`, ...) are the host's mistake: fault None.
REFUSAL_FAULTS: dict[str, Fault] = {
    "FEEDER EMPTY": Fault.FEEDER_EMPTY,
    "ERR FEEDER EMPTY": Fault.FEEDER_EMPTY,
    "COVER OPEN": Fault.COVER_OPEN,
    "ERR COVER OPEN": Fault.COVER_OPEN,
    "HOPPER DOOR": Fault.COVER_OPEN,
    "CARD JAM": Fault.JAM,
    "ERR JAM": Fault.JAM,
    "ERROR TIME OUT": Fault.JAM,  # "time-out error, mechanical error"
    "ERR TIME": Fault.JAM,
    "ERROR HOPPER": Fault.JAM,  # "error mechanics hopper"
    "HOPPER FULL": Fault.HOPPER_FULL,
    "ERR HOPPER FULL": Fault.HOPPER_FULL,
    "ERR REJECT BOX FULL": Fault.REJECT_FULL,
    "ERR REJECT FULL": Fault.REJECT_FULL,
    "ERROR RIBBON": Fault.RIBBON_ENDED,  # "no ribbon or bad ribbon": a new ribbon is the remedy
    "ERR RIBBON": Fault.RIBBON_ENDED,
    "ERR RIBBON ENDED": Fault.RIBBON_ENDED,
    "ERR RIB DETECTION": Fault.RIBBON_MISSING,
    "ERR NO RIBBON": Fault.RIBBON_MISSING,
    "ERR RIBBON TYPE": Fault.RIBBON_WRONG,
    "ERROR HEAD": Fault.HEAD_HOT,
    "ERR COOLING": Fault.HEAD_HOT,
    "NEED CLEANING": Fault.CLEANING_REQUIRED,
    "ERR NEED CLEANING": Fault.CLEANING_REQUIRED,
    "ERR FEEDER ERROR": Fault.FEEDER_ERROR,
}
# Whole replies that are refusals without `ERR` in front (older firmware's words).
BARE_REFUSALS = frozenset({"FEEDER EMPTY", "COVER OPEN", "HOPPER DOOR", "CARD JAM", "HOPPER FULL",
                           "NEED CLEANING", "OPT NOT AVAILABLE"})
UNKNOWN_COMMAND_REPLY = "ERROR CDE"


def is_refusal(reply: str) -> bool:
    """True for a reply that says the command was refused: it starts with `ERR` (the vendor
    SDK's own test, which `ERROR ...` passes too) or is one of the older whole-word answers."""
    return reply.startswith("ERR") or " ".join(reply.split()).upper() in BARE_REFUSALS


# ACK/NACK codes (guide section 5) that name a printer condition.
NACK_FAULTS: dict[str, Fault] = {
    "T": Fault.JAM,  # "Time-Out Error, Mechanical Error"
    "C": Fault.COVER_OPEN,
    "F": Fault.FEEDER_EMPTY,
    "R": Fault.RIBBON_ENDED,
}

# A sensor (`Rse`) reads a voltage; above this it sees something (a card, the closed cover,
# blanks). Field code reads "0,2x Volts" / "0,00 Volts" against "4,9x Volts" / "5,00 Volts".
SENSOR_ON_VOLTS = 2.5

IDENTITY_READINGS = 6  # at connect: read the identity until two readings agree, at most this often
# The orders the identity is asked in, in turn. Each field follows a different command in each
# order, so a conversation one, two or three answers behind the questions (a dead host's answers
# still arriving) reads differently each time and never passes for two readings that agree.
IDENTITY_ORDERS = (("Rtp", "Rfv", "Rsn"), ("Rfv", "Rsn", "Rtp"))
# After two readings disagree, input is dropped until the line has been quiet this long (a late
# answer still on its way is gone before the next reading), and for no longer than IDENTITY_DRAIN_S.
IDENTITY_QUIET_S = 0.2
IDENTITY_DRAIN_S = 2.0
MIN_PATIENCE_S = 10.0  # the least a step may take before the printer counts as not responding

RIBBONS = ("ymcko", "ymckos", "ymckok", "ko", "kb", "kw", "kr", "kbl", "kgr", "kgo", "ksi", "ksc",
           "h", "ho", "ktc", "ktp", "ka")


class CardPosition(Enum):
    """Where the card inside the printer is (`Rlr;p`)."""

    NONE = "OK"
    PRINT = "CARD"
    CONTACT = "SMART CARD"
    CONTACTLESS = "CONTACTLESS CARD"


@dataclass(frozen=True)
class Capabilities:
    """What this printer answers beyond the guide's documented reads, found at connect.

    `status_command`: `Rpst` (the vendor SDK's status words) or `Rst` (the older status words
    of this project's first simulator), or None: the guide's reads only. `feeder_sensor`: how
    the feeder is read, `Sk;f` (a feeder that answers) or `Rse;f` (its sensor), or None.
    """

    status_command: str | None = None
    feeder_sensor: str | None = "Sk;f"
    ack_nack: bool = False  # the printer answers in the ACK/NACK protocol

    @property
    def status_words(self) -> bool:
        return self.status_command is not None

    def as_json(self) -> dict[str, object]:
        return {"status_words": self.status_command, "feeder_sensor": self.feeder_sensor, "ack_nack": self.ack_nack}


@dataclass(frozen=True)
class JobSettings:
    """The parameters sent before every card, as the vendor's own driver does, so that a card
    never depends on what the printer last stored: ribbon type, insertion from the feeder,
    contrast of every colour (0..20, the printer's default is 10).

    Raises ValueError for an unknown ribbon or a contrast out of range.
    """

    ribbon: str = "ymcko"
    contrast: int = 10

    def __post_init__(self) -> None:
        if self.ribbon not in RIBBONS:
            raise ValueError(f"no ribbon type {self.ribbon!r}; the printer takes {', '.join(RIBBONS)}")
        if not 0 <= self.contrast <= 20:
            raise ValueError(f"contrast {self.contrast} is out of 0..20 (the printer's default is 10)")

    def commands(self) -> tuple[str, ...]:
        return (f"Pr;{self.ribbon}", "Pmi;F", f"Pc;a;=;{self.contrast}")


def panel_size(depth: int) -> int:
    """Bytes in one panel at `depth`. Raises ValueError for a depth the language does not have."""
    if depth not in DEPTH_BITS:
        raise ValueError(f"no panel depth {depth}; the printer takes {sorted(DEPTH_BITS)}")
    return PANEL_WIDTH * PANEL_LINES * DEPTH_BITS[depth] // 8


@dataclass(frozen=True)
class Panel:
    """One colour panel of one card face, packed as the printer takes it.

    Raises ValueError for an unknown panel name or depth, K or O at a depth other than 2,
    or data whose length does not match the depth.
    """

    name: str
    depth: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.name not in PANEL_NAMES:
            raise ValueError(f"no panel {self.name!r}; panels are {', '.join(PANEL_NAMES)}")
        expected = panel_size(self.depth)
        if self.name in MONO_PANELS and self.depth != 2:
            raise ValueError(f"panel {self.name} is printed at depth 2, not {self.depth}")
        if len(self.data) != expected:
            raise ValueError(
                f"panel {self.name} at depth {self.depth} must be {expected} bytes, got {len(self.data)}"
            )


@dataclass(frozen=True)
class PrinterIdentity:
    model: str
    firmware: str
    serial: str


@dataclass(frozen=True)
class Counters:
    """The printer's persistent counters: cards inserted, panels printed, ribbon cards left."""

    cards: int
    panels: int
    ribbon_left: int


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for each kind of reply, sized for the slowest printer at speed 1.

    A mechanical command replies only when the movement is over, so its timeout must cover
    the movement; a panel's timeout starts once its bytes are sent.
    """

    query: float = 5.0
    move: float = 30.0  # feed to a station or the print position, turn the card over
    panel: float = 60.0  # print the previous panel while this one downloads
    finish: float = 90.0  # Se / Ser: print the last panel, then eject
    maintenance: float = 180.0  # cleaning, reset, test card

    def patience(self, timeout: float, transfer_s: float) -> float:
        """How long a reply may take before the printer counts as not responding: twice what the
        step should take (its mechanics at speed 1, and its bytes on the link), at least
        MIN_PATIENCE_S. The step's own timeout still bounds the wait."""
        expected = {self.query: 0.5, self.move: 4.0, self.panel: 5.0, self.finish: 3.0, self.maintenance: 60.0}
        return min(timeout, max(MIN_PATIENCE_S, 2 * (expected.get(timeout, timeout / 4) + transfer_s)))


class EvolisPrinter:
    """An Evolis-language card printer on `link`.

    Every method may raise CommandRejected (the printer answered ERR), ReplyTimeout (no
    reply in time), ProtocolError (a reply of the wrong shape) or LinkError; all are
    PrinterError with `.fault`.
    """

    def __init__(self, link: Link, *, timeouts: Timeouts = Timeouts(), compress_mono: bool = True,
                 on_unresponsive: Callable[[str, float], None] | None = None,
                 on_responsive: Callable[[str], None] | None = None) -> None:
        self._link = link
        # Told when a reply is overdue (the command, seconds waited) and when it comes after all.
        self.on_unresponsive = on_unresponsive
        self.on_responsive = on_responsive
        self._timeouts = timeouts
        # A printer whose firmware lacks `Dbc` takes every panel raw.
        self._compress_mono = compress_mono
        self._mono_forms = MonoForms()
        self.capabilities = Capabilities()
        self._ack_seen = False

    # -- queries -----------------------------------------------------------------------

    def identity(self) -> PrinterIdentity:
        """Model, firmware version and serial number, read until two readings agree.

        The first thing a host asks after connecting: a host that died mid-command leaves the
        printer to answer that command first (it takes one at a time, in order), so the first
        reply may be the dead host's. Two identical readings in a row mean the conversation is
        in step. Raises ProtocolError when it never settles.
        """
        previous: PrinterIdentity | None = None
        for reading_number in range(IDENTITY_READINGS):
            order = IDENTITY_ORDERS[reading_number % len(IDENTITY_ORDERS)]
            try:
                values = {command: self._value(command) for command in order}
            except (CommandRejected, ProtocolError):
                previous = None  # a stale refusal or value in the way: read again
                self._link.drain(quiet=IDENTITY_QUIET_S, most=IDENTITY_DRAIN_S)
                continue
            reading = PrinterIdentity(model=values["Rtp"], firmware=values["Rfv"], serial=values["Rsn"])
            if reading == previous:
                return reading
            if previous is not None:
                self._link.drain(quiet=IDENTITY_QUIET_S, most=IDENTITY_DRAIN_S)
            previous = reading
        raise ProtocolError("the printer's answers to Rtp, Rfv and Rsn do not settle: is another program using it?")

    def counters(self) -> Counters:
        """Cards inserted so far, panels printed so far, cards the ribbon can still print."""
        return Counters(
            cards=self._count("Rco;c"),
            panels=self._count("Rco;p"),
            ribbon_left=self._count("Rco;l"),
        )

    def ribbon_left(self) -> int:
        """Cards the ribbon can still print: one query."""
        return self._count("Rco;l")

    def card_count(self) -> int:
        """Cards inserted so far (persistent): one query, for the journal's evidence around each card."""
        return self._count("Rco;c")

    def detect_capabilities(self) -> Capabilities:
        """Ask what this printer answers beyond the guide (call once after connecting).

        The vendor SDK's `Rpst`, then `Rst`, are tried once each; the feeder is read by `Sk;f`
        where the printer answers it, else by its sensor `Rse;f`. A printer that answers none of
        them is still read through the guide's cover, card and ribbon reads.
        """
        status_command = None
        for command, parse in (("Rpst", parse_sdk_status), ("Rst", parse_status)):
            try:
                parse(self._value(command))
            except (CommandRejected, ProtocolError):
                continue
            status_command = command
            break
        feeder: str | None = None
        for command in ("Sk;f", "Rse;f"):
            try:
                self._feeder_empty_by(command)
            except (CommandRejected, ProtocolError):
                continue
            feeder = command
            break
        self.capabilities = Capabilities(status_command=status_command, feeder_sensor=feeder, ack_nack=self._ack_seen)
        return self.capabilities

    def status(self) -> PrinterStatus:
        """The printer's condition now: from the status words where the printer has them, else
        from the guide's documented reads (cover, card position, feeder, ribbon end, cleaning).

        Conditions no documented read shows (a jam, a hot head, a full bin) are learnt from the
        refusal of the command they stop; the caller keeps them until that command succeeds.
        """
        command = self.capabilities.status_command
        if command == "Rpst":
            return parse_sdk_status(self._value("Rpst"))
        if command == "Rst":
            return parse_status(self._value("Rst"))
        position = self.card_position()
        faults: set[Fault] = set()
        if self.cover_open():
            faults.add(Fault.COVER_OPEN)
        if self.capabilities.feeder_sensor is not None and self._feeder_empty_by(self.capabilities.feeder_sensor):
            faults.add(Fault.FEEDER_EMPTY)
        if self.ribbon_ended():
            faults.add(Fault.RIBBON_ENDED)
        return PrinterStatus(
            card_inside=position is not CardPosition.NONE,
            card_at_contactless=position is CardPosition.CONTACTLESS,
            card_at_print=position is CardPosition.PRINT,
            cleaning_recommended=self.cleaning_due(),
            faults=frozenset(faults),
        )

    def _feeder_empty_by(self, command: str) -> bool:
        if command == "Rse;f":
            return not self._sensor("Rse;f")  # about 5 V with blanks in the feeder, 0 V empty
        return self.feeder_empty()

    def cover_open(self) -> bool:
        """True when the cover sensor (`Rse;o`) reads low: it reads about 5 V while the cover is
        closed and 0 V when it is open, as field code against real printers reads it."""
        return not self._sensor("Rse;o")

    def card_position(self) -> CardPosition:
        """Where the card inside is (`Rlr;p`): nowhere, at the print position or at an encoder station."""
        reply = self._value("Rlr;p")
        try:
            return CardPosition(reply)
        except ValueError:
            raise ProtocolError(f"Rlr;p: expected one of {', '.join(p.value for p in CardPosition)}, "
                                f"got {reply[:60]!r}") from None

    def card_present(self) -> bool:
        """True when a card is inside the printer."""
        return self.card_position() is not CardPosition.NONE

    def feeder_empty(self) -> bool:
        """True when the feeder has no blank to give (`Sk;f`).

        `1` / `2` mean one of two feeders is empty and the other can still feed (the guide's
        table for `Sk;f`); `3` means no blank anywhere.
        """
        return self._flag("Sk;f", {"0": False, "1": False, "2": False, "3": True})

    def ribbon_ended(self) -> bool:
        """True when the ribbon is at its black end mark (`Rcr` answers OK otherwise, and the
        guide does not say what it answers on the mark: anything but OK counts as the end)."""
        try:
            self._ok("Rcr", timeout=self._timeouts.query)
        except (CommandRejected, ProtocolError):
            return True
        return False

    def cleaning_due(self) -> bool:
        """True when the printer asks for a cleaning (`Rlr;r` answers `ERR NEED CLEANING`; it
        answers the last reply otherwise, which may be any refusal)."""
        try:
            self._value("Rlr;r")
        except CommandRejected as e:
            return "CLEANING" in e.reply.upper()
        return False

    def ribbon_type(self) -> str:
        """The fitted ribbon, e.g. `ymcko`."""
        return self._value("Rr")

    def apply_job_settings(self, settings: JobSettings) -> None:
        """Send the per-job parameters (ribbon, insertion, contrast), as the vendor driver does."""
        for command in settings.commands():
            self._ok(command, timeout=self._timeouts.query)

    # -- card movement -----------------------------------------------------------------

    def start_sequence(self) -> None:
        """Open a card sequence (`Ss`)."""
        self._ok("Ss", timeout=self._timeouts.query)

    def feed_to_contactless(self) -> None:
        """Take a blank from the feeder to the contactless encoder station (`Sic`)."""
        self._ok("Sic", timeout=self._timeouts.move)

    def feed_to_contact(self) -> None:
        """Take a blank from the feeder to the contact encoder station (`Sis`)."""
        self._ok("Sis", timeout=self._timeouts.move)

    def feed_to_print(self) -> None:
        """Take a blank from the feeder to the print position (`Si`)."""
        self._ok("Si", timeout=self._timeouts.move)

    def front(self) -> None:
        """The following panels are for the front (`Sr`)."""
        self._ok("Sr", timeout=self._timeouts.move)

    def back(self) -> None:
        """The following panels are for the back; the card is turned over (`Sv`)."""
        self._ok("Sv", timeout=self._timeouts.move)

    def download(self, panel: Panel) -> None:
        """Send one panel in a single write; the printer prints it.

        K and O go compressed (`Dbc;<p>;2;<length>;<data>`, drivers/evolis/panels.py) when that
        is shorter, which it is for any panel of text, barcodes or solid varnish; everything else
        goes as `Db;<p>;<d>;<data>`. Constructed with `compress_mono=False`, every panel goes as `Db`.
        """
        if self._compress_mono and panel.name in MONO_PANELS:
            packed = self._mono_forms.compressed(panel.data)
            if len(packed) < len(panel.data):
                header = b"Dbc;%s;2;%d;" % (panel.name.encode("ascii"), len(packed))
                self._ok(f"Dbc;{panel.name};2", timeout=self._timeouts.panel,
                         frame=b"".join((ESC, header, packed, CR)))
                return
        header = b"Db;%s;%d;" % (panel.name.encode("ascii"), panel.depth)
        self._ok(
            f"Db;{panel.name};{panel.depth}",
            timeout=self._timeouts.panel,
            frame=b"".join((ESC, header, panel.data, CR)),
        )

    def eject(self) -> None:
        """Finish printing and eject the card to the output hopper (`Se`)."""
        self._ok("Se", timeout=self._timeouts.finish)

    def reject(self) -> None:
        """Eject the card to the reject box, ending the sequence (`Ser`)."""
        self._ok("Ser", timeout=self._timeouts.finish)

    # -- maintenance -------------------------------------------------------------------

    def clean(self) -> None:
        """Run the cleaning cycle (`Scp`); a cleaning card must be in the feeder."""
        self._ok("Scp", timeout=self._timeouts.maintenance)

    def reset(self) -> None:
        """Software reset (`Srs`)."""
        self._ok("Srs", timeout=self._timeouts.maintenance)

    def self_test(self) -> None:
        """Print the printer's test card (`St`)."""
        self._ok("St", timeout=self._timeouts.maintenance)

    def close(self) -> None:
        """Close the link."""
        self._link.close()

    # -- one command ---------------------------------------------------------------------

    def _command(self, command: str, *, timeout: float, frame: bytes | None = None) -> str:
        self._link.reset_input()
        data = frame if frame is not None else ESC + command.encode("ascii") + CR
        self._link.send(data)
        overdue = False

        def told(waited: float) -> None:
            nonlocal overdue
            overdue = True
            if self.on_unresponsive is not None:
                self.on_unresponsive(command, waited)

        reply = self._link.read_reply(timeout, patience=self._timeouts.patience(timeout, self._link.transfer_seconds(len(data))),
                                      on_overdue=told)
        if overdue and self.on_responsive is not None:
            self.on_responsive(command)
        if reply.startswith(NACK):
            self._ack_seen = True
            code = reply[1:]
            raise CommandRejected(command, f"NACK {code}", NACK_FAULTS.get(code))
        if reply.endswith(ACK):
            self._ack_seen = True
            reply = reply[:-1] or "OK"
        if is_refusal(reply):
            raise CommandRejected(command, reply, REFUSAL_FAULTS.get(" ".join(reply.split()).upper()))
        return reply

    def _ok(self, command: str, *, timeout: float, frame: bytes | None = None) -> None:
        reply = self._command(command, timeout=timeout, frame=frame)
        if reply != "OK":
            raise ProtocolError(f"{command}: expected OK, got {reply[:60]!r}")

    def _value(self, command: str) -> str:
        reply = self._command(command, timeout=self._timeouts.query)
        if not reply.strip():
            raise ProtocolError(f"{command}: empty reply")
        return reply

    def _count(self, command: str) -> int:
        reply = self._value(command)
        if not (reply.isascii() and reply.isdigit()):
            raise ProtocolError(f"{command}: expected a whole number, got {reply[:60]!r}")
        return int(reply)

    def _sensor(self, command: str) -> bool:
        """A sensor reading (`5,00 Volts`; a decimal point or `V` are taken too): True when it
        is above SENSOR_ON_VOLTS."""
        reply = self._value(command)
        words = reply.split()
        try:
            volts = float(words[0].replace(",", ".")) if words and (len(words) == 1 or words[1] in ("V", "Volts")) \
                else float("nan")
        except ValueError:
            volts = float("nan")
        if volts != volts:
            raise ProtocolError(f"{command}: expected a voltage such as '5,00 Volts', got {reply[:60]!r}")
        return volts > SENSOR_ON_VOLTS

    def _flag(self, command: str, meanings: dict[str, bool]) -> bool:
        reply = self._value(command)
        if reply not in meanings:
            raise ProtocolError(f"{command}: expected one of {', '.join(meanings)}, got {reply[:60]!r}")
        return meanings[reply]
