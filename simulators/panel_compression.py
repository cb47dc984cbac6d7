"""Compressed download of a monochrome panel (`Dbc`), the printer's side (docs/PROTOCOLS.md section 1).

Each of the panel's 1016 lines of 81 bytes is one code: 0x00 a blank line, 0xFF a solid line,
otherwise a count n (1..81) followed by the line's first n bytes, the rest of the line blank.
"""

from __future__ import annotations

LINE_BYTES = 81
LINES = 1016
# The longest a compressed panel can be: every line a count and all its bytes.
MAX_COMPRESSED = LINES * (LINE_BYTES + 1)


class CompressedPanelError(ValueError):
    """The compressed bytes do not describe exactly one panel; the message says where."""


def expand_mono(data: bytes) -> bytes:
    """The 1-bit panel (82,296 bytes) that `data` describes.

    Raises CompressedPanelError for a count above 81, a line cut short, or other than 1016 lines.
    """
    out = bytearray()
    i, lines = 0, 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0x00:
            out += bytes(LINE_BYTES)
        elif code == 0xFF:
            out += b"\xff" * LINE_BYTES
        elif code <= LINE_BYTES:
            if i + code > len(data):
                raise CompressedPanelError(f"line {lines + 1} needs {code} bytes, {len(data) - i} left")
            out += data[i : i + code]
            out += bytes(LINE_BYTES - code)
            i += code
        else:
            raise CompressedPanelError(f"line {lines + 1} has count {code}, more than {LINE_BYTES}")
        lines += 1
        if lines > LINES:
            raise CompressedPanelError(f"more than {LINES} lines")
    if lines != LINES:
        raise CompressedPanelError(f"{lines} lines, a panel has {LINES}")
    return bytes(out)
