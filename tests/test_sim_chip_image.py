"""Chip images built by the simulator: layout, MRZ, a security object that verifies, a PKI that persists."""

from __future__ import annotations

import hashlib
import io
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from agent.chip.passive_auth import TrustAnchors, parse_security_object, passive_authentication
from agent.chip.profile import Verdict
from simulators.chip.image import ChipSubject, build_chip_files, check_digit, document_number_from_dg1, td1_mrz, tlv
from simulators.pki import TestPki

SUBJECT = ChipSubject("KTP000001", "3174011505900001", "BUDI SANTOSO", date(1990, 5, 15), "L", None)


@pytest.fixture(scope="module")
def face_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (240, 320), (180, 140, 110)).save(buf, "JPEG", quality=70)
    return buf.getvalue()


def test_check_digits_match_the_icao_9303_specimen() -> None:
    # ICAO 9303-3 specimen values: document L898902C3 -> 6, birth 740812 -> 2, expiry 120415 -> 9
    assert (check_digit("L898902C3"), check_digit("740812"), check_digit("120415")) == ("6", "2", "9")


def test_td1_mrz_has_three_lines_of_thirty_with_the_document_number_in_place() -> None:
    mrz = td1_mrz(SUBJECT)
    assert len(mrz) == 90
    line1, line2, line3 = mrz[:30], mrz[30:60], mrz[60:]
    assert line1.startswith("IDIDNKTP000001") and line1[14] == check_digit("KTP000001")
    assert line2[:7] == "900515" + check_digit("900515") and line2[7] == "M" and line2[15:18] == "IDN"
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    assert line2[29] == check_digit(composite)
    assert line3 == "BUDI<SANTOSO".ljust(30, "<")


def test_a_long_document_number_continues_in_the_optional_data() -> None:
    subject = ChipSubject("KTP0000012345", "3174011505900001", "SITI", date(1990, 5, 15), "P", date(2031, 1, 2))
    mrz = td1_mrz(subject)
    assert mrz[5:15] == "KTP000001<" and mrz[15:20] == "2345" + check_digit("KTP0000012345")
    assert document_number_from_dg1(tlv(0x61, tlv(0x5F1F, mrz.encode()))) == "KTP0000012345"


def test_chip_files_carry_their_outer_tags(face_jpeg: bytes, tmp_path: Path) -> None:
    files = build_chip_files(SUBJECT, face_jpeg, TestPki.create(tmp_path).signer)
    tags = {name: content[0] for name, content in files.items()}
    assert tags == {"EF.COM": 0x60, "EF.DG1": 0x61, "EF.DG2": 0x75, "EF.DG11": 0x6B, "EF.SOD": 0x77}
    assert face_jpeg in files["EF.DG2"]
    assert b"3174011505900001" in files["EF.DG11"]


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "rsa-pkcs1v15", "rsa-pss"])
def test_the_security_object_hashes_each_data_group_and_verifies(face_jpeg: bytes, tmp_path: Path, algorithm: str) -> None:
    pki = TestPki.create(tmp_path, algorithm)
    files = build_chip_files(SUBJECT, face_jpeg, pki.signer)
    sod = parse_security_object(files["EF.SOD"])
    assert sod.data_group_hashes == {
        n: hashlib.sha256(files[f"EF.DG{n}"]).digest() for n in (1, 2, 11)
    }
    data_groups = {n: files[f"EF.DG{n}"] for n in (1, 2, 11)}
    checks = passive_authentication(files["EF.SOD"], data_groups, TrustAnchors.load([pki.csca_pem_path]), datetime.now(timezone.utc))
    assert all(c.verdict is Verdict.GOOD for c in checks), checks


def test_the_pki_is_loaded_again_from_its_directory(tmp_path: Path) -> None:
    first = TestPki.create(tmp_path, "rsa-pss")
    again = TestPki.create(tmp_path, "rsa-pss")
    assert again.csca_cert == first.csca_cert and again.signer.cert == first.signer.cert
    assert first.csca_pem_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_an_unknown_algorithm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ecdsa-p256"):
        TestPki.create(tmp_path, "dsa")


def test_a_bad_nik_is_refused() -> None:
    with pytest.raises(ValueError, match="NIK"):
        ChipSubject("KTP000001", "12345", "BUDI", date(1990, 5, 15), "L", None)
