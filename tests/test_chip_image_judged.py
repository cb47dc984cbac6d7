"""A job's chip image is judged before a blank is spent on it, as the written chip would be.

The faults are built here from the ICAO 9303 rules (a data group the security object does not
list, one it lists that is missing, a subject that is not the job's, a signer nobody trusts), and
the BSI TR-03105-5 reference image (../shared/testdata), which nobody here wrote, is judged too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.chip.icao9303 import Icao9303Profile
from agent.chip.passive_auth import TrustAnchors
from agent.chip.profile import ChipExpectation, ChipFailure, Verdict
from simulators.upstream.authority import Authority
from simulators.upstream.job_factory import JobFactory
from simulators.pki import TestPki

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "icao-bsi-tr03105-5"
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("chip-image")
    pki = TestPki.create(root / "pki")
    factory = JobFactory(2, Authority.load_or_create(root / "authority"), pki.signer, seed=5)
    profile = Icao9303Profile(TrustAnchors.load([pki.csca_pem_path]))
    job = factory.job("J-000001")
    subject = job["subject"]
    expected = ChipExpectation(subject["document_number"], subject["nik"], subject["name"])
    return profile, dict(factory.chip_files("J-000001")), expected, factory


def test_the_factory_image_passes(world):
    profile, files, expected, _ = world
    verdict = profile.judge_image(files, expected, NOW)
    assert verdict.ok, verdict.checks
    assert all(c.verdict is Verdict.GOOD for c in verdict.checks), verdict.checks


def test_a_data_group_the_security_object_does_not_cover_is_refused(world):
    profile, files, expected, _ = world
    assert "EF.DG15" not in files
    verdict = profile.judge_image({**files, "EF.DG15": bytes.fromhex("6f03010203")}, expected, NOW)
    assert verdict.failure is ChipFailure.HASH_MISMATCH
    assert {c.name: c.verdict for c in verdict.checks}["dg15"] is Verdict.BAD


def test_a_data_group_the_security_object_lists_but_the_image_lacks_is_refused(world):
    profile, files, expected, _ = world
    verdict = profile.judge_image({k: v for k, v in files.items() if k != "EF.DG2"}, expected, NOW)
    assert verdict.failure is ChipFailure.HASH_MISMATCH
    assert {c.name: c.verdict for c in verdict.checks}["dg2"] is Verdict.BAD


def test_one_changed_byte_in_a_data_group_is_refused(world):
    profile, files, expected, _ = world
    dg2 = bytearray(files["EF.DG2"])
    dg2[len(dg2) // 2] ^= 0x01
    assert profile.judge_image({**files, "EF.DG2": bytes(dg2)}, expected, NOW).failure is ChipFailure.HASH_MISMATCH


def test_another_citizens_chip_is_refused_without_naming_either(world):
    profile, _, expected, factory = world
    other = factory.chip_files("J-000002")
    verdict = profile.judge_image(other, expected, NOW)
    assert verdict.failure is ChipFailure.WRONG_SUBJECT
    reasons = " ".join(c.reason for c in verdict.checks)
    assert expected.document_number not in reasons and expected.nik not in reasons


def test_a_signer_outside_the_trust_anchors_is_refused(world):
    _, files, expected, _ = world
    stranger = Icao9303Profile(TrustAnchors(()))
    assert stranger.judge_image(files, expected, NOW).failure is ChipFailure.UNTRUSTED_SIGNER


def test_a_file_the_profile_does_not_know_is_refused(world):
    profile, files, expected, _ = world
    verdict = profile.judge_image({**files, "EF.CVCA": b"\x00"}, expected, NOW)
    assert verdict.failure is ChipFailure.UNREADABLE_FILE


def test_the_bsi_reference_image_is_refused_for_what_it_lacks_and_its_expired_signer():
    """The data set carries DG1 and DG14, its SOD also lists DG2, DG3 and DG4, and its signer
    expired long ago (the data set's README): an image that could never pass on a card."""
    if not (REFERENCE / "EF_SOD.bin").is_file():
        pytest.fail(f"BSI reference data missing: expected it in {REFERENCE}")
    files = {"EF.SOD": (REFERENCE / "EF_SOD.bin").read_bytes(), "EF.DG1": (REFERENCE / "EF_DG1.bin").read_bytes(),
             "EF.DG14": (REFERENCE / "EF_DG14.bin").read_bytes()}
    verdict = Icao9303Profile(TrustAnchors(())).judge_image(files, ChipExpectation("X", "0", "X"), NOW)
    by_name = {c.name: c.verdict for c in verdict.checks}
    assert by_name["dg1"] is Verdict.GOOD and by_name["dg14"] is Verdict.GOOD
    assert by_name["dg2"] is by_name["dg3"] is by_name["dg4"] is Verdict.BAD
    assert by_name["signature"] is Verdict.GOOD
    assert by_name["signer-validity"] is Verdict.BAD and by_name["chain"] is Verdict.BAD
    assert verdict.failure is ChipFailure.HASH_MISMATCH


def test_the_test_pki_keeps_its_private_keys_to_its_owner(tmp_path):
    TestPki.create(tmp_path / "pki")
    keys = [p for p in (tmp_path / "pki").iterdir() if b"PRIVATE KEY" in p.read_bytes()]
    assert keys, "the PKI wrote its keys"
    assert {oct(p.stat().st_mode & 0o777) for p in keys} == {"0o600"}
