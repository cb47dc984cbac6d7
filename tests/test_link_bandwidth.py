"""The link's byte rate in the virtual printer: panels cost their time on the cable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.evolis.printer import EvolisPrinter, Panel, panel_size
from drivers.link.url import open_link
from simulators.chip.emulator import VirtualChip
from simulators.printer.server import EvolisServer, serve
from simulators.printer.link_bandwidth import Bandwidth, LinkClock, PacedLink, UsbSpeed
from simulators.printer.machine import Printer, PrinterState
from simulators.printer.pty_port import PtyPort
from tests.sim_printer_rig import RecordingReader
from tests.usb_printer_rig import usb_printer

K_TEXT = bytes(panel_size(2) - 81) + b"\x0f" * 81  # one line of ink: what a line of text compresses like


def test_serial_carries_a_tenth_of_its_baud_rate_in_bytes() -> None:
    assert Bandwidth.serial(115_200).bytes_per_second == 11_520
    assert Bandwidth.serial(9_600).seconds(960) == pytest.approx(1.0)


def test_usb_full_and_high_speed_differ_by_their_effective_rates() -> None:
    assert Bandwidth.usb(UsbSpeed.FULL).seconds(1_000_000) == pytest.approx(1.0)
    assert Bandwidth.usb(UsbSpeed.HIGH).seconds(35_000_000) == pytest.approx(1.0)


def test_the_speed_factor_divides_link_time_and_bytes_queue_behind_earlier_ones() -> None:
    waits: list[float] = []
    clock = LinkClock(Bandwidth.serial(9_600), speed=4.0, sleep=waits.append)
    clock.charge(960)  # 1 s of line time, a quarter at speed 4
    clock.charge(960)  # sent while the first is still on the line: waits behind it
    assert waits[0] == pytest.approx(0.25, abs=0.01)
    assert waits[1] == pytest.approx(0.5, abs=0.01)
    assert clock.bytes_carried == 1920


@contextmanager
def serial_printer(baud: int, speed: float) -> Iterator[str]:
    """A printer on a pty whose serial line carries `baud` at `speed`; yields the link URL."""
    stop = threading.Event()
    printer = Printer("p1", PrinterState(hopper_remaining=2), reader=RecordingReader(), chip_type=VirtualChip,
                      persist=lambda state: None, on_card_left=lambda card: None, stop=stop, speed=1000.0)
    port = PtyPort()
    thread = threading.Thread(target=serve, args=(PacedLink(port, LinkClock(Bandwidth.serial(baud), speed)),
                                                  EvolisServer(printer), stop))
    thread.start()
    try:
        yield f"serial://{port.path}?baud={baud}"
    finally:
        stop.set()
        thread.join(timeout=10)
        port.close()
        assert not thread.is_alive()


def _seconds_to_print(url: str, panel: Panel, *, compress: bool) -> float:
    with open_link(url) as link:
        printer = EvolisPrinter(link, compress_mono=compress)
        printer.start_sequence()
        printer.feed_to_print()
        started = time.monotonic()
        printer.download(panel)
        return time.monotonic() - started


def test_a_raw_panel_on_a_serial_line_takes_its_line_time() -> None:
    # 82,296 bytes at 115200 baud is 7.1 s; at speed 10, 0.71 s. Only a lower bound is asserted.
    with serial_printer(115_200, speed=10.0) as url:
        elapsed = _seconds_to_print(url, Panel("k", 2, K_TEXT), compress=False)
    assert elapsed >= 0.6


def test_the_compressed_download_saves_most_of_a_text_panels_line_time() -> None:
    with serial_printer(115_200, speed=10.0) as url:
        raw = _seconds_to_print(url, Panel("k", 2, K_TEXT), compress=False)
    with serial_printer(115_200, speed=10.0) as url:
        compressed = _seconds_to_print(url, Panel("k", 2, K_TEXT), compress=True)
    assert compressed < raw / 2


def test_a_bulk_write_over_usb_lasts_until_the_cable_has_carried_it(tmp_path: Path) -> None:
    # 576,072 bytes at full speed is 0.58 s at speed 1. Lower bound only.
    with usb_printer(tmp_path, clock=LinkClock(Bandwidth.usb(UsbSpeed.FULL), 1.0)) as rig, open_link(rig.url()) as link:
        printer = EvolisPrinter(link)
        printer.start_sequence()
        printer.feed_to_print()
        started = time.monotonic()
        link.send(b"\x1bDb;y;128;" + bytes(panel_size(128)) + b"\r")
        elapsed = time.monotonic() - started
        assert link.read_reply(30.0) == "OK"
    assert elapsed >= 0.5
