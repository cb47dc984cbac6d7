"""Programs nobody here wrote talk to the virtual printer and its chip as they would to real ones:
socat on the serial device gets the guide's replies to raw commands; while a card is parked at
the contactless station, OpenSC's `opensc-tool` and `pcsc_scan` (pcsc-tools) see it through pcscd
and select the ICAO application on its chip."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SLOT = 2
TOOLS = ("socat", "opensc-tool", "pcsc_scan")  # Debian socat, opensc, pcsc-tools: make test installs them


@contextmanager
def simulator(state_dir: Path) -> Iterator[dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.simulate", "--state-dir", str(state_dir), "--first-slot", str(SLOT),
         "--speed", "1000", "--cards", "3"], stderr=subprocess.PIPE, text=True)
    devices = state_dir / "devices.json"
    try:
        deadline = time.monotonic() + 20
        while not devices.exists():
            assert process.poll() is None, f"simulate exited: {process.stderr.read() if process.stderr else ''}"
            assert time.monotonic() < deadline, "devices.json did not appear"
            time.sleep(0.05)
        [printer] = json.loads(devices.read_text())["printers"]
        yield printer
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


class Socat:
    """socat between a pipe and the printer's serial device, as a technician would run it."""

    def __init__(self, device: str) -> None:
        self.process = subprocess.Popen(["socat", "-", f"FILE:{device},raw,echo=0"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, raw: bytes, timeout: float = 20.0) -> bytes:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(raw)
        self.process.stdin.flush()
        reply = bytearray()
        deadline = time.monotonic() + timeout
        while not reply.endswith(b"\r"):
            assert time.monotonic() < deadline, f"no whole reply to {raw!r}: {bytes(reply)!r}"
            chunk = self.process.stdout.read1(256)
            assert chunk, "socat ended"
            reply += chunk
        return bytes(reply[:-1])

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def reader_number(name: str) -> str:
    listing = subprocess.run(["opensc-tool", "--list-readers"], capture_output=True, text=True, timeout=30).stdout
    for line in listing.splitlines():
        fields = line.split(None, 2)
        if len(fields) == 3 and fields[0].isdigit() and line.rstrip().endswith(name):
            return fields[0]
    raise AssertionError(f"opensc-tool does not list {name}:\n{listing}")


def test_socat_opensc_tool_and_pcsc_scan_work_the_virtual_printer(pcscd: list[str], tmp_path: Path) -> None:
    assert all(shutil.which(tool) for tool in TOOLS), f"install {', '.join(TOOLS)} (make test does)"
    with simulator(tmp_path / "sim") as printer:
        socat = Socat(printer["serial"])
        try:
            assert socat.ask(b"\x1bRfv\r") == b"SIM-1.0.0"
            assert socat.ask(b"\x1bRco;c\r") == b"0"
            assert socat.ask(b"\x1bSic\r") == b"OK", "a bare Sic parks a blank at the contactless station"
            assert socat.ask(b"\x1bRlr;p\r") == b"CONTACTLESS CARD"

            reader = printer["reader"]
            scan = subprocess.run(["pcsc_scan", "-n", "-c"], capture_output=True, text=True, timeout=30).stdout
            block = scan.split(f": {reader}\n", 1)[1].split(" Reader ", 1)[0]
            assert "Card inserted" in block and "ATR: 3B" in block, scan

            number = reader_number(reader)
            select = subprocess.run(["opensc-tool", "-r", number, "-s", "00 A4 04 0C 07 A0 00 00 02 47 10 01"],
                                    capture_output=True, text=True, timeout=30)
            assert "SW1=0x90, SW2=0x00" in select.stdout, select.stdout + select.stderr

            assert socat.ask(b"\x1bSer\r") == b"OK"
            scan = subprocess.run(["pcsc_scan", "-n", "-c"], capture_output=True, text=True, timeout=30).stdout
            assert "Card removed" in scan.split(f": {reader}\n", 1)[1].split(" Reader ", 1)[0]
        finally:
            socat.close()
    [card] = [json.loads(x) for x in (tmp_path / "sim" / "cards.jsonl").read_text().splitlines()]
    assert card["bin"] == "reject"
