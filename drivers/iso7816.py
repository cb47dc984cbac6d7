"""ISO 7816-4 file access over a card session: SELECT, READ BINARY, UPDATE BINARY.

Knows status words and BER lengths; knows nothing of what the files mean.
"""

from __future__ import annotations

from typing import Protocol

# At most this many bytes per READ/UPDATE BINARY: fits the short-APDU and reader buffers
# of common contactless readers (ICAO 9303 readers use 0xDF = 223).
MAX_CHUNK = 223

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282  # "end of file reached before reading Le bytes": the data is good
SW_WRONG_OFFSET = 0x6B00
SW_FILE_NOT_FOUND = 0x6A82
SW_NOT_ENOUGH_MEMORY = 0x6A84

# Offsets in READ/UPDATE BINARY have 15 bits (bit 8 of P1 means a short file id).
_MAX_OFFSET = 0x7FFF
# A card answering 61xx forever must not keep us looping.
_MAX_GET_RESPONSES = 32


class Transmitter(Protocol):
    """What FileAccess needs from a card session (drivers.pcsc.CardSession has it)."""

    def transmit(self, apdu: bytes) -> tuple[bytes, int]: ...


class Iso7816Error(Exception):
    """A file operation failed at the ISO 7816 level (the card answered, but not as hoped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StatusWordError(Iso7816Error):
    """The card answered a command with a status word other than success."""

    def __init__(self, command: str, sw: int) -> None:
        super().__init__(f"{command}: card answered SW {sw:04X}")
        self.command = command
        self.sw = sw


class FileNotFound(StatusWordError):
    """The application or file is not on the card (SW 6A82)."""


class NotEnoughMemory(StatusWordError):
    """The chip has no room for the data (SW 6A84)."""


class MalformedFile(Iso7816Error):
    """A file does not start with a BER-TLV, so its length cannot be learnt."""


def _check(command: str, sw: int) -> None:
    if sw == SW_OK:
        return
    if sw == SW_FILE_NOT_FOUND:
        raise FileNotFound(command, sw)
    if sw == SW_NOT_ENOUGH_MEMORY:
        raise NotEnoughMemory(command, sw)
    raise StatusWordError(command, sw)


class FileAccess:
    """Transparent elementary files on a card, through one session."""

    def __init__(self, session: Transmitter) -> None:
        self.session = session

    def select_application(self, aid: bytes) -> None:
        """SELECT by DF name, no FCI wanted. Raises FileNotFound or StatusWordError."""
        _data, sw = self.session.transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid)
        _check(f"SELECT application {aid.hex().upper()}", sw)

    def select_file(self, fid: int) -> None:
        """SELECT an elementary file by its two-byte id. Raises FileNotFound or StatusWordError."""
        _data, sw = self.session.transmit(bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big"))
        _check(f"SELECT file {fid:04X}", sw)

    def read_file(self, fid: int) -> bytes:
        """Select and read a whole file whose content is one BER-TLV. An empty file gives b"".

        Reads 4 bytes to learn the length, then the rest in chunks of at most MAX_CHUNK.
        Raises FileNotFound, StatusWordError, MalformedFile.
        """
        self.select_file(fid)
        head = self._read_binary(fid, 0, 4)
        if not head:
            return b""
        if len(head) == 4 and (more := _ber_header_length(head) - 4) > 0:
            head += self._read_binary(fid, 4, more)  # a two-byte tag with a long length
        total = _ber_total_length(fid, head)
        if total > _MAX_OFFSET + 1:
            raise MalformedFile(f"file {fid:04X} declares {total} bytes: more than READ BINARY can address")
        content = bytearray(head[:total])
        while len(content) < total:
            chunk = self._read_binary(fid, len(content), min(MAX_CHUNK, total - len(content)))
            if not chunk:
                raise MalformedFile(f"file {fid:04X} ends at {len(content)} bytes, its TLV declares {total}")
            content += chunk[: total - len(content)]
        return bytes(content)

    def write_file(self, fid: int, data: bytes, chunk: int = MAX_CHUNK) -> None:
        """Select a file and write `data` from offset 0 with UPDATE BINARY, `chunk` bytes at a time.

        Raises FileNotFound, NotEnoughMemory, StatusWordError; ValueError for a bad chunk or size.
        """
        if not 1 <= chunk <= 255:
            raise ValueError("chunk must be 1 to 255 bytes")
        if len(data) > _MAX_OFFSET + 1:
            raise ValueError(f"{len(data)} bytes is more than UPDATE BINARY can address")
        self.select_file(fid)
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            apdu = bytes([0x00, 0xD6, offset >> 8, offset & 0xFF, len(piece)]) + piece
            _data, sw = self.session.transmit(apdu)
            _check(f"UPDATE BINARY {fid:04X} at {offset}", sw)

    def _read_binary(self, fid: int, offset: int, le: int) -> bytes:
        """Up to `le` bytes from `offset`; b"" when the offset is at the end (SW 6B00)."""
        command = f"READ BINARY {fid:04X} at {offset}"
        apdu = bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, le & 0xFF])
        data, sw = self.session.transmit(apdu)
        if sw >> 8 == 0x6C:  # wrong Le: the card says how many it has
            data, sw = self.session.transmit(apdu[:4] + bytes([sw & 0xFF]))
        result = bytearray(data)
        for _ in range(_MAX_GET_RESPONSES):
            if sw >> 8 != 0x61:
                break
            data, sw = self.session.transmit(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
            result += data
        if sw == SW_WRONG_OFFSET:
            return b""
        if sw not in (SW_OK, SW_END_OF_FILE):
            _check(command, sw)
        return bytes(result)


def _ber_header_length(head: bytes) -> int:
    """Bytes of tag and length at the start of `head` (which holds at least two bytes)."""
    tag_size = 2 if head[0] & 0x1F == 0x1F else 1
    first = head[tag_size]
    return tag_size + 1 + (first & 0x7F if first >= 0x80 else 0)


def _ber_total_length(fid: int, head: bytes) -> int:
    """Tag + length + value size of the BER-TLV that starts `head` (at least its first bytes)."""
    i = 1
    if head[0] & 0x1F == 0x1F:
        i = 2  # two-byte tag (all tags in the LDS fit in two)
    if len(head) <= i:
        raise MalformedFile(f"file {fid:04X} is too short for a TLV header")
    first = head[i]
    if first < 0x80:
        return i + 1 + first
    size = first & 0x7F
    if size == 0 or size > 3 or len(head) < i + 1 + size:
        raise MalformedFile(f"file {fid:04X} has an unsupported BER length {head.hex().upper()}")
    return i + 1 + size + int.from_bytes(head[i + 1 : i + 1 + size], "big")
