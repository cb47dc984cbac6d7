"""Printed cards rebuilt from their panels: the agent's own renderer in, a picture out."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import numpy as np
from PIL import Image

from agent.station.card_render import render_card
from simulators.printer.card_rebuild import CardPictures, rebuild_card, unpack_levels
from simulators.printer.machine import Panel, PanelImage, Side


def card_png(colour: tuple[int, int, int]) -> bytes:
    """A white card with a coloured block in its top-left corner and a black bar at the bottom."""
    image = Image.new("RGB", (1016, 648), "white")
    image.paste(colour, (0, 0, 300, 200))
    image.paste((0, 0, 0), (0, 600, 1016, 648))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def as_printer_received(png: bytes, depth: int) -> list[PanelImage]:
    panels = render_card(png, None, depth=depth)
    return [PanelImage(Side.FRONT, Panel(p.name), p.depth, p.data) for p in panels.front]


def test_a_rebuilt_card_shows_the_colours_where_the_host_put_them() -> None:
    picture = Image.open(io.BytesIO(rebuild_card(as_printer_received(card_png((200, 40, 40)), 128))))
    assert picture.size == (1016, 648)
    red = np.asarray(picture)[100, 150].astype(int)
    assert np.all(np.abs(red - (200, 40, 40)) <= 3), red
    assert tuple(np.asarray(picture)[300, 700]) == (255, 255, 255)
    assert tuple(np.asarray(picture)[620, 500]) == (0, 0, 0), "K on top"


def test_unpacking_reverses_the_packing_at_every_depth() -> None:
    for depth, top in ((2, 1), (32, 31), (64, 63), (128, 127)):
        panels = render_card(card_png((0, 255, 255)), None, depth=depth)
        cyan = next(p for p in panels.front if p.name == "c")
        levels = unpack_levels(cyan.data, depth)
        assert levels.shape == (1016, 648)
        assert levels.max() == top and levels.min() == 0


def test_pictures_are_written_off_the_callers_path(tmp_path: Path) -> None:
    pictures = CardPictures()
    target = tmp_path / "cards" / "000001-output.png"
    started = time.monotonic()
    pictures.submit(target, as_printer_received(card_png((10, 200, 10)), 64))
    submitted = time.monotonic() - started
    pictures.close()
    assert submitted < 2.0, "submit returns without waiting for the picture"
    assert Image.open(target).size == (1016, 648)


def test_the_pictures_process_outlives_the_stop_signal_until_its_queue_is_written(tmp_path: Path) -> None:
    # The simulator's stop (SIGTERM) reaches its whole process group; the pictures still queued
    # must be written when the simulator closes them, not lost with a killed process.
    pictures = CardPictures()
    targets = [tmp_path / "cards" / f"00000{n}-output.png" for n in (1, 2)]
    for target in targets:
        pictures.submit(target, as_printer_received(card_png((10, 200, 10)), 64))
    for pid in pictures._pool._processes:  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGTERM)
    pictures.close()
    assert all(Image.open(t).size == (1016, 648) for t in targets)
