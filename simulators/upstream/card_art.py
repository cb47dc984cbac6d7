"""Synthetic e-KTP card faces (PNG, 1016 x 648 at 300 dpi) and the face photo the chip carries.

Everything is drawn with Pillow's bundled font, so nothing needs installing, and is
deterministic per card holder: the same holder always gives the same bytes.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CARD_SIZE = (1016, 648)  # landscape CR80 at 300 dpi, as docs/PROTOCOLS.md section 4 asks
FACE_SIZE = (240, 300)  # 4:5 portrait, scaled down onto the card's photo area
PHOTO_BOX = (762, 150, 962, 400)  # where the photo sits on the front: right, as on the real card
# PNG level 1: the art is flat colour, so more effort buys little size and costs time per job.
PNG_COMPRESS_LEVEL = 1
# JPEG quality that puts the drawn face at about 4 KB, like the compressed photo on a real chip.
FACE_JPEG_QUALITY = 60

INK = (20, 20, 30)
BACKGROUND = (205, 228, 246)
GUILLOCHE = (180, 208, 235)


class Sex(StrEnum):
    """Sex as the chip writes it (ICAO 9303 letters); `label` is what the card prints."""

    MALE = "M"
    FEMALE = "F"

    @property
    def label(self) -> str:
        return "LAKI-LAKI" if self is Sex.MALE else "PEREMPUAN"


@dataclass(frozen=True)
class CardHolder:
    """What an e-KTP shows about its holder (all synthetic here)."""

    nik: str
    name: str
    birth_place: str
    birth_date: date
    sex: Sex
    blood_type: str
    street: str
    rt_rw: str
    village: str
    district: str
    regency: str
    province: str
    religion: str
    marital_status: str
    occupation: str
    issued_on: date


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


@lru_cache(maxsize=1)
def _front_background() -> Image.Image:
    # Drawn once per process: the guilloche-like waves are the slow part and never change.
    image = Image.new("RGB", CARD_SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    width, height = CARD_SIZE
    for n in range(14):
        y0 = 40 + n * 44
        points = [(x, y0 + 14 * math.sin(x / 60 + n)) for x in range(0, width + 8, 8)]
        draw.line(points, fill=GUILLOCHE, width=2)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(120, 160, 200), width=3)
    return image


def _bold(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, anchor: str = "la") -> None:
    # The bundled font has no bold face; a one-pixel stroke gives the card's heavy headings.
    draw.text(xy, text, font=_font(size), fill=INK, anchor=anchor, stroke_width=1, stroke_fill=INK)


def draw_face(holder: CardHolder) -> Image.Image:
    """A simple drawn portrait, the same every time for the same holder."""
    rng = random.Random(f"face:{holder.nik}")
    # The real rule: red background for odd birth years, blue for even ones.
    backdrop = (200, 40, 45) if holder.birth_date.year % 2 else (40, 90, 190)
    image = Image.new("RGB", FACE_SIZE, backdrop)
    draw = ImageDraw.Draw(image)
    skin = rng.choice([(224, 172, 130), (198, 140, 100), (170, 115, 80), (236, 190, 150)])
    hair = rng.choice([(20, 15, 10), (45, 30, 20), (70, 50, 35)])
    shirt = rng.choice([(240, 240, 240), (30, 40, 70), (90, 20, 30), (20, 70, 50)])
    width, height = FACE_SIZE
    cx = width // 2 + rng.randint(-6, 6)
    head_w, head_h = rng.randint(104, 120), rng.randint(136, 152)
    top = 52
    # shoulders and collar
    draw.ellipse((cx - 125, 236, cx + 125, 380), fill=shirt)
    draw.rectangle((cx - 22, 200, cx + 22, 250), fill=skin)
    draw.polygon([(cx - 30, 240), (cx, 275), (cx + 30, 240)], fill=skin)
    hijab = holder.sex is Sex.FEMALE and rng.random() < 0.5
    if hijab:
        scarf = rng.choice([(30, 30, 60), (150, 60, 90), (60, 110, 90), (220, 210, 190)])
        draw.ellipse((cx - head_w // 2 - 20, top - 22, cx + head_w // 2 + 20, top + head_h + 30), fill=scarf)
        draw.polygon([(cx - 80, 220), (cx + 80, 220), (cx + 110, 300), (cx - 110, 300)], fill=scarf)
    else:
        draw.ellipse((cx - head_w // 2 - 8, top - 14, cx + head_w // 2 + 8, top + head_h // 2 + 20), fill=hair)
        if holder.sex is Sex.FEMALE:
            draw.rectangle((cx - head_w // 2 - 8, top + 40, cx + head_w // 2 + 8, top + head_h + 10), fill=hair)
    draw.ellipse((cx - head_w // 2, top, cx + head_w // 2, top + head_h), fill=skin)
    if not hijab:
        draw.chord((cx - head_w // 2, top - 4, cx + head_w // 2, top + 70), 180, 360, fill=hair)
    eye_y = top + head_h * 45 // 100
    eye_dx = head_w // 5
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse((ex - 9, eye_y - 5, ex + 9, eye_y + 5), fill=(250, 250, 250))
        draw.ellipse((ex - 4, eye_y - 4, ex + 4, eye_y + 4), fill=(35, 25, 20))
        draw.line((ex - 12, eye_y - 14, ex + 12, eye_y - 16 + side), fill=hair, width=4)
    nose_y = eye_y + 32
    draw.line((cx, eye_y + 8, cx - 4, nose_y, cx + 4, nose_y), fill=(130, 85, 60), width=2)
    mouth_y = nose_y + 22
    smile = rng.randint(2, 8)
    draw.arc((cx - 20, mouth_y - smile, cx + 20, mouth_y + smile), 10, 170, fill=(140, 60, 60), width=3)
    # A little sensor noise, so the JPEG is the size of a real chip photo and not a cartoon's.
    # Seeded (Pillow's effect_noise is not), so the same holder always gets the same bytes.
    noise_rng = np.random.default_rng(rng.getrandbits(64))
    noise = noise_rng.normal(0.0, 2.0, size=(FACE_SIZE[1], FACE_SIZE[0], 1))
    pixels = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def face_jpeg(holder: CardHolder) -> bytes:
    """The face photo for the chip's DG2: a baseline JPEG of about 4 KB."""
    out = io.BytesIO()
    draw_face(holder).save(out, format="JPEG", quality=FACE_JPEG_QUALITY, optimize=True)
    return out.getvalue()


def render_front(holder: CardHolder) -> bytes:
    """The front of the card as PNG: header, NIK, the holder's details, and the photo on the right."""
    image = _front_background().copy()
    draw = ImageDraw.Draw(image)
    width = CARD_SIZE[0]
    _bold(draw, (width // 2, 22), f"PROVINSI {holder.province}", 34, anchor="ma")
    _bold(draw, (width // 2, 64), holder.regency, 34, anchor="ma")
    _bold(draw, (30, 118), "NIK", 40)
    _bold(draw, (150, 118), f": {holder.nik}", 44)

    rows = [
        ("Nama", holder.name),
        ("Tempat/Tgl Lahir", f"{holder.birth_place}, {holder.birth_date:%d-%m-%Y}"),
        ("Jenis Kelamin", f"{holder.sex.label}        Gol. Darah : {holder.blood_type}"),
        ("Alamat", holder.street),
        ("    RT/RW", holder.rt_rw),
        ("    Kel/Desa", holder.village),
        ("    Kecamatan", holder.district),
        ("Agama", holder.religion),
        ("Status Perkawinan", holder.marital_status),
        ("Pekerjaan", holder.occupation),
        ("Kewarganegaraan", "WNI"),
        ("Berlaku Hingga", "SEUMUR HIDUP"),
    ]
    label_font, value_font = _font(23), _font(23)
    y = 186
    for label, value in rows:
        draw.text((30, y), label, font=label_font, fill=INK)
        draw.text((250, y), f": {value}", font=value_font, fill=INK)
        y += 36

    face = draw_face(holder).resize((PHOTO_BOX[2] - PHOTO_BOX[0], PHOTO_BOX[3] - PHOTO_BOX[1]), Image.Resampling.BILINEAR)
    image.paste(face, PHOTO_BOX[:2])
    photo_cx = (PHOTO_BOX[0] + PHOTO_BOX[2]) // 2
    draw.text((photo_cx, 412), holder.regency, font=_font(20), fill=INK, anchor="ma")
    draw.text((photo_cx, 438), f"{holder.issued_on:%d-%m-%Y}", font=_font(20), fill=INK, anchor="ma")
    # The holder's signature: a scribble seeded by the NIK.
    rng = random.Random(f"sign:{holder.nik}")
    points = [(photo_cx - 70 + 10 * i, 520 + rng.randint(-18, 18)) for i in range(15)]
    draw.line(points, fill=INK, width=2, joint="curve")
    return _png(image)


@lru_cache(maxsize=1)
def render_back() -> bytes:
    """The back of the card as PNG; the same for every holder, so it is made once."""
    image = Image.new("RGB", CARD_SIZE, (222, 236, 248))
    draw = ImageDraw.Draw(image)
    width, height = CARD_SIZE
    for x in range(-height, width, 24):
        draw.line((x, height, x + height, 0), fill=(200, 220, 240), width=3)
    for r in range(40, 320, 30):
        draw.ellipse((width // 2 - r, height // 2 - r, width // 2 + r, height // 2 + r), outline=(185, 210, 235), width=2)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(120, 160, 200), width=3)
    _bold(draw, (width // 2, 60), "REPUBLIK INDONESIA", 40, anchor="ma")
    _bold(draw, (width // 2, 112), "KARTU TANDA PENDUDUK ELEKTRONIK", 36, anchor="ma")
    notice = [
        "Kartu ini milik Pemerintah Republik Indonesia.",
        "Apabila menemukan kartu ini, harap dikembalikan kepada",
        "Dinas Kependudukan dan Pencatatan Sipil setempat.",
    ]
    for n, line in enumerate(notice):
        draw.text((width // 2, 470 + 34 * n), line, font=_font(24), fill=INK, anchor="ma")
    return _png(image)
