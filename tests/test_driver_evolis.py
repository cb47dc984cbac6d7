"""The Evolis dialect over a real pty, with a small canned-reply printer on the other end."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.evolis import EvolisPrinter, Panel, Timeouts, panel_size
from drivers.faults import Fault
from drivers.link import Link, open_link
from drivers.printer_errors import CommandRejected, LinkError, ProtocolError, ReplyTimeout
from drivers.printer_status import PrinterStatus

ESC, CR = b"\x1b", b"\r"


class CannedPrinter:
    """The printer end of a pty: frames commands as the contract says (a panel taken by its
    length), records each frame, and answers from `replies` (default `OK`).

    A reply is the bytes to write, a tuple of chunks written apart, or None for silence.
    """

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)
        self.replies: dict[str, bytes | tuple[bytes, ...] | None] = {}
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
    assert canned.frames == [b"\x1bRtp\r", b"\x1bRfv\r", b"\x1bRsn\r"]


def test_counters_read_cards_panels_and_ribbon_left(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies.update({"Rco;c": b"1520\r", "Rco;p": b"7600\r", "Rco;l": b"180\r"})
    counters = printer.counters()
    assert (counters.cards, counters.panels, counters.ribbon_left) == (1520, 7600, 180)
    assert canned.frames == [b"\x1bRco;c\r", b"\x1bRco;p\r", b"\x1bRco;l\r"]


def test_status_is_decoded_from_rst(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    canned.replies["Rst"] = b"00000043;00000020;00000000\r"
    status = printer.status()
    assert canned.frames == [b"\x1bRst\r"]
    assert status == PrinterStatus(
        card_inside=True, card_at_contactless=True, sequence_open=True, faults=frozenset({Fault.COVER_OPEN})
    )


@pytest.mark.parametrize(
    ("query", "command", "reply", "expected"),
    [
        (EvolisPrinter.cover_open, "Rse;o", b"1\r", True),
        (EvolisPrinter.cover_open, "Rse;o", b"0\r", False),
        (EvolisPrinter.card_present, "Rse;p", b"1\r", True),
        (EvolisPrinter.card_present, "Rse;p", b"0\r", False),
        (EvolisPrinter.feeder_empty, "Sk;f", b"3\r", True),
        (EvolisPrinter.feeder_empty, "Sk;f", b"0\r", False),
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


def test_download_of_a_full_panel_is_one_write_and_quick(canned: CannedPrinter) -> None:
    writes: list[int] = []
    with open_link(
        f"serial://{canned.path}",
        trace=lambda direction, data: writes.append(len(data)) if direction == "tx" else None,
    ) as traced:
        started = time.monotonic()
        EvolisPrinter(traced).download(Panel("c", 128, bytes(panel_size(128))))
        elapsed = time.monotonic() - started
    assert writes == [len(b"\x1bDb;c;128;") + panel_size(128) + 1]
    assert elapsed < 2.0


def test_k_panel_goes_at_depth_two(canned: CannedPrinter, printer: EvolisPrinter) -> None:
    data = bytes(range(256)) * (panel_size(2) // 256) + bytes(panel_size(2) % 256)
    printer.download(Panel("k", 2, data))
    assert canned.frames == [b"\x1bDb;k;2;" + data + b"\r"]


@pytest.mark.parametrize(
    ("reply", "fault"),
    [
        (b"ERR FEEDER EMPTY\r", Fault.FEEDER_EMPTY),
        (b"ERR COVER OPEN\r", Fault.COVER_OPEN),
        (b"ERR JAM\r", Fault.JAM),
        (b"ERR RIBBON ENDED\r", Fault.RIBBON_ENDED),
        (b"ERR HOPPER FULL\r", Fault.HOPPER_FULL),
        (b"ERR REJECT FULL\r", Fault.REJECT_FULL),
        (b"ERR COOLING\r", Fault.HEAD_HOT),
        (b"ERR CARD INSIDE\r", None),
        (b"ERR NO CARD\r", None),
        (b"ERR NO SEQUENCE\r", None),
        (b"ERR PARAMETER\r", None),
        (b"ERR UNKNOWN COMMAND\r", None),
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
    canned.replies["Db;m;64"] = b"ERR RIBBON ENDED\r"
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
        ("Rse;o", b"7\r", EvolisPrinter.cover_open),
        ("Rst", b"OK\r", EvolisPrinter.status),
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
