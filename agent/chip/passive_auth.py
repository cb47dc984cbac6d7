"""ICAO 9303 passive authentication over bytes: is this chip data what a trusted signer signed?

Pure functions (no PC/SC), so the same code judges a chip on a reader and a folder of
files (`printstation chip verify DIR`). asn1crypto parses, cryptography verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from agent.chip.profile import Check, Verdict

LDS_SECURITY_OBJECT_OID = "2.23.136.1.1.1"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class MalformedSecurityObject(ValueError):
    """EF.SOD is not a CMS SignedData over an LDSSecurityObject that we can read."""


class TrustAnchorError(ValueError):
    """A configured trust anchor file cannot be read as certificates."""


# ICAO 9303-10 LDSSecurityObject (appendix on the security object).
class _DataGroupHash(core.Sequence):
    _fields = [("data_group_number", core.Integer), ("data_group_hash_value", core.OctetString)]


class _DataGroupHashes(core.SequenceOf):
    _child_spec = _DataGroupHash


class _LdsVersionInfo(core.Sequence):
    _fields = [("lds_version", core.PrintableString), ("unicode_version", core.PrintableString)]


class _LdsSecurityObject(core.Sequence):
    _fields = [
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", _DataGroupHashes),
        ("lds_version_info", _LdsVersionInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class SecurityObject:
    """What EF.SOD says, parsed but not yet judged."""

    hash_algorithm: str
    data_group_hashes: dict[int, bytes]  # in the order the SOD lists them
    encapsulated_content_type: str
    encapsulated_content: bytes
    signed_content_type: str | None
    signed_message_digest: bytes | None
    signed_attributes_set: bytes  # the signed attributes re-encoded as a DER SET (tag 0x31)
    digest_algorithm: str
    signature_algorithm: algos.SignedDigestAlgorithm
    signature: bytes
    signer_cert: x509.Certificate


@dataclass(frozen=True)
class TrustAnchors:
    """CSCA certificates from configuration: the only roots a document signer may chain to."""

    certs: tuple[x509.Certificate, ...]
    _issuers: "_ChainCache" = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_issuers", _ChainCache(self.certs))

    @classmethod
    def load(cls, paths: list[Path]) -> "TrustAnchors":
        """Read every certificate in `paths` (PEM, possibly several a file, or DER). Raises TrustAnchorError."""
        certs: list[x509.Certificate] = []
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as e:
                raise TrustAnchorError(f"trust anchor {path}: {e.strerror}") from e
            try:
                if b"-----BEGIN CERTIFICATE-----" in data:
                    certs.extend(x509.load_pem_x509_certificates(data))
                else:
                    certs.append(x509.load_der_x509_certificate(data))
            except ValueError as e:
                raise TrustAnchorError(f"trust anchor {path} is not a certificate: {e}") from e
        return cls(tuple(certs))

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The anchor that directly issued and signed `cert`, or None. Results are cached by certificate."""
        return self._issuers.issuer_of(cert)


def parse_security_object(ef_sod: bytes) -> SecurityObject:
    """Parse EF.SOD (with or without its 0x77 wrapper). Raises MalformedSecurityObject."""
    try:
        return _parse(ef_sod)
    except MalformedSecurityObject:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise MalformedSecurityObject(f"EF.SOD cannot be parsed: {e}") from e


def passive_authentication(
    ef_sod: bytes, data_groups: dict[int, bytes], anchors: TrustAnchors, at: datetime
) -> tuple[Check, ...]:
    """Judge EF.SOD and the data groups read from the chip, at time `at`.

    Returns one Check each for "security-object", every data group the SOD lists
    ("dg1", "dg2", ...; ABSENT when not in `data_groups`) and every provided data group
    it does not list (BAD), "content-type", "message-digest", "signature",
    "signer-validity" and "chain". A malformed SOD gives only the "security-object" check.
    Never raises for bad chip data.
    """
    try:
        sod = parse_security_object(ef_sod)
    except MalformedSecurityObject as e:
        return (Check("security-object", Verdict.BAD, str(e)),)
    return verify_security_object(sod, data_groups, anchors, at)


def verify_security_object(
    sod: SecurityObject, data_groups: dict[int, bytes], anchors: TrustAnchors, at: datetime
) -> tuple[Check, ...]:
    """passive_authentication for a security object already parsed. Never raises for bad chip data."""
    checks = [Check("security-object", Verdict.GOOD, f"CMS SignedData, {sod.hash_algorithm} data group hashes")]
    checks += _data_group_checks(sod, data_groups)
    checks.append(_content_type_check(sod))
    checks.append(_message_digest_check(sod))
    checks.append(_signature_check(sod))
    checks.append(_validity_check(sod.signer_cert, at))
    checks.append(_chain_check(sod.signer_cert, anchors))
    return tuple(checks)


def _parse(ef_sod: bytes) -> SecurityObject:
    der = _strip_sod_wrapper(ef_sod)
    content_info = cms.ContentInfo.load(der)
    if content_info["content_type"].native != "signed_data":
        raise MalformedSecurityObject(f"EF.SOD holds {content_info['content_type'].native}, not SignedData")
    signed_data = content_info["content"]
    encap = signed_data["encap_content_info"]
    content_type = encap["content_type"].dotted
    content = encap["content"].contents if isinstance(encap["content"], core.ParsableOctetString) else None
    if content is None:
        raise MalformedSecurityObject("EF.SOD carries no encapsulated content")
    lds = _LdsSecurityObject.load(content)
    hash_algorithm = lds["hash_algorithm"]["algorithm"].native
    data_group_hashes = {
        int(entry["data_group_number"].native): bytes(entry["data_group_hash_value"].native)
        for entry in lds["data_group_hash_values"]
    }
    if hash_algorithm not in _HASHES:
        raise MalformedSecurityObject(f"unsupported data group hash algorithm {hash_algorithm}")

    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise MalformedSecurityObject(f"EF.SOD has {len(signer_infos)} signer infos, ICAO 9303 wants one")
    signer_info = signer_infos[0]
    signed_attrs = signer_info["signed_attrs"]
    if not signed_attrs.contents:
        raise MalformedSecurityObject("EF.SOD has no signed attributes")
    signed_content_type: str | None = None
    signed_digest: bytes | None = None
    for attribute in signed_attrs:
        kind = attribute["type"].native
        if kind == "content_type":
            signed_content_type = attribute["values"][0].dotted
        elif kind == "message_digest":
            signed_digest = bytes(attribute["values"][0].native)
    # Signed as a SET (RFC 5652 5.4), stored as [0] IMPLICIT: swap the tag byte back,
    # keeping the original encoding byte for byte.
    attrs_der = signed_attrs.dump()
    signed_attributes_set = b"\x31" + attrs_der[1:]

    digest_algorithm = signer_info["digest_algorithm"]["algorithm"].native
    if digest_algorithm not in _HASHES:
        raise MalformedSecurityObject(f"unsupported digest algorithm {digest_algorithm}")
    return SecurityObject(
        hash_algorithm=hash_algorithm,
        data_group_hashes=data_group_hashes,
        encapsulated_content_type=content_type,
        encapsulated_content=content,
        signed_content_type=signed_content_type,
        signed_message_digest=signed_digest,
        signed_attributes_set=signed_attributes_set,
        digest_algorithm=digest_algorithm,
        signature_algorithm=signer_info["signature_algorithm"],
        signature=bytes(signer_info["signature"].native),
        signer_cert=_signer_certificate(signed_data, signer_info["sid"]),
    )


def _strip_sod_wrapper(ef_sod: bytes) -> bytes:
    if not ef_sod:
        raise MalformedSecurityObject("EF.SOD is empty")
    if ef_sod[0] != 0x77:
        return ef_sod
    value = core.Asn1Value.load(ef_sod)  # application tag 23, constructed
    return value.contents


def _signer_certificate(signed_data: cms.SignedData, sid: cms.SignerIdentifier) -> x509.Certificate:
    """The certificate in the SOD that the signer identifier names (ICAO 9303 requires it be there)."""
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if _same_name(cert.issuer, wanted["issuer"]) and cert.serial_number == wanted["serial_number"].native:
                return x509.load_der_x509_certificate(cert.dump())
        elif cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise MalformedSecurityObject("the document signer certificate is not in EF.SOD")


def _same_name(one: asn1_x509.Name, other: asn1_x509.Name) -> bool:
    """RFC 5280 name matching (asn1crypto's, with LDAP string preparation: ~1 ms a name pair in
    pure Python). Names encoded byte for byte alike match without it: the usual case, where the
    signer identifier copies the issuer from the certificate it names."""
    return one.dump() == other.dump() or one == other


def _digest(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(algorithm, data).digest()


def _data_group_checks(sod: SecurityObject, data_groups: dict[int, bytes]) -> list[Check]:
    checks = []
    for number, expected in sod.data_group_hashes.items():
        name = f"dg{number}"
        content = data_groups.get(number)
        if content is None:
            checks.append(Check(name, Verdict.ABSENT, "not provided"))
        elif hmac.compare_digest(_digest(sod.hash_algorithm, content), expected):
            checks.append(Check(name, Verdict.GOOD, f"{sod.hash_algorithm} matches the security object"))
        else:
            checks.append(Check(name, Verdict.BAD, f"{sod.hash_algorithm} differs from the security object"))
    for number in sorted(set(data_groups) - set(sod.data_group_hashes)):
        checks.append(Check(f"dg{number}", Verdict.BAD, "not covered by the security object"))
    return checks


def _content_type_check(sod: SecurityObject) -> Check:
    if sod.encapsulated_content_type != LDS_SECURITY_OBJECT_OID:
        return Check("content-type", Verdict.BAD, f"encapsulated content is {sod.encapsulated_content_type}, not an LDS security object")
    if sod.signed_content_type != sod.encapsulated_content_type:
        return Check("content-type", Verdict.BAD, "the signed content-type attribute does not match the content")
    return Check("content-type", Verdict.GOOD, "LDS security object")


def _message_digest_check(sod: SecurityObject) -> Check:
    if sod.signed_message_digest is None:
        return Check("message-digest", Verdict.BAD, "no message-digest attribute")
    if hmac.compare_digest(_digest(sod.digest_algorithm, sod.encapsulated_content), sod.signed_message_digest):
        return Check("message-digest", Verdict.GOOD, "matches the security object")
    return Check("message-digest", Verdict.BAD, "differs from the hash of the security object")


def _signature_check(sod: SecurityObject) -> Check:
    key = sod.signer_cert.public_key()
    algorithm = sod.signature_algorithm
    scheme = algorithm.signature_algo
    try:
        hash_name = algorithm.hash_algo
    except ValueError:  # a bare rsaEncryption/ecPublicKey OID: the hash is the digest algorithm
        hash_name = sod.digest_algorithm
    if hash_name not in _HASHES:
        return Check("signature", Verdict.BAD, f"unsupported hash {hash_name}")
    hash_algorithm = _HASHES[hash_name]()
    try:
        if scheme == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sod.signature, sod.signed_attributes_set, ec.ECDSA(hash_algorithm))
        elif scheme == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sod.signature, sod.signed_attributes_set, padding.PKCS1v15(), hash_algorithm)
        elif scheme == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            pss = padding.PSS(mgf=padding.MGF1(_HASHES[mgf_hash]()), salt_length=params["salt_length"].native)
            key.verify(sod.signature, sod.signed_attributes_set, pss, hash_algorithm)
        else:
            return Check("signature", Verdict.BAD, f"unsupported scheme {scheme} for a {type(key).__name__}")
    except InvalidSignature:
        return Check("signature", Verdict.BAD, f"{scheme} signature does not verify with the document signer")
    except (ValueError, KeyError) as e:  # malformed signature or PSS parameters
        return Check("signature", Verdict.BAD, f"{scheme} signature cannot be checked: {e}")
    return Check("signature", Verdict.GOOD, f"{scheme} with {hash_name} by {_common_name(sod.signer_cert)}")


def _validity_check(cert: x509.Certificate, at: datetime) -> Check:
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    window = f"valid {start:%Y-%m-%d} to {end:%Y-%m-%d}"
    if at < start:
        return Check("signer-validity", Verdict.BAD, f"not yet valid at {at:%Y-%m-%d}: {window}")
    if at > end:
        return Check("signer-validity", Verdict.BAD, f"expired at {at:%Y-%m-%d}: {window}")
    return Check("signer-validity", Verdict.GOOD, window)


def _chain_check(cert: x509.Certificate, anchors: TrustAnchors) -> Check:
    if not anchors.certs:
        return Check("chain", Verdict.BAD, "no trust anchor configured")
    anchor = anchors.issuer_of(cert)
    if anchor is None:
        return Check("chain", Verdict.BAD, f"issuer {cert.issuer.rfc4514_string()} is not a configured trust anchor")
    return Check("chain", Verdict.GOOD, f"issued by trust anchor {_common_name(anchor)}")


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


class _ChainCache:
    """Which anchor issued a certificate, remembered: a station sees the same few signers all day."""

    _LIMIT = 256

    def __init__(self, anchors: tuple[x509.Certificate, ...]) -> None:
        self._anchors = anchors
        self._known: dict[bytes, x509.Certificate | None] = {}
        self._lock = threading.Lock()

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        key = cert.fingerprint(hashes.SHA256())
        with self._lock:
            if key in self._known:
                return self._known[key]
        found = None
        for anchor in self._anchors:
            if anchor.subject != cert.issuer or not _is_ca(anchor):
                continue
            try:
                cert.verify_directly_issued_by(anchor)
            except (InvalidSignature, ValueError, TypeError):
                continue
            found = anchor
            break
        with self._lock:
            if len(self._known) >= self._LIMIT:
                self._known.clear()
            self._known[key] = found
        return found


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
