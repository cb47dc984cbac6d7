"""An Evolis host stream read the way the Programming Guide (A5013 rev D2 and E) describes it.

Written for the tests from the guide alone, so that it shares no code, and no mistake, with the
driver (`drivers/`) or the simulator (`simulators/`):

- section 3: a command is `ESC` name `;` parameters `CR`; "the Start Character is not compulsory
  after the CR character"; NUL bytes between commands are padding;
- `Db;<panel>;<levels>;<data>`: 648 x 1016 dots, `bits` bits a dot (2 levels: 1, 32: 5, 64: 6,
  128: 7), "p1 being the first transmitted pixel", so 648 * 1016 * bits / 8 bytes;
- section 4: `Dbc;<panel>;<levels>;<nb_car>;<nb_car bytes>` for K and O: one code a line,
  0 a white line, 255 a black line, N (1..81) then N bytes, the rest of the line white;
- the card's orientation (docs/PROTOCOLS.md, from the vendor streams and the public Perl driver):
  the landscape card is turned 90 degrees clockwise into the panel, so the first dot of the
  first line is the card's bottom-left corner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LINES = 1016  # panel lines
DOTS = 648  # dots a line
LINE_BYTES = DOTS // 8
BITS = {"2": 1, "32": 5, "64": 6, "128": 7}
CARD_WIDTH, CARD_HEIGHT = 1016, 648


@dataclass
class GuideCommand:
    name: str
    params: list[str]
    data: bytes = b""


@dataclass
class Face:
    """The panels one side received, each as ink levels: 1016 lines x 648 dots."""

    panels: dict[str, np.ndarray] = field(default_factory=dict)


class StreamError(ValueError):
    pass


def read_commands(stream: bytes) -> list[GuideCommand]:
    """Every command of `stream`, in order. Raises StreamError for a stream the guide does not allow."""
    out: list[GuideCommand] = []
    i, n = 0, len(stream)
    while i < n:
        while i < n and stream[i] == 0:
            i += 1
        if i >= n:
            break
        if stream[i] == 0x1B:
            i += 1
        elif out == []:
            raise StreamError(f"the stream must start with ESC, found {stream[i]:#04x} at {i}")
        head_end = _next_field_end(stream, i)
        name = stream[i:head_end].decode("ascii")
        if name == "Db":
            panel, levels, i = _two_fields(stream, head_end + 1)
            size = DOTS * LINES * BITS[levels] // 8
            data, i = stream[i : i + size], i + size
            out.append(GuideCommand(name, [panel, levels], data))
        elif name == "Dbc":
            panel, levels, i = _two_fields(stream, head_end + 1)
            end = stream.index(b";", i)
            count = int(stream[i:end])
            data, i = stream[end + 1 : end + 1 + count], end + 1 + count
            out.append(GuideCommand(name, [panel, levels, str(count)], data))
        else:
            end = stream.index(b"\r", i)
            fields = stream[i:end].decode("ascii").split(";")
            out.append(GuideCommand(fields[0], fields[1:]))
            i = end + 1
            continue
        if stream[i : i + 1] != b"\r":
            raise StreamError(f"{name}: no CR after its {len(out[-1].data)} data bytes (at {i})")
        i += 1
    return out


def _next_field_end(stream: bytes, i: int) -> int:
    semi, cr = stream.find(b";", i), stream.find(b"\r", i)
    ends = [e for e in (semi, cr) if e >= 0]
    if not ends:
        raise StreamError(f"a command at {i} never ends")
    return min(ends)


def _two_fields(stream: bytes, i: int) -> tuple[str, str, int]:
    first = stream.index(b";", i)
    second = stream.index(b";", first + 1)
    return stream[i:first].decode("ascii"), stream[first + 1 : second].decode("ascii"), second + 1


def expand_mono(data: bytes) -> bytes:
    """Section 4's K/O compression undone: 1016 lines of 81 bytes."""
    lines: list[bytes] = []
    i = 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0:
            lines.append(bytes(LINE_BYTES))
        elif code == 255:
            lines.append(b"\xff" * LINE_BYTES)
        elif code <= LINE_BYTES:
            lines.append(data[i : i + code] + bytes(LINE_BYTES - code))
            i += code
        else:
            raise StreamError(f"line {len(lines) + 1}: count {code} is above {LINE_BYTES}")
    if len(lines) != LINES:
        raise StreamError(f"{len(lines)} lines, a panel has {LINES}")
    return b"".join(lines)


def unpack(data: bytes, bits: int) -> np.ndarray:
    """Dots of `bits` bits each, first transmitted first, most significant bit first."""
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if flat.size != LINES * DOTS * bits:
        raise StreamError(f"{len(data)} bytes are not one panel at {bits} bits a dot")
    weights = 1 << np.arange(bits - 1, -1, -1)
    return (flat.reshape(-1, bits) * weights).sum(axis=1).reshape(LINES, DOTS)


def faces(stream: bytes) -> dict[str, Face]:
    """The panels of each side (`front` after `Sr` or at the start, `back` after `Sv`)."""
    out: dict[str, Face] = {}
    side = "front"
    for command in read_commands(stream):
        if command.name == "Sr":
            side = "front"
        elif command.name == "Sv":
            side = "back"
        elif command.name == "Db":
            panel, levels = command.params
            out.setdefault(side, Face()).panels[panel] = unpack(command.data, BITS[levels])
        elif command.name == "Dbc":
            panel, levels, _ = command.params
            if levels != "2":
                raise StreamError("this decoder reads the K and O compression only")
            out.setdefault(side, Face()).panels[panel] = unpack(expand_mono(command.data), 1)
    return out


def upright(panel: np.ndarray) -> np.ndarray:
    """The card (648 rows x 1016 columns) that `panel` prints, by the orientation rule, dot by dot:
    card row `y`, column `x` is panel line `x`, dot `647 - y`."""
    rows, columns = np.meshgrid(np.arange(CARD_HEIGHT), np.arange(CARD_WIDTH), indexing="ij")
    return panel[columns, CARD_HEIGHT - 1 - rows]
