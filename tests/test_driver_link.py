"""The serial link against a real pty: the test holds the master side, the link the slave."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.faults import Fault
from drivers.link.base import MAX_REPLY, Link
from drivers.link.url import open_link
from drivers.printer_errors import LinkError, PrinterError, ProtocolError, ReplyTimeout


class Pty:
    """A pty pair; `master` is the printer's end."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]

    def wait_input_queued(self) -> None:
        """Block until written bytes sit in the slave's input queue (pty delivery is asynchronous)."""
        ready, _, _ = select.select([self.slave], [], [], 2.0)
        assert ready, "pty never delivered the bytes"

    def read_exactly(self, size: int, timeout: float = 5.0) -> bytes:
        got = bytearray()
        deadline = time.monotonic() + timeout
        while len(got) < size:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"only {len(got)} of {size} bytes arrived"
            got += os.read(self.master, size - len(got))
        return bytes(got)

    def hang_up(self) -> None:
        """The printer end goes away, as when the printer is switched off or unplugged."""
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def pty() -> Iterator[Pty]:
    pair = Pty()
    yield pair
    pair.close()


@pytest.fixture
def link(pty: Pty) -> Iterator[Link]:
    opened = open_link(f"serial://{pty.path}?baud=115200")
    yield opened
    opened.close()


def test_reply_ends_at_carriage_return(pty: Pty, link: Link) -> None:
    pty.write(b"OK\r")
    assert link.read_reply(2.0) == "OK"


def test_reply_ends_at_nul_and_nul_padding_before_it_is_skipped(pty: Pty, link: Link) -> None:
    pty.write(b"\x00\x00\x00SIM-1.0.0\x00\x00")
    assert link.read_reply(2.0) == "SIM-1.0.0"


def test_reply_split_across_reads_is_joined(pty: Pty, link: Link) -> None:
    pty.write(b"Primacy ")
    later = threading.Timer(0.1, pty.write, args=(b"(virtual)\r",))
    later.start()
    try:
        assert link.read_reply(2.0) == "Primacy (virtual)"
    finally:
        later.join()


def test_bytes_after_a_reply_wait_for_the_next_read(pty: Pty, link: Link) -> None:
    pty.write(b"12\r34\r")
    assert link.read_reply(2.0) == "12"
    assert link.read_reply(2.0) == "34"


def test_incomplete_reply_times_out_at_the_deadline(pty: Pty, link: Link) -> None:
    pty.write(b"OK")
    started = time.monotonic()
    with pytest.raises(ReplyTimeout) as caught:
        link.read_reply(0.3)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.3  # at the deadline, not before (a hang past it is pytest-timeout's)
    assert caught.value.fault is Fault.LINK_LOST
    assert pty.path in str(caught.value)


def test_reset_input_discards_a_stale_reply(pty: Pty, link: Link) -> None:
    pty.write(b"ERR JAM\r")
    pty.wait_input_queued()
    link.reset_input()
    pty.write(b"OK\r")
    assert link.read_reply(2.0) == "OK"


def test_reply_that_is_not_text_is_a_protocol_error(pty: Pty, link: Link) -> None:
    pty.write(b"O\xffK\r")
    with pytest.raises(ProtocolError):
        link.read_reply(2.0)


def test_endless_noise_without_terminator_is_a_protocol_error(pty: Pty, link: Link) -> None:
    pty.write(b"A" * (MAX_REPLY + 10))
    with pytest.raises(ProtocolError):
        link.read_reply(2.0)


def test_send_delivers_every_byte_unchanged(pty: Pty, link: Link) -> None:
    # CR, LF, XON/XOFF, ^C: a raw line must not translate or swallow any of them.
    data = bytes(range(256)) * 8
    link.send(data)
    assert pty.read_exactly(len(data)) == data


def test_trace_sees_what_goes_out_and_comes_in(pty: Pty) -> None:
    seen: list[tuple[str, bytes]] = []
    with open_link(f"serial://{pty.path}", trace=lambda direction, data: seen.append((direction, data))) as traced:
        traced.send(b"\x1bRfv\r")
        pty.write(b"SIM\r")
        traced.read_reply(2.0)
    assert seen[0] == ("tx", b"\x1bRfv\r")
    assert b"".join(data for direction, data in seen if direction == "rx") == b"SIM\r"


def test_missing_device_gives_link_error_naming_the_path() -> None:
    with pytest.raises(LinkError) as caught:
        open_link("serial:///dev/printstation-no-such-printer?baud=9600")
    assert "/dev/printstation-no-such-printer" in str(caught.value)
    assert "no such device" in str(caught.value)
    assert caught.value.fault is Fault.LINK_LOST


def test_second_opener_of_the_same_port_is_refused(pty: Pty, link: Link) -> None:
    with pytest.raises(LinkError) as caught:
        open_link(f"serial://{pty.path}")
    assert "another program" in str(caught.value)


def test_closed_link_raises_link_error(link: Link) -> None:
    link.close()
    with pytest.raises(LinkError) as caught:
        link.send(b"\x1bRst\r")
    assert "closed" in str(caught.value)


def test_printer_end_going_away_is_link_error_not_timeout(pty: Pty, link: Link) -> None:
    pty.hang_up()
    with pytest.raises(LinkError):
        link.read_reply(2.0)


@pytest.mark.parametrize(
    "url",
    [
        "tcp://printer:9100",
        "usb://evolis?serial=ABC",
        "usb://0f49:1001?serial=ABC&baud=9600",
        "serial://dev/ttyUSB0",
        "serial:///dev/ttyUSB0?baud=fast",
        "serial:///dev/ttyUSB0?baud=0",
        "serial:///dev/ttyUSB0?speed=9600",
        "serial:///dev/ttyUSB0?baud=9600&baud=115200",
        "serial:///dev/ttyUSB0?baud",
        "/dev/ttyUSB0",
    ],
)
def test_bad_url_is_a_value_error_naming_it(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        open_link(url)
    assert url in str(caught.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2 * MAX_REPLY))
def test_reader_fed_any_bytes_returns_text_or_a_driver_error(pty: Pty, link: Link, data: bytes) -> None:
    link.reset_input()
    pty.write(data + b"\r")
    try:
        reply = link.read_reply(2.0)
    except PrinterError:
        return
    assert isinstance(reply, str)
    # Text, text ended by ACK, or NACK and one code character (the ACK/NACK protocol).
    text = reply[2:] if reply.startswith("\x15") else reply.removesuffix("\x06")
    assert all(" " <= ch <= "~" for ch in text) and (not reply.startswith("\x15") or len(reply) == 2)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    padding=st.integers(min_value=0, max_value=8),
    text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60),
    terminator=st.sampled_from([b"\r", b"\x00"]),
)
def test_any_text_reply_comes_back_whole(pty: Pty, link: Link, padding: int, text: str, terminator: bytes) -> None:
    link.reset_input()
    pty.write(b"\x00" * padding + text.encode("ascii") + terminator)
    assert link.read_reply(2.0) == text
