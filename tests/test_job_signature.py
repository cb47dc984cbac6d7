"""Only jobs the authority signed, unaltered, by a known key, get into the journal."""

from __future__ import annotations

import base64
import copy

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.job import JobRejected, JobRejection, parse_job
from agent.job_signature import AuthorityKeys, canonical_json

PNG = base64.b64encode(b"\x89PNG fake").decode()


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
