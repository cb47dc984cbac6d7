"""A writable ICAO 9303 blank chip: the card side of docs/PROTOCOLS.md section 3.

It answers command APDUs only; how they reach it (vpcd, a test calling it directly)
is someone else's business.
"""

from __future__ import annotations

import base64
import threading
from enum import IntEnum

from simulators.chip.image import document_number_from_dg1

APPLICATION_ID = bytes.fromhex("A0000002471001")

# EF.COM, EF.SOD and DG1..DG16: every file a blank carries (empty).
FILE_IDS: tuple[int, ...] = (0x011E, 0x011D, *range(0x0101, 0x0111))
DG1_FID = 0x0101

DEFAULT_CAPACITY = 8192


class Sw(IntEnum):
    """The status words this chip answers with."""

    OK = 0x9000
    WRONG_LENGTH = 0x6700
    NO_CURRENT_EF = 0x6986
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    WRONG_P1P2 = 0x6A86
    WRONG_OFFSET = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00


class VirtualChip:
    """A blank (or personalised) chip that answers SELECT, READ BINARY and UPDATE BINARY.

    Thread-safe: the printer simulator may read the document number while a reader
    thread feeds APDUs.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._files: dict[int, bytearray] = {fid: bytearray() for fid in FILE_IDS}
        self._application_selected = False
        self._current_file: int | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Power-up state: nothing selected. File contents stay (they are in EEPROM)."""
        with self._lock:
            self._application_selected = False
            self._current_file = None

    def process_apdu(self, apdu: bytes) -> bytes:
        """Answer one short command APDU: response data followed by SW1 SW2. Never raises."""
        with self._lock:
            data, sw = self._dispatch(apdu)
        return data + sw.to_bytes(2, "big")

    def document_number(self) -> str | None:
        """The document number in DG1's MRZ; None if DG1 is blank or not parsable."""
        with self._lock:
            dg1 = bytes(self._files[DG1_FID])
        return document_number_from_dg1(dg1)

    def flip_bit(self, fid: int, index: int) -> None:
        """Invert the lowest bit of byte `index` of file `fid`, as a failing EEPROM cell would.

        Raises KeyError for an unknown FID, IndexError past the file's end.
        """
        with self._lock:
            self._files[fid][index] ^= 0x01

    def replace_file(self, fid: int, content: bytes) -> None:
        """Overwrite file `fid` with `content` (a chip tampered with outside the reader). Raises KeyError."""
        with self._lock:
            if fid not in self._files:
                raise KeyError(f"no file {fid:04X} on the chip")
            self._files[fid] = bytearray(content)

    def files(self) -> dict[int, bytes]:
        """A copy of every file's content, by FID."""
        with self._lock:
            return {fid: bytes(content) for fid, content in self._files.items()}

    def to_json(self) -> dict:
        """The chip's durable state (capacity and file contents) as JSON-ready values."""
        with self._lock:
            files = {f"{fid:04X}": base64.b64encode(content).decode("ascii") for fid, content in self._files.items() if content}
        return {"capacity": self.capacity, "files": files}

    @classmethod
    def from_json(cls, d: dict) -> "VirtualChip":
        """Rebuild a chip saved by `to_json`. Raises ValueError on an unknown FID or bad base64."""
        chip = cls(capacity=int(d.get("capacity", DEFAULT_CAPACITY)))
        for key, b64 in d.get("files", {}).items():
            fid = int(key, 16)
            if fid not in chip._files:
                raise ValueError(f"unknown file id {key} in chip state")
            chip._files[fid] = bytearray(base64.b64decode(b64, validate=True))
        return chip

    def _dispatch(self, apdu: bytes) -> tuple[bytes, int]:
        if len(apdu) < 4:
            return b"", Sw.WRONG_LENGTH
        cla, ins, p1, p2 = apdu[:4]
        if cla != 0x00:
            return b"", Sw.CLA_NOT_SUPPORTED
        body = apdu[4:]
        if ins == 0xA4:
            return self._select(p1, p2, body)
        if ins == 0xB0:
            return self._read_binary(p1, p2, body)
        if ins == 0xD6:
            return self._update_binary(p1, p2, body)
        return b"", Sw.INS_NOT_SUPPORTED

    def _select(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        command_data = _command_data(body)
        if command_data is None:
            return b"", Sw.WRONG_LENGTH
        if p2 not in (0x00, 0x0C):
            return b"", Sw.WRONG_P1P2
        if p1 == 0x04:
            if command_data != APPLICATION_ID:
                return b"", Sw.FILE_NOT_FOUND
            self._application_selected = True
            self._current_file = None
            return b"", Sw.OK
        if p1 == 0x02:
            if not self._application_selected or len(command_data) != 2:
                return b"", Sw.FILE_NOT_FOUND
            fid = int.from_bytes(command_data, "big")
            if fid not in self._files:
                return b"", Sw.FILE_NOT_FOUND
            self._current_file = fid
            return b"", Sw.OK
        return b"", Sw.WRONG_P1P2

    def _read_binary(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        if len(body) > 1:
            return b"", Sw.WRONG_LENGTH
        if p1 & 0x80:
            return b"", Sw.WRONG_P1P2  # short-FID addressing: not offered by this chip
        if self._current_file is None:
            return b"", Sw.NO_CURRENT_EF
        content = self._files[self._current_file]
        offset = (p1 << 8) | p2
        if offset >= len(content):
            return b"", Sw.WRONG_OFFSET
        le = body[0] if body and body[0] else 256
        return bytes(content[offset : offset + le]), Sw.OK

    def _update_binary(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        command_data = _command_data(body)
        if not command_data:
            return b"", Sw.WRONG_LENGTH
        if p1 & 0x80:
            return b"", Sw.WRONG_P1P2
        if self._current_file is None:
            return b"", Sw.NO_CURRENT_EF
        content = self._files[self._current_file]
        offset = (p1 << 8) | p2
        if offset > len(content):
            return b"", Sw.WRONG_OFFSET
        grown = max(0, offset + len(command_data) - len(content))
        if sum(len(c) for c in self._files.values()) + grown > self.capacity:
            return b"", Sw.NOT_ENOUGH_MEMORY
        content[offset : offset + len(command_data)] = command_data
        return b"", Sw.OK


def _command_data(body: bytes) -> bytes | None:
    """The data field of a short APDU body `Lc data [Le]`; None if Lc disagrees with the body."""
    if not body:
        return b""
    lc = body[0]
    if len(body) not in (1 + lc, 2 + lc):
        return None
    return body[1 : 1 + lc]
