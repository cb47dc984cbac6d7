"""One driver suite, unchanged, against the virtual printer (a real `simulate` process) over
serial and over USB. cards.jsonl is the witness of what physically left the printer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.evolis.printer import CardPosition, CommandRejected, EvolisPrinter, Panel, panel_size
from drivers.faults import Fault
from drivers.link.url import open_link

SLOT = 3  # vpcd slot "Virtual PCD B 00 01": the other suites use 0 and 1


@contextmanager
def simulate(state_dir: Path, transport: str, cards: int) -> Iterator[EvolisPrinter]:
    """A simulate process with one printer, offered on serial and USB; the driver on `transport`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.simulate", "--state-dir", str(state_dir), "--first-slot", str(SLOT),
         "--speed", "1000", "--cards", str(cards), "--usb"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        devices = state_dir / "devices.json"
        deadline = time.monotonic() + 20
        while not devices.exists():
            assert process.poll() is None, f"simulate exited: {process.stderr.read() if process.stderr else ''}"
            assert time.monotonic() < deadline, "devices.json did not appear"
            time.sleep(0.05)
        [entry] = json.loads(devices.read_text())["printers"]
        url = entry["usb"]["url"] if transport == "usb" else f"serial://{entry['serial']}"
        printer = EvolisPrinter(open_link(url))
        try:
            yield printer
        finally:
            printer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture(params=["serial", "usb"], scope="module")
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def station(transport: str, tmp_path_factory: pytest.TempPathFactory, pcscd: list[str]) -> Iterator[tuple[EvolisPrinter, Path]]:
    state_dir = tmp_path_factory.mktemp(f"sim-{transport}")
    with simulate(state_dir, transport, cards=10) as printer:
        yield printer, state_dir


def cards_left(state_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (state_dir / "cards.jsonl").read_text().splitlines()]


def test_identity(station: tuple[EvolisPrinter, Path]) -> None:
    printer, _ = station
    identity = printer.identity()
    assert (identity.model, identity.firmware, identity.serial) == ("Primacy (virtual)", "SIM-1.0.0", f"SIMP{SLOT + 1:05d}")


def test_status_of_an_idle_printer_has_no_fault(station: tuple[EvolisPrinter, Path]) -> None:
    printer, _ = station
    status = printer.status()
    assert status.faults == frozenset()
    assert not status.card_inside
    assert not printer.cover_open()
    assert not printer.feeder_empty()
    assert printer.ribbon_type() == "ymcko"


def test_a_whole_card_leaves_through_the_output_and_counts(station: tuple[EvolisPrinter, Path]) -> None:
    printer, state_dir = station
    before = printer.counters()
    printer.start_sequence()
    printer.feed_to_contactless()
    assert printer.card_present()
    printer.front()
    for name in ("y", "m", "c"):
        printer.download(Panel(name, 128, bytes(panel_size(128))))
    printer.download(Panel("k", 2, bytes(panel_size(2) - 81) + b"\xf0" * 81))
    printer.download(Panel("o", 2, b"\xff" * panel_size(2)))
    printer.back()
    printer.download(Panel("k", 2, bytes(panel_size(2))))
    printer.eject()
    after = printer.counters()
    assert (after.cards, after.panels, after.ribbon_left) == (before.cards + 1, before.panels + 6, before.ribbon_left - 1)
    last = cards_left(state_dir)[-1]
    assert (last["bin"], last["panels"]) == (
        "output", ["front:y", "front:m", "front:c", "front:k", "front:o", "back:k"])
    assert not printer.card_present()


def test_a_rejected_card_goes_to_the_reject_box(station: tuple[EvolisPrinter, Path]) -> None:
    printer, state_dir = station
    printer.start_sequence()
    printer.feed_to_contactless()
    printer.reject()
    last = cards_left(state_dir)[-1]
    assert (last["bin"], last["panels"]) == ("reject", [])
    assert not printer.card_present()


def test_a_bare_feed_takes_the_card_to_the_contactless_station_as_the_guide_says(station: tuple[EvolisPrinter, Path]) -> None:
    printer, state_dir = station
    printer.feed_to_contactless()  # no Ss: the guide's Sic "inserts a card in the printer"
    assert printer.card_position() is CardPosition.CONTACTLESS
    printer.reject()
    assert cards_left(state_dir)[-1]["bin"] == "reject"


def test_after_ss_a_panel_brings_a_card_from_the_feeder(station: tuple[EvolisPrinter, Path]) -> None:
    printer, state_dir = station
    printer.start_sequence()
    printer.download(Panel("k", 2, bytes(panel_size(2))))
    assert printer.card_position() is CardPosition.PRINT
    printer.eject()
    assert cards_left(state_dir)[-1]["panels"] == ["front:k"]


def test_an_empty_feeder_is_the_feeder_empty_fault(transport: str, tmp_path: Path, pcscd: list[str]) -> None:
    with simulate(tmp_path, transport, cards=0) as printer:
        assert printer.feeder_empty()
        printer.start_sequence()
        with pytest.raises(CommandRejected) as caught:
            printer.feed_to_contactless()
        assert caught.value.fault is Fault.FEEDER_EMPTY
    assert cards_left(tmp_path) == []
