"""Compressed downloads (`Dbc`, `Dbpc`), the printer's side (Programming Guide section 4).

K and O (1 bit a dot): one code a line of 81 bytes: 0x00 a white line, 0xFF a black line,
otherwise a count n (1..81) followed by the line's first n bytes, the rest of the line white.

Y, M and C (5, 6 or 7 bits a dot), dot by dot along each 648-dot line: a byte whose top bit is
0 is one dot of that value; a byte whose top bit is 1 carries a value in its low bits and is
followed by a repeat count, which at 6 bits gains 256 from bit 6 of the first byte and at 5 bits
256 each from bits 6 and 5; a count of 0 ends the line, the rest white (a white line is
`1xxxxxxx 00`). How a line that the codes fill exactly ends is not said: it ends at 648 dots
(**assumption**, docs/PROTOCOLS.md).
"""

from __future__ import annotations

import numpy as np

LINE_BYTES = 81
LINES = 1016
DOTS = 648


class CompressedPanelError(ValueError):
    """The compressed bytes do not describe the panel lines; the message says where."""


def expand_mono(data: bytes, lines: int | None = LINES) -> bytes:
    """The 1-bit lines (81 bytes each) that `data` describes: exactly `lines` of them, or any
    number when `lines` is None (a partial download).

    Raises CompressedPanelError for a count above 81, a line cut short, or the wrong number of lines.
    """
    out = bytearray()
    i, count = 0, 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0x00:
            out += bytes(LINE_BYTES)
        elif code == 0xFF:
            out += b"\xff" * LINE_BYTES
        elif code <= LINE_BYTES:
            if i + code > len(data):
                raise CompressedPanelError(f"line {count + 1} needs {code} bytes, {len(data) - i} left")
            out += data[i : i + code]
            out += bytes(LINE_BYTES - code)
            i += code
        else:
            raise CompressedPanelError(f"line {count + 1} has count {code}, more than {LINE_BYTES}")
        count += 1
        if count > LINES:
            raise CompressedPanelError(f"more than {LINES} lines")
    if lines is not None and count != lines:
        raise CompressedPanelError(f"{count} lines, a panel has {lines}")
    return bytes(out)


def expand_colour(data: bytes, bits: int, lines: int | None = LINES) -> bytes:
    """The packed colour lines (`bits` bits a dot, as `Db` takes them) that `data` describes.

    Raises CompressedPanelError for a value too large for `bits`, a run past the end of its
    line, a count cut off, or the wrong number of lines.
    """
    if bits not in (5, 6, 7):
        raise CompressedPanelError(f"no colour compression at {bits} bits a dot")
    top = (1 << bits) - 1
    rows: list[np.ndarray] = []
    row = np.zeros(DOTS, dtype=np.uint8)
    x, i, n = 0, 0, len(data)
    while i < n:
        b = data[i]
        i += 1
        if not b & 0x80:
            value, repeat = b & 0x7F, 1
        else:
            if i >= n:
                raise CompressedPanelError(f"line {len(rows) + 1}: a repeat with no count")
            value, repeat = b & top, data[i]
            i += 1
            if bits <= 6 and b & 0x40:
                repeat += 256
            if bits == 5 and b & 0x20:
                repeat += 256
            if repeat == 0:
                x = DOTS  # the rest of the line is white
        if value > top:
            raise CompressedPanelError(f"line {len(rows) + 1}: value {value} needs more than {bits} bits")
        if x + repeat > DOTS:
            raise CompressedPanelError(f"line {len(rows) + 1}: a run of {repeat} dots goes past its end")
        row[x : x + repeat] = value
        x += repeat
        if x == DOTS:
            rows.append(row)
            row = np.zeros(DOTS, dtype=np.uint8)
            x = 0
    if x:
        raise CompressedPanelError(f"line {len(rows) + 1} is cut short at dot {x}")
    if lines is not None and len(rows) != lines:
        raise CompressedPanelError(f"{len(rows)} lines, a panel has {lines}")
    if not rows:
        return b""
    return pack_levels(np.stack(rows), bits)


def pack_levels(levels: np.ndarray, bits: int) -> bytes:
    """Dots of `bits` bits each, most significant bit first, no padding between lines."""
    bit_planes = (levels[..., np.newaxis] >> np.arange(bits - 1, -1, -1)) & 1
    return np.packbits(bit_planes.astype(np.uint8).ravel()).tobytes()
