"""The Evolis dialect over a real pty, with a small canned-reply printer on the other end."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.evolis.printer import IDENTITY_READINGS, EvolisPrinter, JobSettings, Panel, Timeouts, panel_size
from drivers.faults import Fault
from drivers.link.base import Link
from drivers.link.url import open_link
from drivers.printer_errors import CommandRejected, LinkError, ProtocolError, ReplyTimeout
from drivers.evolis.status import PrinterStatus

ESC, CR = b"\x1b", b"\r"


class CannedPrinter:
    """The printer end of a pty: frames commands as the contract says (a panel taken by its
    length), records each frame, and answers from `replies` (default `OK`).

    A reply is the bytes to write, a tuple of chunks written apart, or None for silence.
    """

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)
        self.replies: dict[str, bytes | tuple[bytes, ...] | list | None] = {}
        self.frames: list[bytes] = []
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="canned-printer")
        self._thread.start()

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()
        for fd in (self.master, self._slave, self._stop_r, self._stop_w):
            os.close(fd)

    def wait_input_queued(self) -> None:
        ready, _, _ = select.select([self._slave], [], [], 2.0)
        assert ready

    def _serve(self) -> None:
        pending = bytearray()
        while True:
            ready, _, _ = select.select([self.master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                pending += os.read(self.master, 1 << 20)
            except OSError:  # the link closed its end
                return
            while (frame := self._take_frame(pending)) is not None:
                self.frames.append(frame)
                self._answer(frame)

    @staticmethod
    def _take_frame(pending: bytearray) -> bytes | None:
        while pending[:1] == b"\x00":
            del pending[0]
        if pending[:4] == ESC + b"Db;":
            header_end = pending.find(b";", pending.find(b";", 4) + 1)
            if header_end < 0:
                return None
            depth = int(pending[4:header_end].split(b";")[1])
            end = header_end + 1 + panel_size(depth)
            if len(pending) <= end:
                return None
        else:
            end = pending.find(CR)
            if end < 0:
                return None
        frame = bytes(pending[: end + 1])
        del pending[: end + 1]
        return frame

    def _answer(self, frame: bytes) -> None:
        if frame.startswith(ESC + b"Db;"):
            command = ";".join(part.decode() for part in frame[1:].split(b";", 3)[:3])
        else:
            command = frame[1:-1].decode("ascii", "replace")
        reply = self.replies.get(command, b"OK\r")
        if isinstance(reply, list):  # one reply a call, the last one kept
            reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if reply is None:
            return
        chunks = reply if isinstance(reply, tuple) else (reply,)
        for i, chunk in enumerate(chunks):
            if i:
                time.sleep(0.05)  # let the driver see the reply arrive in pieces
            os.write(self.master, chunk)


@pytest.fixture
def canned() -> Iterator[CannedPrinter]:
    printer = CannedPrinter()
    yield printer
    printer.stop()


@pytest.fixture
def link(canned: CannedPrinter) -> Iterator[Link]:
    opened = open_link(f"serial://{canned.path}")
    yield opened
    opened.close()


@pytest.fixture
def printer(link: Link) -> EvolisPrinter:
    return EvolisPrinter(link, timeouts=Timeouts(query=2, move=2, panel=2, finish=2, maintenance=2))


@pytest.mark.parametrize(
    ("action", "frame"),
    [
        (EvolisPrinter.start_sequence, b"\x1bSs\r"),
        (EvolisPrinter.feed_to_contactless, b"\x1bSic\r"),
        (EvolisPrinter.feed_to_contact, b"\x1bSis\r"),
        (EvolisPrinter.feed_to_print, b"\x1bSi\r"),
        (EvolisPrinter.front, b"\x1bSr\r"),
        (EvolisPrinter.back, b"\x1bSv\r"),
        (EvolisPrinter.eject, b"\x1bSe\r"),
        (EvolisPrinter.reject, b"\x1bSer\r"),
        (EvolisPrinter.clean, b"\x1bScp\r"),
        (EvolisPrinter.reset, b"\x1bSrs\r"),
        (EvolisPrinter.self_test, b"\x1bSt\r"),
    ],
)
def test_each_action_sends_its_command_and_accepts_ok(
    canned: CannedPrinter, printer: EvolisPrinter, action: Callable[[EvolisPrinter], None], frame: bytes
) -> None:
    action(printer)
    assert canned.frames == [frame]


def test_identity_reads_model_firmware_and_serial(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies.update({"Rtp": b"Primacy (virtual)\r", "Rfv": b"SIM-1.0.0\r", "Rsn": b"SIMP00001\r"})
    identity = printer.identity()
    assert (identity.model, identity.firmware, identity.serial) == ("Primacy (virtual)", "SIM-1.0.0", "SIMP00001")
    assert canned.frames == [b"\x1bRtp\r", b"\x1bRfv\r", b"\x1bRsn\r", b"\x1bRfv\r", b"\x1bRsn\r", b"\x1bRtp\r"], \
        "read twice, in two orders: two readings must agree"


def test_a_stale_reply_left_by_a_dead_host_is_not_taken_for_the_identity(canned: CannedPrinter,
                                                                          printer: EvolisPrinter) -> None:
    # The printer answers one command at a time, in order: the dead host's `Se` answer comes first.
    canned.replies.update({"Rtp": [(b"OK\r", b"Primacy\r"), b"Primacy\r"], "Rfv": b"SIM-1.0.0\r",
                           "Rsn": b"SIMP00001\r"})
    identity = printer.identity()
    assert (identity.model, identity.firmware, identity.serial) == ("Primacy", "SIM-1.0.0", "SIMP00001")


class LaggingPrinter(CannedPrinter):
    """A printer whose answers stay one command behind: each command is answered with the
    answer to the one before it (the first with a dead host's OK)."""

    def __init__(self) -> None:
        self._owed = b"OK\r"
        super().__init__()

    def _answer(self, frame: bytes) -> None:
        reply = self.replies.get(frame[1:-1].decode("ascii", "replace"), b"OK\r")
        assert isinstance(reply, bytes)
        owed, self._owed = self._owed, reply
        os.write(self.master, owed)


def test_a_conversation_that_stays_one_answer_behind_never_passes_for_an_identity() -> None:
    # Asked in one fixed order, such a printer gives the same shifted reading every time
    # (model = the answer before Rtp's, firmware = the model, serial = the firmware), which two
    # readings in a row would agree on. The identity must be refused, not taken wrong.
    lagging = LaggingPrinter()
    lagging.replies.update({"Rtp": b"Primacy\r", "Rfv": b"SIM-1.0.0\r", "Rsn": b"SIMP00001\r"})
    try:
        with open_link(f"serial://{lagging.path}") as link:
            with pytest.raises(ProtocolError, match="do not settle"):
                EvolisPrinter(link, timeouts=Timeouts(query=2, move=2, panel=2, finish=2, maintenance=2)).identity()
    finally:
        lagging.stop()
    assert len(lagging.frames) == 3 * IDENTITY_READINGS


def test_counters_read_cards_panels_and_ribbon_left(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies.update({"Rco;c": b"1520\r", "Rco;p": b"7600\r", "Rco;l": b"180\r"})
    counters = printer.counters()
    assert (counters.cards, counters.panels, counters.ribbon_left) == (1520, 7600, 180)
    assert canned.frames == [b"\x1bRco;c\r", b"\x1bRco;p\r", b"\x1bRco;l\r"]


def test_status_comes_from_the_sdks_rpst_when_the_printer_has_it(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    # libevolis 9.4.1 bits: INF_CARD_CONTACTLESS 0x08000000, WAR_COVER_OPEN 0x00020000, ERR_MECHANICAL 0x01000000.
    canned.replies.update({"Rpst": b"80000000" b"08000000" b"00020000" b"01000000" b"00000000\r", "Sk;f": b"0\r"})
    assert printer.detect_capabilities().status_command == "Rpst"
    canned.frames.clear()
    status = printer.status()
    assert canned.frames == [b"\x1bRpst\r"]
    assert status.card_inside and status.card_at_contactless and status.job_interrupted
    assert status.faults == frozenset({Fault.COVER_OPEN, Fault.JAM})


def test_status_comes_from_rst_when_the_printer_has_it(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies.update({"Rpst": b"ERROR CDE\r", "Rst": b"00000043;00000020;00000000\r", "Sk;f": b"0\r"})
    assert printer.detect_capabilities().status_command == "Rst"
    canned.frames.clear()
    status = printer.status()
    assert canned.frames == [b"\x1bRst\r"]
    assert status == PrinterStatus(
        card_inside=True, card_at_contactless=True, sequence_open=True, faults=frozenset({Fault.COVER_OPEN})
    )


def test_without_rst_the_status_comes_from_the_guides_documented_reads(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies.update({"Rpst": b"ERROR CDE\r", "Rst": b"ERROR CDE\r", "Sk;f": b"3\r", "Rse;o": b"0,00 Volts\r",
                           "Rlr;p": b"CONTACTLESS CARD\r", "Rcr": b"OK\r", "Rlr;r": b"ERR NEED CLEANING\r"})
    capabilities = printer.detect_capabilities()
    assert not capabilities.status_words and capabilities.feeder_sensor == "Sk;f"
    canned.frames.clear()
    status = printer.status()
    assert b"\x1bRst\r" not in canned.frames, "a printer that refused Rst is not asked again"
    assert status.card_inside and status.card_at_contactless and status.cleaning_recommended
    assert status.faults == frozenset({Fault.COVER_OPEN, Fault.FEEDER_EMPTY})


def test_a_printer_whose_feeder_module_does_not_answer_is_read_by_its_feeder_sensor(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies.update({"Rpst": b"ERROR CDE\r", "Rst": b"ERROR CDE\r", "Sk;f": b"OPT NOT AVAILABLE\r",
                           "Rse;f": b"5,00 Volts\r", "Rse;o": b"5,00 Volts\r",
                           "Rlr;p": b"OK\r", "Rlr;r": b"OK\r", "Rcr": b"ERROR RIBBON\r"})
    assert printer.detect_capabilities().feeder_sensor == "Rse;f", "the feeder's own sensor, then"
    status = printer.status()
    assert not status.card_inside and status.faults == frozenset({Fault.RIBBON_ENDED})


def test_job_settings_are_sent_before_every_card_as_the_vendor_driver_does(canned: CannedPrinter,
                                                                          printer: EvolisPrinter) -> None:
    printer.apply_job_settings(JobSettings(ribbon="ymcko", contrast=12))
    assert canned.frames == [b"\x1bPr;ymcko\r", b"\x1bPmi;F\r", b"\x1bPc;a;=;12\r"]


def test_job_settings_refuse_an_unknown_ribbon_or_contrast() -> None:
    with pytest.raises(ValueError, match="ribbon"):
        JobSettings(ribbon="rainbow")
    with pytest.raises(ValueError, match="contrast"):
        JobSettings(contrast=21)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(b"\x06", "OK"), (b"SIM-1.0.0\x06", "SIM-1.0.0")],
)
def test_ack_nack_answers_are_understood(canned: CannedPrinter, printer: EvolisPrinter, reply: bytes,
                                         expected: str) -> None:
    canned.replies["Rfv"] = reply
    canned.replies["Rtp"] = b"Primacy\x06"
    canned.replies["Rsn"] = b"S1\x06"
    assert printer.identity().firmware == expected if expected != "OK" else True
    canned.replies["Ss"] = b"\x06"
    printer.start_sequence()


@pytest.mark.parametrize(
    ("code", "fault"),
    [(b"C", Fault.COVER_OPEN), (b"F", Fault.FEEDER_EMPTY), (b"R", Fault.RIBBON_ENDED), (b"T", Fault.JAM),
     (b"1", None), (b"2", None)],
)
def test_a_nack_is_a_refusal_with_the_guides_fault(canned: CannedPrinter, printer: EvolisPrinter, code: bytes,
                                                   fault: Fault | None) -> None:
    canned.replies["Sic"] = b"\x15" + code
    with pytest.raises(CommandRejected) as caught:
        printer.feed_to_contactless()
    assert caught.value.reply == f"NACK {code.decode()}" and caught.value.fault is fault


@pytest.mark.parametrize(
    ("query", "command", "reply", "expected"),
    [
        # Field code against real printers: "0,00 Volts" with the cover open, "5,00 Volts" closed.
        (EvolisPrinter.cover_open, "Rse;o", b"0,00 Volts\r", True),
        (EvolisPrinter.cover_open, "Rse;o", b"5,00 Volts\r", False),
        (EvolisPrinter.cover_open, "Rse;o", b"4.92 V\r", False),
        (EvolisPrinter.card_present, "Rlr;p", b"CARD\r", True),
        (EvolisPrinter.card_present, "Rlr;p", b"SMART CARD\r", True),
        (EvolisPrinter.card_present, "Rlr;p", b"OK\r", False),
        (EvolisPrinter.feeder_empty, "Sk;f", b"3\r", True),
        (EvolisPrinter.feeder_empty, "Sk;f", b"0\r", False),
        (EvolisPrinter.ribbon_ended, "Rcr", b"OK\r", False),
        (EvolisPrinter.ribbon_ended, "Rcr", b"ERROR RIBBON\r", True),
        (EvolisPrinter.ribbon_type, "Rr", b"ymcko\r", "ymcko"),
    ],
)
def test_sensor_queries_read_their_answer(
    canned: CannedPrinter,
    printer: EvolisPrinter,
    query: Callable[[EvolisPrinter], object],
    command: str,
    reply: bytes,
    expected: object,
) -> None:
    canned.replies[command] = reply
    assert query(printer) == expected
    assert canned.frames == [ESC + command.encode() + CR]


def test_download_sends_exactly_header_payload_and_cr(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    # The payload holds ';', CR and NUL: it must go out untouched and be taken by its length.
    data = (b";\r\x00\x1bOK" * (panel_size(128) // 6 + 1))[: panel_size(128)]
    printer.download(Panel("y", 128, data))
    assert canned.frames == [b"\x1bDb;y;128;" + data + b"\r"]


def test_download_of_a_full_panel_is_one_write(canned: CannedPrinter) -> None:
    writes: list[int] = []
    with open_link(
        f"serial://{canned.path}",
        trace=lambda direction, data: writes.append(len(data)) if direction == "tx" else None,
    ) as traced:
        EvolisPrinter(traced).download(Panel("c", 128, bytes(panel_size(128))))
    assert writes == [len(b"\x1bDb;c;128;") + panel_size(128) + 1]  # one write: the speed is bench's


def test_k_panel_goes_at_depth_two(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    data = bytes(range(256)) * (panel_size(2) // 256) + bytes(panel_size(2) % 256)
    printer.download(Panel("k", 2, data))
    assert canned.frames == [b"\x1bDb;k;2;" + data + b"\r"]


@pytest.mark.parametrize(
    ("reply", "fault"),
    [
        # What real printers answer (field code compares these): older whole words, ERROR ..., ERR ...
        (b"FEEDER EMPTY\r", Fault.FEEDER_EMPTY),
        (b"COVER OPEN\r", Fault.COVER_OPEN),
        (b"CARD JAM\r", Fault.JAM),
        (b"HOPPER FULL\r", Fault.HOPPER_FULL),
        (b"HOPPER DOOR\r", Fault.COVER_OPEN),
        (b"NEED CLEANING\r", Fault.CLEANING_REQUIRED),
        (b"ERROR RIBBON\r", Fault.RIBBON_ENDED),
        (b"ERR RIBBON\r", Fault.RIBBON_ENDED),
        (b"ERR RIB DETECTION\r", Fault.RIBBON_MISSING),
        (b"ERROR HEAD\r", Fault.HEAD_HOT),
        (b"ERROR TIME OUT\r", Fault.JAM),
        (b"ERROR CDE\r", None),
        (b"ERROR PARAMETRES\r", None),
        (b"ERR PARAMETRES\r", None),
        (b"OPT NOT AVAILABLE\r", None),
        (b"ERROR MAGN DATA\r", None),
        (b"ERROR\r", None),
        # This project's own earlier texts, still understood.
        (b"ERR FEEDER EMPTY\r", Fault.FEEDER_EMPTY),
        (b"ERR JAM\r", Fault.JAM),
        (b"ERR REJECT BOX FULL\r", Fault.REJECT_FULL),
        (b"ERR COOLING\r", Fault.HEAD_HOT),
        (b"ERR CARD INSIDE\r", None),
        (b"ERR NO CARD\r", None),
        (b"ERR DATA LENGTH\r", None),
        (b"ERR SOMETHING NEW\r", None),
    ],
)
def test_err_reply_is_rejected_with_its_fault(
    canned: CannedPrinter, printer: EvolisPrinter, reply: bytes, fault: Fault | None
) -> None:
    canned.replies["Sic"] = reply
    with pytest.raises(CommandRejected) as caught:
        printer.feed_to_contactless()
    assert caught.value.command == "Sic"
    assert caught.value.reply == reply.decode().rstrip("\r")
    assert caught.value.fault is fault


def test_rejected_panel_names_the_panel_not_its_bytes(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies["Db;m;64"] = b"ERROR RIBBON\r"
    with pytest.raises(CommandRejected) as caught:
        printer.download(Panel("m", 64, bytes(panel_size(64))))
    assert caught.value.command == "Db;m;64"
    assert caught.value.fault is Fault.RIBBON_ENDED


def test_nul_padded_reply_split_in_pieces_is_read(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies["Rr"] = (b"\x00\x00ym", b"ck", b"o\x00")
    assert printer.ribbon_type() == "ymcko"


def test_silent_printer_gives_reply_timeout(canned: CannedPrinter, link: Link) -> None:
    canned.replies["Sic"] = None
    slow = EvolisPrinter(link, timeouts=Timeouts(move=0.3))
    started = time.monotonic()
    with pytest.raises(ReplyTimeout) as caught:
        slow.feed_to_contactless()
    assert time.monotonic() - started >= 0.3
    assert caught.value.fault is Fault.LINK_LOST


def test_mechanical_commands_wait_longer_than_queries() -> None:
    timeouts = Timeouts()
    assert timeouts.query <= 5
    assert min(timeouts.move, timeouts.panel, timeouts.finish, timeouts.maintenance) >= 20


def test_stale_input_is_discarded_before_a_command(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    os.write(canned.master, b"ERR JAM\r")  # a late answer to an earlier, abandoned command
    canned.wait_input_queued()
    printer.start_sequence()
    assert canned.frames == [b"\x1bSs\r"]


@pytest.mark.parametrize(
    ("command", "reply", "call"),
    [
        ("Ss", b"YES\r", EvolisPrinter.start_sequence),
        ("Rco;c", b"many\r", EvolisPrinter.counters),
        ("Rco;c", b"-1\r", EvolisPrinter.counters),
        ("Rse;o", b"high\r", EvolisPrinter.cover_open),
        ("Rlr;p", b"SOMEWHERE\r", EvolisPrinter.card_present),
        ("Rtp", b"\r", EvolisPrinter.identity),
        ("Rtp", b"\xc3\xa9\r", EvolisPrinter.identity),
    ],
)
def test_reply_of_the_wrong_shape_is_a_protocol_error(
    canned: CannedPrinter, printer: EvolisPrinter, command: str, reply: bytes, call: Callable[[EvolisPrinter], object]
) -> None:
    canned.replies[command] = reply
    with pytest.raises(ProtocolError):
        call(printer)


def test_closed_printer_raises_link_lost(printer: EvolisPrinter) -> None:
    printer.close()
    with pytest.raises(LinkError) as caught:
        printer.status()
    assert caught.value.fault is Fault.LINK_LOST


@pytest.mark.parametrize(
    ("name", "depth", "size"),
    [
        ("y", 128, panel_size(128) - 1),
        ("y", 128, panel_size(64)),
        ("k", 128, panel_size(128)),
        ("o", 32, panel_size(32)),
        ("x", 2, panel_size(2)),
        ("c", 16, 1000),
    ],
)
def test_panel_refuses_a_wrong_name_depth_or_length(name: str, depth: int, size: int) -> None:
    with pytest.raises(ValueError):
        Panel(name, depth, bytes(size))


@pytest.mark.parametrize(("depth", "size"), [(2, 82_296), (32, 411_480), (64, 493_776), (128, 576_072)])
def test_panel_sizes_match_the_contract(depth: int, size: int) -> None:
    assert panel_size(depth) == size
