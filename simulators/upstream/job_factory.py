"""Synthetic approved print jobs, as the issuing authority would hand them to a station.

Holders are drawn from a seeded generator, so the same seed and count always give the
same job ids, NIKs, names and card images. A job's full body (card images, chip image,
signature) is built only when first asked for: 2,000 jobs would be about a gigabyte of
base64 if built up front, and a station leases a few at a time.
"""

from __future__ import annotations

import base64
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from simulators.upstream.authority import Authority
from simulators.upstream.card_art import CardHolder, Sex, face_jpeg, render_back, render_front
from simulators.chip.image import ChipSubject, build_chip_files
from simulators.pki import DocumentSigner

DEFAULT_VALIDITY = timedelta(days=2)
CHIP_PROFILE = "icao9303"
# Full job bodies kept in memory; older ones are rebuilt on demand (the same bytes:
# card art is deterministic, chip images are kept, and Ed25519 signatures are deterministic).
BUILT_JOBS_KEPT = 64


@dataclass(frozen=True)
class Region:
    """A kecamatan (district) and the first six digits of the NIKs issued there."""

    code: str
    province: str
    regency: str
    district: str
    villages: tuple[str, ...]


REGIONS = (
    Region("317401", "DKI JAKARTA", "JAKARTA SELATAN", "TEBET", ("TEBET TIMUR", "TEBET BARAT", "MENTENG DALAM")),
    Region("317101", "DKI JAKARTA", "JAKARTA PUSAT", "GAMBIR", ("GAMBIR", "CIDENG", "PETOJO UTARA")),
    Region("317301", "DKI JAKARTA", "JAKARTA BARAT", "CENGKARENG", ("CENGKARENG BARAT", "KAPUK", "RAWA BUAYA")),
    Region("327301", "JAWA BARAT", "KOTA BANDUNG", "SUKASARI", ("GEGERKALONG", "ISOLA", "SARIJADI")),
    Region("320101", "JAWA BARAT", "KABUPATEN BOGOR", "CIBINONG", ("PAKANSARI", "CIRIMEKAR", "NANGGEWER")),
    Region("327501", "JAWA BARAT", "KOTA BEKASI", "BEKASI TIMUR", ("ARENJAYA", "DUREN JAYA", "MARGAHAYU")),
    Region("327601", "JAWA BARAT", "KOTA DEPOK", "PANCORAN MAS", ("DEPOK", "DEPOK JAYA", "MAMPANG")),
)

MALE_NAMES = ("BUDI", "AHMAD", "AGUS", "DEDI", "EKO", "HENDRA", "RUDI", "JOKO", "ANDI", "RIZKY", "FAJAR", "DIMAS", "YUSUF", "IRWAN")
FEMALE_NAMES = ("SITI", "SRI", "DEWI", "NUR", "AYU", "RINA", "PUTRI", "WULAN", "INDAH", "FITRI", "YULIANA", "RATNA", "MAYA")
FAMILY_NAMES = (
    "SANTOSO", "RAHAYU", "WIJAYA", "SETIAWAN", "HIDAYAT", "KURNIAWAN", "SAPUTRA", "PRATAMA", "NURHAYATI",
    "LESTARI", "SUSANTO", "GUNAWAN", "HARAHAP", "SIREGAR", "NASUTION", "PERMANA", "MAULANA", "RAHMAN",
)
BIRTH_PLACES = ("JAKARTA", "BANDUNG", "BOGOR", "BEKASI", "DEPOK", "SURABAYA", "SEMARANG", "YOGYAKARTA", "GARUT", "MEDAN")
STREETS = ("JL. MELATI", "JL. MAWAR", "JL. KENANGA", "JL. MERDEKA", "JL. SUDIRMAN", "GG. H. NAIMUN", "JL. RAYA BOGOR")
RELIGIONS = (("ISLAM", 87), ("KRISTEN", 7), ("KATOLIK", 3), ("HINDU", 2), ("BUDDHA", 1))
MARITAL = (("BELUM KAWIN", 35), ("KAWIN", 55), ("CERAI HIDUP", 5), ("CERAI MATI", 5))
OCCUPATIONS = (
    "KARYAWAN SWASTA", "PELAJAR/MAHASISWA", "WIRASWASTA", "MENGURUS RUMAH TANGGA",
    "PEGAWAI NEGERI SIPIL", "PETANI/PEKEBUN", "GURU", "PEDAGANG",
)
BLOOD_TYPES = ("A", "B", "AB", "O", "-")
ADULT_AGE = 17  # the age at which an Indonesian resident gets a KTP


@dataclass(frozen=True)
class JobSpec:
    """Who a job is for, decided up front (cheap); the body is built from it later."""

    job_id: str
    document_number: str
    holder: CardHolder


def nik_birth_part(birth_date: date, sex: Sex) -> str:
    """The DDMMYY block of a NIK: women have 40 added to the day, as on real NIKs."""
    day = birth_date.day + (40 if sex is Sex.FEMALE else 0)
    return f"{day:02d}{birth_date:%m%y}"


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def synthetic_specs(count: int, seed: int, issued_on: date) -> list[JobSpec]:
    """`count` distinct synthetic holders with unique NIKs; the same for the same arguments.

    Raises ValueError if count is negative or above 999,999 (the document number has six digits).
    """
    if not 0 <= count <= 999_999:
        raise ValueError(f"job count must be between 0 and 999,999, not {count}")
    rng = random.Random(seed)
    oldest = date(1955, 1, 1)
    youngest = date(issued_on.year - ADULT_AGE, issued_on.month, min(issued_on.day, 28))
    span_days = (youngest - oldest).days
    # The last four NIK digits count residents registered with the same region and birth block.
    sequence: dict[str, int] = {}
    specs = []
    for n in range(1, count + 1):
        region = rng.choice(REGIONS)
        sex = rng.choice((Sex.MALE, Sex.FEMALE))
        birth_date = oldest + timedelta(days=rng.randrange(span_days))
        prefix = region.code + nik_birth_part(birth_date, sex)
        sequence[prefix] = sequence.get(prefix, 0) + 1
        given = rng.choice(MALE_NAMES if sex is Sex.MALE else FEMALE_NAMES)
        holder = CardHolder(
            nik=f"{prefix}{sequence[prefix]:04d}",
            name=f"{given} {rng.choice(FAMILY_NAMES)}",
            birth_place=rng.choice(BIRTH_PLACES),
            birth_date=birth_date,
            sex=sex,
            blood_type=rng.choice(BLOOD_TYPES),
            street=f"{rng.choice(STREETS)} NO. {rng.randint(1, 120)}",
            rt_rw=f"{rng.randint(1, 15):03d}/{rng.randint(1, 12):03d}",
            village=rng.choice(region.villages),
            district=region.district,
            regency=region.regency,
            province=region.province,
            religion=_weighted(rng, RELIGIONS),
            marital_status=_weighted(rng, MARITAL),
            occupation=rng.choice(OCCUPATIONS),
            issued_on=issued_on,
        )
        specs.append(JobSpec(job_id=f"J-{n:06d}", document_number=f"KTP{n:06d}", holder=holder))
    return specs


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rfc3339(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobFactory:
    """The approved jobs of one upstream run: ids and holders up front, bodies built when asked.

    Thread-safe: the upstream server asks from its request threads.
    """

    def __init__(
        self,
        count: int,
        authority: Authority,
        signer: DocumentSigner,
        seed: int = 1,
        issued_at: datetime | None = None,
        validity: timedelta = DEFAULT_VALIDITY,
        keep_built: int = BUILT_JOBS_KEPT,
    ) -> None:
        """Raises ValueError for a count out of range (see synthetic_specs)."""
        self.issued_at = (issued_at or datetime.now(timezone.utc)).replace(microsecond=0)
        self.not_after = self.issued_at + validity
        self.specs = synthetic_specs(count, seed, self.issued_at.date())
        self._by_id = {spec.job_id: spec for spec in self.specs}
        self._authority = authority
        self._signer = signer
        self._lock = threading.Lock()
        # Chip images are kept for good: their ECDSA signature differs on every build, and a
        # job must not change between two leases. About 5 KB a job.
        self._chips: dict[str, dict[str, bytes]] = {}
        self._built: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._keep_built = keep_built

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._by_id

    def job(self, job_id: str) -> dict[str, Any]:
        """The signed job body, ready to serialise as JSON. Raises KeyError for an unknown job id."""
        spec = self._by_id[job_id]
        with self._lock:
            built = self._built.get(job_id)
            if built is None:
                built = self._build(spec)
                self._built[job_id] = built
                if len(self._built) > self._keep_built:
                    self._built.popitem(last=False)
            else:
                self._built.move_to_end(job_id)
            return built

    def chip_files(self, job_id: str) -> dict[str, bytes]:
        """The chip image of a job (file name -> bytes). Raises KeyError for an unknown job id."""
        spec = self._by_id[job_id]
        with self._lock:
            return self._chip_files(spec)

    def _chip_files(self, spec: JobSpec) -> dict[str, bytes]:
        files = self._chips.get(spec.job_id)
        if files is None:
            holder = spec.holder
            subject = ChipSubject(
                document_number=spec.document_number,
                nik=holder.nik,
                name=holder.name,
                birth_date=holder.birth_date,
                sex=holder.sex.value,
                expiry=None,  # e-KTP: "BERLAKU HINGGA SEUMUR HIDUP"
            )
            files = build_chip_files(subject, face_jpeg(holder), self._signer)
            self._chips[spec.job_id] = files
        return files

    def _build(self, spec: JobSpec) -> dict[str, Any]:
        holder = spec.holder
        job = {
            "job_id": spec.job_id,
            "not_after": _rfc3339(self.not_after),
            "priority": 0,
            "subject": {"nik": holder.nik, "name": holder.name, "document_number": spec.document_number},
            "card": {"front_png": _b64(render_front(holder)), "back_png": _b64(render_back())},
            "chip": {
                "profile": CHIP_PROFILE,
                "files": {name: _b64(data) for name, data in self._chip_files(spec).items()},
            },
        }
        return self._authority.sign_job(job)
