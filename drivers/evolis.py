"""The Evolis escape-command language (docs/PROTOCOLS.md, section 1), over any Link.

One command at a time: discard stale input, send `ESC fields CR`, wait for the reply with
the command's own timeout. The dialect never knows which transport carries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.faults import Fault
from drivers.link import Link
from drivers.panel_compression import compress_mono
from drivers.printer_errors import CommandRejected, LinkError, PrinterError, ProtocolError, ReplyTimeout
from drivers.printer_status import PrinterStatus, parse_status

# The errors live in drivers.printer_errors; they are offered here too because callers of the
# dialect catch them beside it.
__all__ = [
    "CommandRejected",
    "Counters",
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

# The printer's words after ERR, mapped to a Fault where they name a printer condition.
# Others (ERR PARAMETER, ERR NO SEQUENCE, ...) are the host's mistake: fault None.
ERR_FAULTS: dict[str, Fault] = {
    "FEEDER EMPTY": Fault.FEEDER_EMPTY,
    "FEEDER ERROR": Fault.FEEDER_ERROR,
    "COVER OPEN": Fault.COVER_OPEN,
    "JAM": Fault.JAM,
    "RIBBON ENDED": Fault.RIBBON_ENDED,
    "NO RIBBON": Fault.RIBBON_MISSING,
    "RIBBON ERROR": Fault.RIBBON_WRONG,
    "HOPPER FULL": Fault.HOPPER_FULL,
    "REJECT FULL": Fault.REJECT_FULL,
    "COOLING": Fault.HEAD_HOT,
    "CLEANING REQUIRED": Fault.CLEANING_REQUIRED,
}


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


class EvolisPrinter:
    """An Evolis-language card printer on `link`.

    Every method may raise CommandRejected (the printer answered ERR), ReplyTimeout (no
    reply in time), ProtocolError (a reply of the wrong shape) or LinkError; all are
    PrinterError with `.fault`.
    """

    def __init__(self, link: Link, *, timeouts: Timeouts = Timeouts(), compress_mono: bool = True) -> None:
        self._link = link
        self._timeouts = timeouts
        # A printer whose firmware lacks `Dbc` takes every panel raw.
        self._compress_mono = compress_mono

    # -- queries -----------------------------------------------------------------------

    def identity(self) -> PrinterIdentity:
        """Model, firmware version and serial number."""
        return PrinterIdentity(
            model=self._value("Rtp"),
            firmware=self._value("Rfv"),
            serial=self._value("Rsn"),
        )

    def counters(self) -> Counters:
        """Cards inserted so far, panels printed so far, cards the ribbon can still print."""
        return Counters(
            cards=self._count("Rco;c"),
            panels=self._count("Rco;p"),
            ribbon_left=self._count("Rco;l"),
        )

    def card_count(self) -> int:
        """Cards inserted so far (persistent): one query, for the journal's evidence around each card."""
        return self._count("Rco;c")

    def status(self) -> PrinterStatus:
        """The status words, decoded."""
        return parse_status(self._value("Rst"))

    def cover_open(self) -> bool:
        """True when the cover sensor says open."""
        return self._flag("Rse;o", {"0": False, "1": True})

    def card_present(self) -> bool:
        """True when a card is inside the printer."""
        return self._flag("Rse;p", {"0": False, "1": True})

    def feeder_empty(self) -> bool:
        """True when the feeder has no blank to give.

        `1` / `2` mean one of two feeders is empty and the other can still feed (assumption,
        from the programming guide); `3` means no blank anywhere.
        """
        return self._flag("Sk;f", {"0": False, "1": False, "2": False, "3": True})

    def ribbon_type(self) -> str:
        """The fitted ribbon, e.g. `ymcko`."""
        return self._value("Rr")

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

        K and O go compressed (`Dbc;<p>;2;<length>;<data>`, drivers/panel_compression.py) when that
        is shorter, which it is for any panel of text, barcodes or solid varnish; everything else
        goes as `Db;<p>;<d>;<data>`. Constructed with `compress_mono=False`, every panel goes as `Db`.
        """
        if self._compress_mono and panel.name in MONO_PANELS:
            packed = compress_mono(panel.data)
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
        self._link.send(frame if frame is not None else ESC + command.encode("ascii") + CR)
        reply = self._link.read_reply(timeout)
        if reply == "ERR" or reply.startswith("ERR "):
            text = " ".join(reply[3:].split()).upper()
            raise CommandRejected(command, reply, ERR_FAULTS.get(text))
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

    def _flag(self, command: str, meanings: dict[str, bool]) -> bool:
        reply = self._value(command)
        if reply not in meanings:
            raise ProtocolError(f"{command}: expected one of {', '.join(meanings)}, got {reply[:60]!r}")
        return meanings[reply]
