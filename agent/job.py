"""A print job as the station holds it: parsed and checked once, typed from then on."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

# Files a job's chip image may carry (ICAO 9303 names); anything else is a malformed job.
CHIP_FILE_NAMES = frozenset({"EF.COM", "EF.SOD"} | {f"EF.DG{n}" for n in range(1, 17)})
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_CHIP_FILE_BYTES = 64 * 1024


class JobRejection(StrEnum):
    """Why the station refuses a job before any blank is used (reported upstream)."""

    MALFORMED = "malformed-job"
    UNSIGNED = "unsigned-job"
    BAD_SIGNATURE = "bad-signature"
    UNKNOWN_KEY = "unknown-signing-key"
    EXPIRED = "job-expired"
    BAD_CARD_IMAGE = "bad-card-image"


class JobRejected(Exception):
    """A job the station will not print, with the reason code and plain words."""

    def __init__(self, reason: JobRejection, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Subject:
    nik: str
    name: str
    document_number: str


@dataclass(frozen=True)
class Job:
    job_id: str
    not_after: datetime
    priority: int
    subject: Subject
    front_png: bytes
    back_png: bytes | None
    chip_profile: str
    chip_files: dict[str, bytes]


def parse_timestamp(value: Any, field: str) -> datetime:
    """An RFC 3339 timestamp with a zone; raises JobRejected(MALFORMED) naming the field."""
    if not isinstance(value, str):
        raise JobRejected(JobRejection.MALFORMED, f"{field} must be an RFC 3339 time string")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise JobRejected(JobRejection.MALFORMED, f"{field} is not an RFC 3339 time: {value[:40]!r}") from None
    if at.tzinfo is None:
        raise JobRejected(JobRejection.MALFORMED, f"{field} has no time zone")
    return at.astimezone(timezone.utc)


def _text(obj: dict, key: str, where: str, max_len: int = 200) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise JobRejected(JobRejection.MALFORMED, f"{where}.{key} is missing or not text")
    if len(value) > max_len:
        raise JobRejected(JobRejection.MALFORMED, f"{where}.{key} is longer than {max_len} characters")
    return value


def _b64(value: Any, where: str, limit: int) -> bytes:
    if not isinstance(value, str):
        raise JobRejected(JobRejection.MALFORMED, f"{where} must be base64 text")
    if len(value) > limit * 4 // 3 + 4:
        raise JobRejected(JobRejection.MALFORMED, f"{where} is larger than {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise JobRejected(JobRejection.MALFORMED, f"{where} is not valid base64") from None


def _object(obj: Any, where: str) -> dict:
    if not isinstance(obj, dict):
        raise JobRejected(JobRejection.MALFORMED, f"{where} must be an object")
    return obj


def parse_job(raw: Any) -> Job:
    """Turn a job as received (already signature-checked) into a Job.

    Raises JobRejected(MALFORMED) naming the first field that is wrong.
    """
    raw = _object(raw, "job")
    job_id = _text(raw, "job_id", "job", max_len=64)
    if not job_id.isprintable():
        raise JobRejected(JobRejection.MALFORMED, "job.job_id has control characters")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise JobRejected(JobRejection.MALFORMED, "job.priority must be an integer")
    subject_raw = _object(raw.get("subject"), "job.subject")
    nik = _text(subject_raw, "nik", "job.subject", max_len=16)
    if len(nik) != 16 or not nik.isdigit():
        raise JobRejected(JobRejection.MALFORMED, "job.subject.nik must be 16 digits")
    subject = Subject(
        nik=nik,
        name=_text(subject_raw, "name", "job.subject", max_len=120),
        document_number=_text(subject_raw, "document_number", "job.subject", max_len=20),
    )
    card = _object(raw.get("card"), "job.card")
    front = _b64(card.get("front_png"), "job.card.front_png", MAX_IMAGE_BYTES)
    back = _b64(card["back_png"], "job.card.back_png", MAX_IMAGE_BYTES) if card.get("back_png") else None
    chip = _object(raw.get("chip"), "job.chip")
    profile = _text(chip, "profile", "job.chip", max_len=40)
    files_raw = _object(chip.get("files"), "job.chip.files")
    unknown = sorted(set(files_raw) - CHIP_FILE_NAMES)
    if unknown:
        raise JobRejected(JobRejection.MALFORMED, f"job.chip.files has unknown files: {', '.join(unknown)[:80]}")
    if "EF.SOD" not in files_raw:
        raise JobRejected(JobRejection.MALFORMED, "job.chip.files has no EF.SOD (security object)")
    files = {name: _b64(value, f"job.chip.files.{name}", MAX_CHIP_FILE_BYTES) for name, value in files_raw.items()}
    return Job(
        job_id=job_id,
        not_after=parse_timestamp(raw.get("not_after"), "job.not_after"),
        priority=priority,
        subject=subject,
        front_png=front,
        back_png=back,
        chip_profile=profile,
        chip_files=files,
    )
