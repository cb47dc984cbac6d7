"""Each chip fault of the simulator, met through the real pcscd, ends as a failure of its own.

The card is a VirtualChip on vpcd slot 0 with the fault armed as the printer simulator arms
it (just before insertion); the agent's side is agent.chip.encoder_station with the icao9303
profile, as the printer worker runs it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import date, datetime, timezone

import pytest
from PIL import Image

from agent.chip.encoder_station import StationTimeouts, encode_and_verify
from agent.chip.profile import ChipError, ChipExpectation, ChipFailure, ChipProfile, Verdict
from agent.chip.registry import load_profile
from drivers.pcsc import PcscReader
from simulators.chip.emulator import VirtualChip
from simulators.chip.faults import ChipFault, apply_chip_fault
from simulators.chip.image import ChipSubject, build_chip_files
from simulators.pki import TestPki
from simulators.chip.vpcd import VpcdCard

READER = "Virtual PCD 00 00"
PORT = 35963
SUBJECT = ChipSubject("KTP000009", "3174011505900009", "SITI AMINAH", date(1991, 7, 1), "P", None)
EXPECTED = ChipExpectation("KTP000009", "3174011505900009", "SITI AMINAH")
# Short limits keep the slow and mute cards quick; the fault constants are longer than these.
TIMEOUTS = StationTimeouts(card_wait_s=1.5, card_budget_s=2.0, apdu_timeout_s=1.0)


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
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChipProfile, dict[str, bytes]]:
    pki = TestPki.create(tmp_path_factory.mktemp("pki"))
    buf = io.BytesIO()
    Image.new("RGB", (240, 320), (150, 110, 90)).save(buf, "JPEG", quality=70)
    return load_profile("icao9303", [pki.csca_pem_path]), build_chip_files(SUBJECT, buf.getvalue(), pki.signer)


def run_card(card: VpcdCard, reader: PcscReader, image, fault: str | None):
    profile, files = image
    chip = VirtualChip()
    if fault is not None:
        apply_chip_fault(card, chip, fault)
    card.insert(chip)
    return encode_and_verify(reader, profile, files, EXPECTED, datetime.now(timezone.utc), TIMEOUTS)


def test_a_healthy_card_passes_every_check(card: VpcdCard, reader: PcscReader, image) -> None:
    verdict = run_card(card, reader, image, None)
    assert verdict.ok, verdict.checks


@pytest.mark.parametrize(
    "fault, failure",
    [
        ("no-atr", ChipFailure.CHIP_MUTE),
        ("mute", ChipFailure.CHIP_MUTE),
        ("slow", ChipFailure.CHIP_SLOW),
        ("removed-mid-read", ChipFailure.CHIP_REMOVED),
    ],
)
def test_a_card_that_does_not_answer_properly_is_a_chip_error_of_its_kind(
    card: VpcdCard, reader: PcscReader, image, fault: str, failure: ChipFailure
) -> None:
    started = time.monotonic()
    with pytest.raises(ChipError) as caught:
        run_card(card, reader, image, fault)
    assert caught.value.failure is failure, caught.value.message
    assert time.monotonic() - started < 60  # bounded by the timeouts (a few seconds), never by the fault


@pytest.mark.parametrize(
    "fault, failure, bad_check",
    [
        ("wrong-sw", ChipFailure.UNREADABLE_FILE, "EF.SOD"),
        ("flipped-byte", ChipFailure.HASH_MISMATCH, "dg2"),
        ("untrusted-sod", ChipFailure.UNTRUSTED_SIGNER, "chain"),
    ],
)
def test_a_card_with_bad_data_is_judged_with_the_check_that_failed(
    card: VpcdCard, reader: PcscReader, image, fault: str, failure: ChipFailure, bad_check: str
) -> None:
    verdict = run_card(card, reader, image, fault)
    assert verdict.failure is failure, verdict.checks
    assert {c.name: c.verdict for c in verdict.checks}[bad_check] is Verdict.BAD


def test_the_re_signed_security_object_still_has_a_good_signature_and_hashes(card: VpcdCard, reader: PcscReader, image) -> None:
    # Only the chain gives the stranger away: the signature and hashes are all in order.
    checks = {c.name: c.verdict for c in run_card(card, reader, image, "untrusted-sod").checks}
    assert checks["signature"] is checks["dg1"] is checks["dg2"] is checks["message-digest"] is Verdict.GOOD


def test_a_fault_lasts_for_one_card(card: VpcdCard, reader: PcscReader, image) -> None:
    assert run_card(card, reader, image, "flipped-byte").failure is ChipFailure.HASH_MISMATCH
    card.remove()  # the printer sends the card to the reject box
    assert run_card(card, reader, image, None).ok


def test_an_unknown_fault_name_lists_the_known_ones(card: VpcdCard) -> None:
    with pytest.raises(ValueError, match="removed-mid-read"):
        apply_chip_fault(card, VirtualChip(), "melted")
    assert {f.value for f in ChipFault} == {
        "no-atr", "mute", "wrong-sw", "flipped-byte", "untrusted-sod", "slow", "removed-mid-read"
    }
