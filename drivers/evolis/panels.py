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

from collections import OrderedDict

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


class MonoForms:
    """The `Dbc` forms of the last few 1-bit panels one printer was sent.

    Most K and O panels repeat from card to card: the overlay is solid on every card, and the
    back's black is the same when every card carries the same back. Those are compressed once
    (a pass over 1,016 lines in Python, ~0.25 ms a panel) and found again by their bytes.
    Not shared between threads: one printer's conversation is one at a time."""

    def __init__(self, kept: int = 4) -> None:
        self.kept = kept
        self._forms: OrderedDict[bytes, bytes] = OrderedDict()

    def compressed(self, panel: bytes) -> bytes:
        """compress_mono(panel), from the kept forms when this panel was sent lately."""
        form = self._forms.get(panel)
        if form is None:
            form = self._forms[panel] = compress_mono(panel)
            if len(self._forms) > self.kept:
                self._forms.popitem(last=False)
        else:
            self._forms.move_to_end(panel)
        return form
