"""The icao9303 profile encodes a chip and judges it: one failure per kind of fault.

The profile talks to a real VirtualChip through a direct transport (no pcscd), so these
run in milliseconds; tests/test_pcsc_chip_end_to_end.py does the same through pcscd.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from agent.chip.profile import ChipError, ChipExpectation, ChipFailure, Verdict
from agent.chip.registry import load_profile
from drivers.pcsc import ReaderUnavailable
from simulators.chip.emulator import VirtualChip
from simulators.chip.image import ChipSubject, build_chip_files
from simulators.pki import TestPki

AT = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
SUBJECT = ChipSubject("KTP000001", "3174011505900001", "BUDI SANTOSO", date(1990, 5, 15), "L", None)
EXPECTED = ChipExpectation(document_number="KTP000001", nik="3174011505900001", name="BUDI SANTOSO")


class DirectSession:
    """A card session whose transport is a function call into the chip."""

    def __init__(self, chip: VirtualChip) -> None:
        self.chip = chip

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        response = self.chip.process_apdu(apdu)
        return response[:-2], int.from_bytes(response[-2:], "big")


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (240, 320), (180, 140, 110)).save(buf, "JPEG", quality=70)
    return buf.getvalue()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def files(pki: TestPki, face_jpeg: bytes) -> dict[str, bytes]:
    return build_chip_files(SUBJECT, face_jpeg, pki.signer)


def encoded_chip(pki: TestPki, files: dict[str, bytes]) -> DirectSession:
    session = DirectSession(VirtualChip())
    load_profile("icao9303", [pki.csca_pem_path]).encode(session, files)
    session.chip.reset()  # a new power-up before reading back, as on a real reader
    return session


def verify(pki: TestPki, files: dict[str, bytes], expected: ChipExpectation = EXPECTED, anchors: list[Path] | None = None):
    session = encoded_chip(pki, files)
    profile = load_profile("icao9303", [pki.csca_pem_path] if anchors is None else anchors)
    return profile.verify(session, expected, AT)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def verdicts(verdict) -> dict[str, Verdict]:
    return {c.name: c.verdict for c in verdict.checks}


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "rsa-pkcs1v15", "rsa-pss"])
def test_an_encoded_chip_verifies_good_with_every_signature_algorithm(tmp_path: Path, face_jpeg: bytes, algorithm: str) -> None:
    pki = TestPki.create(tmp_path, algorithm)
    verdict = verify(pki, build_chip_files(SUBJECT, face_jpeg, pki.signer))
    assert verdict.ok, verdict.checks
    assert verdict.document_number == "KTP000001"
    assert set(verdicts(verdict).values()) == {Verdict.GOOD}
    assert {"dg1", "dg2", "dg11", "message-digest", "signature", "signer-validity", "chain", "subject"} <= set(verdicts(verdict))


def test_a_flipped_data_group_byte_is_a_hash_mismatch(pki: TestPki, files: dict[str, bytes]) -> None:
    verdict = verify(pki, files | {"EF.DG2": flip(files["EF.DG2"], len(files["EF.DG2"]) - 10)})
    assert verdict.failure is ChipFailure.HASH_MISMATCH
    assert verdicts(verdict)["dg2"] is Verdict.BAD and verdicts(verdict)["signature"] is Verdict.GOOD


def test_a_changed_hash_in_the_security_object_breaks_the_message_digest(pki: TestPki, files: dict[str, bytes]) -> None:
    sod = files["EF.SOD"]
    at = sod.index(hashlib.sha256(files["EF.DG1"]).digest())
    verdict = verify(pki, files | {"EF.SOD": flip(sod, at)})
    assert verdicts(verdict)["message-digest"] is Verdict.BAD
    assert verdicts(verdict)["dg1"] is Verdict.BAD
    assert verdict.failure is ChipFailure.HASH_MISMATCH  # hash mismatch outranks the signature


def test_a_changed_message_digest_attribute_is_a_bad_signature(pki: TestPki, files: dict[str, bytes]) -> None:
    sod = files["EF.SOD"]
    # The message-digest attribute is the SHA-256 of the LDS security object; find it by
    # its encoding: OCTET STRING of 32 bytes right after the attribute's SET header.
    marker = bytes.fromhex("06092A864886F70D010904")  # OID id-messageDigest
    at = sod.index(marker) + len(marker) + 4
    verdict = verify(pki, files | {"EF.SOD": flip(sod, at)})
    assert verdicts(verdict)["message-digest"] is Verdict.BAD
    assert verdicts(verdict)["signature"] is Verdict.BAD
    assert verdict.failure is ChipFailure.BAD_SIGNATURE


def test_a_damaged_signature_is_a_bad_signature(pki: TestPki, files: dict[str, bytes]) -> None:
    verdict = verify(pki, files | {"EF.SOD": flip(files["EF.SOD"], len(files["EF.SOD"]) - 1)})
    assert verdict.failure is ChipFailure.BAD_SIGNATURE
    assert verdicts(verdict)["message-digest"] is Verdict.GOOD


def test_a_signer_from_another_csca_of_the_same_name_is_untrusted(tmp_path: Path, pki: TestPki, face_jpeg: bytes) -> None:
    other = TestPki.create(tmp_path)  # same subject names, different keys
    verdict = verify(pki, build_chip_files(SUBJECT, face_jpeg, other.signer))
    assert verdict.failure is ChipFailure.UNTRUSTED_SIGNER
    assert verdicts(verdict)["signature"] is Verdict.GOOD


def test_an_expired_signer_is_reported_as_expired(pki: TestPki, face_jpeg: bytes) -> None:
    expired = pki.issue_signer(
        not_before=datetime(2020, 1, 1, tzinfo=timezone.utc), not_after=datetime(2025, 1, 1, tzinfo=timezone.utc)
    )
    verdict = verify(pki, build_chip_files(SUBJECT, face_jpeg, expired))
    assert verdict.failure is ChipFailure.EXPIRED_SIGNER
    assert verdicts(verdict)["chain"] is Verdict.GOOD


def test_without_a_trust_anchor_the_signer_is_untrusted(pki: TestPki, files: dict[str, bytes]) -> None:
    verdict = verify(pki, files, anchors=[])
    assert verdict.failure is ChipFailure.UNTRUSTED_SIGNER


def test_a_chip_for_another_person_is_the_wrong_subject(pki: TestPki, files: dict[str, bytes]) -> None:
    verdict = verify(pki, files, expected=replace(EXPECTED, nik="3174011505900002"))
    assert verdict.failure is ChipFailure.WRONG_SUBJECT
    reason = next(c.reason for c in verdict.checks if c.name == "subject")
    assert "3174011505900002" not in reason and "3174011505900001" not in reason  # masked


def test_a_chip_for_another_document_is_the_wrong_subject(pki: TestPki, files: dict[str, bytes]) -> None:
    verdict = verify(pki, files, expected=replace(EXPECTED, document_number="KTP000002"))
    assert verdict.failure is ChipFailure.WRONG_SUBJECT


def test_the_name_compares_without_regard_to_case_and_spacing(pki: TestPki, files: dict[str, bytes]) -> None:
    assert verify(pki, files, expected=replace(EXPECTED, name=" budi  santoso")).ok


def test_a_blank_chip_is_unreadable(pki: TestPki) -> None:
    verdict = verify(pki, {})
    assert verdict.failure is ChipFailure.UNREADABLE_FILE
    assert verdict.document_number is None


def test_a_garbled_security_object_is_malformed(pki: TestPki, files: dict[str, bytes]) -> None:
    verdict = verify(pki, files | {"EF.SOD": b"\x77\x05\x30\x03\x02\x01\x00"})
    assert verdict.failure is ChipFailure.MALFORMED_SECURITY_OBJECT


def test_an_image_larger_than_the_chip_fails_to_write(pki: TestPki, files: dict[str, bytes]) -> None:
    big = files | {"EF.DG2": b"\x75\x82\x20\x00" + bytes(8192)}
    with pytest.raises(ChipError) as caught:
        load_profile("icao9303", [pki.csca_pem_path]).encode(DirectSession(VirtualChip()), big)
    assert caught.value.failure is ChipFailure.WRITE_FAILED
    assert "6A84" in caught.value.message


def test_a_reader_that_disappears_is_not_blamed_on_the_card(pki: TestPki, files: dict[str, bytes]) -> None:
    class GoneReader:
        def transmit(self, apdu: bytes) -> tuple[bytes, int]:
            raise ReaderUnavailable("reader 'Virtual PCD 00 00' is gone", 0x80100017)

    profile = load_profile("icao9303", [pki.csca_pem_path])
    with pytest.raises(ReaderUnavailable):
        profile.encode(GoneReader(), files)
    with pytest.raises(ReaderUnavailable):
        profile.verify(GoneReader(), EXPECTED, AT)


def test_an_unknown_profile_name_lists_the_known_ones(pki: TestPki) -> None:
    with pytest.raises(ValueError, match="icao9303"):
        load_profile("ektp-sam", [pki.csca_pem_path])


def test_trust_anchors_are_read_when_the_profile_loads(tmp_path: Path, pki: TestPki, files: dict[str, bytes]) -> None:
    anchor = tmp_path / "csca.pem"
    anchor.write_bytes(pki.csca_pem_path.read_bytes())
    profile = load_profile("icao9303", [anchor])
    anchor.unlink()  # verifying must not go back to the file
    assert profile.verify(encoded_chip(pki, files), EXPECTED, AT).ok


def test_a_missing_trust_anchor_file_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.pem"):
        load_profile("icao9303", [tmp_path / "missing.pem"])


def test_an_unknown_profile_in_the_configuration_is_a_config_error_naming_the_known_ones(tmp_path: Path) -> None:
    from agent.core.config import ConfigError, load_config

    (tmp_path / "authority.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    config = tmp_path / "station.toml"
    config.write_text("\n".join([
        "[station]", 'id = "s1"', 'journal = "journal.db"', "",
        "[upstream]", 'url = "http://127.0.0.1:9"', 'token = "t"', "[upstream.authority_keys]", '"a" = "authority.pem"', "",
        "[chip]", 'profile = "ektp-sam"', "",
        "[[printers]]", 'name = "p1"', 'link = "serial:///dev/null"', 'reader = "Virtual PCD 00 00"', "",
    ]))
    with pytest.raises(ConfigError, match=r"chip\.profile.*icao9303"):
        load_config(config)
