"""Each printed card as a picture, rebuilt from the panels the printer received.

The printer sees panels, not pictures: Y, M and C at their depth (ink levels), K and O at one
bit a dot, each 648 dots x 1016 lines, the card turned a quarter clockwise, so the first dot
of the first line is the card's bottom-left corner (docs/PROTOCOLS.md section 1, "Panels"). Putting them back together - subtractive colour, K on
top, turned back - shows what the host really printed, so a wrong image or a wrong rotation is
visible to a person and checkable by a test. `CardPictures` does it in a process of its own
(low priority), so neither the printer nor the host under test waits for a PNG encoder.
"""

from __future__ import annotations

import ctypes
import io
import logging
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

PANEL_WIDTH = 648
PANEL_LINES = 1016
DEPTH_BITS = {2: 1, 32: 5, 64: 6, 128: 7}
SIDES = ("front", "back")


class PanelLike(Protocol):
    """What a rebuild needs of a panel (simulators.printer.machine.PanelImage)."""

    @property
    def side(self) -> object: ...  # an Enum whose value is "front" or "back"

    @property
    def panel(self) -> object: ...  # an Enum whose value is "y", "m", "c", "k" or "o"

    @property
    def depth(self) -> int: ...

    @property
    def data(self) -> bytes: ...


def unpack_levels(data: bytes, depth: int) -> np.ndarray:
    """Ink levels of one panel, 1016 lines x 648 dots, from its packed bytes (MSB first, no padding).

    Raises ValueError for an unknown depth or a length that does not match it.
    """
    if depth not in DEPTH_BITS:
        raise ValueError(f"no panel depth {depth}")
    bits = DEPTH_BITS[depth]
    dots = PANEL_WIDTH * PANEL_LINES
    if len(data) * 8 != dots * bits:
        raise ValueError(f"a depth-{depth} panel is {dots * bits // 8} bytes, not {len(data)}")
    if bits == 1:
        return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).reshape(PANEL_LINES, PANEL_WIDTH)
    # Eight dots take `bits` bytes: widen each group to a big-endian 64-bit word, then cut lanes.
    groups = np.frombuffer(data, dtype=np.uint8).reshape(-1, bits)
    padded = np.zeros((groups.shape[0], 8), dtype=np.uint8)
    padded[:, 8 - bits:] = groups
    words = padded.view(">u8").astype(np.uint64).ravel()
    mask = np.uint64((1 << bits) - 1)
    lanes = [((words >> np.uint64(bits * lane)) & mask).astype(np.uint8) for lane in range(7, -1, -1)]
    return np.stack(lanes, axis=1).reshape(PANEL_LINES, PANEL_WIDTH)


def rebuild_face(panels: Sequence[PanelLike]) -> Image.Image:
    """One face (landscape 1016 x 648, RGB) from its panels; panels not sent print no ink.

    Raises ValueError for a panel whose bytes do not match its depth.
    """
    ink = {"c": np.zeros((PANEL_LINES, PANEL_WIDTH)), "m": np.zeros((PANEL_LINES, PANEL_WIDTH)),
           "y": np.zeros((PANEL_LINES, PANEL_WIDTH))}
    black = np.zeros((PANEL_LINES, PANEL_WIDTH), dtype=bool)
    for p in panels:
        name = str(getattr(p.panel, "value", p.panel))
        levels = unpack_levels(p.data, p.depth)
        if name in ink:
            ink[name] = levels / ((1 << DEPTH_BITS[p.depth]) - 1)
        elif name == "k":
            black |= levels.astype(bool)
        # O is clear varnish: it changes nothing you can see.
    rgb = np.stack([(1 - ink["c"]) * 255, (1 - ink["m"]) * 255, (1 - ink["y"]) * 255], axis=2)
    rgb[black] = 0
    image = Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB")
    # The printer's lines run across the card turned clockwise: turn it back, counter-clockwise.
    return image.transpose(Image.Transpose.ROTATE_90)


def rebuild_card(panels: Sequence[PanelLike]) -> bytes:
    """The card as a PNG: the front, and the back below it when the back was printed."""
    faces = [rebuild_face([p for p in panels if str(getattr(p.side, "value", p.side)) == side]) for side in SIDES
             if any(str(getattr(p.side, "value", p.side)) == side for p in panels)]
    sheet = Image.new("RGB", (faces[0].width, sum(f.height for f in faces)), "white")
    y = 0
    for face in faces:
        sheet.paste(face, (0, y))
        y += face.height
    out = io.BytesIO()
    sheet.save(out, format="PNG", compress_level=1)  # fast: this runs beside a printing printer
    return out.getvalue()


class _PlainPanel(NamedTuple):
    """A panel as plain values, to cross into the pictures' process."""

    side: str
    panel: str
    depth: int
    data: bytes


class CardPictures:
    """Writes card pictures in a process of its own, at a low CPU priority. In a thread of the
    simulator it held the GIL the printers' command threads need and took a core from the host
    under test; a real printer spends none of the host's time drawing what it printed.
    `close` waits for the pictures still queued (at normal priority, where the system allows it).
    The process ignores SIGTERM and SIGINT (the simulator's stop reaches its whole process group:
    the simulator closes it) and dies with the simulator if that is killed."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_picture_process)
        # Started now, not on a printer's thread at the first card; with the stop signals blocked,
        # which the new process inherits until it ignores them (a stop meanwhile waits, not kills).
        stops = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._pool.submit(int)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, stops)

    def submit(self, path: Path, panels: Sequence[PanelLike]) -> None:
        """Rebuild `panels` into `path` (a PNG) soon; never blocks the caller."""
        plain = tuple(_PlainPanel(str(getattr(p.side, "value", p.side)), str(getattr(p.panel, "value", p.panel)),
                                  p.depth, bytes(p.data)) for p in panels)
        try:
            self._pool.submit(_write_picture, path, plain).add_done_callback(_log_failure)
        except (BrokenProcessPool, RuntimeError) as e:  # the process is gone, or closing
            log.warning("cannot rebuild the card picture %s: %s", path, e)

    def close(self) -> None:
        for pid in getattr(self._pool, "_processes", {}) or {}:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, 0)  # the pictures still queued, at full speed
            except OSError:
                pass  # not allowed to raise a priority here, or gone: they finish at the low one
        self._pool.shutdown(wait=True)


PICTURE_NICENESS = 10


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _picture_process() -> None:
    for stop in _STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _die_with_parent()
    os.nice(PICTURE_NICENESS)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: a killed simulator leaves the process waiting on its queue until it closes


_PR_SET_PDEATHSIG = 1


def _write_picture(path: Path, panels: tuple[_PlainPanel, ...]) -> str | None:
    """In the pictures' process: the picture written, or why not."""
    try:
        data = rebuild_card(panels)
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(path)
    except (OSError, ValueError) as e:
        return f"cannot rebuild the card picture {path}: {e}"
    return None


def _log_failure(done: Future[str | None]) -> None:
    # A picture is an aid for people; the card log stays the witness.
    try:
        problem = done.result()
    except BrokenProcessPool as e:
        problem = f"the card pictures' process stopped: {e}"
    if problem is not None:
        log.warning("%s", problem)
