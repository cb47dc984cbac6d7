"""ISO 7816 file access: lengths from the BER header, chunking, 61xx / 6Cxx / 6282 handling, typed errors."""

from __future__ import annotations

import pytest

from drivers.iso7816 import MAX_CHUNK, FileAccess, FileNotFound, MalformedFile, NotEnoughMemory, StatusWordError
from simulators.chip.emulator import VirtualChip

AID = bytes.fromhex("A0000002471001")


class ChipTransport:
    """A card session straight into a VirtualChip; `quirk` may rewrite an answer as other cards give it."""

    def __init__(self, chip: VirtualChip) -> None:
        self.chip = chip
        self.sent: list[bytes] = []
        self.pending = b""  # data held back for GET RESPONSE

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        response = self.chip.process_apdu(apdu)
        return self.quirk(apdu, response[:-2], int.from_bytes(response[-2:], "big"))

    def quirk(self, apdu: bytes, data: bytes, sw: int) -> tuple[bytes, int]:
        return data, sw


def personalised(content: bytes, kind: type[ChipTransport] = ChipTransport) -> ChipTransport:
    transport = kind(VirtualChip())
    access = FileAccess(transport)
    access.select_application(AID)
    access.write_file(0x0102, content)
    return transport


def dg2(size: int) -> bytes:
    value = bytes(i % 251 for i in range(size))
    return b"\x75\x82" + size.to_bytes(2, "big") + value


def test_a_file_reads_back_whole_in_chunks_of_at_most_223() -> None:
    transport = personalised(dg2(1000))
    transport.sent.clear()
    assert FileAccess(transport).read_file(0x0102) == dg2(1000)
    reads = [apdu for apdu in transport.sent if apdu[1] == 0xB0]
    assert reads[0][4] == 4 and max(apdu[4] for apdu in reads) == MAX_CHUNK


def test_writing_uses_chunks_no_larger_than_asked() -> None:
    transport = ChipTransport(VirtualChip())
    access = FileAccess(transport)
    access.select_application(AID)
    access.write_file(0x0101, dg2(500), chunk=100)
    updates = [apdu for apdu in transport.sent if apdu[1] == 0xD6]
    assert len(updates) == 6 and max(apdu[4] for apdu in updates) == 100


def test_a_blank_file_reads_as_empty() -> None:
    transport = ChipTransport(VirtualChip())
    access = FileAccess(transport)
    access.select_application(AID)
    assert access.read_file(0x0101) == b""


def test_data_announced_by_61xx_is_fetched_with_get_response() -> None:
    class Chaining(ChipTransport):
        def quirk(self, apdu: bytes, data: bytes, sw: int) -> tuple[bytes, int]:
            if apdu[1] == 0xC0:
                data, self.pending = self.pending, b""
                return data, 0x9000
            if apdu[1] == 0xB0 and sw == 0x9000 and len(data) > 2:
                self.pending = data[2:]
                return data[:2], 0x6100 | len(self.pending)
            return data, sw

    content = dg2(300)
    transport = personalised(content, Chaining)
    assert FileAccess(transport).read_file(0x0102) == content
    assert any(apdu[1] == 0xC0 for apdu in transport.sent)


def test_a_6cxx_answer_is_resent_with_the_le_the_card_names() -> None:
    class WantsExactLe(ChipTransport):
        def quirk(self, apdu: bytes, data: bytes, sw: int) -> tuple[bytes, int]:
            if apdu[1] == 0xB0 and apdu[4] != len(data):
                return b"", 0x6C00 | len(data)
            return data, sw

    content = b"\x75\x01a"  # shorter than the 4-byte first read
    transport = personalised(content, WantsExactLe)
    assert FileAccess(transport).read_file(0x0102) == content
    assert any(apdu[1] == 0xB0 and apdu[4] == len(content) for apdu in transport.sent)


def test_a_short_read_with_6282_is_accepted() -> None:
    class EndOfFileWarning(ChipTransport):
        def quirk(self, apdu: bytes, data: bytes, sw: int) -> tuple[bytes, int]:
            if apdu[1] == 0xB0 and len(data) < (apdu[4] or 256):
                return data, 0x6282
            return data, sw

    content = dg2(10)
    transport = personalised(content, EndOfFileWarning)
    assert FileAccess(transport).read_file(0x0102) == content


def test_a_file_shorter_than_its_tlv_says_is_malformed() -> None:
    transport = personalised(b"\x75\x82\x01\x00" + bytes(10))
    with pytest.raises(MalformedFile):
        FileAccess(transport).read_file(0x0102)


def test_an_unknown_file_raises_file_not_found_with_its_sw() -> None:
    access = FileAccess(ChipTransport(VirtualChip()))
    access.select_application(AID)
    with pytest.raises(FileNotFound) as caught:
        access.read_file(0x0120)
    assert caught.value.sw == 0x6A82


def test_a_full_chip_raises_not_enough_memory() -> None:
    transport = ChipTransport(VirtualChip(capacity=100))
    access = FileAccess(transport)
    access.select_application(AID)
    with pytest.raises(NotEnoughMemory) as caught:
        access.write_file(0x0102, dg2(200))
    assert caught.value.sw == 0x6A84


def test_a_wrong_application_is_a_status_word_error() -> None:
    with pytest.raises(StatusWordError) as caught:
        FileAccess(ChipTransport(VirtualChip())).select_application(bytes.fromhex("A0000002471002"))
    assert caught.value.sw == 0x6A82
