"""Our verifier judges chip data it did not write: the BSI TR-03105-5 reference data set.

The verdicts expected are the ones the data set's README states (../shared/testdata).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509

from agent.chip.passive_auth import TrustAnchors, parse_security_object, passive_authentication
from agent.chip.profile import Verdict

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "icao-bsi-tr03105-5"
NOW = datetime(2026, 11, 29, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def reference() -> dict[str, bytes]:
    if not (REFERENCE / "EF_SOD.bin").is_file():
        pytest.fail(f"BSI reference data missing: expected it in {REFERENCE} (see its README)")
    return {p.name: p.read_bytes() for p in REFERENCE.iterdir() if p.suffix in (".bin", ".cer")}


def judge(reference: dict[str, bytes], anchors: TrustAnchors, at: datetime = NOW) -> dict[str, Verdict]:
    data_groups = {1: reference["EF_DG1.bin"], 14: reference["EF_DG14.bin"]}
    return {c.name: c.verdict for c in passive_authentication(reference["EF_SOD.bin"], data_groups, anchors, at)}


def test_reference_security_object_lists_its_data_groups_in_order(reference: dict[str, bytes]) -> None:
    sod = parse_security_object(reference["EF_SOD.bin"])
    assert sod.hash_algorithm == "sha256"
    assert list(sod.data_group_hashes) == [1, 2, 3, 14, 4]


def test_reference_signer_is_the_certificate_shipped_beside_it(reference: dict[str, bytes]) -> None:
    sod = parse_security_object(reference["EF_SOD.bin"])
    assert sod.signer_cert == x509.load_der_x509_certificate(reference["DSC_HJP_PB_DS.cer"])


def test_reference_data_today_without_its_csca_gives_the_readme_verdicts(reference: dict[str, bytes]) -> None:
    assert judge(reference, TrustAnchors(())) == {
        "security-object": Verdict.GOOD,
        "dg1": Verdict.GOOD,
        "dg2": Verdict.ABSENT,
        "dg3": Verdict.ABSENT,
        "dg14": Verdict.GOOD,
        "dg4": Verdict.ABSENT,
        "content-type": Verdict.GOOD,
        "message-digest": Verdict.GOOD,
        "signature": Verdict.GOOD,
        "signer-validity": Verdict.BAD,
        "chain": Verdict.BAD,
    }


def test_reference_signer_was_valid_in_2014(reference: dict[str, bytes]) -> None:
    assert judge(reference, TrustAnchors(()), at=datetime(2014, 6, 1, tzinfo=timezone.utc))["signer-validity"] is Verdict.GOOD


def test_the_document_signer_itself_is_no_trust_anchor(reference: dict[str, bytes], tmp_path: Path) -> None:
    # Trusting the chip's own certificate would let any chip vouch for itself.
    (tmp_path / "ds.cer").write_bytes(reference["DSC_HJP_PB_DS.cer"])
    assert judge(reference, TrustAnchors.load([tmp_path / "ds.cer"]))["chain"] is Verdict.BAD


def test_a_flipped_byte_in_reference_dg1_is_caught(reference: dict[str, bytes]) -> None:
    dg1 = bytearray(reference["EF_DG1.bin"])
    dg1[10] ^= 0x01
    checks = passive_authentication(reference["EF_SOD.bin"], {1: bytes(dg1)}, TrustAnchors(()), NOW)
    assert {c.name: c.verdict for c in checks}["dg1"] is Verdict.BAD
