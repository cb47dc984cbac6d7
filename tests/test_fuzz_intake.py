"""Bad input from upstream never hurts the station: intake fed arbitrary jobs (property-based) only ever
accepts a good job or records a rejection; the client turns broken answers into a refusal it can retry."""

from __future__ import annotations

import base64
import copy
import struct
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings, strategies as st

from agent.core.config import UpstreamConfig
from agent.upstream.intake import Intake
from agent.upstream.signature import AuthorityKeys, canonical_json
from agent.journal import Journal, JobState
from agent.upstream.client import UpstreamClient, UpstreamRefused

KEY = Ed25519PrivateKey.generate()
LEASE_END = datetime.now(timezone.utc) + timedelta(hours=1)


def _png(width: int, height: int) -> str:
    ihdr = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4).decode()


GOOD = {
    "job_id": "J-1", "not_after": "2099-01-01T00:00:00Z", "priority": 0,
    "subject": {"nik": "3174015505900001", "name": "SITI AMINAH", "document_number": "KTP000001"},
    "card": {"front_png": _png(1016, 648), "back_png": _png(1016, 648)},
    "chip": {"profile": "icao9303", "files": {"EF.SOD": base64.b64encode(b"\x77\x00").decode()}},
}


def sign(job: dict) -> dict:
    try:
        value = KEY.sign(canonical_json(job))
    except (ValueError, UnicodeEncodeError):
        value = b"\0" * 64  # cannot be signed: left with a signature that does not match
    return {**job, "signature": {"alg": "EdDSA", "kid": "authority-1",
                                 "value": base64.urlsafe_b64encode(value).rstrip(b"=").decode()}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
PATHS = [("job_id",), ("not_after",), ("priority",), ("subject",), ("subject", "nik"), ("subject", "name"),
         ("subject", "document_number"), ("card",), ("card", "front_png"), ("card", "back_png"), ("chip",),
         ("chip", "profile"), ("chip", "files"), ("chip", "files", "EF.SOD"), ("chip", "files", "EF.DG1"), ("extra",)]


@st.composite
def mutated_signed_jobs(draw) -> dict:
    """A good job with some members replaced, dropped or added, then signed: parsing is what is tested."""
    job = copy.deepcopy(GOOD)
    # Mostly fresh ids (a repeated id is refused as a repeat, which hides the parse), some hostile ones.
    job["job_id"] = draw(st.uuids().map(lambda u: f"F-{u.hex[:12]}") | st.sampled_from(["J-1", "J-2"]) | st.text(max_size=70))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        target = job
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()):
            target[path[-1]] = draw(json_values | st.sampled_from([_png(1, 1), _png(648, 1016), "\u202e", "A" * 300]))
        else:
            target.pop(path[-1], None)
    return sign(job) if draw(st.integers(0, 9)) else job


@pytest.fixture(scope="module")
def intake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    pem = folder / "authority.pem"
    pem.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    journal = Journal(folder / "journal.db", "st-fuzz")
    client = UpstreamClient(UpstreamConfig(url="http://127.0.0.1:9", token="t", authority_keys={}), "st-fuzz")
    yield Intake(journal, client, AuthorityKeys.load({"authority-1": pem}), prefetch=1, lease_max=1, wait_s=0,
                 work=threading.Condition())
    client.close()
    journal.close()


def _state(journal: Journal, job_id: str) -> str | None:
    return next((e["state"] for e in reversed(journal.events(0, 100000)) if e["job_id"] == job_id), None)


def _check_one(intake: Intake, raw: object) -> None:
    job_id = raw.get("job_id") if isinstance(raw, dict) else None
    known_before = isinstance(job_id, str) and intake.journal.knows(job_id)
    accepted = intake.accept(raw, LEASE_END)  # must not raise, whatever it is fed
    if accepted:
        assert _state(intake.journal, job_id) == JobState.LEASED.value
    elif isinstance(job_id, str) and intake.journal.knows(job_id) and not known_before:
        assert _state(intake.journal, job_id) == JobState.REJECTED.value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=json_values)
def test_intake_fed_any_json_never_raises(intake, raw):
    _check_one(intake, raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=mutated_signed_jobs())
def test_intake_fed_damaged_signed_jobs_accepts_only_good_ones_and_records_every_rejection(intake, raw):
    _check_one(intake, raw)


def test_every_rejection_is_queued_for_upstream_with_its_reason(intake):
    tampered = sign({**GOOD, "job_id": "R-TAMPER"})
    tampered["subject"] = {**tampered["subject"], "name": "SITI AMINAI"}
    cases = {"R-UNSIGNED": {**GOOD, "job_id": "R-UNSIGNED"}, "R-TAMPER": tampered,
             "R-SMALL": sign({**GOOD, "job_id": "R-SMALL", "card": {"front_png": _png(100, 60)}}),
             "R-EXTRA": sign({**GOOD, "job_id": "R-EXTRA", "copies": 2})}
    for raw in cases.values():
        assert intake.accept(raw, LEASE_END) is False
    reasons = {}
    while (message := intake.journal.outbox_next()) is not None:
        assert message.body["status"] == "rejected" and message.body["reason"]
        reasons[message.job_id] = message.body["reason"]
        intake.journal.outbox_delivered(message.id)
    assert {job_id: reasons[job_id] for job_id in cases} == {
        "R-UNSIGNED": "unsigned-job", "R-TAMPER": "bad-signature", "R-SMALL": "bad-card-image", "R-EXTRA": "malformed-job"}


@pytest.mark.parametrize("answer", [
    httpx.Response(200, content=b"{not json"),
    httpx.Response(200, json=["a", "list"]),
    httpx.Response(200, json={"jobs": "many"}),
    httpx.Response(200, json={"jobs": [], "lease_expires_at": "0001-01-01T00:00:00+05:00"}),
    httpx.Response(200, json={"jobs": []}),
    httpx.Response(200, content=b"[" * 5000 + b"]" * 5000),
    httpx.Response(200, content=b" " * 2048),
])
def test_a_broken_lease_answer_is_a_refusal_the_intake_retries(answer):
    config = UpstreamConfig(url="http://upstream.test", token="t", authority_keys={}, max_answer_bytes=1024)
    client = UpstreamClient(config, "st-1", transport=httpx.MockTransport(lambda request: answer))
    try:
        with pytest.raises(UpstreamRefused):
            client.lease(1, 0)
    finally:
        client.close()
