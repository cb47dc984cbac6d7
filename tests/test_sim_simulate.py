"""The `simulate` process: its state folder, restarts, shutdown, and the chip on the real pcscd."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import serial
from smartcard.Exceptions import NoCardException
from smartcard.System import readers

from simulators.chip.image import ChipSubject, td1_mrz, tlv

READER = "Virtual PCD 00 01"  # slot 1: slot 0 belongs to the chip engineer's tests
PANEL = b"\x00" * 82_296


@contextmanager
def simulate(state_dir: Path, *extra: str, cards: int = 5) -> Iterator[tuple[subprocess.Popen[str], serial.Serial]]:
    """Run `python -m simulators.simulate` on slot 1 at high speed; stop it with SIGTERM on exit."""
    devices = state_dir / "devices.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.simulate", "--state-dir", str(state_dir), "--first-slot", "1",
         "--speed", "1000", "--cards", str(cards), *extra],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not devices.exists():
            assert process.poll() is None, f"simulate exited: {process.stderr.read() if process.stderr else ''}"
            assert time.monotonic() < deadline, "devices.json did not appear"
            time.sleep(0.05)
        [printer] = json.loads(devices.read_text())["printers"]
        with serial.Serial(printer["serial"], timeout=5) as host:
            yield process, host
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def cmd(host: serial.Serial, text: str, data: bytes | None = None) -> str:
    frame = b"\x1b" + text.encode("ascii") + (b";" + data if data is not None else b"") + b"\r"
    host.write(frame)
    raw = host.read_until(b"\r")
    assert raw.endswith(b"\r"), f"no reply to {text}: {raw!r}"
    return raw[:-1].decode("ascii")


def card_lines(state_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (state_dir / "cards.jsonl").read_text().splitlines()]


def connect_to_the_chip(reader_name: str):  # -> smartcard CardConnection
    [reader] = [r for r in readers() if str(r) == reader_name]
    connection = reader.createConnection()
    connection.connect()
    return connection


def test_devices_json_names_the_pty_and_the_reader_and_goes_away_on_a_clean_stop(tmp_path: Path) -> None:
    with simulate(tmp_path) as (process, host):
        devices = json.loads((tmp_path / "devices.json").read_text())
        [printer] = devices["printers"]
        assert devices["control"] == str(tmp_path / "control.sock") and Path(devices["control"]).is_socket()
        assert printer == {"name": "p1", "serial": host.port, "pty": printer["pty"], "reader": READER, "vpcd_port": 35964}
        assert host.port == str(tmp_path / "dev" / "p1"), "a name that survives a link drop"
        assert Path(host.port).resolve() == Path(printer["pty"])
        assert cmd(host, "Rfv") == "SIM-1.0.0"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert not (tmp_path / "devices.json").exists()


def test_counters_and_hopper_survive_a_restart(tmp_path: Path) -> None:
    with simulate(tmp_path, cards=3) as (_, host):
        cmd(host, "Ss")
        cmd(host, "Si")
        for panel in "ymcko":
            assert cmd(host, f"Db;{panel};2", PANEL) == "OK"
        assert cmd(host, "Se") == "OK"
    with simulate(tmp_path, cards=50) as (_, host):
        assert [cmd(host, "Rco;c"), cmd(host, "Rco;p"), cmd(host, "Rco;l")] == ["1", "5", "499"]
        for _ in range(2):
            cmd(host, "Ss")
            assert cmd(host, "Si") == "OK"
            cmd(host, "Ser")
        cmd(host, "Ss")
        assert cmd(host, "Si") == "FEEDER EMPTY", "the saved hopper of 3, not --cards 50"
    assert [c["blank_serial"] for c in card_lines(tmp_path)] == ["BLK-p1-000001", "BLK-p1-000002", "BLK-p1-000003"]


def test_more_printers_than_vpcd_slots_is_refused_naming_the_limit(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulators.simulate", "--state-dir", str(tmp_path), "--printers", "5"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "vpcd offers 4 working slots" in result.stderr
    assert not (tmp_path / "devices.json").exists()


def test_the_chip_is_on_the_reader_after_sic_and_gone_after_sr(tmp_path: Path, pcscd: list[str]) -> None:
    assert READER in pcscd
    with simulate(tmp_path) as (_, host):
        cmd(host, "Ss")
        assert cmd(host, "Sic") == "OK"
        connection = connect_to_the_chip(READER)
        assert connection.getATR()
        connection.disconnect()
        assert cmd(host, "Sr") == "OK"
        try:
            connect_to_the_chip(READER)
        except NoCardException:
            pass
        else:
            raise AssertionError("the chip is still on the reader after Sr")
        cmd(host, "Ser")


def test_the_document_number_written_through_the_reader_reaches_cards_jsonl(tmp_path: Path, pcscd: list[str]) -> None:
    subject = ChipSubject("KTP000007", "3174011505900001", "BUDI SANTOSO", date(1990, 5, 15), "M", None)
    dg1 = tlv(0x61, tlv(0x5F1F, td1_mrz(subject).encode("ascii")))
    with simulate(tmp_path) as (_, host):
        cmd(host, "Ss")
        cmd(host, "Sic")
        connection = connect_to_the_chip(READER)
        for apdu in (
            bytes.fromhex("00A4040C07A0000002471001"),
            bytes.fromhex("00A4020C020101"),
            bytes([0x00, 0xD6, 0x00, 0x00, len(dg1)]) + dg1,
        ):
            _, sw1, sw2 = connection.transmit(list(apdu))
            assert (sw1, sw2) == (0x90, 0x00)
        connection.disconnect()
        assert cmd(host, "Se") == "OK"
    [line] = card_lines(tmp_path)
    assert (line["bin"], line["document_number"]) == ("output", "KTP000007")


def test_a_departure_the_card_log_missed_at_a_power_cut_is_appended_once_at_the_next_start(tmp_path: Path) -> None:
    """The printer's state is the commit of a card leaving; a power cut before its card-log line
    was written leaves the line in the state, and the next start writes it, once."""
    with simulate(tmp_path, cards=3) as (_, host):
        cmd(host, "Ss")
        cmd(host, "Si")
        cmd(host, "Se")
    state_path = tmp_path / "printers" / "p1" / "state.json"
    state = json.loads(state_path.read_text())
    [line] = card_lines(tmp_path)
    assert state["pending_line"]["blank_serial"] == line["blank_serial"]
    (tmp_path / "cards.jsonl").write_text("")  # the power cut: the line never reached the disk
    with simulate(tmp_path, cards=3):
        pass
    with simulate(tmp_path, cards=3):
        pass
    [again] = card_lines(tmp_path)
    assert (again["blank_serial"], again["bin"], again["png"]) == (line["blank_serial"], "output", None)


def test_two_threads_saving_a_printer_state_at_once_never_lose_the_file(tmp_path):
    # A fault schedule and a command change the printer at the same moment: both save. A shared
    # temporary file once let one save rename the other's away (FileNotFoundError, simulator down).
    import threading

    from simulators.printer.machine import PrinterState
    from simulators.simulate import StateFile

    state_file = StateFile(tmp_path / "state.json")
    errors: list[BaseException] = []

    def save_many(blanks: int) -> None:
        try:
            for _ in range(200):
                state_file.save(PrinterState(hopper_remaining=blanks))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(n,)) for n in (5, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert state_file.load(0).hopper_remaining in (5, 7)
    assert not list(tmp_path.glob("*.tmp"))
