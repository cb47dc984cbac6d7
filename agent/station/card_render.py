"""Card face images (PNG) turned into the panels the printer prints.

A face is a 1016 x 648 landscape PNG. The printer takes panels 648 dots wide and 1016 lines
long, so the image is turned 90 degrees clockwise: the first dot of the first line is the
card's bottom-left corner (docs/PROTOCOLS.md "Panels"; the vendor's own driver streams and the
public Perl driver's `pnmflip -rotate270` turn it this way).

- Y, M, C: ink = 255 - channel (C from red, M from green, Y from blue), quantised to the
  depth's bits.
- K (1 bit): near-black pixels (every channel <= K_THRESHOLD): text, barcodes, the NIK.
  Resin black is sharper than a three-colour black, so those pixels get no Y, M or C ink.
- O (1 bit): overlay, all ones: the varnish protects the whole face.

The back is printed with K and O only when it is mostly monochrome: at least
MONO_SHARE of its pixels are near-black or near-white (every channel >= WHITE_THRESHOLD).
Otherwise it gets the full Y, M, C, K, O like the front.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from drivers.evolis.printer import DEPTH_BITS, Panel, panel_size

CARD_WIDTH = 1016
CARD_HEIGHT = 648
K_THRESHOLD = 64
WHITE_THRESHOLD = 224
MONO_SHARE = 0.99
# A card face compresses to well under 1 MB; far more is not a card image.
MAX_PNG_BYTES = 8 * 1024 * 1024

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OVERLAY = b"\xff" * panel_size(2)


class CardImageError(Exception):
    """A card image that cannot be printed; `reason` says what is wrong in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Face:
    """One face turned for the printer, as separate colour planes (Pillow "L" images, 648 dots
    a line, 1016 lines): Pillow maps a plane through a table (the ink levels) in one pass in C,
    numpy does the arithmetic across planes."""

    red: Image.Image
    green: Image.Image
    blue: Image.Image

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The planes as arrays: red, green, blue."""
        return np.asarray(self.red), np.asarray(self.green), np.asarray(self.blue)

    def black(self) -> np.ndarray:
        """Near-black dots: the ones printed with K alone."""
        red, green, blue = self.arrays()
        brightest = np.maximum(red, green)
        np.maximum(brightest, blue, out=brightest)
        return brightest <= K_THRESHOLD


@dataclass(frozen=True)
class CardPanels:
    """The panels of one card, in print order (Y, M, C, K, O); `back` is empty for one side."""

    front: tuple[Panel, ...]
    back: tuple[Panel, ...]


def render_card(front_png: bytes, back_png: bytes | None, *, depth: int = 128) -> CardPanels:
    """Turn the front (and back) PNG into panels, colour panels at `depth`.

    Raises CardImageError for an image that is not a PNG, has the wrong size, is truncated
    or damaged, or is too large; ValueError for a depth the printer does not have.
    """
    _check_depth(depth)
    front = _colour_panels(_decode("front", front_png), depth)
    return CardPanels(front=front, back=() if back_png is None else _back_panels(back_png, depth))


class CardRenderer:
    """render_card for a station's stream of cards, which share one back design: the back's
    panels are kept (with a digest of its PNG, not the image) and given again to the next card
    whose back is the same, so a batch decodes and separates one face a card, not two.

    Safe to share between threads: the kept back is one tuple, swapped whole."""

    def __init__(self, depth: int = 128) -> None:
        _check_depth(depth)
        self.depth = depth
        self._back: tuple[bytes, tuple[Panel, ...]] | None = None

    def render(self, front_png: bytes, back_png: bytes | None) -> CardPanels:
        """As render_card, at this renderer's depth; raises as render_card does."""
        front = _colour_panels(_decode("front", front_png), self.depth)
        if back_png is None:
            return CardPanels(front=front, back=())
        digest = hashlib.sha256(back_png).digest()
        kept = self._back
        if kept is not None and kept[0] == digest:
            return CardPanels(front=front, back=kept[1])
        back = _back_panels(back_png, self.depth)
        self._back = (digest, back)
        return CardPanels(front=front, back=back)


def _check_depth(depth: int) -> None:
    if depth not in DEPTH_BITS:
        raise ValueError(f"no panel depth {depth}; the printer takes {sorted(DEPTH_BITS)}")


def _back_panels(png: bytes, depth: int) -> tuple[Panel, ...]:
    image = _decode("back", png)
    return _mono_panels(image) if _mostly_mono(image) else _colour_panels(image, depth)


def _decode(face: str, data: bytes) -> _Face:
    """The face turned for the printer: red, green, blue planes of 1016 lines x 648 dots."""
    _check_header(face, data)
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            # Clockwise (ROTATE_270): line i of a plane is column i of the image read from the
            # bottom row up, so the card's left edge becomes the first line and its first dot is
            # the bottom-left corner.
            turned = _on_white(image).transpose(Image.Transpose.ROTATE_270)
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CardImageError(f"the {face} image cannot be decoded ({e}); it is damaged or cut short") from e
    red, green, blue = turned.split()
    return _Face(red, green, blue)


def _check_header(face: str, data: bytes) -> None:
    # Read the size from IHDR ourselves, before any decoder allocates for it:
    # this is what stops a decompression bomb.
    if not data.startswith(_PNG_SIGNATURE):
        raise CardImageError(f"the {face} image is not a PNG file")
    if len(data) > MAX_PNG_BYTES:
        raise CardImageError(
            f"the {face} image is {len(data)} bytes; a card image is at most {MAX_PNG_BYTES} bytes"
        )
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise CardImageError(f"the {face} image is cut short or damaged: no PNG header")
    width, height = struct.unpack(">II", data[16:24])
    if (width, height) != (CARD_WIDTH, CARD_HEIGHT):
        raise CardImageError(
            f"the {face} image must be {CARD_WIDTH} x {CARD_HEIGHT} pixels (landscape), "
            f"got {width} x {height}"
        )


def _on_white(image: Image.Image) -> Image.Image:
    # A blank card is white: transparent parts of the image print no ink.
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # convert() would copy an RGB image


def _colour_panels(face: _Face, depth: int) -> tuple[Panel, ...]:
    black = face.black()
    coloured = np.logical_not(black).view(np.uint8)  # 1 where Y, M and C may put ink; K alone prints the near-black dots
    bits = DEPTH_BITS[depth]
    ink = _ink_table(bits)
    panels = []
    for name, plane in (("y", face.blue), ("m", face.green), ("c", face.red)):
        level = np.multiply(np.asarray(plane.point(ink)), coloured)
        panels.append(Panel(name, depth, _pack(level, bits)))
    panels.append(Panel("k", 2, np.packbits(black).tobytes()))
    panels.append(Panel("o", 2, _OVERLAY))
    return tuple(panels)


def _mono_panels(face: _Face) -> tuple[Panel, ...]:
    return (Panel("k", 2, np.packbits(face.black()).tobytes()), Panel("o", 2, _OVERLAY))


def _mostly_mono(face: _Face) -> bool:
    red, green, blue = face.arrays()
    white = np.minimum(np.minimum(red, green), blue) >= WHITE_THRESHOLD
    return float(np.count_nonzero(face.black() | white)) >= MONO_SHARE * white.size


def _ink_table(bits: int) -> list[int]:
    """channel value -> ink level: 255 -> 0 (no ink), 0 -> 2**bits - 1 (full ink), rounded."""
    top = (1 << bits) - 1
    return [((255 - value) * top + 127) // 255 for value in range(256)]


# Masks of the 16-, 32- and 64-bit lanes of a 64-bit word, for _pack.
_LANES = (np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF), np.uint64(0x00000000FFFFFFFF))


def _pack(levels: np.ndarray, bits: int) -> bytes:
    """Pack dots of `bits` bits each, MSB first, with no padding (8 dots make `bits` bytes)."""
    # Eight dots a 64-bit word (the first in the low byte), joined in place pairwise three times:
    # in each lane, the first half shifted up over the second, 8 -> 16 -> 32 -> 64 bits. The word
    # then holds the eight dots in its low 8 * bits bits, the first highest, read big-endian as
    # the panel goes out. (In place: a third faster than widening the dots into new arrays.)
    word = np.ascontiguousarray(levels).reshape(-1).view("<u8").copy()
    first = np.empty_like(word)
    for step, lane in enumerate(_LANES):
        np.bitwise_and(word, lane, out=first)
        first <<= np.uint64(bits << step)
        word >>= np.uint64(8 << step)
        word &= lane
        word |= first
    return word.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - bits :].tobytes()
