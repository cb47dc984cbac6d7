"""Only jobs the authority signed, unaltered, by a known key, get into the journal."""

from __future__ import annotations

import base64
import copy
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.core.limits import JobLimits
from agent.upstream.job import JobRejected, JobRejection, parse_job
from agent.upstream.signature import AuthorityKeys, canonical_json



def png_header(width: int, height: int) -> str:
    """The first bytes of a PNG of that size: all intake reads of a card image before printing."""
    ihdr = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0").decode()


PNG = png_header(1016, 648)


def unsigned_job(job_id="J-1"):
    return {
        "job_id": job_id, "not_after": "2026-12-01T00:00:00Z", "priority": 0,
        "subject": {"nik": "3174015505900001", "name": "SITI AMINAH", "document_number": "KTP000001"},
        "card": {"front_png": PNG, "back_png": PNG},
        "chip": {"profile": "icao9303", "files": {"EF.SOD": base64.b64encode(b"\x77\x00").decode()}},
    }


def sign(job, key, kid="authority-1"):
    sig = key.sign(canonical_json(job))
    return {**job, "signature": {"alg": "EdDSA", "kid": kid, "value": base64.urlsafe_b64encode(sig).rstrip(b"=").decode()}}


@pytest.fixture
def authority(tmp_path):
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "authority-1.pub.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, AuthorityKeys.load({"authority-1": pem})


def test_signed_job_is_accepted(authority):
    key, keys = authority
    keys.verify(sign(unsigned_job(), key))


def test_the_text_kept_from_the_check_is_the_job_as_signed_signature_included(authority):
    # Intake stores this text in the journal rather than encoding the job a second time: read
    # back, it must be the very job upstream sent, and its body the very bytes that were signed.
    import json

    key, keys = authority
    job = unsigned_job()
    job["subject"]["name"] = "SITI AMINAH \u00d6ZT\u00dcRK \U0001f600 \"quoted\"\n"  # beyond ASCII, escapes
    signed = sign(job, key)
    kept = keys.verify(signed)
    assert json.loads(kept) == signed
    body = kept.encode("utf-8")[: kept.encode("utf-8").rindex(b',"signature":')] + b"}"
    key.public_key().verify(base64.urlsafe_b64decode(signed["signature"]["value"] + "=="), body)


def test_job_altered_by_one_character_is_refused(authority):
    key, keys = authority
    job = sign(unsigned_job(), key)
    job["subject"]["name"] = "SITI AMINAI"
    with pytest.raises(JobRejected) as caught:
        keys.verify(job)
    assert caught.value.reason is JobRejection.BAD_SIGNATURE


def test_job_signed_by_unknown_key_is_refused(authority):
    _, keys = authority
    with pytest.raises(JobRejected) as caught:
        keys.verify(sign(unsigned_job(), Ed25519PrivateKey.generate(), kid="rogue"))
    assert caught.value.reason is JobRejection.UNKNOWN_KEY


def test_job_signed_by_other_key_under_known_id_is_refused(authority):
    _, keys = authority
    with pytest.raises(JobRejected) as caught:
        keys.verify(sign(unsigned_job(), Ed25519PrivateKey.generate()))
    assert caught.value.reason is JobRejection.BAD_SIGNATURE


def test_unsigned_job_is_refused(authority):
    _, keys = authority
    with pytest.raises(JobRejected) as caught:
        keys.verify(unsigned_job())
    assert caught.value.reason is JobRejection.UNSIGNED


@pytest.mark.parametrize("path, value, words", [
    (("subject", "nik"), "12345", "16 digits"),
    (("not_after",), "tomorrow", "not_after"),
    (("card", "front_png"), "***", "base64"),
    (("chip", "files"), {"EF.DG99": PNG, "EF.SOD": PNG}, "unknown files"),
    (("job_id",), "", "job_id"),
])
def test_malformed_job_names_the_field(path, value, words):
    job = copy.deepcopy(unsigned_job())
    target = job
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(JobRejected) as caught:
        parse_job(job)
    assert caught.value.reason is JobRejection.MALFORMED
    assert words in caught.value.message


@pytest.mark.parametrize("path, value, reason, words", [
    (("card", "front_png"), png_header(1016, 649), JobRejection.BAD_CARD_IMAGE, "1016 x 649"),
    (("card", "back_png"), png_header(648, 1016), JobRejection.BAD_CARD_IMAGE, "648 x 1016"),
    (("card", "front_png"), base64.b64encode(b"GIF89a" + bytes(40)).decode(), JobRejection.BAD_CARD_IMAGE, "not a PNG"),
    (("subject", "name"), "SITI\u202eHANIMA", JobRejection.MALFORMED, "control or format"),
    (("subject", "name"), "SITI\x1b[2J", JobRejection.MALFORMED, "control or format"),
    (("subject", "photo"), "x", JobRejection.MALFORMED, "unexpected members"),
    (("extra",), 1, JobRejection.MALFORMED, "unexpected members"),
    (("priority",), 2**70, JobRejection.MALFORMED, "priority"),
    (("not_after",), "0001-01-01T00:00:00+05:00", JobRejection.MALFORMED, "not_after"),
    (("job_id",), "../../v1/_sim/state", JobRejection.MALFORMED, "job_id"),
    (("subject", "document_number"), "KTP 1", JobRejection.MALFORMED, "document_number"),
])
def test_hostile_or_wrong_members_are_refused_with_a_reason(path, value, reason, words):
    job = copy.deepcopy(unsigned_job())
    target = job
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(JobRejected) as caught:
        parse_job(job)
    assert caught.value.reason is reason
    assert words in caught.value.message


def test_an_image_over_the_configured_limit_is_refused_before_decoding():
    job = unsigned_job()
    job["card"]["front_png"] = "A" * 2000
    with pytest.raises(JobRejected) as caught:
        parse_job(job, JobLimits(max_image_bytes=1000))
    assert caught.value.reason is JobRejection.OVERSIZED


@pytest.mark.parametrize("extra, refused", [(0, False), (1, True), (2, True), (3, True)])
def test_the_image_limit_holds_to_the_byte(extra, refused):
    """At the limit printed, one byte over refused, whatever base64's padding makes of the length."""
    limit = 1000
    header = base64.b64decode(PNG)
    data = header + bytes(limit - len(header) + extra)
    job = unsigned_job()
    job["card"]["front_png"] = base64.b64encode(data).decode()
    if refused:
        with pytest.raises(JobRejected) as caught:
            parse_job(job, JobLimits(max_image_bytes=limit))
        assert caught.value.reason is JobRejection.OVERSIZED
    else:
        assert len(parse_job(job, JobLimits(max_image_bytes=limit)).front_png) == limit


def test_a_well_formed_job_parses_with_its_faces():
    job = parse_job(unsigned_job())
    assert job.front_png.startswith(b"\x89PNG") and job.subject.document_number == "KTP000001"


@pytest.mark.parametrize("signature", [
    {"alg": "EdDSA", "kid": ["authority-1"], "value": "AA"},
    {"alg": "EdDSA", "kid": {"a": 1}, "value": "AA"},
])
def test_a_key_id_that_is_not_text_is_an_unknown_key(authority, signature):
    _, keys = authority
    with pytest.raises(JobRejected) as caught:
        keys.verify({**unsigned_job(), "signature": signature})
    assert caught.value.reason is JobRejection.UNKNOWN_KEY


def test_a_second_authority_key_verifies_jobs_it_signed(tmp_path, authority):
    old_key, _ = authority
    new_key = Ed25519PrivateKey.generate()
    paths = {}
    for kid, key in (("authority-1", old_key), ("authority-2", new_key)):
        paths[kid] = tmp_path / f"{kid}.pem"
        paths[kid].write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    keys = AuthorityKeys.load(paths)
    keys.verify(sign(unsigned_job("J-1"), old_key, "authority-1"))
    keys.verify(sign(unsigned_job("J-2"), new_key, "authority-2"))
    with pytest.raises(JobRejected):
        keys.verify(sign(unsigned_job("J-3"), new_key, "authority-1"))
