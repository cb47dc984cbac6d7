"""The virtual chip answers APDUs as docs/PROTOCOLS.md section 3 says (no pcscd involved)."""

from __future__ import annotations

from datetime import date

import pytest

from simulators.chip.emulator import VirtualChip
from simulators.chip.image import ChipSubject, td1_mrz, tlv

SELECT_APP = bytes.fromhex("00A4040C07A0000002471001")


def select_file(fid: int) -> bytes:
    return bytes.fromhex("00A4020C02") + fid.to_bytes(2, "big")


def update(offset: int, data: bytes) -> bytes:
    return bytes([0x00, 0xD6, offset >> 8, offset & 0xFF, len(data)]) + data


def read(offset: int, le: int) -> bytes:
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, le])


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


@pytest.fixture
def chip() -> VirtualChip:
    chip = VirtualChip()
    assert sw(chip.process_apdu(SELECT_APP)) == 0x9000
    return chip


def test_selecting_a_file_before_the_application_is_not_found() -> None:
    assert sw(VirtualChip().process_apdu(select_file(0x011E))) == 0x6A82


def test_application_select_accepts_p2_00_and_rejects_another_aid() -> None:
    chip = VirtualChip()
    assert sw(chip.process_apdu(bytes.fromhex("00A4040007A000000247100100"))) == 0x9000
    assert sw(chip.process_apdu(bytes.fromhex("00A4040C07A0000002471002"))) == 0x6A82


def test_every_icao_file_exists_on_a_blank_and_others_do_not(chip: VirtualChip) -> None:
    for fid in [0x011E, 0x011D, *range(0x0101, 0x0111)]:
        assert sw(chip.process_apdu(select_file(fid))) == 0x9000
    assert sw(chip.process_apdu(select_file(0x0111))) == 0x6A82


def test_reading_a_blank_file_is_an_offset_past_the_end(chip: VirtualChip) -> None:
    chip.process_apdu(select_file(0x0101))
    assert sw(chip.process_apdu(read(0, 4))) == 0x6B00


def test_reading_without_a_selected_file_is_refused(chip: VirtualChip) -> None:
    assert sw(chip.process_apdu(read(0, 4))) == 0x6986


def test_written_data_reads_back_in_pieces(chip: VirtualChip) -> None:
    data = bytes(range(256)) * 2
    chip.process_apdu(select_file(0x0102))
    for offset in range(0, len(data), 200):
        assert sw(chip.process_apdu(update(offset, data[offset : offset + 200]))) == 0x9000
    first = chip.process_apdu(read(0, 0))  # Le 0 means 256
    assert sw(first) == 0x9000 and first[:-2] == data[:256]
    tail = chip.process_apdu(read(500, 100))  # asks past the end: gets what there is
    assert tail[:-2] == data[500:]
    assert sw(chip.process_apdu(read(512, 1))) == 0x6B00


def test_writing_past_the_end_of_a_file_is_refused(chip: VirtualChip) -> None:
    chip.process_apdu(select_file(0x0101))
    chip.process_apdu(update(0, b"abc"))
    assert sw(chip.process_apdu(update(4, b"d"))) == 0x6B00
    assert sw(chip.process_apdu(update(3, b"d"))) == 0x9000


def test_files_together_cannot_exceed_the_capacity() -> None:
    chip = VirtualChip(capacity=300)
    chip.process_apdu(SELECT_APP)
    chip.process_apdu(select_file(0x0102))
    assert sw(chip.process_apdu(update(0, bytes(200)))) == 0x9000
    chip.process_apdu(select_file(0x0101))
    assert sw(chip.process_apdu(update(0, bytes(100)))) == 0x9000
    assert sw(chip.process_apdu(update(100, b"x"))) == 0x6A84
    assert sw(chip.process_apdu(update(0, b"overwrite costs nothing"))) == 0x9000


def test_unknown_instruction_and_class_are_refused(chip: VirtualChip) -> None:
    assert sw(chip.process_apdu(bytes.fromhex("0084000008"))) == 0x6D00
    assert sw(chip.process_apdu(bytes.fromhex("0CB0000004"))) == 0x6E00


def test_a_lc_that_disagrees_with_the_data_is_a_wrong_length(chip: VirtualChip) -> None:
    chip.process_apdu(select_file(0x0101))
    assert sw(chip.process_apdu(bytes.fromhex("00D6000005AABB"))) == 0x6700


def test_reset_forgets_the_selection_but_keeps_the_files(chip: VirtualChip) -> None:
    chip.process_apdu(select_file(0x0101))
    chip.process_apdu(update(0, b"kept"))
    chip.reset()
    assert sw(chip.process_apdu(read(0, 4))) == 0x6986
    chip.process_apdu(SELECT_APP)
    chip.process_apdu(select_file(0x0101))
    assert chip.process_apdu(read(0, 4))[:-2] == b"kept"


def _personalise(chip: VirtualChip, dg1: bytes) -> None:
    chip.process_apdu(select_file(0x0101))
    chip.process_apdu(update(0, dg1))


def test_document_number_comes_from_the_mrz_in_dg1(chip: VirtualChip) -> None:
    subject = ChipSubject("KTP000042", "3174011505900001", "SITI AMINAH", date(1990, 5, 15), "P", None)
    _personalise(chip, tlv(0x61, tlv(0x5F1F, td1_mrz(subject).encode())))
    assert chip.document_number() == "KTP000042"


def test_document_number_of_a_blank_or_garbled_chip_is_none(chip: VirtualChip) -> None:
    assert chip.document_number() is None
    _personalise(chip, b"\x61\x05garbage")
    assert chip.document_number() is None


def test_json_round_trip_keeps_files_and_capacity(chip: VirtualChip) -> None:
    _personalise(chip, b"\x61\x01\x00")
    again = VirtualChip.from_json(chip.to_json())
    assert again.capacity == chip.capacity
    assert again.files() == chip.files()
    assert VirtualChip.from_json(VirtualChip().to_json()).files() == VirtualChip().files()
