"""Card face PNGs turned into printer panels (docs/PROTOCOLS.md "Panels")."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from agent.station.card_render import CardImageError, CardRenderer, render_card
from drivers.evolis.printer import DEPTH_BITS, PANEL_LINES, PANEL_WIDTH, Panel, panel_size

WIDTH, HEIGHT = 1016, 648


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def solid(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), rgb, dtype=np.uint8)


def levels(panel: Panel) -> np.ndarray:
    """Unpack a panel the slow, obvious way: a bit string cut into `bits`-bit dots."""
    bits = DEPTH_BITS[panel.depth]
    flat = np.unpackbits(np.frombuffer(panel.data, dtype=np.uint8)).reshape(-1, bits)
    weights = 1 << np.arange(bits - 1, -1, -1)
    return (flat * weights).sum(axis=1).reshape(PANEL_LINES, PANEL_WIDTH)


def by_name(panels: tuple[Panel, ...]) -> dict[str, Panel]:
    return {panel.name: panel for panel in panels}


def test_front_is_ymcko_in_print_order_with_contract_sizes() -> None:
    card = render_card(png(solid((200, 100, 50))), None)
    assert [(p.name, p.depth, len(p.data)) for p in card.front] == [
        ("y", 128, 576_072),
        ("m", 128, 576_072),
        ("c", 128, 576_072),
        ("k", 2, 82_296),
        ("o", 2, 82_296),
    ]
    assert card.back == ()


@pytest.mark.parametrize("depth", [32, 64, 128])
def test_colour_panels_follow_the_depth(depth: int) -> None:
    card = render_card(png(solid((0, 0, 0))), None, depth=depth)
    for panel in card.front[:3]:
        assert panel.depth == depth and len(panel.data) == panel_size(depth)


def test_pure_red_gives_full_magenta_and_yellow_and_no_cyan() -> None:
    panels = by_name(render_card(png(solid((255, 0, 0))), None).front)
    top = (1 << 7) - 1
    assert (levels(panels["m"]) == top).all()
    assert (levels(panels["y"]) == top).all()
    assert (levels(panels["c"]) == 0).all()
    assert (levels(panels["k"]) == 0).all()


def test_white_prints_no_ink_but_the_overlay_covers_the_card() -> None:
    panels = by_name(render_card(png(solid((255, 255, 255))), None).front)
    for name in "ymck":
        assert (levels(panels[name]) == 0).all()
    assert (levels(panels["o"]) == 1).all()


def test_ink_is_quantised_to_the_depth() -> None:
    # channel 128 -> ink 127 of 255 -> about half of the top level
    panels = by_name(render_card(png(solid((128, 0, 255))), None, depth=32).front)
    assert (levels(panels["c"]) == 15).all()  # round(127 * 31 / 255)
    assert (levels(panels["m"]) == 31).all()
    assert (levels(panels["y"]) == 0).all()


def test_near_black_goes_to_k_and_is_removed_from_ymc() -> None:
    pixels = solid((0, 120, 200))  # a blue background
    pixels[300:320, 100:900] = (10, 10, 10)  # a line of near-black text
    panels = by_name(render_card(png(pixels), None).front)
    k = levels(panels["k"]).astype(bool)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    expected[300:320, 100:900] = True
    text = guide_turn(expected)
    assert (k == text).all()
    for name in "ymc":
        assert (levels(panels[name])[text] == 0).all()
    assert (levels(panels["c"])[~text] > 0).all()  # the blue background keeps its ink


def test_dark_colour_is_not_taken_for_black() -> None:
    panels = by_name(render_card(png(solid((0, 0, 90))), None).front)
    assert (levels(panels["k"]) == 0).all()
    assert (levels(panels["y"]) > 0).all()


def guide_turn(card: np.ndarray) -> np.ndarray:
    """The guide's rule written out dot by dot, without a rotation helper: the landscape card
    goes into the panel turned 90 degrees clockwise, so panel line `l`, dot `d` is the card's
    column `l` read from the bottom up (`d` = 0 is the bottom row). The first dot of the first
    line is the card's bottom-left corner."""
    lines, dots = np.meshgrid(np.arange(PANEL_LINES), np.arange(PANEL_WIDTH), indexing="ij")
    return card[HEIGHT - 1 - dots, lines]


def asymmetric_card() -> np.ndarray:
    """Black marks that no turn or mirror maps onto each other: a block in the top-left corner,
    a single dot in the bottom-left corner, and a line of text."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 39, 19), fill="black")  # top-left: 40 wide, 20 high
    draw.point((0, HEIGHT - 1), fill="black")  # bottom-left corner
    draw.text((300, 300), "NIK 3174011505900001", fill="black", font=ImageFont.load_default(size=40))
    return np.asarray(image)


def test_the_card_turns_clockwise_into_the_panel() -> None:
    card = asymmetric_card()
    k = levels(by_name(render_card(png(card), None).front)["k"]).astype(bool)
    black = card.max(axis=2) <= 64
    assert k[0, 0], "the first dot of the first line is the card's bottom-left corner"
    # The top-left block: the card's first 40 columns are the first 40 lines; its top 20 rows
    # are the last 20 dots of those lines.
    assert k[:40, PANEL_WIDTH - 20:].all() and not k[40:60, PANEL_WIDTH - 20:].any()
    assert not k[1, 0] and not k[0, 1], "the corner dot stands alone"
    assert (k == guide_turn(black)).all(), "every dot, text included, where the guide puts it"
    upside_down = np.rot90(black, 2)
    assert not (k == guide_turn(upside_down)).all(), "the card turned the other way does not match"


def test_mostly_monochrome_back_gets_k_and_overlay_only() -> None:
    back = solid((255, 255, 255))
    back[100:400:6, 50:950] = (0, 0, 0)  # lines of text
    card = render_card(png(solid((200, 100, 50))), png(back))
    assert [p.name for p in card.back] == ["k", "o"]
    assert levels(by_name(card.back)["k"]).sum() == np.count_nonzero(back[:, :, 0] == 0)


def test_colourful_back_gets_all_five_panels() -> None:
    back = solid((255, 255, 255))
    back[:200, :] = (30, 140, 60)  # a green band: far more than 1% colour
    card = render_card(png(solid((200, 100, 50))), png(back))
    assert [p.name for p in card.back] == ["y", "m", "c", "k", "o"]


def text_back(first_row: int) -> np.ndarray:
    """A mostly white back with lines of black text starting at `first_row`."""
    back = solid((255, 255, 255))
    back[first_row:first_row + 300:6, 50:950] = (0, 0, 0)
    return back


def test_a_renderer_gives_every_card_the_back_its_own_image_shows() -> None:
    # A station's renderer keeps the last back's panels: a card whose back differs must get its
    # own, and the same back again the same dots, read from the image itself.
    renderer = CardRenderer(depth=128)
    backs = [text_back(100), text_back(100), text_back(250), text_back(100)]
    colourful = solid((255, 255, 255))
    colourful[:200, :] = (30, 140, 60)
    backs.append(colourful)
    for n, back in enumerate(backs):
        card = renderer.render(png(solid((200, 100, 50 + n))), png(back))
        expected = render_card(png(solid((200, 100, 50 + n))), png(back))
        assert card == expected, f"card {n}"
        k = levels(by_name(card.back)["k"]).astype(bool)
        assert (k == guide_turn(back.max(axis=2) <= 64)).all(), f"card {n}: the back's black dots"
        assert levels(by_name(card.front)["y"]).max() == ((255 - 50 - n) * 127 + 127) // 255


def test_a_renderer_without_a_back_prints_one_side_and_refuses_a_depth_the_printer_lacks() -> None:
    assert CardRenderer().render(png(solid((0, 0, 0))), None).back == ()
    with pytest.raises(ValueError, match="no panel depth 16"):
        CardRenderer(depth=16)


def test_transparent_parts_print_no_ink() -> None:
    pixels = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)  # fully transparent black
    panels = by_name(render_card(png(pixels), None).front)
    for name in "ymck":
        assert (levels(panels[name]) == 0).all()


def test_grey_and_palette_images_are_accepted() -> None:
    grey = Image.new("L", (WIDTH, HEIGHT), 0)
    out = io.BytesIO()
    grey.convert("P").save(out, "PNG")
    panels = by_name(render_card(out.getvalue(), None).front)
    assert (levels(panels["k"]) == 1).all()


def test_portrait_image_is_refused_with_expected_and_actual_size() -> None:
    with pytest.raises(CardImageError) as caught:
        render_card(png(np.zeros((WIDTH, HEIGHT, 3), np.uint8)), None)
    assert "1016 x 648" in caught.value.reason
    assert "got 648 x 1016" in caught.value.reason
    assert "front" in caught.value.reason


def test_a_jpeg_is_refused_as_not_a_png() -> None:
    out = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT)).save(out, "JPEG")
    with pytest.raises(CardImageError, match="not a PNG"):
        render_card(out.getvalue(), None)


def test_bad_back_is_named_as_the_back() -> None:
    with pytest.raises(CardImageError, match="back"):
        render_card(png(solid((255, 255, 255))), b"GIF89a")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_png_is_refused(keep: float) -> None:
    rng = np.random.default_rng(7)
    data = png(rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8))
    with pytest.raises(CardImageError):
        render_card(data[: int(len(data) * keep)], None)


def test_header_cut_short_is_refused() -> None:
    with pytest.raises(CardImageError):
        render_card(png(solid((0, 0, 0)))[:20], None)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # 100000 x 100000 RGB would need 30 GB; the file itself is tiny.
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(10_000_000), 9))
        + _chunk(b"IEND", b"")
    )
    # Refused by its header (the size in the message), before a byte is decompressed; decoding
    # it would take gigabytes and minutes, which pytest-timeout would catch.
    with pytest.raises(CardImageError, match="got 100000 x 100000"):
        render_card(bomb, None)


def test_oversized_file_is_refused() -> None:
    data = png(solid((255, 255, 255)))
    padded = data[:-12] + _chunk(b"tEXt", b"pad\x00" + b"x" * 9_000_000) + data[-12:]
    with pytest.raises(CardImageError, match="bytes"):
        render_card(padded, None)


def test_unknown_depth_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        render_card(png(solid((0, 0, 0))), None, depth=16)
