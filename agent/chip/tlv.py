"""BER-TLV as the ICAO 9303 data groups use it (one- or two-byte tags, definite lengths)."""

from __future__ import annotations

from dataclasses import dataclass


class TlvError(ValueError):
    """The bytes are not well-formed BER-TLV."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes


def parse_one(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """The TLV at `offset` and the offset just after it. Raises TlvError if truncated or malformed."""
    if offset >= len(data):
        raise TlvError("no TLV at the end of the data")
    tag = data[offset]
    offset += 1
    if tag & 0x1F == 0x1F:
        if offset >= len(data):
            raise TlvError("truncated tag")
        tag = (tag << 8) | data[offset]
        offset += 1
    if offset >= len(data):
        raise TlvError("truncated length")
    first = data[offset]
    offset += 1
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 3 or offset + size > len(data):
            raise TlvError(f"unsupported length field 0x{first:02X}")
        length = int.from_bytes(data[offset : offset + size], "big")
        offset += size
    if offset + length > len(data):
        raise TlvError("value runs past the end of the data")
    return Tlv(tag, data[offset : offset + length]), offset + length


def unwrap(data: bytes, tag: int) -> bytes:
    """The value of the single TLV `data` holds, which must carry `tag`. Raises TlvError."""
    tlv, end = parse_one(data)
    if tlv.tag != tag:
        raise TlvError(f"expected tag {tag:X}, found {tlv.tag:X}")
    if end != len(data):
        raise TlvError(f"{len(data) - end} bytes after the TLV")
    return tlv.value


def children(value: bytes) -> dict[int, bytes]:
    """The TLVs one after another in `value`, by tag (the first of a repeated tag wins). Raises TlvError."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset < len(value):
        tlv, offset = parse_one(value, offset)
        found.setdefault(tlv.tag, tlv.value)
    return found
