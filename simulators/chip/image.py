"""Build the chip image of one e-KTP job: EF.COM, DG1, DG2, DG11 and the security object.

The layout follows docs/PROTOCOLS.md section 3 (ICAO 9303 LDS 1.7). This is the
issuing side's implementation, written independently of the agent's verifier so that
each can catch the other's mistakes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from asn1crypto import algos, cms, core

from simulators.pki import DocumentSigner

LDS_SECURITY_OBJECT_OID = "2.23.136.1.1.1"

# Outer tags of the files (ICAO 9303-10, table of LDS elementary files).
TAG_COM = 0x60
TAG_DG1 = 0x61
TAG_DG2 = 0x75
TAG_DG11 = 0x6B
TAG_SOD = 0x77

_MRZ_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")} | {"<": 0}
_SEX_CODES = {"M": "M", "L": "M", "F": "F", "P": "F", "X": "<", "<": "<"}  # L/P: Laki-laki / Perempuan


@dataclass(frozen=True)
class ChipSubject:
    """The holder data written to the chip. `expiry` None means valid for life (e-KTP "SEUMUR HIDUP")."""

    document_number: str
    nik: str
    name: str
    birth_date: date
    sex: str
    expiry: date | None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9]{16}", self.nik):
            raise ValueError("NIK must be 16 digits")
        if not re.fullmatch(r"[A-Z0-9]{1,22}", self.document_number):
            raise ValueError("document number must be 1 to 22 characters A-Z or 0-9")
        if self.sex.upper() not in _SEX_CODES:
            raise ValueError(f"sex must be one of {', '.join(_SEX_CODES)}")
        if not self.name.strip():
            raise ValueError("name must not be empty")


class DataGroupHash(core.Sequence):
    _fields = [("data_group_number", core.Integer), ("data_group_hash_value", core.OctetString)]


class DataGroupHashValues(core.SequenceOf):
    _child_spec = DataGroupHash


class LdsSecurityObject(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
    ]


def build_chip_files(subject: ChipSubject, face_jpeg: bytes, signer: DocumentSigner) -> dict[str, bytes]:
    """Return the files of a personalised chip, keyed "EF.COM", "EF.DG1", "EF.DG2", "EF.DG11", "EF.SOD".

    Raises ValueError if the face is not a JPEG.
    """
    if not face_jpeg.startswith(b"\xff\xd8"):
        raise ValueError("the face image must be a JPEG (it starts with FF D8)")
    dg1 = tlv(TAG_DG1, tlv(0x5F1F, td1_mrz(subject).encode("ascii")))
    dg2 = _dg2(face_jpeg)
    dg11 = tlv(
        TAG_DG11,
        tlv(0x5C, bytes.fromhex("5F0E5F10")) + tlv(0x5F0E, subject.name.encode("utf-8")) + tlv(0x5F10, subject.nik.encode("ascii")),
    )
    com = tlv(
        TAG_COM,
        tlv(0x5F01, b"0107") + tlv(0x5F36, b"040000") + tlv(0x5C, bytes([TAG_DG1, TAG_DG2, TAG_DG11])),
    )
    sod = tlv(TAG_SOD, security_object({1: dg1, 2: dg2, 11: dg11}, signer))
    return {"EF.COM": com, "EF.DG1": dg1, "EF.DG2": dg2, "EF.DG11": dg11, "EF.SOD": sod}


def security_object(data_groups: dict[int, bytes], signer: DocumentSigner) -> bytes:
    """The CMS ContentInfo (without the 0x77 wrapper) signing SHA-256 hashes of `data_groups`."""
    lds = LdsSecurityObject(
        {
            "version": 0,
            "hash_algorithm": {"algorithm": "sha256"},
            "data_group_hash_values": [
                {"data_group_number": n, "data_group_hash_value": hashlib.sha256(content).digest()}
                for n, content in sorted(data_groups.items())
            ],
        }
    ).dump()
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": [LDS_SECURITY_OBJECT_OID]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(lds).digest()]}),
        ]
    )
    # The signature covers the signed attributes as a DER SET (tag 0x31), not as the
    # [0] IMPLICIT field they are stored in (RFC 5652 section 5.4).
    signature = signer.sign(signed_attrs.dump())
    parts = _signer_parts(signer)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": parts.sid,
            "digest_algorithm": parts.digest_algorithm,
            "signed_attrs": signed_attrs,
            "signature_algorithm": parts.signature_algorithm,
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": parts.digest_algorithms,
            "encap_content_info": {"content_type": LDS_SECURITY_OBJECT_OID, "content": lds},
            "certificates": parts.certificates,
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


@dataclass(frozen=True)
class _SignerParts:
    sid: cms.SignerIdentifier
    digest_algorithm: algos.DigestAlgorithm
    digest_algorithms: cms.DigestAlgorithms
    signature_algorithm: algos.SignedDigestAlgorithm
    certificates: cms.CertificateSet


@lru_cache(maxsize=16)
def _signer_parts(signer: DocumentSigner) -> _SignerParts:
    """The parts of a SignedData that depend only on the signer, encoded once per signer.

    asn1crypto re-encodes and copies nested values it is handed as Python objects; values
    loaded from DER are reused as they are, which keeps a chip image at about a millisecond.
    """
    cert = signer.asn1_cert
    sid = cms.SignerIdentifier(
        {"issuer_and_serial_number": cms.IssuerAndSerialNumber({"issuer": cert.issuer, "serial_number": cert.serial_number})}
    )
    digest = algos.DigestAlgorithm({"algorithm": "sha256"})
    return _SignerParts(
        sid=cms.SignerIdentifier.load(sid.dump()),
        digest_algorithm=algos.DigestAlgorithm.load(digest.dump()),
        digest_algorithms=cms.DigestAlgorithms.load(cms.DigestAlgorithms([digest]).dump()),
        signature_algorithm=algos.SignedDigestAlgorithm.load(signer.signature_algorithm.dump()),
        certificates=cms.CertificateSet.load(cms.CertificateSet([cert]).dump()),
    )


def td1_mrz(subject: ChipSubject) -> str:
    """The 90-character TD1 MRZ (three lines of 30, concatenated) for `subject`."""
    number = subject.document_number
    if len(number) <= 9:
        line1 = "IDIDN" + number.ljust(9, "<") + check_digit(number.ljust(9, "<")) + "<" * 15
    else:
        # ICAO 9303-5 4.2.4: a long number continues in the optional data, followed by
        # its check digit, and a filler takes the place of the check digit in line 1.
        rest = number[9:] + check_digit(number)
        line1 = "IDIDN" + number[:9] + "<" + rest.ljust(15, "<")
    birth = subject.birth_date.strftime("%y%m%d")
    # Assumption: a lifetime card (no expiry) carries fillers and check digit 0.
    expiry = subject.expiry.strftime("%y%m%d") if subject.expiry else "<<<<<<"
    line2 = birth + check_digit(birth) + _SEX_CODES[subject.sex.upper()] + expiry + check_digit(expiry) + "IDN" + "<" * 11
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    line2 += check_digit(composite)
    return line1 + line2 + _mrz_name(subject.name)


def check_digit(field: str) -> str:
    """ICAO 9303-3 check digit: weights 7, 3, 1 over character values, modulo 10."""
    return str(sum(_MRZ_VALUES[c] * (7, 3, 1)[i % 3] for i, c in enumerate(field)) % 10)


def document_number_from_dg1(dg1: bytes) -> str | None:
    """The document number in a DG1 holding a TD1 MRZ; None if blank or not parsable."""
    try:
        tag, start, end = read_tlv(dg1, 0)
        if tag != TAG_DG1:
            return None
        tag, start, end = read_tlv(dg1, start)
        if tag != 0x5F1F or end - start != 90:
            return None
        mrz = dg1[start:end].decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    head = mrz[5:14].rstrip("<")
    if mrz[14] == "<" and mrz[15] != "<":
        # long number: the rest sits in the optional data, ended by its check digit
        head += mrz[15:30].rstrip("<")[:-1]
    return head or None


def tlv(tag: int, value: bytes) -> bytes:
    """BER-TLV with a one- or two-byte tag and a definite length.

    Not a twin of agent/chip/tlv.py by accident: a simulator must not import the agent (the
    import contract in pyproject.toml), and writing the chip image from ISO 7816-4 on its own
    is what lets it catch a mistake the agent's parser makes."""
    tag_bytes = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        size = (n.bit_length() + 7) // 8
        length = bytes([0x80 | size]) + n.to_bytes(size, "big")
    return tag_bytes + length + value


def read_tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """Read the TLV at `offset`: (tag, value start, value end). Raises ValueError if truncated."""
    if offset >= len(data):
        raise ValueError("no TLV at the end of the data")
    tag = data[offset]
    offset += 1
    if tag & 0x1F == 0x1F:
        if offset >= len(data):
            raise ValueError("truncated tag")
        tag = (tag << 8) | data[offset]
        offset += 1
    if offset >= len(data):
        raise ValueError("truncated length")
    first = data[offset]
    offset += 1
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 3 or offset + size > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[offset : offset + size], "big")
        offset += size
    if offset + length > len(data):
        raise ValueError("value runs past the end of the data")
    return tag, offset, offset + length


def _mrz_name(name: str) -> str:
    # Indonesian names have no surname/given-name split: the whole name is the primary
    # identifier, words separated by one filler.
    words = re.sub(r"[^A-Z ]", "", name.upper()).split()
    return "<".join(words)[:30].ljust(30, "<")


def _dg2(face_jpeg: bytes) -> bytes:
    header = (
        tlv(0x80, b"\x01\x01")  # ICAO header version 1.1
        + tlv(0x81, b"\x02")  # biometric type: facial features
        + tlv(0x87, b"\x01\x01")  # format owner: ISO/IEC JTC 1/SC 37
        + tlv(0x88, b"\x00\x08")  # format type: face image (ISO/IEC 19794-5)
    )
    template = tlv(0x7F60, tlv(0xA1, header) + tlv(0x5F2E, _face_record(face_jpeg)))
    return tlv(TAG_DG2, tlv(0x7F61, tlv(0x02, b"\x01") + template))


def _face_record(jpeg: bytes) -> bytes:
    """An ISO/IEC 19794-5:2005 facial record holding one JPEG image."""
    width, height = _jpeg_size(jpeg)
    image_info = (
        bytes([1, 0])  # face image type: full frontal; image data type: JPEG
        + width.to_bytes(2, "big")
        + height.to_bytes(2, "big")
        + bytes([1, 0])  # colour space: 24-bit RGB; source type: unspecified
        + b"\x00\x00\x00\x00"  # device type, quality: unspecified
    )
    facial_info_length = 20 + len(image_info) + len(jpeg)
    facial_info = (
        facial_info_length.to_bytes(4, "big")
        + b"\x00\x00"  # no feature points
        + b"\x00\x00\x00"  # gender, eye colour, hair colour: unspecified
        + b"\x00\x00\x00"  # property mask
        + b"\x00\x00"  # expression: unspecified
        + b"\x00\x00\x00\x00\x00\x00"  # pose angles and their uncertainty
    )
    record_length = 14 + facial_info_length
    general = b"FAC\x00" + b"010\x00" + record_length.to_bytes(4, "big") + b"\x00\x01"
    return general + facial_info + image_info + jpeg


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from the first start-of-frame marker; (0, 0) if there is none."""
    i = 2
    while i + 9 <= len(jpeg) and jpeg[i] == 0xFF:
        marker = jpeg[i + 1]
        segment_length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(jpeg[i + 7 : i + 9], "big"), int.from_bytes(jpeg[i + 5 : i + 7], "big")
        i += 2 + segment_length
    return 0, 0
