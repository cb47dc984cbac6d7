"""The reference upstream's synthetic jobs: signed by the authority, e-KTP-shaped, deterministic."""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from PIL import Image

from simulators.upstream.authority import Authority
from simulators.upstream.card_art import Sex, face_jpeg
from simulators.chip.image import document_number_from_dg1
from simulators.upstream.job_factory import REGIONS, JobFactory, synthetic_specs
from simulators.pki import TestPki

CHIP_CAPACITY = 8192


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, TestPki]:
    state = tmp_path_factory.mktemp("authority")
    return Authority.load_or_create(state), TestPki.create(state / "pki")


@pytest.fixture(scope="module")
def factory(keys: tuple[Authority, TestPki]) -> JobFactory:
    authority, pki = keys
    return JobFactory(5, authority, pki.signer, seed=7)


def _signed_bytes(job: dict) -> bytes:
    # Written out here rather than imported, so the test holds the server to the documented form.
    body = {k: v for k, v in job.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _public_key(authority: Authority) -> Ed25519PublicKey:
    key = load_pem_public_key(authority.public_key_path.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    return key


def _signature(job: dict) -> bytes:
    value = job["signature"]["value"]
    assert "=" not in value
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_job_signature_verifies_with_the_authority_public_key(factory: JobFactory, keys) -> None:
    job = factory.job("J-000001")
    assert job["signature"]["alg"] == "EdDSA"
    assert job["signature"]["kid"] == "authority-1"
    _public_key(keys[0]).verify(_signature(job), _signed_bytes(job))


def test_job_signature_fails_after_one_changed_byte(factory: JobFactory, keys) -> None:
    job = factory.job("J-000002")
    signed = bytearray(_signed_bytes(job))
    at = signed.index(job["subject"]["nik"].encode()) + 15
    signed[at] = ord("0") if signed[at] != ord("0") else ord("1")
    with pytest.raises(InvalidSignature):
        _public_key(keys[0]).verify(_signature(job), bytes(signed))


def test_card_images_are_1016_by_648_png(factory: JobFactory) -> None:
    job = factory.job("J-000003")
    for side in ("front_png", "back_png"):
        data = base64.b64decode(job["card"][side])
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            assert image.size == (1016, 648)


def test_chip_image_fits_the_chip_with_margin(factory: JobFactory) -> None:
    for spec in factory.specs:
        files = factory.chip_files(spec.job_id)
        assert set(files) == {"EF.COM", "EF.DG1", "EF.DG2", "EF.DG11", "EF.SOD"}
        total = sum(len(data) for data in files.values())
        assert 4000 < total < CHIP_CAPACITY - 1000


def test_chip_files_in_the_job_carry_its_subject(factory: JobFactory) -> None:
    job = factory.job("J-000004")
    files = {name: base64.b64decode(data) for name, data in job["chip"]["files"].items()}
    assert job["chip"]["profile"] == "icao9303"
    assert document_number_from_dg1(files["EF.DG1"]) == job["subject"]["document_number"]
    assert job["subject"]["nik"].encode() in files["EF.DG11"]
    assert job["subject"]["name"].encode() in files["EF.DG11"]


def test_face_photo_is_a_small_jpeg_the_same_every_time(factory: JobFactory) -> None:
    holder = factory.specs[0].holder
    photo = face_jpeg(holder)
    assert photo.startswith(b"\xff\xd8")
    assert 2500 < len(photo) < 6000
    assert face_jpeg(holder) == photo


def test_nik_is_well_formed_and_unique_across_2000_jobs() -> None:
    specs = synthetic_specs(2000, seed=1, issued_on=date(2026, 11, 29))
    region_codes = {region.code for region in REGIONS}
    niks = [spec.holder.nik for spec in specs]
    assert len(set(niks)) == 2000
    for spec in specs:
        holder = spec.holder
        assert re.fullmatch(r"\d{16}", holder.nik)
        assert holder.nik[:6] in region_codes
        day = int(holder.nik[6:8])
        if holder.sex is Sex.FEMALE:
            day -= 40
        assert (day, int(holder.nik[8:10]), int(holder.nik[10:12])) == (
            holder.birth_date.day,
            holder.birth_date.month,
            holder.birth_date.year % 100,
        )
        assert holder.nik[12:] != "0000"
        assert re.fullmatch(r"KTP\d{6}", spec.document_number)
        # Only adults hold a KTP.
        assert holder.birth_date <= date(2009, 11, 29)
    assert {spec.holder.sex for spec in specs} == {Sex.MALE, Sex.FEMALE}
    assert len({spec.document_number for spec in specs}) == 2000


def test_same_seed_gives_the_same_holders_and_another_seed_others() -> None:
    day = date(2026, 11, 29)
    assert synthetic_specs(50, seed=3, issued_on=day) == synthetic_specs(50, seed=3, issued_on=day)
    assert synthetic_specs(50, seed=3, issued_on=day) != synthetic_specs(50, seed=4, issued_on=day)


def test_a_job_rebuilt_after_eviction_is_byte_identical(keys) -> None:
    authority, pki = keys
    factory = JobFactory(2, authority, pki.signer, keep_built=1)
    first = json.dumps(factory.job("J-000001"))
    factory.job("J-000002")  # pushes J-000001 out of the built-job cache
    assert json.dumps(factory.job("J-000001")) == first


def test_jobs_expire_two_days_after_issue_by_default(keys) -> None:
    authority, pki = keys
    issued = datetime(2026, 11, 29, 8, 0, 0, tzinfo=timezone.utc)
    factory = JobFactory(1, authority, pki.signer, issued_at=issued)
    assert factory.job("J-000001")["not_after"] == "2026-12-01T08:00:00Z"
    shorter = JobFactory(1, authority, pki.signer, issued_at=issued, validity=timedelta(hours=1))
    assert shorter.job("J-000001")["not_after"] == "2026-11-29T09:00:00Z"


def test_twenty_jobs_build_in_order(keys) -> None:
    authority, pki = keys
    factory = JobFactory(20, authority, pki.signer, seed=11)
    jobs = [factory.job(spec.job_id) for spec in factory.specs]
    assert [job["job_id"] for job in jobs] == [f"J-{n:06d}" for n in range(1, 21)]


def test_authority_key_is_kept_in_the_state_folder(tmp_path: Path) -> None:
    first = Authority.load_or_create(tmp_path)
    again = Authority.load_or_create(tmp_path)
    job = first.sign_job({"job_id": "J-1"})
    assert again.sign_job({"job_id": "J-1"}) == job
    assert (tmp_path / "authority-1.key.pem").stat().st_mode & 0o077 == 0
