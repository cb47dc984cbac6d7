"""The printer maker's own Windows-driver streams, replayed byte for byte into the virtual printer.

The oracle is outside the project: the captures (tests/data/evolis-windows/, from the public
repository dpavlin/Printer-EVOLIS) and a decoder written in the tests from the programming guide
(tests/evolis_guide_decoder.py). Each stream must print exactly one card to the output bin over
serial and over USB, every command answered as a real printer answers, and the card the
simulator rebuilds must be the stream's K panel, turned upright by the guide's rule, dot for dot.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import numpy as np
import serial
from PIL import Image

from agent.station.card_render import render_card
from drivers.evolis.printer import EvolisPrinter
from drivers.link.url import open_link
from simulators.upstream.card_art import render_front
from simulators.upstream.job_factory import synthetic_specs
from tests.evolis_guide_decoder import faces, read_commands, upright
from tests.sim_printer_rig import running_printer

CAPTURES = Path(__file__).parent / "data" / "evolis-windows"
STREAMS = sorted(p.name for p in CAPTURES.iterdir() if p.suffix == "" and p.name != "SHA256SUMS")


def capture(name: str) -> bytes:
    return (CAPTURES / name).read_bytes()


def test_the_corpus_is_the_eight_captures_unmodified() -> None:
    sums = dict(reversed(line.split()) for line in (CAPTURES / "SHA256SUMS").read_text().splitlines())
    assert len(STREAMS) == 8
    for name in STREAMS:
        assert hashlib.sha256(capture(name)).hexdigest() == sums[name], f"{name} was changed"


@contextmanager
def simulator(state_dir: Path) -> Iterator[dict]:
    """`printstation simulate` with one printer on a pty and on USB; its devices.json entry."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.simulate", "--state-dir", str(state_dir), "--first-slot", "3",
         "--speed", "1000", "--cards", "20", "--usb"],
        stderr=subprocess.PIPE, text=True)
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


def replay_serial(device: str, stream: bytes, commands: int) -> list[bytes]:
    """Write the stream as the Windows spooler does, in one go; read one reply per command."""
    with serial.Serial(device, timeout=10) as host:
        host.write(stream)
        replies = []
        for _ in range(commands):
            raw = host.read_until(b"\r")
            assert raw.endswith(b"\r"), f"no reply after {replies}"
            replies.append(raw[:-1])
        return replies


def replay_usb(url: str, stream: bytes, commands: int) -> list[bytes]:
    with open_link(url) as link:
        link.send(stream)
        return [link.read_reply(10.0).encode("ascii") for _ in range(commands)]


def wait_for_pictures(state_dir: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        lines = [json.loads(x) for x in (state_dir / "cards.jsonl").read_text().splitlines()]
        if len(lines) >= count and all(line["png"] and (state_dir / line["png"]).exists() for line in lines):
            return lines
        assert time.monotonic() < deadline, f"{len(lines)} of {count} cards with their pictures"
        time.sleep(0.05)


def test_every_vendor_stream_prints_one_card_over_serial_and_over_usb_pixel_for_pixel(tmp_path: Path) -> None:
    state_dir = tmp_path / "sim"
    expected_faces = []
    with simulator(state_dir) as printer:
        for link in ("serial", "usb"):
            for name in STREAMS:
                stream = capture(name)
                commands = read_commands(stream)
                if link == "serial":
                    replies = replay_serial(printer["serial"], stream, len(commands))
                else:
                    replies = replay_usb(printer["usb"]["url"], stream, len(commands))
                assert replies == [b"OK"] * len(commands), f"{name} over {link}: {replies}"
                expected_faces.append((f"{name} over {link}", upright(faces(stream)["front"].panels["k"])))
        lines = wait_for_pictures(state_dir, len(expected_faces))
    assert len(lines) == 16, "one card a stream a link, no more"
    for line, (what, k) in zip(lines, expected_faces):
        assert line["bin"] == "output" and line["panels"] == ["front:k"], what
        picture = np.asarray(Image.open(state_dir / line["png"]).convert("RGB"))
        assert picture.shape == (648, 1016, 3), what
        black = (picture == 0).all(axis=2)
        white = (picture == 255).all(axis=2)
        assert (black | white).all(), f"{what}: a K-only card is black and white"
        assert (black == k.astype(bool)).all(), f"{what}: {int((black != k.astype(bool)).sum())} dots differ"


def test_a_demo_card_sent_by_our_driver_decodes_upright_to_the_jobs_front_image(tmp_path: Path) -> None:
    """The driver's own bytes, read by the guide decoder and turned upright by the guide's rule,
    are the job's front image; turned upside down they are not (the bug this guards against)."""
    holder = synthetic_specs(1, seed=7, issued_on=date(2026, 12, 2))[0].holder
    front_png = render_front(holder)
    sent = bytearray()
    with running_printer(tmp_path, blanks=2) as rig, \
            open_link(f"serial://{rig.host.port}", trace=lambda d, data: sent.extend(data) if d == "tx" else None) as link:
        rig.host.close()  # the driver owns the port now
        printer = EvolisPrinter(link)
        printer.start_sequence()
        printer.front()
        for panel in render_card(front_png, None).front:
            printer.download(panel)
        printer.eject()
    face = faces(bytes(sent))["front"]
    image = np.asarray(Image.open(io.BytesIO(front_png)).convert("RGB")).astype(int)
    black = image.max(axis=2) <= 64  # what the renderer sends as K (agent/station/card_render.py)
    k = upright(face.panels["k"]).astype(bool)
    assert black.any() and (k == black).all(), f"{int((k != black).sum())} K dots out of place"
    assert not (np.rot90(k, 2) == black).all(), "upside down, the card does not match"
    for name, channel in (("c", 0), ("m", 1), ("y", 2)):
        ink = upright(face.panels[name])
        expected = ((255 - image[:, :, channel]) * 127 + 127) // 255
        assert (np.abs(ink - expected)[~black] <= 1).all(), f"{name}: the colour is where the image has it"


