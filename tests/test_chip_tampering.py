"""Every tampering of every check is rejected, whatever the signature scheme of the security object.

Passive authentication on bytes (agent.chip.passive_auth), for security objects signed with
RSA PKCS#1 v1.5, RSA-PSS and ECDSA P-256 by a test PKI made here.
"""

from __future__ import annotations

import hashlib
import io
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from PIL import Image
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509

from agent.chip.icao9303 import failure_of
from agent.chip.passive_auth import TrustAnchors, passive_authentication
from agent.chip.profile import ChipFailure, Verdict
from simulators.chip.image import ChipSubject, build_chip_files
from simulators.pki import ALGORITHMS, TestPki

AT = datetime(2026, 11, 29, tzinfo=timezone.utc)
SUBJECT = ChipSubject("KTP000077", "3174011505900077", "RINA WATI", date(1995, 1, 2), "P", None)
LDS_OID_DER = bytes.fromhex("0606678108010101")  # OBJECT IDENTIFIER 2.23.136.1.1.1


@pytest.fixture(scope="module", params=ALGORITHMS)
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def face() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (120, 160), (200, 170, 140)).save(buf, "JPEG", quality=60)
    return buf.getvalue()


def judge(pki: TestPki, files: dict[str, bytes], anchors: list[Path] | None = None):
    data_groups = {int(ef[5:]): content for ef, content in files.items() if ef.startswith("EF.DG")}
    trust = TrustAnchors.load([pki.csca_pem_path] if anchors is None else anchors)
    checks = passive_authentication(files["EF.SOD"], data_groups, trust, AT)
    return {c.name: c.verdict for c in checks}, failure_of(checks)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_an_untouched_image_is_good(pki: TestPki, face: bytes) -> None:
    verdicts, failure = judge(pki, build_chip_files(SUBJECT, face, pki.signer))
    assert failure is None and set(verdicts.values()) == {Verdict.GOOD}


@pytest.mark.parametrize("group", ["EF.DG1", "EF.DG2", "EF.DG11"])
def test_a_changed_data_group_is_a_hash_mismatch(pki: TestPki, face: bytes, group: str) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    verdicts, failure = judge(pki, files | {group: flip(files[group], len(files[group]) - 3)})
    assert verdicts[f"dg{group[5:]}"] is Verdict.BAD and failure is ChipFailure.HASH_MISMATCH
    assert verdicts["signature"] is Verdict.GOOD


def test_a_data_group_the_security_object_does_not_cover_is_rejected(pki: TestPki, face: bytes) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    verdicts, failure = judge(pki, files | {"EF.DG3": b"\x63\x00"})
    assert verdicts["dg3"] is Verdict.BAD and failure is ChipFailure.HASH_MISMATCH


def test_a_changed_content_type_is_a_bad_signature(pki: TestPki, face: bytes) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    sod = files["EF.SOD"]
    # The first LDS OID is the encapsulated content type (the signed attribute's comes later).
    at = sod.index(LDS_OID_DER) + len(LDS_OID_DER) - 1
    verdicts, failure = judge(pki, files | {"EF.SOD": flip(sod, at)})
    assert verdicts["content-type"] is Verdict.BAD and failure is ChipFailure.BAD_SIGNATURE


def test_a_changed_hash_list_breaks_the_message_digest(pki: TestPki, face: bytes) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    sod = files["EF.SOD"]
    at = sod.index(hashlib.sha256(files["EF.DG2"]).digest())
    verdicts, _failure = judge(pki, files | {"EF.SOD": flip(sod, at)})
    assert verdicts["message-digest"] is Verdict.BAD and verdicts["dg2"] is Verdict.BAD


def test_a_changed_message_digest_attribute_breaks_the_signature(pki: TestPki, face: bytes) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    sod = files["EF.SOD"]
    marker = bytes.fromhex("06092A864886F70D010904")  # id-messageDigest, then SET, OCTET STRING headers
    verdicts, failure = judge(pki, files | {"EF.SOD": flip(sod, sod.index(marker) + len(marker) + 4)})
    assert verdicts["message-digest"] is Verdict.BAD and verdicts["signature"] is Verdict.BAD
    assert failure is ChipFailure.BAD_SIGNATURE


def test_a_changed_signature_is_a_bad_signature(pki: TestPki, face: bytes) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    sod = files["EF.SOD"]
    verdicts, failure = judge(pki, files | {"EF.SOD": flip(sod, len(sod) - 5)})
    assert verdicts["signature"] is Verdict.BAD and failure is ChipFailure.BAD_SIGNATURE
    assert verdicts["message-digest"] is Verdict.GOOD


@pytest.mark.parametrize("window", [(2020, 2024), (2030, 2035)], ids=["expired", "not-yet-valid"])
def test_a_signer_outside_its_validity_is_rejected(pki: TestPki, face: bytes, window: tuple[int, int]) -> None:
    signer = pki.issue_signer(datetime(window[0], 1, 1, tzinfo=timezone.utc), datetime(window[1], 1, 1, tzinfo=timezone.utc))
    verdicts, failure = judge(pki, build_chip_files(SUBJECT, face, signer))
    assert verdicts["signer-validity"] is Verdict.BAD and failure is ChipFailure.EXPIRED_SIGNER
    assert verdicts["chain"] is Verdict.GOOD


def test_a_signer_under_another_csca_of_the_same_name_is_untrusted(pki: TestPki, face: bytes, tmp_path: Path) -> None:
    stranger = TestPki.create(tmp_path, pki.algorithm)
    verdicts, failure = judge(pki, build_chip_files(SUBJECT, face, stranger.signer))
    assert verdicts["chain"] is Verdict.BAD and failure is ChipFailure.UNTRUSTED_SIGNER
    assert verdicts["signature"] is Verdict.GOOD


def test_a_truncated_security_object_is_malformed(pki: TestPki, face: bytes) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    verdicts, failure = judge(pki, files | {"EF.SOD": files["EF.SOD"][:200]})
    assert verdicts == {"security-object": Verdict.BAD} and failure is ChipFailure.MALFORMED_SECURITY_OBJECT


def _named_by(sod: bytes, issuer: asn1_x509.Name) -> bytes:
    """EF.SOD whose signer identifier names `issuer` (the signature does not cover the identifier)."""
    info = cms.ContentInfo.load(core.Asn1Value.load(sod).contents)
    signer_info = info["content"]["signer_infos"][0]
    serial = signer_info["sid"].chosen["serial_number"]
    signer_info["sid"] = cms.SignerIdentifier(name="issuer_and_serial_number",
                                              value={"issuer": issuer, "serial_number": serial})
    content = info.dump(force=True)
    return core.Asn1Value(class_="application", tag=23, method="constructed", contents=content).dump()


def _issuer_of_signer(sod: bytes) -> asn1_x509.Name:
    info = cms.ContentInfo.load(core.Asn1Value.load(sod).contents)
    return info["content"]["signer_infos"][0]["sid"].chosen["issuer"]


def test_a_signer_named_in_another_encoding_of_its_issuer_is_found(pki: TestPki, face: bytes) -> None:
    # RFC 5280 name matching, not byte equality: the same names in PrintableString instead of
    # UTF8String (and upper case, which caseIgnoreMatch ignores) still name the signer.
    files = build_chip_files(SUBJECT, face, pki.signer)
    issuer = _issuer_of_signer(files["EF.SOD"])
    recoded = asn1_x509.Name.build({key: str(value).upper() for key, value in issuer.native.items()},
                                   use_printable=True)
    assert recoded.dump() != issuer.dump()
    verdicts, failure = judge(pki, files | {"EF.SOD": _named_by(files["EF.SOD"], recoded)})
    assert failure is None and set(verdicts.values()) == {Verdict.GOOD}


def test_a_signer_identifier_naming_another_issuer_finds_no_signer(pki: TestPki, face: bytes) -> None:
    files = build_chip_files(SUBJECT, face, pki.signer)
    other = asn1_x509.Name.build({**_issuer_of_signer(files["EF.SOD"]).native, "common_name": "Another CSCA"})
    verdicts, failure = judge(pki, files | {"EF.SOD": _named_by(files["EF.SOD"], other)})
    assert verdicts == {"security-object": Verdict.BAD} and failure is ChipFailure.MALFORMED_SECURITY_OBJECT
