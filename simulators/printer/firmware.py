"""The virtual printer's command interpreter: every command of the Evolis Programming Guide's
summary tables (A5013 rev D2 and E: sections 6 and 7 for the printer, 9 magnetic, 11 smart card,
13 contactless, 15 feeder, 17 flip-over, 19 output hopper), plus what the vendor's own Windows
driver sends that the guide does not list (docs/PROTOCOLS.md section 1, "Commands").

A command is answered `OK`, a value, or a refusal (raised as PrinterRefused, its text the reply); the wire form
of the answer (text or ACK/NACK) is the server's business (simulators/printer/server.py). Where
the guide leaves a reply open the choice is an assumption, listed in docs/PROTOCOLS.md.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from simulators.printer.machine import (Panel, PrinterRefused, Printer, Refusal, Side, Station)
from simulators.printer.settings import DEFAULTS

# What a read answers where the guide names the value but not its wording (assumptions,
# docs/PROTOCOLS.md "Replies"): card positions for `Rlr;p` as printers in the field answer them.
CARD_POSITION_REPLY = {None: "OK", Station.PRINT: "CARD", Station.CONTACT: "SMART CARD",
                       Station.CONTACTLESS: "CONTACTLESS CARD"}
NEED_CLEANING = "ERR NEED CLEANING"
FIRMWARE_CHECKSUM = "5A3C"
FONTS = "Arial Normal 100;Arial Bold 100"

MONO_RIBBONS = ("kb", "kw", "kr", "kbl", "kgr", "kgo", "ksi", "ksc")
RIBBONS = ("ymcko", "ymckos", "ymckok", "ko", "h", "ho", "ktc", "ktp", "ka", *MONO_RIBBONS)
CONTRAST_COLOURS = ("y", "m", "c", *MONO_RIBBONS, "o")
SENSORS = ("c", "m", "o", "p", "r", "f")  # `Ase`, `Rps`: the guide's sensors (f: Dualys and Tattoo feeders)
# `Rse` also answers the feeder's near-empty sensor `n` and the exit slot's `b`, which field code
# written against real printers reads (docs/PROTOCOLS.md "What the reads answer").
READ_SENSORS = (*SENSORS, "n", "b")
PANEL_NAMES = {p.value: p for p in Panel}
DEPTHS = {2: 1, 32: 5, 64: 6, 128: 7}

CARD_WIDTH, CARD_HEIGHT = 1016, 648  # the landscape card, in dots


class Group(Enum):
    """The guide's command families (the letter of its summary tables) and option sections."""

    ADJUST = "A"
    DOWNLOAD = "D"
    MOTOR = "M"
    PARAMETER = "P"
    READ = "R"
    SEQUENCE = "S"
    WRITE = "W"


class Option(Enum):
    """The printer option a command belongs to (None: every printer)."""

    MAGNETIC = "magnetic"
    SMART = "smart"
    CONTACTLESS = "contactless"
    FEEDER = "feeder"
    DUAL_FEEDER = "dual_feeder"
    FLIP_OVER = "flip_over"
    OUTPUT_HOPPER = "output_hopper"
    STATUS_WORDS = "status_words"


@dataclass(frozen=True)
class Spec:
    """One command of the table: its family, the option it needs, where it comes from."""

    group: Group
    summary: str
    option: Option | None = None
    # "guide"; "vendor driver" (sent by the Windows driver, in no revision of the guide);
    # "vendor SDK" (used by libevolis); "earlier simulator" (`Rst`, kept for hosts written to it).
    source: str = "guide"


def _table() -> dict[str, Spec]:
    g, o = Group, Option
    rows: list[tuple[str, Group, str, Option | None, str]] = [
        ("Ase", g.ADJUST, "adjust a sensor potentiometer", None, "guide"),
        ("Db", g.DOWNLOAD, "download a panel", None, "guide"),
        ("Dbc", g.DOWNLOAD, "download a compressed panel", None, "guide"),
        ("Dbp", g.DOWNLOAD, "download part of a colour panel", None, "guide"),
        ("Dbpc", g.DOWNLOAD, "download part of a compressed colour panel", None, "guide"),
        ("Dbmp", g.DOWNLOAD, "download a monochrome BMP logo", None, "guide"),
        ("Dm", g.DOWNLOAD, "download magnetic track data", o.MAGNETIC, "guide"),
        ("Mc", g.MOTOR, "run the card motor", None, "guide"),
        ("Mf", g.MOTOR, "run the feeder motor", None, "guide"),
        ("Mh", g.MOTOR, "move the print head", None, "guide"),
        ("Mr", g.MOTOR, "run the ribbon motor", None, "guide"),
        ("Pbm", g.PARAMETER, "monochrome bitmap printing mode", None, "guide"),
        ("Pc", g.PARAMETER, "colour contrast", None, "guide"),
        ("Pcom", g.PARAMETER, "serial port configuration", None, "guide"),
        ("Pem", g.PARAMETER, "error management", None, "guide"),
        ("Pfm", g.PARAMETER, "feeder type", o.FEEDER, "guide"),
        ("Piem", g.PARAMETER, "insertion and ejection mode (two feeders)", o.DUAL_FEEDER, "guide"),
        ("Pkn", g.PARAMETER, "print head kit number", None, "guide"),
        ("Pl", g.PARAMETER, "colour luminosity", None, "guide"),
        ("Pmi", g.PARAMETER, "card insertion mode", None, "guide"),
        ("Pmk", g.PARAMETER, "monochrome printing speed mode", None, "guide"),
        ("Pms", g.PARAMETER, "step motor speed", None, "guide"),
        ("Pnl", g.PARAMETER, "number of lines to print", None, "guide"),
        ("Pnw", g.PARAMETER, "number of lines to print in Y", None, "guide"),
        ("Ppk", g.PARAMETER, "monochrome heating mode", None, "guide"),
        ("Ppn", g.PARAMETER, "bi-directional parallel mode", None, "guide"),
        ("Pr", g.PARAMETER, "ribbon type", None, "guide"),
        ("Prm", g.PARAMETER, "ribbon synchronisation", None, "guide"),
        ("Pro", g.PARAMETER, "ribbon offset", None, "guide"),
        ("Prs", g.PARAMETER, "ribbon size", None, "guide"),
        ("Ps", g.PARAMETER, "printing speed", None, "guide"),
        ("Psc", g.PARAMETER, "command framing characters", None, "guide"),
        ("Psm", g.PARAMETER, "smart card signal level", o.SMART, "guide"),
        ("Psp", g.PARAMETER, "start printing position (half-panel ribbon)", None, "guide"),
        ("Px", g.PARAMETER, "horizontal offset", None, "guide"),
        ("Py", g.PARAMETER, "vertical offset", None, "guide"),
        ("Pwb", g.PARAMETER, "bitmap the W commands write", None, "guide"),
        ("Pwcs", g.PARAMETER, "text position check", None, "guide"),
        ("Pwj", g.PARAMETER, "writing justification", None, "guide"),
        ("Pwm", g.PARAMETER, "writing mode (normal or inverse)", None, "guide"),
        ("Pwr", g.PARAMETER, "text rotation", None, "guide"),
        ("Poc", g.PARAMETER, "contactless station offset", o.CONTACTLESS, "guide"),
        ("Pos", g.PARAMETER, "smart card station offset", o.SMART, "guide"),
        ("Pmbs", g.PARAMETER, "magnetic coding start", o.MAGNETIC, "guide"),
        ("Pmc", g.PARAMETER, "magnetic coercivity", o.MAGNETIC, "guide"),
        ("Pmd", g.PARAMETER, "magnetic track density", o.MAGNETIC, "guide"),
        ("Pml", g.PARAMETER, "magnetic encoding length", o.MAGNETIC, "guide"),
        ("Pmt", g.PARAMETER, "magnetic track format", o.MAGNETIC, "guide"),
        ("Pmtc", g.PARAMETER, "magnetic start, end sentinels and checksum", o.MAGNETIC, "guide"),
        ("Pmts", g.PARAMETER, "magnetic track coding start", o.MAGNETIC, "guide"),
        ("Pdt", g.PARAMETER, "(sent by the vendor driver on every job; meaning unknown)", None, "vendor driver"),
        ("Ppws", g.PARAMETER, "(sent by the vendor driver on every job with a time stamp; meaning unknown)",
         None, "vendor driver"),
        ("Rbm", g.READ, "monochrome bitmap printing mode", None, "guide"),
        ("Rc", g.READ, "contrast", None, "guide"),
        ("Rck", g.READ, "firmware checksum", None, "guide"),
        ("Rco", g.READ, "counters", None, "guide"),
        ("Rcom", g.READ, "serial port configuration", None, "guide"),
        ("Rcr", g.READ, "ribbon end (black mark)", None, "guide"),
        ("Rcs", g.READ, "(in the per-printer table only; read as the error line status of Scs)", None, "guide"),
        ("Rem", g.READ, "error management", None, "guide"),
        ("Rfm", g.READ, "feeder type", o.FEEDER, "guide"),
        ("Rfn", g.READ, "resident fonts", None, "guide"),
        ("Rfv", g.READ, "firmware version", None, "guide"),
        ("Riem", g.READ, "insertion and ejection mode (two feeders)", o.DUAL_FEEDER, "guide"),
        ("Rkn", g.READ, "print head kit number", None, "guide"),
        ("Rks", g.READ, "black resin compensation", None, "guide"),
        ("Rl", g.READ, "luminosity", None, "guide"),
        ("Rlr", g.READ, "last answer, card position, cleaning", None, "guide"),
        ("Rmi", g.READ, "card insertion mode", None, "guide"),
        ("Rmk", g.READ, "monochrome printing speed mode", None, "guide"),
        ("Rms", g.READ, "step motor speed", None, "guide"),
        ("Rnl", g.READ, "number of lines printed", None, "guide"),
        ("Rnw", g.READ, "number of lines printed in Y", None, "guide"),
        ("Rpk", g.READ, "monochrome heating mode", None, "guide"),
        ("Rpn", g.READ, "bi-directional parallel mode", None, "guide"),
        ("Rps", g.READ, "sensor potentiometer", None, "guide"),
        ("Rr", g.READ, "ribbon type", None, "guide"),
        ("Rrm", g.READ, "ribbon synchronisation", None, "guide"),
        ("Rro", g.READ, "ribbon offset", None, "guide"),
        ("Rrs", g.READ, "ribbon size", None, "guide"),
        ("Rs", g.READ, "printing speed", None, "guide"),
        ("Rsc", g.READ, "command framing characters", None, "guide"),
        ("Rse", g.READ, "sensor voltage", None, "guide"),
        ("Rsm", g.READ, "smart card signal level", o.SMART, "guide"),
        ("Rsn", g.READ, "serial number", None, "guide"),
        ("Rsp", g.READ, "start printing position", None, "guide"),
        ("Rtp", g.READ, "printer model", None, "guide"),
        ("Rx", g.READ, "horizontal offset", None, "guide"),
        ("Ry", g.READ, "vertical offset", None, "guide"),
        ("Roc", g.READ, "contactless station offset", o.CONTACTLESS, "guide"),
        ("Ros", g.READ, "smart card station offset", o.SMART, "guide"),
        ("Rmbs", g.READ, "magnetic coding start", o.MAGNETIC, "guide"),
        ("Rmc", g.READ, "magnetic coercivity", o.MAGNETIC, "guide"),
        ("Rmd", g.READ, "magnetic track density", o.MAGNETIC, "guide"),
        ("Rml", g.READ, "magnetic encoding length", o.MAGNETIC, "guide"),
        ("Rmms", g.READ, "magnetic encoding motor speed", o.MAGNETIC, "guide"),
        ("Rmt", g.READ, "magnetic track format", o.MAGNETIC, "guide"),
        ("Rmtc", g.READ, "magnetic sentinels and checksum", o.MAGNETIC, "guide"),
        ("Rmts", g.READ, "magnetic track coding start", o.MAGNETIC, "guide"),
        ("Rst", g.READ, "(the status words of this project's first simulator; in no revision of the guide)",
         o.STATUS_WORDS, "earlier simulator"),
        ("Rpst", g.READ, "(the vendor SDK's status: config, information, warning, error words)",
         o.STATUS_WORDS, "vendor SDK"),
        ("Rsid", g.READ, "(the vendor SDK's session id, read with Rpst)", o.STATUS_WORDS, "vendor SDK"),
        ("Rok", g.READ, "(the vendor SDK's 'still there?' probe)", None, "vendor SDK"),
        ("Sa", g.SEQUENCE, "self adjustment", None, "guide"),
        ("Sc", g.SEQUENCE, "copy: run the last sequence again", None, "guide"),
        ("Scom", g.SEQUENCE, "send a command through a serial port", None, "guide"),
        ("Scp", g.SEQUENCE, "cleaning cycle", None, "guide"),
        ("Scs", g.SEQUENCE, "clear the error line status", None, "guide"),
        ("Sdm", g.SEQUENCE, "delay in milliseconds", None, "guide"),
        ("Sdu", g.SEQUENCE, "delay in microseconds", None, "guide"),
        ("Se", g.SEQUENCE, "end the sequence and eject the card", None, "guide"),
        ("Seb", g.SEQUENCE, "eject to the reject box under the feeder", None, "guide"),
        ("Ser", g.SEQUENCE, "eject to the reject box", None, "guide"),
        ("Si", g.SEQUENCE, "insert a card", None, "guide"),
        ("Sib", g.SEQUENCE, "insert a card from the back", None, "guide"),
        ("Sic", g.SEQUENCE, "insert a card to the contactless station", o.CONTACTLESS, "guide"),
        ("Sie", g.SEQUENCE, "insert a card and eject it", None, "guide"),
        ("Sis", g.SEQUENCE, "insert a card to the smart card contact station", o.SMART, "guide"),
        ("Sk", g.SEQUENCE, "ask the feeder", o.FEEDER, "guide"),
        ("Sp", g.SEQUENCE, "print one panel", None, "guide"),
        ("Sr", g.SEQUENCE, "front side", None, "guide"),
        ("Srs", g.SEQUENCE, "software reset", None, "guide"),
        ("Ss", g.SEQUENCE, "start a sequence", None, "guide"),
        ("Ssd", g.SEQUENCE, "print a panel from memory, as if downloaded", None, "guide"),
        ("St", g.SEQUENCE, "print the test card", None, "guide"),
        ("Stt", g.SEQUENCE, "print the technical test card", None, "guide"),
        ("Sv", g.SEQUENCE, "back side", o.FLIP_OVER, "guide"),
        ("Smr", g.SEQUENCE, "read a magnetic track", o.MAGNETIC, "guide"),
        ("Smw", g.SEQUENCE, "write the magnetic tracks", o.MAGNETIC, "guide"),
        ("Sds", g.SEQUENCE, "ask the flip-over station (<) or the output hopper (?)", None, "guide"),
        ("Wb", g.WRITE, "write a barcode", None, "guide"),
        ("Wcb", g.WRITE, "clear or fill a bitmap", None, "guide"),
        ("Wl", g.WRITE, "write a line", None, "guide"),
        ("Wt", g.WRITE, "write text", None, "guide"),
    ]
    return {name: Spec(group, summary, option, source) for name, group, summary, option, source in rows}


COMMANDS: dict[str, Spec] = _table()
# The guide's summary table spells `Pwj` as `Pwjs` once; the definition says `Pwj`.
ALIASES = {"Pwjs": "Pwj"}


@dataclass(frozen=True)
class Command:
    """One framed command: its name, its `;` parameters and, for a download, its data."""

    name: str
    params: tuple[str, ...]
    data: bytes | None = None


def refuse(refusal: Refusal = Refusal.PARAMETER) -> PrinterRefused:
    return PrinterRefused(refusal)


class Firmware:
    """Answers commands from one printer, one at a time, on the printer's own thread.

    `on_framing` is told when `Psc` changes the framing characters, so the frame reader of the
    port that carried it can follow. Raises PrinterStopped (from the printer) when shutdown
    interrupts a movement.
    """

    def __init__(self, printer: Printer, *, on_framing: Callable[[int, int, int], None] | None = None) -> None:
        self.printer = printer
        self._on_framing = on_framing
        self._last_reply = "OK"
        self._last_failed = False
        self._magnetic_buffer: dict[str, str] = {}
        self._recording: list[Command] | None = None  # the open sequence's commands, for `Sc`
        self._last_sequence: list[Command] = []
        self._error_line = 0  # `Scs` clears it; `Rcs` reads it

    # -- entry -------------------------------------------------------------------------------

    def answer(self, command: Command) -> str:
        """`OK`, a value or a refusal's text for one command; remembers it for `Rlr`."""
        try:
            reply = self.run(command)
            failed = False
        except PrinterRefused as e:
            reply = e.refusal.value
            self._error_line = 1
            failed = True
        if not command.name.startswith("Rlr"):
            self._last_reply, self._last_failed = reply, failed
        return reply

    def run(self, c: Command) -> str:
        """The reply to `c`; raises PrinterRefused (answered with its text)."""
        name = ALIASES.get(c.name, c.name)
        spec = COMMANDS.get(name)
        if spec is None:
            raise refuse(Refusal.UNKNOWN_COMMAND)
        if spec.option is not None and not getattr(self.printer.equipment, spec.option.value):
            # A firmware without the status words does not know the command at all.
            raise refuse(Refusal.UNKNOWN_COMMAND if spec.option is Option.STATUS_WORDS else Refusal.NOT_EQUIPPED)
        handler: Callable[[Command], str] = getattr(self, f"_{name.lower()}")
        self._record(name, c)
        return handler(c)

    def _record(self, name: str, c: Command) -> None:
        if name == "Ss":
            self._recording = [c]
        elif self._recording is not None and name not in ("Sc",) and not name.startswith("R"):
            self._recording.append(c)
            if name in ("Se", "Ser", "Seb"):
                self._last_sequence, self._recording = self._recording, None

    # -- helpers -----------------------------------------------------------------------------

    @property
    def _settings(self):
        return self.printer.settings

    def _set(self, key: str, value: str) -> str:
        if self._settings.get(key) != value:  # the vendor's driver sends the same settings every card
            self._settings.set(key, value)
            self.printer.save()
        return "OK"

    def _adjust(self, key: str, op: str, value: str | None, lo: int = -9999, hi: int = 99999) -> str:
        """The guide's `+` / `-` / `=` forms: add, subtract (1 when no value) or set (the factory
        value when none is given)."""
        current = int(self._settings.get(key))
        if value is not None and not _is_int(value):
            raise refuse()
        step = int(value) if value is not None else 1
        if op == "+":
            new = current + step
        elif op == "-":
            new = current - step
        elif op == "=":
            new = int(value) if value is not None else int(DEFAULTS[key])
        else:
            raise refuse()
        if not lo <= new <= hi:
            raise refuse()
        return self._set(key, str(new))

    def _adjust_form(self, key: str, c: Command, lo: int = -9999, hi: int = 99999) -> str:
        _count(c, 1, 2)
        return self._adjust(key, c.params[0], c.params[1] if len(c.params) > 1 else None, lo, hi)

    # -- A -----------------------------------------------------------------------------------

    def _ase(self, c: Command) -> str:
        _count(c, 2)
        sensor, value = c.params
        if sensor not in SENSORS or not _in_range(value, 0, 255):
            raise refuse()
        return self._set(f"potentiometer.{sensor}", value)

    # -- D -----------------------------------------------------------------------------------

    def _db(self, c: Command) -> str:
        panel, depth = _panel_and_depth(c)
        self.printer.download(panel, depth, _data(c))
        return "OK"

    def _dbc(self, c: Command) -> str:
        return self._db(c)  # the server expands the compressed bytes before they come here

    def _dbp(self, c: Command) -> str:
        return self._db(c)  # likewise: the server puts the partial lines into a whole panel

    def _dbpc(self, c: Command) -> str:
        return self._db(c)

    def _dbmp(self, c: Command) -> str:
        """`Dbmp;<k|o>;x;y;0;<BMP file>`: a monochrome logo pasted into the bitmap at (x, y)."""
        _count(c, 4)
        target, x, y, _ = c.params
        if target not in ("k", "o") or not (_is_int(x) and _is_int(y)):
            raise refuse()
        from PIL import Image  # noqa: PLC0415 - only logos need the image decoder

        try:
            with Image.open(io.BytesIO(_data(c)), formats=["BMP"]) as logo:
                ink = np.asarray(logo.convert("1")) == 0  # black dots are ink
        except (OSError, ValueError, SyntaxError):
            raise refuse(Refusal.DATA_LENGTH) from None
        self._draw(PANEL_NAMES[target], lambda card: _paste(card, ink, int(x), int(y)))
        return "OK"

    def _dm(self, c: Command) -> str:
        if len(c.params) < 2 or c.params[0] not in ("1", "2", "3"):
            raise refuse()
        self._magnetic_buffer[c.params[0]] = ";".join(c.params[1:])
        return "OK"

    # -- M -----------------------------------------------------------------------------------

    def _motor(self, c: Command, choices: tuple[str, ...], max_params: int = 1) -> str:
        _count(c, 1, max_params)
        if c.params[0] not in choices:
            raise refuse()
        self.printer.move_card(self.printer.timings.motor)
        return "OK"

    def _mc(self, c: Command) -> str:
        _count(c, 2)
        if c.params[0] not in ("+", "-") or not _is_int(c.params[1]):
            raise refuse()
        self.printer.move_card(self.printer.timings.motor)
        return "OK"

    def _mf(self, c: Command) -> str:
        return self._motor(c, ("+", "-", "!"))

    def _mh(self, c: Command) -> str:
        return self._motor(c, ("+", "-", "="))

    def _mr(self, c: Command) -> str:
        # `s` is not in the guide's list; the vendor driver sends `Mr;s` on every job.
        return self._motor(c, ("+", "-", "!", "i", "n", "=", "s"), 2)

    # -- P -----------------------------------------------------------------------------------

    def _pbm(self, c: Command) -> str:
        return self._choice("bitmap_mode", c, ("p", "p2", "b"))

    def _choice(self, key: str, c: Command, choices: tuple[str, ...], save_option: bool = False) -> str:
        _count(c, 1, 2 if save_option else 1)
        if c.params[0] not in choices or (len(c.params) == 2 and c.params[1] != "s"):
            raise refuse()
        return self._set(key, c.params[0])

    def _pc(self, c: Command) -> str:
        _count(c, 2, 3)
        colour = self._contrast_colour(c.params[0])
        if colour == "a":
            for each in CONTRAST_COLOURS:
                self._adjust(f"contrast.{each}", c.params[1], c.params[2] if len(c.params) > 2 else None, 0, 20)
            return "OK"
        return self._adjust(f"contrast.{colour}", c.params[1], c.params[2] if len(c.params) > 2 else None, 0, 20)

    def _contrast_colour(self, name: str) -> str:
        # `k` is the monochrome colour of the ribbon fitted (`Rc;k` in the guide; the vendor sends `Pc;k`).
        if name == "k":
            ribbon = self.printer.ribbon_type()
            return ribbon if ribbon in MONO_RIBBONS else "kb"
        if name not in CONTRAST_COLOURS and name != "a":
            raise refuse()
        return name

    def _pcom(self, c: Command) -> str:
        """`Pcom;port;speed;parity;data bits;stop bits[;protocol[;E|R|D]]`: the guide's list of
        parameters skips the data bits that its own example (`Pcom;1;9600;N;8;1`) carries."""
        _count(c, 5, 7)
        port, speed, parity, bits, stop, *extra = c.params
        protocol = extra[0] if extra else "NONE"
        enable = extra[1] if len(extra) > 1 else "E"
        protocol, enable = ("NONE" if protocol == "0" else protocol), ("E" if enable == "0" else enable)
        if port not in ("1", "2") or not _in_range(speed, 2400, 115200) or parity not in ("N", "O", "E") \
                or bits not in ("7", "8") or stop not in ("1", "2") \
                or protocol not in ("NONE", "XON/XOFF", "RTS/CTS", "BOTH", "ACK/NACK") or enable not in ("E", "R", "D"):
            raise refuse()
        if port == "2" and protocol in ("RTS/CTS", "BOTH"):
            raise refuse()  # "The Com2 of the printer can not get the Material Protocol"
        self._set(f"com.{port}", ";".join((speed, parity, bits, stop, protocol, enable)))
        errors = self._settings.errors
        if protocol == "ACK/NACK":
            errors.ack_nack = errors.ack_nack_saved = True  # "memorize the protocol ... even after power"
        self.printer.save()
        return "OK"

    def _pem(self, c: Command) -> str:
        _count(c, 1, 2)
        if not _is_int(c.params[0]) or (len(c.params) == 2 and c.params[1] != "s"):
            raise refuse()
        value, errors = int(c.params[0]), self._settings.errors
        if value == 4:
            errors.ack_nack = True  # "does not change the previous Pem value but it sets the ACK/NACK mode"
        elif value == 5:
            errors.keep_going_on_magnetic_error = True
        elif value in (0, 1, 2, 3, 16, 18):
            errors.mode = value
            errors.ack_nack = False
        elif 0 <= value < 32:
            errors.mode = value & ~0x08
            errors.ack_nack = bool(value & 0x08)  # bit 4: "0 Standard Protocol / 1 ACK/NACK Protocol"
        else:
            raise refuse()
        if len(c.params) == 2:
            errors.saved, errors.ack_nack_saved = errors.mode, errors.ack_nack
        self.printer.save()
        return "OK"

    def _pfm(self, c: Command) -> str:
        return self._choice("feeder_type", c, ("K", "S2", "S3"))

    def _piem(self, c: Command) -> str:
        _count(c, 2)
        if c.params[0] not in "0123" or c.params[1] not in "0123" or "" in c.params:
            raise refuse()
        return self._set("insertion_ejection", ";".join(c.params))

    def _pkn(self, c: Command) -> str:
        _count(c, 1)
        if not c.params[0] or len(c.params[0]) > 16:
            raise refuse()
        return self._set("kit_number", c.params[0])

    def _pl(self, c: Command) -> str:
        _count(c, 2, 3)
        colours = ("y", "m", "c") if c.params[0] == "a" else (c.params[0],)
        if any(colour not in ("y", "m", "c") for colour in colours):
            raise refuse()
        for colour in colours:
            self._adjust(f"luminosity.{colour}", c.params[1], c.params[2] if len(c.params) > 2 else None, 0, 20)
        return "OK"

    def _pmi(self, c: Command) -> str:
        # The vendor sends `Pmi;F;s`: the `s` (save) of Pem, taken here the same way.
        return self._choice("insertion", c, ("F", "M", "B"), save_option=True)

    def _pmk(self, c: Command) -> str:
        _count(c, 1, 2)
        mode, eject = c.params[0], (c.params[1] if len(c.params) > 1 else "s")
        if mode not in ("s", "f") or eject not in ("s", "i"):
            raise refuse()
        return self._set("mono_speed", f"{mode};{eject}")

    def _pms(self, c: Command) -> str:
        return self._adjust_form("motor_speed", c, 1, 1000)

    def _pnl(self, c: Command) -> str:
        return self._adjust_form("lines", c, 1, 1016)

    def _pnw(self, c: Command) -> str:
        _count(c, 1)
        if not _in_range(c.params[0], 1, 648):
            raise refuse()
        return self._set("lines_y", c.params[0])

    def _ppk(self, c: Command) -> str:
        return self._choice("mono_heating", c, ("s", "f"))

    def _ppn(self, c: Command) -> str:
        return self._choice("parallel", c, ("0", "1", "2"))

    def _pr(self, c: Command) -> str:
        _count(c, 1, 2)
        ribbon = c.params[0].lower()  # the guide writes Ktc, Ktp, Ka with a capital
        if ribbon not in RIBBONS and ribbon != "k" or (len(c.params) == 2 and c.params[1] not in ("0", "1")):
            raise refuse()
        # `k`: the black monochrome ribbon, as the vendor driver names it (`Pr;k`).
        self.printer.set_ribbon_type("kb" if ribbon == "k" else ribbon)
        return "OK"

    def _prm(self, c: Command) -> str:
        return self._choice("ribbon_sync", c, ("0", "1", "2", "3"))

    def _pro(self, c: Command) -> str:
        _count(c, 1)
        if not _in_range(c.params[0], 0, 9999):
            raise refuse()
        return self._set("ribbon_offset", c.params[0])

    def _prs(self, c: Command) -> str:
        _count(c, 1, 2)
        size, detect = c.params[0], (c.params[1] if len(c.params) > 1 else "A")
        if size not in ("L", "S") or detect not in ("A", "M"):
            raise refuse()
        return self._set("ribbon_size", f"{size};{detect}")

    def _ps(self, c: Command) -> str:
        _count(c, 2, 3)
        if c.params[0] not in ("y", "m", "c", "k", "o"):
            raise refuse()
        return self._adjust(f"speed.{c.params[0]}", c.params[1], c.params[2] if len(c.params) > 2 else None, 1, 20)

    def _psc(self, c: Command) -> str:
        if not c.params:
            framing = (27, 59, 13)
        else:
            _count(c, 3)
            if not all(_in_range(p.strip(), 1, 255) for p in c.params):
                raise refuse()
            framing = tuple(int(p) for p in c.params)  # type: ignore[assignment]
            if len(set(framing)) != 3:
                raise refuse()
        self._settings.framing = framing  # type: ignore[assignment]
        if self._on_framing is not None:
            self._on_framing(*framing)
        return "OK"

    def _psm(self, c: Command) -> str:
        _count(c, 1, 2)
        level, lock = c.params[0], (c.params[1] if len(c.params) > 1 else "u")
        if level not in ("0", "1") or lock not in ("u", "l"):
            raise refuse()
        return self._set("smart_signal", f"{level};{lock}")

    def _psp(self, c: Command) -> str:
        _count(c, 1, 2)
        if not _in_range(c.params[0], 0, 1015):
            raise refuse()
        return self._set("start_position", c.params[0])

    def _px(self, c: Command) -> str:
        return self._adjust_form("offset.x", c)

    def _py(self, c: Command) -> str:
        return self._adjust_form("offset.y", c)

    def _pwb(self, c: Command) -> str:
        return self._choice("write_bitmap", c, ("k", "o"))

    def _pwcs(self, c: Command) -> str:
        return self._choice("write_check", c, ("0", "1"))

    def _pwj(self, c: Command) -> str:
        return self._choice("write_justify", c, ("r", "l", "c"))

    def _pwm(self, c: Command) -> str:
        return self._choice("write_mode", c, ("s", "n"))

    def _pwr(self, c: Command) -> str:
        return self._choice("write_rotation", c, ("0", "90", "180", "270"))

    def _poc(self, c: Command) -> str:
        return self._adjust_form("contactless_offset", c)

    def _pos(self, c: Command) -> str:
        return self._adjust_form("smart_offset", c)

    def _pmbs(self, c: Command) -> str:
        _count(c, 1)
        if not _in_range(c.params[0], 0, 9999):
            raise refuse()
        return self._set("magnetic.start", c.params[0])

    def _pmc(self, c: Command) -> str:
        return self._choice("magnetic.coercivity", c, ("h", "l"))

    def _pmd(self, c: Command) -> str:
        # The guide gives `Pmd;p1` (75 or 210) but reads it per track (`Rmd;<track>`): both forms.
        _count(c, 1, 2)
        tracks, density = (("1", "2", "3"), c.params[0]) if len(c.params) == 1 else ((c.params[0],), c.params[1])
        if density not in ("75", "210") or any(t not in ("1", "2", "3") for t in tracks):
            raise refuse()
        for track in tracks:
            self._settings.set(f"magnetic.density.{track}", density)
        self.printer.save()
        return "OK"

    def _pml(self, c: Command) -> str:
        _count(c, 1)
        if not _in_range(c.params[0], 1, 9999):
            raise refuse()
        return self._set("magnetic.length", c.params[0])

    def _pmt(self, c: Command) -> str:
        _count(c, 2)
        formats = {"1": "1", "2": "2", "3": "3", "4": "4", "C1": "4", "5": "5", "C2": "5", "6": "6", "C4": "6"}
        if c.params[0] not in ("1", "2", "3") or c.params[1] not in formats:
            raise refuse()
        return self._set(f"magnetic.format.{c.params[0]}", formats[c.params[1]])

    def _pmtc(self, c: Command) -> str:
        _count(c, 4)
        track, start, end, checksum = c.params
        if track not in ("1", "2", "3") or not (_in_range(start, 0, 255) and _in_range(end, 0, 255)) \
                or checksum not in ("ON", "OFF"):
            raise refuse()
        return self._set(f"magnetic.control.{track}", f"{start};{end};{checksum}")

    def _pmts(self, c: Command) -> str:
        _count(c, 2)
        if c.params[0] not in ("1", "2", "3") or not _in_range(c.params[1], 0, 9999):
            raise refuse()
        return self._set(f"magnetic.track_start.{c.params[0]}", c.params[1])

    def _pdt(self, c: Command) -> str:
        _count(c, 1)
        return self._set("vendor.Pdt", c.params[0])

    def _ppws(self, c: Command) -> str:
        _count(c, 1)
        return self._set("vendor.Ppws", c.params[0])

    # -- R -----------------------------------------------------------------------------------

    def _read(self, key: str, c: Command) -> str:
        _count(c, 0)
        return self._settings.get(key)

    def _rbm(self, c: Command) -> str:
        return self._read("bitmap_mode", c)

    def _rc(self, c: Command) -> str:
        _count(c, 1)
        if c.params[0] == "a":
            return ";".join(self._settings.get(f"contrast.{x}") for x in ("y", "m", "c", self._contrast_colour("k"), "o"))
        return self._settings.get(f"contrast.{self._contrast_colour(c.params[0])}")

    def _rck(self, c: Command) -> str:
        _count(c, 0)
        return FIRMWARE_CHECKSUM

    def _rco(self, c: Command) -> str:
        _count(c, 1)
        counters = self.printer.counters()
        cleanings, since = self.printer.cleaning_counts()
        every = str(counters.cards_inserted // cleanings) if cleanings else str(counters.cards_inserted)
        values = {"p": counters.panels_printed, "c": counters.cards_inserted, "l": counters.ribbon_remaining,
                  "I": counters.ribbon_remaining, "a": every, "m": since, "n": cleanings}
        if c.params[0] not in values:
            raise refuse()
        return str(values[c.params[0]])

    def _rcom(self, c: Command) -> str:
        _count(c, 1)
        port = c.params[0].removeprefix("com").removeprefix("COM")
        if port not in ("1", "2"):
            raise refuse()
        return self._settings.get(f"com.{port}")

    def _rcr(self, c: Command) -> str:
        _count(c, 0)
        if self.printer.counters().ribbon_remaining == 0:
            raise refuse(Refusal.RIBBON_ENDED)
        return "OK"

    def _rcs(self, c: Command) -> str:
        _count(c, 0)
        return str(self._error_line)

    def _rem(self, c: Command) -> str:
        _count(c, 0)
        e = self._settings.errors
        return f"{e.mode | (0x08 if e.ack_nack else 0)};{e.saved | (0x08 if e.ack_nack_saved else 0)}"

    def _rfm(self, c: Command) -> str:
        return self._read("feeder_type", c)

    def _rfn(self, c: Command) -> str:
        _count(c, 0)
        return FONTS

    def _rfv(self, c: Command) -> str:
        _count(c, 0)
        return self.printer.identity.firmware

    def _riem(self, c: Command) -> str:
        return self._read("insertion_ejection", c)

    def _rkn(self, c: Command) -> str:
        return self._read("kit_number", c)

    def _rks(self, c: Command) -> str:
        _count(c, 0)
        return "0"

    def _rl(self, c: Command) -> str:
        _count(c, 1)
        if c.params[0] not in ("y", "m", "c"):
            raise refuse()
        return self._settings.get(f"luminosity.{c.params[0]}")

    def _rlr(self, c: Command) -> str:
        _count(c, 0, 1)
        what = c.params[0] if c.params else None
        if what is None:
            return self._last_reply
        if what == "p":
            return CARD_POSITION_REPLY[self.printer.card_position()]
        if what == "r":
            if self.printer.cleaning_due() and not self._last_failed:
                return NEED_CLEANING
            return self._last_reply
        raise refuse()

    def _rmi(self, c: Command) -> str:
        return self._read("insertion", c)

    def _rmk(self, c: Command) -> str:
        return self._read("mono_speed", c)

    def _rms(self, c: Command) -> str:
        return self._read("motor_speed", c)

    def _rnl(self, c: Command) -> str:
        return self._read("lines", c)

    def _rnw(self, c: Command) -> str:
        return self._read("lines_y", c)

    def _rpk(self, c: Command) -> str:
        return self._read("mono_heating", c)

    def _rpn(self, c: Command) -> str:
        return self._read("parallel", c)

    def _rps(self, c: Command) -> str:
        _count(c, 1)
        if c.params[0] not in SENSORS:
            raise refuse()
        return self._settings.get(f"potentiometer.{c.params[0]}")

    def _rr(self, c: Command) -> str:
        _count(c, 0)
        return self.printer.ribbon_type()

    def _rrm(self, c: Command) -> str:
        return self._read("ribbon_sync", c)

    def _rro(self, c: Command) -> str:
        return self._read("ribbon_offset", c)

    def _rrs(self, c: Command) -> str:
        return self._read("ribbon_size", c)

    def _rs(self, c: Command) -> str:
        _count(c, 1)
        if c.params[0] not in ("y", "m", "c", "k", "o"):
            raise refuse()
        return self._settings.get(f"speed.{c.params[0]}")

    def _rsc(self, c: Command) -> str:
        _count(c, 0)
        return ";".join(str(x) for x in self._settings.framing)

    def _rse(self, c: Command) -> str:
        """A sensor's voltage (the guide: "Reads the Sensors Voltage"), as `<d>,<dd> Volts`."""
        _count(c, 1)
        if c.params[0] not in READ_SENSORS:
            raise refuse()
        return sensor_reading(c.params[0], self.printer.sensor_active(c.params[0]))

    def _rsm(self, c: Command) -> str:
        return self._read("smart_signal", c)

    def _rsn(self, c: Command) -> str:
        _count(c, 0)
        return self.printer.identity.serial_number

    def _rsp(self, c: Command) -> str:
        return self._read("start_position", c)

    def _rtp(self, c: Command) -> str:
        _count(c, 0)
        return self.printer.identity.model

    def _rx(self, c: Command) -> str:
        return self._read("offset.x", c)

    def _ry(self, c: Command) -> str:
        return self._read("offset.y", c)

    def _roc(self, c: Command) -> str:
        return self._read("contactless_offset", c)

    def _ros(self, c: Command) -> str:
        return self._read("smart_offset", c)

    def _rmbs(self, c: Command) -> str:
        return self._read("magnetic.start", c)

    def _rmc(self, c: Command) -> str:
        return self._read("magnetic.coercivity", c)

    def _track_read(self, key: str, c: Command) -> str:
        _count(c, 1)
        if c.params[0] not in ("1", "2", "3"):
            raise refuse()
        return self._settings.get(f"{key}.{c.params[0]}")

    def _rmd(self, c: Command) -> str:
        return self._track_read("magnetic.density", c)

    def _rml(self, c: Command) -> str:
        return self._read("magnetic.length", c)

    def _rmms(self, c: Command) -> str:
        return self._read("magnetic.motor_speed", c)

    def _rmt(self, c: Command) -> str:
        return self._track_read("magnetic.format", c)

    def _rmtc(self, c: Command) -> str:
        _count(c, 0)
        return ";".join(self._settings.get(f"magnetic.control.{t}") for t in ("1", "2", "3"))

    def _rmts(self, c: Command) -> str:
        return self._track_read("magnetic.track_start", c)

    def _rpst(self, c: Command) -> str:
        """The vendor SDK's status (`evolis_status()`): config, information, warning, error and
        one extension word, 8 hex digits each, most significant first (docs/PROTOCOLS.md)."""
        _count(c, 0)
        return "".join(f"{word:08X}" for word in sdk_status_words(self.printer))

    def _rsid(self, c: Command) -> str:
        _count(c, 0)
        return "0"

    def _rok(self, c: Command) -> str:
        _count(c, 0)
        return "OK"

    def _rst(self, c: Command) -> str:
        _count(c, 0)
        s = self.printer.status()
        return f"{s.info:08X};{s.warning:08X};{s.error:08X}"

    # -- S -----------------------------------------------------------------------------------

    def _sa(self, c: Command) -> str:
        _count(c, 0, 1)
        if c.params and c.params[0] not in ("p", "r", "o", "c", "m", "h", "f"):
            raise refuse()
        self.printer.self_adjust()
        return "OK"

    def _sc(self, c: Command) -> str:
        """`Sc`: "Runs a copy of the latest list of commands included between Ss and Se"."""
        _count(c, 0)
        if not self._last_sequence:
            raise refuse(Refusal.NO_SEQUENCE)
        reply = "OK"
        for command in list(self._last_sequence):
            reply = self.run(command)
        return reply

    def _scom(self, c: Command) -> str:
        """`Scom;port;answer;command`: nothing is attached to the virtual printer's own serial
        ports, so a command that waits for an answer times out (NACK T in ACK/NACK mode)."""
        if len(c.params) < 3 or c.params[0] not in ("1", "2") or c.params[1] not in ("0", "1"):
            raise refuse()
        if c.params[1] == "1":
            raise refuse(Refusal.TIMEOUT)
        return "OK"

    def _scp(self, c: Command) -> str:
        _count(c, 0)
        self.printer.clean()
        return "OK"

    def _scs(self, c: Command) -> str:
        _count(c, 0)
        self._error_line = 0
        return "OK"

    def _sdm(self, c: Command) -> str:
        _count(c, 1)
        if not _in_range(c.params[0], 0, 60_000):
            raise refuse()
        self.printer.pause(int(c.params[0]) / 1000)
        return "OK"

    def _sdu(self, c: Command) -> str:
        _count(c, 1)
        if not _in_range(c.params[0], 0, 60_000_000):
            raise refuse()
        self.printer.pause(int(c.params[0]) / 1_000_000)
        return "OK"

    def _se(self, c: Command) -> str:
        # The vendor driver sends `Se;1`; the guide's `Se` takes no option. Any one option is
        # taken and ignored (docs/PROTOCOLS.md "Vendor commands").
        _count(c, 0, 1)
        self.printer.end_sequence()
        return "OK"

    def _seb(self, c: Command) -> str:
        _count(c, 0)
        self.printer.reject()
        return "OK"

    def _ser(self, c: Command) -> str:
        _count(c, 0)
        self.printer.reject()
        return "OK"

    def _feed(self, c: Command, station: Station) -> str:
        _count(c, 0)
        self.printer.feed(station)
        return "OK"

    def _si(self, c: Command) -> str:
        return self._feed(c, Station.PRINT)

    def _sib(self, c: Command) -> str:
        return self._feed(c, Station.PRINT)

    def _sic(self, c: Command) -> str:
        return self._feed(c, Station.CONTACTLESS)

    def _sis(self, c: Command) -> str:
        return self._feed(c, Station.CONTACT)

    def _sie(self, c: Command) -> str:
        _count(c, 0)
        self.printer.insert_and_eject()
        return "OK"

    def _sk(self, c: Command) -> str:
        """`Sk;f` finish sensor, `Sk;w` warning sensor, `Sk;s` status (`;1`: two status bytes)."""
        _count(c, 1, 2)
        what = c.params[0]
        detail = c.params[1] if len(c.params) > 1 else None
        if detail not in (None, "1"):
            raise refuse()
        if what == "f":
            return "3" if self.printer.feeder_empty() else "0"
        if what == "w":
            return "3" if self.printer.feeder_low() else "0"
        if what == "s":
            return "128 129" if detail == "1" else "OK"  # the guide's own example bytes
        raise refuse()

    def _sp(self, c: Command) -> str:
        _count(c, 1)
        self.printer.print_from_memory(_panel(c.params[0]))
        return "OK"

    def _ssd(self, c: Command) -> str:
        return self._sp(c)

    def _sr(self, c: Command) -> str:
        _count(c, 0)
        self.printer.select_side(Side.FRONT)
        return "OK"

    def _sv(self, c: Command) -> str:
        _count(c, 0)
        self.printer.select_side(Side.BACK)
        return "OK"

    def _srs(self, c: Command) -> str:
        _count(c, 0)
        self.printer.reset()
        self._magnetic_buffer.clear()
        if self._on_framing is not None:
            self._on_framing(*self._settings.framing)
        return "OK"

    def _ss(self, c: Command) -> str:
        _count(c, 0)
        self.printer.start_sequence()
        return "OK"

    def _st(self, c: Command) -> str:
        _count(c, 0)
        self.printer.test_card()
        return "OK"

    def _stt(self, c: Command) -> str:
        _count(c, 0, 1)
        if c.params and (c.params[0] != "m" or not self.printer.equipment.magnetic):
            raise refuse()
        self.printer.test_card()
        return "OK"

    def _smr(self, c: Command) -> str:
        _count(c, 1)
        if c.params[0] not in ("1", "2", "3"):
            raise refuse()
        return self.printer.read_magnetic(c.params[0])

    def _smw(self, c: Command) -> str:
        _count(c, 0)
        if not self._magnetic_buffer:
            raise refuse(Refusal.MAGNETIC_DATA)
        self.printer.write_magnetic(dict(self._magnetic_buffer))
        return "OK"

    def _sds(self, c: Command) -> str:
        """`Sds;<A|<v[;0|1]` the flip-over station, `Sds;?A|?v|?i[;1]` the output hopper.

        Answers as the guide's examples: `0` (OK/ACK) or a version digit, and with `;1` the
        decimal codes (`6` for ACK)."""
        _count(c, 1, 2)
        target, request = c.params[0][:1], c.params[0][1:]
        decimal = len(c.params) == 2 and c.params[1] == "1"
        if len(c.params) == 2 and c.params[1] not in ("0", "1"):
            raise refuse()
        if target == "<" and self.printer.equipment.flip_over and request in ("A", "v"):
            if request == "v":
                return "97 6" if decimal else "3"
            return "6" if decimal else "0"
        if target == "?" and self.printer.equipment.output_hopper and request in ("A", "v", "i"):
            if request == "v":
                return "97 6" if decimal else "3"
            return "6" if decimal else "0"
        if target in ("<", "?") and request in ("A", "v", "i"):
            raise refuse(Refusal.TIMEOUT)  # no such module answers: the guide's 'T'
        raise refuse()

    # -- W -----------------------------------------------------------------------------------

    def _write_target(self) -> Panel:
        return PANEL_NAMES[self._settings.get("write_bitmap")]

    def _draw(self, panel: Panel, paint: Callable[[np.ndarray], None]) -> None:
        """Change a 1-bit bitmap in card coordinates (x across the landscape card, y down)."""
        depth, data = self.printer.bitmap(panel)
        if depth != 2:
            data = bytes(648 * 1016 // 8)
        card = card_from_panel(np.unpackbits(np.frombuffer(data, np.uint8)).reshape(1016, 648).astype(bool))
        paint(card)
        self.printer.set_bitmap(panel, 2, np.packbits(panel_from_card(card)).tobytes())

    def _wcb(self, c: Command) -> str:
        _count(c, 1, 2)
        value = c.params[1] if len(c.params) > 1 else "0"
        if not _in_range(value, 0, 255):
            raise refuse()
        names = ("y", "m", "c", "k", "o") if c.params[0] == "a" else (c.params[0],)
        for name in names:
            panel = _panel(name)
            self.printer.set_bitmap(panel, 2 if name in ("k", "o") else 128,
                                    bytes([int(value)]) * (648 * 1016 * (1 if name in ("k", "o") else 7) // 8))
        return "OK"

    def _wl(self, c: Command) -> str:
        _count(c, 5)
        if not all(_is_int(p) for p in c.params[:4]) or c.params[4] not in ("0", "1"):
            raise refuse()
        x, y, length, width = (int(p) for p in c.params[:4])
        ink = c.params[4] == "1"

        def paint(card: np.ndarray) -> None:
            card[max(0, y): max(0, y + width), max(0, x): max(0, x + length)] = ink

        self._draw(self._write_target(), paint)
        return "OK"

    def _wt(self, c: Command) -> str:
        """`Wt;x;y;font;height;text`: the text in the bitmap, from a scalable font standing in
        for the printer's Arial 100 (an assumption: the printer's own glyphs are not public)."""
        if len(c.params) < 5 or not all(_is_int(p) for p in c.params[:4]) or c.params[2] not in ("0", "1"):
            raise refuse()
        x, y, _, height = (int(p) for p in c.params[:4])
        text = ";".join(c.params[4:])
        ink = self._text_ink(text, height)
        self._draw(self._write_target(), lambda card: _paste(card, ink, x, y, self._settings.get("write_mode") == "n"))
        return "OK"

    def _text_ink(self, text: str, height: int) -> np.ndarray:
        from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

        font = ImageFont.load_default(size=max(1, height))
        left, top, right, bottom = font.getbbox(text)
        image = Image.new("1", (max(1, int(right - left)), max(1, int(bottom - top))), 0)
        ImageDraw.Draw(image).text((-left, -top), text, fill=1, font=font)
        ink = np.asarray(image, dtype=bool)
        return np.rot90(ink, -int(self._settings.get("write_rotation")) // 90)

    def _wb(self, c: Command) -> str:
        """`Wb;x;y;type;ratio;multiplier;height;visible;data`: Code 39 or interleaved 2 of 5."""
        if len(c.params) < 8 or not all(_is_int(p) for p in (c.params[0], c.params[1], c.params[4], c.params[5])):
            raise refuse()
        x, y = int(c.params[0]), int(c.params[1])
        kind, ratio, narrow, height = c.params[2], c.params[3], int(c.params[4]), int(c.params[5])
        data = ";".join(c.params[7:])
        if ratio not in ("12", "13", "25") or narrow < 1 or height < 1:
            raise refuse()
        wide = narrow * (2 if ratio == "12" else 3 if ratio == "13" else 5) // (1 if ratio != "25" else 2)
        try:
            widths = barcode_modules(kind, data)
        except ValueError:
            raise refuse() from None
        row = np.concatenate([np.full(wide if w else narrow, i % 2 == 0) for i, w in enumerate(widths)])
        ink = np.repeat(row[np.newaxis, :], height, axis=0)
        self._draw(self._write_target(), lambda card: _paste(card, ink, x, y, self._settings.get("write_mode") == "n"))
        return "OK"


# -- pure helpers ------------------------------------------------------------------------------

def sensor_reading(sensor: str, sees: bool) -> str:
    """A sensor's voltage as field code reads it from real printers, with a decimal comma:
    the cover sensor `5,00 Volts` while the cover is closed and `0,00 Volts` when it is open; the
    feeder `5,00 Volts` with blanks, `0,00 Volts` empty; the near-empty sensor `3,92 Volts` above
    the warning level, `0,17 Volts` at it; a card sensor `4,92 Volts` with a card, `0,21 Volts`
    without (**assumption** for the sensors field code does not read: c, m, p, r)."""
    if sensor == "o":
        return "0,00 Volts" if sees else "5,00 Volts"
    if sensor == "f":
        return "5,00 Volts" if sees else "0,00 Volts"
    if sensor == "n":
        return "3,92 Volts" if sees else "0,17 Volts"
    return "4,92 Volts" if sees else "0,21 Volts"


# Bits of the vendor SDK's status words (libevolis 9.4.1 headers, evo-printers.h) that this
# printer can show.
CFG_X01, CFG_FLIP, CFG_CONTACTLESS, CFG_SMART, CFG_MAGNETIC, CFG_FEED_BY_FEEDER = (
    0x80000000, 0x00100000, 0x00080000, 0x00040000, 0x00020000, 0x00002000)
INF_CARD_CONTACTLESS, INF_CARD_SMART, INF_CARD_PRINT, INF_PRINTER_MASTER = 0x08000000, 0x04000000, 0x02000000, 0x00800000
INF_RIBBON_LOW, INF_CLEANING_REQUIRED, INF_PRINTING_RUNNING, INF_BUSY = 0x00080000, 0x00000100, 0x00000080, 0x00000001
WAR_REJECT_BOX_FULL, WAR_FEEDER_EMPTY, WAR_COOLING, WAR_HOPPER_FULL = 0x08000000, 0x01000000, 0x00200000, 0x00100000
WAR_RIBBON_ENDED, WAR_COVER_OPEN = 0x00080000, 0x00020000
ERR_COVER_OPEN, ERR_MECHANICAL = 0x02000000, 0x01000000
EX1_FEEDER_NEAR_EMPTY = 0x00000100


def sdk_status_words(printer: Printer) -> tuple[int, int, int, int, int]:
    """(config, information, warning, error, extension 1) as the vendor SDK lays them out."""
    equipment, legacy = printer.equipment, printer.status()
    config = CFG_X01 | CFG_FEED_BY_FEEDER
    config |= (CFG_FLIP if equipment.flip_over else 0) | (CFG_CONTACTLESS if equipment.contactless else 0)
    config |= (CFG_SMART if equipment.smart else 0) | (CFG_MAGNETIC if equipment.magnetic else 0)
    position = printer.card_position()
    info = {Station.CONTACTLESS: INF_CARD_CONTACTLESS, Station.CONTACT: INF_CARD_SMART,
            Station.PRINT: INF_CARD_PRINT, None: 0}[position]
    info |= INF_PRINTER_MASTER if printer.settings.errors.mode == 0 else 0
    info |= (INF_RIBBON_LOW if legacy.info & 0x08 else 0) | (INF_CLEANING_REQUIRED if printer.cleaning_due() else 0)
    info |= (INF_BUSY | INF_PRINTING_RUNNING) if legacy.info & 0x20 else 0
    warning = 0
    for old_bit, new_bit in ((0x01, WAR_FEEDER_EMPTY), (0x02, WAR_HOPPER_FULL), (0x04, WAR_REJECT_BOX_FULL),
                             (0x08, WAR_RIBBON_ENDED), (0x20, WAR_COVER_OPEN), (0x40, WAR_COOLING)):
        warning |= new_bit if legacy.warning & old_bit else 0
    error = (ERR_MECHANICAL if legacy.error & 0x01 else 0) | (ERR_COVER_OPEN if legacy.error & 0x08 else 0)
    extension = EX1_FEEDER_NEAR_EMPTY if printer.feeder_low() else 0
    return config, info, warning, error, extension


def card_from_panel(panel: np.ndarray) -> np.ndarray:
    """The landscape card (648 x 1016) a panel (1016 x 648) prints: the panel was the card turned
    90 degrees clockwise, so turn it back counter-clockwise."""
    return np.rot90(panel, 1)


def panel_from_card(card: np.ndarray) -> np.ndarray:
    """The panel for a landscape card: the card turned 90 degrees clockwise (first dot: bottom-left)."""
    return np.ascontiguousarray(np.rot90(card, -1))


def _paste(card: np.ndarray, ink: np.ndarray, x: int, y: int, inverse: bool = False) -> None:
    h = max(0, min(ink.shape[0], CARD_HEIGHT - y))
    w = max(0, min(ink.shape[1], CARD_WIDTH - x))
    if x < 0 or y < 0 or not h or not w:
        return
    region = ink[:h, :w]
    if inverse:
        card[y: y + h, x: x + w] = ~region
    else:
        card[y: y + h, x: x + w] |= region


# Code 39: each character is 9 elements (bar, space, ...), 1 = wide.
_CODE39 = {
    "0": "000110100", "1": "100100001", "2": "001100001", "3": "101100000", "4": "000110001",
    "5": "100110000", "6": "001110000", "7": "000100101", "8": "100100100", "9": "001100100",
    "A": "100001001", "B": "001001001", "C": "101001000", "D": "000011001", "E": "100011000",
    "F": "001011000", "G": "000001101", "H": "100001100", "I": "001001100", "J": "000011100",
    "K": "100000011", "L": "001000011", "M": "101000010", "N": "000010011", "O": "100010010",
    "P": "001010010", "Q": "000000111", "R": "100000110", "S": "001000110", "T": "000010110",
    "U": "110000001", "V": "011000001", "W": "111000000", "X": "010010001", "Y": "110010000",
    "Z": "011010000", "-": "010000101", ".": "110000100", " ": "011000100", "$": "010101000",
    "/": "010100010", "+": "010001010", "%": "000101010", "*": "010010100",
}
_ITF = {"0": "00110", "1": "10001", "2": "01001", "3": "11000", "4": "00101",
        "5": "10100", "6": "01100", "7": "00011", "8": "10010", "9": "01010"}


def barcode_modules(kind: str, data: str) -> list[bool]:
    """Element widths (True wide) alternating bar, space, bar... Raises ValueError for bad data."""
    if kind == "c39":
        text = f"*{data.upper()}*"
        if any(ch not in _CODE39 for ch in text[1:-1]) or "*" in data:
            raise ValueError(data)
        out: list[bool] = []
        for i, ch in enumerate(text):
            out += [bit == "1" for bit in _CODE39[ch]]
            if i < len(text) - 1:
                out.append(False)  # narrow gap between characters
        return out
    if kind == "2/5":
        if not data.isdigit() or len(data) % 2:
            raise ValueError(data)
        out = [False, False, False, False]  # start: narrow bar, space, bar, space
        for a, b in zip(data[::2], data[1::2]):
            for bar, space in zip(_ITF[a], _ITF[b]):
                out += [bar == "1", space == "1"]
        return out + [True, False, False]  # stop: wide bar, narrow space, narrow bar
    raise ValueError(kind)


def _panel(name: str) -> Panel:
    try:
        return PANEL_NAMES[name]
    except KeyError:
        raise refuse() from None


def _panel_and_depth(c: Command) -> tuple[Panel, int]:
    if len(c.params) < 2 or not _is_int(c.params[1]) or int(c.params[1]) not in DEPTHS:
        raise refuse()
    return _panel(c.params[0]), int(c.params[1])


def _data(c: Command) -> bytes:
    if c.data is None:  # a download ended by CR before its data: nothing can follow
        raise refuse()
    return c.data


def _count(c: Command, low: int, high: int | None = None) -> None:
    if not low <= len(c.params) <= (low if high is None else high):
        raise refuse()


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() and text.isascii()


def _in_range(text: str, low: int, high: int) -> bool:
    return _is_int(text) and low <= int(text) <= high
