"""The chip through the real pcscd: a VirtualChip on vpcd slot 0, the driver and the profile on top."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from agent.chip.profile import ChipError, ChipExpectation, ChipFailure
from agent.chip.registry import load_profile
from drivers.iso7816 import FileAccess
from drivers.pcsc import CardNotPresent, CardRemoved, PcscReader, ReaderUnavailable
from simulators.chip.emulator import VirtualChip
from simulators.chip.image import ChipSubject, build_chip_files
from simulators.pki import TestPki
from simulators.chip.vpcd import VpcdCard

READER = "Virtual PCD 00 00"
PORT = 35963
AID = bytes.fromhex("A0000002471001")
SUBJECT = ChipSubject("KTP000007", "3174011505900007", "DEWI LESTARI", date(1992, 3, 4), "P", None)
EXPECTED = ChipExpectation("KTP000007", "3174011505900007", "DEWI LESTARI")


@pytest.fixture
def card(pcscd: list[str]) -> Iterator[VpcdCard]:
    assert READER in pcscd
    card = VpcdCard(PORT)
    yield card
    card.remove()


@pytest.fixture
def reader() -> Iterator[PcscReader]:
    reader = PcscReader(READER)
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    pki = TestPki.create(tmp_path_factory.mktemp("pki"))
    buf = io.BytesIO()
    Image.new("RGB", (240, 320), (120, 90, 70)).save(buf, "JPEG", quality=70)
    return pki.csca_pem_path, build_chip_files(SUBJECT, buf.getvalue(), pki.signer)


def test_waiting_on_an_empty_reader_times_out_as_card_not_present(card: VpcdCard, reader: PcscReader) -> None:
    start = time.monotonic()
    with pytest.raises(CardNotPresent):
        reader.wait_for_card(0.3)
    # It waited (no upper bound: a busy machine may be slow to wake it; a hang is pytest-timeout's).
    assert time.monotonic() - start > 0.25


def test_a_reader_pcscd_does_not_list_is_unavailable(pcscd: list[str]) -> None:
    reader = PcscReader("Virtual PCD 00 07")
    try:
        with pytest.raises(ReaderUnavailable, match="not listed"):
            reader.wait_for_card(0.3)
    finally:
        reader.close()


def test_waiting_returns_when_the_printer_brings_a_card(card: VpcdCard, reader: PcscReader) -> None:
    arrival = threading.Timer(0.2, card.insert, args=(VirtualChip(),))
    arrival.start()
    try:
        reader.wait_for_card(5.0)
    finally:
        arrival.join()
    with reader.connect() as session:
        assert session.transmit(bytes.fromhex("00A4040C07") + AID) == (b"", 0x9000)


def test_a_chip_encoded_through_pcscd_verifies_good(
    card: VpcdCard, reader: PcscReader, files: tuple[Path, dict[str, bytes]]
) -> None:
    anchor, image = files
    chip = VirtualChip()
    card.insert(chip)
    reader.wait_for_card(5.0)
    profile = load_profile("icao9303", [anchor])
    with reader.connect() as session:
        profile.encode(session, image)
    with reader.connect() as session:
        verdict = profile.verify(session, EXPECTED, datetime.now(timezone.utc))
    assert verdict.ok, verdict.checks
    assert chip.document_number() == "KTP000007" == verdict.document_number


def test_removing_the_card_mid_read_is_card_removed(
    card: VpcdCard, reader: PcscReader, files: tuple[Path, dict[str, bytes]]
) -> None:
    chip = VirtualChip()
    card.insert(chip)
    reader.wait_for_card(5.0)
    with reader.connect() as session:
        load_profile("icao9303", [files[0]]).encode(session, files[1])
    reads = 0

    def printer_moves_the_card_on_the_third_read(apdu: bytes, chip: VirtualChip) -> bytes | None:
        nonlocal reads
        if apdu[1] == 0xB0:
            reads += 1
            if reads == 3:
                card.remove()
                return None
        return chip.process_apdu(apdu)

    card.set_apdu_hook(printer_moves_the_card_on_the_third_read)
    with reader.connect() as session:
        access = FileAccess(session)
        access.select_application(AID)
        with pytest.raises(CardRemoved):
            access.read_file(0x0102)


def test_a_card_removed_during_verification_is_a_chip_removed_fault(
    card: VpcdCard, reader: PcscReader, files: tuple[Path, dict[str, bytes]]
) -> None:
    chip = VirtualChip()
    card.insert(chip)
    reader.wait_for_card(5.0)
    profile = load_profile("icao9303", [files[0]])
    with reader.connect() as session:
        profile.encode(session, files[1])

    def removed_at_first_read(apdu: bytes, chip: VirtualChip) -> bytes | None:
        if apdu[1] == 0xB0:
            card.remove()
            return None
        return chip.process_apdu(apdu)

    card.set_apdu_hook(removed_at_first_read)
    with reader.connect() as session, pytest.raises(ChipError) as caught:
        profile.verify(session, EXPECTED, datetime.now(timezone.utc))
    assert caught.value.failure is ChipFailure.CHIP_REMOVED


def test_an_apdu_round_trip_through_pcscd_is_fast(
    card: VpcdCard, reader: PcscReader
) -> None:
    card.insert(VirtualChip())
    reader.wait_for_card(5.0)
    with reader.connect() as session:
        start = time.monotonic()
        for _ in range(50):
            session.transmit(bytes.fromhex("00A4040C07") + AID)
        # A delayed TCP ACK on the card's socket would cost ~40 ms an APDU (2 s here); a loaded
        # machine costs far less than that.
        assert time.monotonic() - start < 1.5
