"""Compressed download of K and O panels: the driver's encoder, the simulator's decoder, the wire."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.evolis.printer import CommandRejected, EvolisPrinter, Panel, panel_size
from drivers.link.url import open_link
from drivers.evolis.panels import compress_mono
from simulators.printer.panel_compression import CompressedPanelError, expand_mono
from simulators.printer.machine import Fault
from tests.sim_printer_rig import running_printer
from tests.usb_printer_rig import usb_printer

LINE = 81
LINES = 1016

lines = st.one_of(
    st.just(bytes(LINE)),
    st.just(b"\xff" * LINE),
    st.binary(min_size=1, max_size=LINE).map(lambda b: b + bytes(LINE - len(b))),
    st.binary(min_size=LINE, max_size=LINE),
)


@settings(max_examples=100, deadline=None)
@given(lines, st.dictionaries(st.integers(0, LINES - 1), lines, max_size=40))
def test_what_the_driver_compresses_the_simulator_expands_to_the_same_panel(
    background: bytes, drawn: dict[int, bytes]
) -> None:
    panel = b"".join(drawn.get(i, background) for i in range(LINES))
    assert expand_mono(compress_mono(panel)) == panel


def test_blank_and_solid_panels_shrink_to_a_byte_a_line() -> None:
    assert len(compress_mono(bytes(panel_size(2)))) == LINES
    assert len(compress_mono(b"\xff" * panel_size(2))) == LINES


@pytest.mark.parametrize(
    "packed",
    [
        b"\x00" * (LINES - 1),  # a line short
        b"\x00" * (LINES + 1),  # a line too many
        b"\x00" * (LINES - 1) + b"\x52" + bytes(82),  # count above 81
        b"\x00" * (LINES - 1) + b"\x05\x01",  # line cut short
    ],
)
def test_the_simulator_refuses_compressed_bytes_that_are_not_one_panel(packed: bytes) -> None:
    with pytest.raises(CompressedPanelError):
        expand_mono(packed)


def test_the_driver_sends_k_compressed_and_the_printer_prints_exactly_the_panel(tmp_path: Path) -> None:
    k = bytes(panel_size(2) - 2 * LINE) + b"\x81" * LINE + bytes(LINE)
    sent: list[bytes] = []
    with usb_printer(tmp_path) as rig, open_link(rig.url(), trace=lambda d, b: sent.append(b) if d == "tx" else None) as link:
        printer = EvolisPrinter(link)
        printer.start_sequence()
        printer.feed_to_print()
        printer.front()
        printer.download(Panel("k", 2, k))
        printer.eject()
    assert sent[-2].startswith(b"\x1bDbc;k;2;1097;")  # 1015 blank lines + one of 82 bytes
    [card] = rig.cards
    assert [(image.panel.value, image.data) for image in card.images] == [("k", k)]


def test_a_panel_that_would_grow_goes_raw(tmp_path: Path) -> None:
    noise = os.urandom(panel_size(2))
    sent: list[bytes] = []
    with usb_printer(tmp_path) as rig, open_link(rig.url(), trace=lambda d, b: sent.append(b) if d == "tx" else None) as link:
        printer = EvolisPrinter(link)
        printer.start_sequence()
        printer.feed_to_print()
        printer.download(Panel("o", 2, noise))
    assert sent[-1] == b"\x1bDb;o;2;" + noise + b"\r"


def test_a_compressed_colour_panel_is_printed(tmp_path: Path) -> None:
    # Guide section 4, Y/M/C: `1vvvvvvv <count>` repeats a value; a count of 0 ends the line white.
    half_yellow = (bytes([0x80 | 127, 255, 0x80 | 127, 69]) + bytes([0x80, 0])) * LINES  # 324 dots full ink
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sr")
        assert rig.cmd(f"Dbc;y;128;{len(half_yellow)}", half_yellow) == "OK"
        assert rig.cmd("Se") == "OK"
        [line] = rig.cards()
        assert line["panels"] == ["front:y"]


def test_a_compressed_colour_run_past_the_line_is_refused(tmp_path: Path) -> None:
    too_long = bytes([0x80 | 127, 255, 0x80 | 127, 255, 0x80 | 127, 255]) * LINES  # 765 dots a line
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sr")
        assert rig.cmd(f"Dbc;y;128;{len(too_long)}", too_long) == "ERR DATA LENGTH"


def test_a_compressed_panel_of_the_wrong_size_is_refused_with_data_length(tmp_path: Path) -> None:
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Si")
        assert rig.cmd(f"Dbc;k;2;{LINES - 1}", bytes(LINES - 1)) == "ERR DATA LENGTH"
        assert rig.cmd(f"Dbc;k;2;{LINES}", bytes(LINES)) == "OK"


def test_a_compressed_download_from_a_first_line_fills_only_those_lines(tmp_path: Path) -> None:
    # The definition page's form: Dbc;panel;levels;<first line>;<bytes>;data
    with running_printer(tmp_path) as rig:
        rig.cmd("Ss")
        rig.cmd("Sr")
        assert rig.cmd("Dbc;k;2;1000;16", b"\xff" * 16) == "OK"
        assert rig.cmd("Se") == "OK"
        [line] = rig.cards()
        assert line["panels"] == ["front:k"]


def test_a_refused_compressed_download_names_dbc(tmp_path: Path) -> None:
    with usb_printer(tmp_path) as rig, open_link(rig.url()) as link:
        printer = EvolisPrinter(link)
        printer.start_sequence()
        rig.printer.call(lambda: rig.printer.set_fault(Fault.COVER_OPEN, True))
        with pytest.raises(CommandRejected) as caught:
            printer.download(Panel("k", 2, bytes(panel_size(2))))
    assert caught.value.command == "Dbc;k;2"


def test_panels_sent_again_card_after_card_print_as_each_card_asked(tmp_path: Path) -> None:
    # The driver keeps the compressed forms of the last few K and O panels (the overlay and the
    # back's black repeat on every card); the printer's own decoding is the witness that a kept
    # form is never taken for another panel's.
    first = bytes(panel_size(2) - LINE) + b"\x0f" * LINE
    second = b"\xf0" * LINE + bytes(panel_size(2) - LINE)
    overlay = b"\xff" * panel_size(2)
    wanted = [first, second, first, bytearray(second), first]  # equal bytes in another object too
    with usb_printer(tmp_path, blanks=len(wanted)) as rig, open_link(rig.url()) as link:
        printer = EvolisPrinter(link)
        for k in wanted:
            printer.start_sequence()
            printer.feed_to_print()
            printer.front()
            printer.download(Panel("k", 2, bytes(k)))
            printer.download(Panel("o", 2, overlay))
            printer.eject()
    printed = [{image.panel.value: image.data for image in card.images} for card in rig.cards]
    assert printed == [{"k": bytes(k), "o": overlay} for k in wanted]
