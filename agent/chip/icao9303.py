"""The ICAO 9303 chip profile: write an LDS image to a blank, read it back, judge it.

File layout and commands: docs/PROTOCOLS.md section 3.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime

from agent.chip.passive_auth import (
    MalformedSecurityObject,
    SecurityObject,
    TrustAnchors,
    parse_security_object,
    verify_security_object,
)
from agent.chip.profile import Check, ChipError, ChipExpectation, ChipFailure, ChipVerdict, Verdict
from agent.chip.tlv import TlvError, children, unwrap
from drivers.iso7816 import FileAccess, Iso7816Error
from drivers.pcsc import CardRemoved, CardSession, CardTooSlow, PcscError, PcscServiceUnavailable, ReaderUnavailable

APPLICATION_ID = bytes.fromhex("A0000002471001")

FILE_IDS: dict[str, int] = {"EF.COM": 0x011E, "EF.SOD": 0x011D} | {f"EF.DG{n}": 0x0100 + n for n in range(1, 17)}

# The security object goes last: a chip interrupted half way then fails verification as
# "hash mismatch" or "unreadable", never as a signed but incomplete image.
_WRITE_ORDER = ("EF.COM", *(f"EF.DG{n}" for n in range(1, 17)), "EF.SOD")

# Failure categories in the order that decides which one a verdict reports.
_FAILURE_ORDER = (
    ChipFailure.UNREADABLE_FILE,
    ChipFailure.MALFORMED_SECURITY_OBJECT,
    ChipFailure.HASH_MISMATCH,
    ChipFailure.BAD_SIGNATURE,
    ChipFailure.EXPIRED_SIGNER,
    ChipFailure.UNTRUSTED_SIGNER,
    ChipFailure.WRONG_SUBJECT,
)


class Icao9303Profile:
    """Chips laid out as an ICAO 9303 LDS, verified by passive authentication and the job's subject."""

    name = "icao9303"

    def __init__(self, anchors: TrustAnchors) -> None:
        self.anchors = anchors

    def encode(self, session: CardSession, files: dict[str, bytes]) -> None:
        """Select the application and write each file (EF.SOD last).

        Raises ChipError(WRITE_FAILED) for an unknown file name or a refused write,
        ChipError(CHIP_MUTE, CHIP_SLOW, CHIP_REMOVED) if the card stops answering, is too slow or leaves.
        """
        unknown = sorted(set(files) - set(FILE_IDS))
        if unknown:
            raise ChipError(ChipFailure.WRITE_FAILED, f"the chip image has files this profile does not know: {', '.join(unknown)}")
        access = FileAccess(session)
        try:
            access.select_application(APPLICATION_ID)
            for name in _WRITE_ORDER:
                if name in files:
                    access.write_file(FILE_IDS[name], files[name])
        except Iso7816Error as e:
            raise ChipError(ChipFailure.WRITE_FAILED, e.message) from e
        except PcscError as e:
            raise _card_fault(e) from e

    def verify(self, session: CardSession, expected: ChipExpectation, at: datetime) -> ChipVerdict:
        """Read EF.SOD, every data group it lists plus DG1 and DG11, and judge them at `at`.

        Raises ChipError(CHIP_MUTE, CHIP_SLOW, CHIP_REMOVED) if the card stops answering, is
        too slow or leaves.
        """
        access = FileAccess(session)
        read_failures: list[Check] = []
        try:
            try:
                access.select_application(APPLICATION_ID)
            except Iso7816Error as e:
                return _verdict([Check("application", Verdict.BAD, f"unreadable: {e.message}")], None)
            sod_bytes = _read(access, "EF.SOD", read_failures)
            sod: SecurityObject | None = None
            malformed: Check | None = None
            if sod_bytes is not None:
                try:
                    sod = parse_security_object(sod_bytes)
                except MalformedSecurityObject as e:
                    malformed = Check("security-object", Verdict.BAD, str(e))
            # The security object says which data groups the chip has (EF.COM is not signed).
            wanted = {1, 11} | (set(sod.data_group_hashes) if sod else set())
            data_groups: dict[int, bytes] = {}
            for number in sorted(wanted):
                name = f"EF.DG{number}"
                if name not in FILE_IDS:
                    read_failures.append(Check(name, Verdict.BAD, "listed in the security object but not a data group"))
                    continue
                content = _read(access, name, read_failures)
                if content is not None:
                    data_groups[number] = content
        except PcscError as e:
            raise _card_fault(e) from e

        checks = list(read_failures)
        if malformed is not None:
            checks.append(malformed)
        if sod is not None:
            checks += verify_security_object(sod, data_groups, self.anchors, at)
        document_number = _document_number(data_groups.get(1))
        checks.append(_subject_check(expected, document_number, data_groups.get(11)))
        return _verdict(checks, document_number)


    def judge_image(self, files: dict[str, bytes], expected: ChipExpectation, at: datetime) -> ChipVerdict:
        """Judge the job's chip image before a blank is fed: every file known to the profile, the
        security object well formed, signed by a trusted, valid signer, covering every data group
        the image holds (and every one it lists present), and DG1/DG11 naming the job's subject."""
        checks = [Check(name, Verdict.BAD, "not a file of the ICAO 9303 profile") for name in sorted(set(files) - set(FILE_IDS))]
        data_groups = {n: files[f"EF.DG{n}"] for n in range(1, 17) if files.get(f"EF.DG{n}")}
        sod_bytes = files.get("EF.SOD")
        if not sod_bytes:
            checks.append(Check("EF.SOD", Verdict.BAD, "the image has no security object"))
        else:
            try:
                sod = parse_security_object(sod_bytes)
            except MalformedSecurityObject as e:
                checks.append(Check("security-object", Verdict.BAD, str(e)))
            else:
                for check in verify_security_object(sod, data_groups, self.anchors, at):
                    if check.verdict is Verdict.ABSENT:  # written as it is, the chip would lack that file
                        check = Check(check.name, Verdict.BAD, "listed in the security object, missing from the image")
                    checks.append(check)
        document_number = _document_number(data_groups.get(1))
        checks.append(_subject_check(expected, document_number, data_groups.get(11)))
        return _verdict(checks, document_number)


def _read(access: FileAccess, name: str, failures: list[Check]) -> bytes | None:
    """A file's content, or None with a BAD check in `failures` if it cannot be read or is blank."""
    try:
        content = access.read_file(FILE_IDS[name])
    except Iso7816Error as e:
        failures.append(Check(name, Verdict.BAD, f"unreadable: {e.message}"))
        return None
    if not content:
        failures.append(Check(name, Verdict.BAD, "unreadable: the file is blank"))
        return None
    return content


def _card_fault(error: PcscError) -> Exception:
    # The reader and pcscd are not the card's fault: the pipeline must pause, not spoil a blank.
    if isinstance(error, (ReaderUnavailable, PcscServiceUnavailable)):
        return error
    if isinstance(error, CardRemoved):
        return ChipError(ChipFailure.CHIP_REMOVED, error.message)
    if isinstance(error, CardTooSlow):
        return ChipError(ChipFailure.CHIP_SLOW, error.message)
    return ChipError(ChipFailure.CHIP_MUTE, error.message)


def _document_number(dg1: bytes | None) -> str | None:
    """The document number in DG1's TD1 MRZ (positions 6-14, or continued in the optional data)."""
    if dg1 is None:
        return None
    try:
        mrz = children(unwrap(dg1, 0x61)).get(0x5F1F, b"").decode("ascii")
    except (TlvError, UnicodeDecodeError):
        return None
    if len(mrz) != 90:
        return None
    number = mrz[5:14].rstrip("<")
    if mrz[14] == "<" and mrz[15] != "<":
        # ICAO 9303-5: a number longer than 9 continues in the optional data, then its check digit
        number += mrz[15:30].rstrip("<")[:-1]
    return number or None


def _subject_check(expected: ChipExpectation, document_number: str | None, dg11: bytes | None) -> Check:
    if document_number is None:
        return Check("subject", Verdict.BAD, "no document number readable in DG1")
    if document_number != expected.document_number:
        return Check("subject", Verdict.BAD, "the document number in DG1 is not the job's")
    if dg11 is None:
        return Check("subject", Verdict.BAD, "DG11 not readable")
    try:
        fields = children(unwrap(dg11, 0x6B))
        nik = fields.get(0x5F10, b"").decode("utf-8")
        name = fields.get(0x5F0E, b"").decode("utf-8")
    except (TlvError, UnicodeDecodeError):
        return Check("subject", Verdict.BAD, "DG11 is not well-formed")
    # Personal data stays out of the reason: it ends up in logs and reports.
    if nik != expected.nik:
        return Check("subject", Verdict.BAD, f"NIK on the chip ({_mask(nik)}) is not the job's ({_mask(expected.nik)})")
    if _normal_name(name) != _normal_name(expected.name):
        return Check("subject", Verdict.BAD, "name on the chip is not the job's")
    return Check("subject", Verdict.GOOD, "document number, NIK and name match the job")


def _mask(nik: str) -> str:
    return "*" * max(0, len(nik) - 4) + nik[-4:]


def _normal_name(name: str) -> str:
    # DG11 may separate name parts with "<<" or "<" (ICAO style) where the job has spaces.
    text = unicodedata.normalize("NFC", name).replace("<", " ")
    return " ".join(text.upper().split())


def _failure(check: Check) -> ChipFailure | None:
    if check.verdict is not Verdict.BAD:
        return None
    name = check.name
    if name.startswith("EF.") or name == "application":
        return ChipFailure.UNREADABLE_FILE
    if name == "security-object":
        return ChipFailure.MALFORMED_SECURITY_OBJECT
    if name.startswith("dg"):
        return ChipFailure.HASH_MISMATCH
    if name in ("content-type", "message-digest", "signature"):
        return ChipFailure.BAD_SIGNATURE
    if name == "signer-validity":
        return ChipFailure.EXPIRED_SIGNER
    if name == "chain":
        return ChipFailure.UNTRUSTED_SIGNER
    return ChipFailure.WRONG_SUBJECT


def failure_of(checks: Iterable[Check]) -> ChipFailure | None:
    """The one failure that decides a set of checks (None when no check is BAD)."""
    found = {f for f in map(_failure, checks) if f is not None}
    return next((f for f in _FAILURE_ORDER if f in found), None)


def _verdict(checks: list[Check], document_number: str | None) -> ChipVerdict:
    return ChipVerdict(tuple(checks), failure_of(checks), document_number)
