"""A print job as the station holds it: parsed and checked once, typed from then on.

Everything in a job came over the network, so every member is checked for type, size and
content before the station uses it (docs/upstream.openapi.yaml, schema `Job`): unknown
members, hostile strings and card images of the wrong size are refused, never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, TypeGuard

from agent.core.limits import DEFAULT_LIMITS, JobLimits

# Files a job's chip image may carry (ICAO 9303 names); anything else is a malformed job.
CHIP_FILE_NAMES = frozenset({"EF.COM", "EF.SOD"} | {f"EF.DG{n}" for n in range(1, 17)})
# Card faces are landscape CR80 at 300 dpi (docs/PROTOCOLS.md section 4).
CARD_WIDTH, CARD_HEIGHT = 1016, 648
PRIORITY_RANGE = range(-100, 101)
# A job id travels in URL paths (/v1/jobs/{job_id}/outcome): letters, digits and . _ - only.
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DOCUMENT_NUMBER = re.compile(r"[A-Z0-9<]{1,20}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

JOB_MEMBERS = frozenset({"job_id", "not_after", "priority", "subject", "card", "chip", "signature"})
SUBJECT_MEMBERS = frozenset({"nik", "name", "document_number"})
CARD_MEMBERS = frozenset({"front_png", "back_png"})
CHIP_MEMBERS = frozenset({"profile", "files"})


class JobRejection(StrEnum):
    """Why the station refuses a job before any blank is used (reported upstream)."""

    MALFORMED = "malformed-job"
    UNSIGNED = "unsigned-job"
    BAD_SIGNATURE = "bad-signature"
    UNKNOWN_KEY = "unknown-signing-key"
    EXPIRED = "job-expired"
    BAD_CARD_IMAGE = "bad-card-image"
    OVERSIZED = "job-too-large"
    BAD_CHIP_IMAGE = "bad-chip-image"  # the chip image would fail the station's own check of the written chip


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


def valid_job_id(value: Any) -> TypeGuard[str]:
    """True when `value` can be used as a job id: in the journal, in logs and in URL paths."""
    return isinstance(value, str) and JOB_ID_PATTERN.fullmatch(value) is not None


def parse_timestamp(value: Any, field: str) -> datetime:
    """An RFC 3339 timestamp with a zone; raises JobRejected(MALFORMED) naming the field."""
    if not isinstance(value, str) or len(value) > 40:
        raise JobRejected(JobRejection.MALFORMED, f"{field} must be an RFC 3339 time string")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise JobRejected(JobRejection.MALFORMED, f"{field} has no time zone")
        return at.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # overflow: year 1 or 9999 shifted out of range by its zone
        raise JobRejected(JobRejection.MALFORMED, f"{field} is not an RFC 3339 time: {value[:40]!r}") from None


def _text(obj: dict, key: str, where: str, max_len: int = 200) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise JobRejected(JobRejection.MALFORMED, f"{where}.{key} is missing or not text")
    if len(value) > max_len:
        raise JobRejected(JobRejection.MALFORMED, f"{where}.{key} is longer than {max_len} characters")
    # Control and format characters (bidi overrides, NUL, escapes) would print wrong or forge log lines.
    if not value.isprintable():
        raise JobRejected(JobRejection.MALFORMED, f"{where}.{key} has control or format characters")
    return value


def _b64(value: Any, where: str, limit: int) -> bytes:
    if not isinstance(value, str):
        raise JobRejected(JobRejection.MALFORMED, f"{where} must be base64 text")
    if len(value) > 4 * ((limit + 2) // 3):  # longer than any base64 text of `limit` bytes: do not decode it
        raise JobRejected(JobRejection.OVERSIZED, f"{where} is larger than {limit} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise JobRejected(JobRejection.MALFORMED, f"{where} is not valid base64") from None
    if len(data) > limit:
        raise JobRejected(JobRejection.OVERSIZED, f"{where} is {len(data)} bytes, larger than {limit}")
    return data


def _object(obj: Any, where: str, members: frozenset[str]) -> dict:
    if not isinstance(obj, dict):
        raise JobRejected(JobRejection.MALFORMED, f"{where} must be an object")
    unexpected = sorted(str(k)[:20] for k in set(obj) - members)
    if unexpected:
        raise JobRejected(JobRejection.MALFORMED, f"{where} has unexpected members: {', '.join(unexpected)[:80]!r}")
    return obj


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header (IHDR), without decoding the image.

    Raises JobRejected(BAD_CARD_IMAGE) when the bytes do not start like a PNG.
    """
    # Signature (8), chunk length (4), "IHDR" (4), width (4), height (4).
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise JobRejected(JobRejection.BAD_CARD_IMAGE, "card image is not a PNG")
    return struct.unpack(">II", data[16:24])


def _card_image(value: Any, where: str, limits: JobLimits) -> bytes:
    data = _b64(value, where, limits.max_image_bytes)
    width, height = png_size(data)
    if (width, height) != (CARD_WIDTH, CARD_HEIGHT):
        raise JobRejected(JobRejection.BAD_CARD_IMAGE,
                          f"{where} is {width} x {height}; a card face is {CARD_WIDTH} x {CARD_HEIGHT}")
    return data


def parse_job(raw: Any, limits: JobLimits = DEFAULT_LIMITS) -> Job:
    """Turn a job as received (already signature-checked) into a Job.

    Raises JobRejected naming the first member that is wrong: MALFORMED for a wrong or
    unexpected member, OVERSIZED past `limits`, BAD_CARD_IMAGE for a face that is not a
    1016 x 648 PNG.
    """
    raw = _object(raw, "job", JOB_MEMBERS)
    job_id = raw.get("job_id")
    if not valid_job_id(job_id):
        raise JobRejected(JobRejection.MALFORMED, "job.job_id must be 1 to 64 letters, digits, '.', '_' or '-'")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or priority not in PRIORITY_RANGE:
        raise JobRejected(JobRejection.MALFORMED, "job.priority must be an integer from -100 to 100")
    subject_raw = _object(raw.get("subject"), "job.subject", SUBJECT_MEMBERS)
    nik = _text(subject_raw, "nik", "job.subject", max_len=16)
    if len(nik) != 16 or not nik.isascii() or not nik.isdigit():
        raise JobRejected(JobRejection.MALFORMED, "job.subject.nik must be 16 digits")
    document_number = _text(subject_raw, "document_number", "job.subject", max_len=20)
    if not _DOCUMENT_NUMBER.fullmatch(document_number):
        raise JobRejected(JobRejection.MALFORMED, "job.subject.document_number must be capital letters and digits")
    subject = Subject(nik=nik, name=_text(subject_raw, "name", "job.subject", max_len=120),
                      document_number=document_number)
    not_after = parse_timestamp(raw.get("not_after"), "job.not_after")
    card = _object(raw.get("card"), "job.card", CARD_MEMBERS)
    front = _card_image(card.get("front_png"), "job.card.front_png", limits)
    back = _card_image(card["back_png"], "job.card.back_png", limits) if card.get("back_png") is not None else None
    chip = _object(raw.get("chip"), "job.chip", CHIP_MEMBERS)
    profile = _text(chip, "profile", "job.chip", max_len=40)
    files_raw = chip.get("files")
    if not isinstance(files_raw, dict):
        raise JobRejected(JobRejection.MALFORMED, "job.chip.files must be an object")
    unknown = sorted(str(name)[:12] for name in set(files_raw) - CHIP_FILE_NAMES)
    if unknown:
        raise JobRejected(JobRejection.MALFORMED, f"job.chip.files has unknown files: {', '.join(unknown)[:80]!r}")
    if "EF.SOD" not in files_raw:
        raise JobRejected(JobRejection.MALFORMED, "job.chip.files has no EF.SOD (security object)")
    files = {name: _b64(value, f"job.chip.files.{name}", limits.max_chip_file_bytes)
             for name, value in files_raw.items()}
    return Job(
        job_id=job_id,
        not_after=not_after,
        priority=priority,
        subject=subject,
        front_png=front,
        back_png=back,
        chip_profile=profile,
        chip_files=files,
    )
