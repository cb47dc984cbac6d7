"""The seam between the print pipeline and a chip: encode a chip image, verify what a chip holds.

A profile knows one chip layout (ICAO 9303 here; an e-KTP/SAM profile can plug in behind
the same interface). The pipeline sees only these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the configuration checks profile names without loading the PC/SC driver
    from drivers.pcsc import CardSession


@dataclass(frozen=True)
class ChipExpectation:
    """What the job says the chip must carry."""

    document_number: str
    nik: str
    name: str


class Verdict(StrEnum):
    GOOD = "good"
    BAD = "bad"
    ABSENT = "absent"  # not provided (e.g. a data group the verifier was not given)
    UNKNOWN = "unknown"  # could not be decided


@dataclass(frozen=True)
class Check:
    """One item of verification: e.g. "dg1", "signature", "chain", "subject"."""

    name: str
    verdict: Verdict
    reason: str


class ChipFailure(StrEnum):
    """Why a card's chip was rejected: the reason a spoiled card carries upstream."""

    CHIP_MUTE = "chip-mute"  # dead: no answer to power-on, or silent in the middle of a command
    CHIP_SLOW = "chip-slow"  # answers, but the card's work ran past its time budget
    CHIP_REMOVED = "chip-removed"  # the card left the encoder station while it was written or read
    WRITE_FAILED = "chip-write-failed"
    UNREADABLE_FILE = "chip-unreadable-file"
    HASH_MISMATCH = "chip-hash-mismatch"
    BAD_SIGNATURE = "chip-bad-signature"
    UNTRUSTED_SIGNER = "chip-untrusted-signer"
    EXPIRED_SIGNER = "chip-expired-signer"
    WRONG_SUBJECT = "chip-wrong-subject"
    MALFORMED_SECURITY_OBJECT = "chip-malformed-security-object"


@dataclass(frozen=True)
class ChipVerdict:
    """The outcome of verifying one chip: every check, and the one failure that decides (or None)."""

    checks: tuple[Check, ...]
    failure: ChipFailure | None
    document_number: str | None

    @property
    def ok(self) -> bool:
        return self.failure is None


class ChipError(Exception):
    """A chip-level failure while encoding or verifying: the card is spoiled, the reader is fine."""

    def __init__(self, failure: ChipFailure, message: str) -> None:
        super().__init__(f"{failure.value}: {message}")
        self.failure = failure
        self.message = message


class ChipProfile(Protocol):
    """How one kind of chip is written and checked."""

    name: str

    def encode(self, session: CardSession, files: dict[str, bytes]) -> None:
        """Write `files` (by name, e.g. "EF.DG1") to the chip.

        Raises ChipError (CHIP_MUTE, CHIP_SLOW, CHIP_REMOVED, WRITE_FAILED); ReaderUnavailable
        and PcscServiceUnavailable propagate as they are.
        """
        ...

    def judge_image(self, files: dict[str, bytes], expected: ChipExpectation, at: datetime) -> ChipVerdict:
        """Judge a chip image held as files (a job's, before any blank is spent) as `verify` would
        judge the chip written from it, at time `at`. Never raises for bad data."""
        ...

    def verify(self, session: CardSession, expected: ChipExpectation, at: datetime) -> ChipVerdict:
        """Read the chip back and judge it at time `at`.

        Raises ChipError (CHIP_MUTE, CHIP_SLOW, CHIP_REMOVED) if the card stops answering, is
        too slow or leaves; ReaderUnavailable and PcscServiceUnavailable propagate as they are.
        """
        ...
