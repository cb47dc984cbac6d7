"""Compressed download of a monochrome panel (`Dbc`), the host's side (docs/PROTOCOLS.md section 1).

K (resin black) and O (overlay) panels are 1 bit a dot, mostly blank or mostly solid: text,
barcodes and a varnish that covers the card. Each of the 1016 lines of 81 bytes becomes one
code: 0x00 a blank line, 0xFF a solid line, otherwise a count n (1..81) followed by the line's
first n bytes, the rest of the line being blank. A text panel shrinks from 82,296 bytes to a
few thousand, which is most of its time on a serial line.

This form is an assumption (docs/PROTOCOLS.md): it is the one a public Evolis stream simulator
decodes for `Dbc`; the programming guide's own description could not be checked.
"""

from __future__ import annotations

LINE_BYTES = 81  # 648 dots at 1 bit
LINES = 1016
BLANK_LINE = 0x00
SOLID_LINE = 0xFF
_SOLID = b"\xff" * LINE_BYTES


def compress_mono(panel: bytes) -> bytes:
    """The `Dbc` form of a 1-bit panel. Raises ValueError when `panel` is not 1016 x 81 bytes."""
    if len(panel) != LINE_BYTES * LINES:
        raise ValueError(f"a 1-bit panel is {LINE_BYTES * LINES} bytes, not {len(panel)}")
    out = bytearray()
    for start in range(0, len(panel), LINE_BYTES):
        line = panel[start : start + LINE_BYTES]
        if line == _SOLID:
            out.append(SOLID_LINE)
            continue
        kept = line.rstrip(b"\x00")
        if not kept:
            out.append(BLANK_LINE)
        else:
            out.append(len(kept))
            out += kept
    return bytes(out)
