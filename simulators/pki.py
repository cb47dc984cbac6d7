"""A test PKI for chips: a country signing CA (CSCA) and a document signer it certifies.

Real e-KTP chips are signed by the authority's document signers; the simulators and
tests need their own, persisted as PEM so that an agent configured with the CSCA as its
trust anchor keeps trusting chips built in an earlier run.
"""

from __future__ import annotations

import os

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from pathlib import Path

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

ALGORITHMS = ("ecdsa-p256", "rsa-pkcs1v15", "rsa-pss")

# Fixed validity windows, so certificates persisted in one run stay valid in later runs
# and tests that pass an explicit `at` are independent of the wall clock.
CSCA_NOT_BEFORE = datetime(2024, 1, 1, tzinfo=timezone.utc)
CSCA_NOT_AFTER = datetime(2044, 1, 1, tzinfo=timezone.utc)
SIGNER_NOT_BEFORE = datetime(2025, 1, 1, tzinfo=timezone.utc)
SIGNER_NOT_AFTER = datetime(2036, 1, 1, tzinfo=timezone.utc)
_SIGNER_NAME = "printstation test document signer"

# ICAO 9303 recommends a salt as long as the hash for RSASSA-PSS.
_PSS_SALT_LENGTH = 32

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class DocumentSigner:
    """A document signer: the certificate, its private key and the signature scheme it uses."""

    cert: x509.Certificate
    private_key: PrivateKey
    algorithm: str

    @cached_property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @cached_property
    def asn1_cert(self) -> asn1_x509.Certificate:
        """The certificate as asn1crypto sees it, parsed once (CMS building embeds it)."""
        return asn1_x509.Certificate.load(self.cert_der)

    @cached_property
    def signature_algorithm(self) -> algos.SignedDigestAlgorithm:
        """The CMS signatureAlgorithm value for this signer's scheme."""
        if self.algorithm == "ecdsa-p256":
            return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
        if self.algorithm == "rsa-pkcs1v15":
            return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
        sha256 = {"algorithm": "sha256"}
        return algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": {
                    "hash_algorithm": sha256,
                    "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": sha256},
                    "salt_length": _PSS_SALT_LENGTH,
                    "trailer_field": "trailer_field_bc",
                },
            }
        )

    def sign(self, message: bytes) -> bytes:
        """Sign `message` (SHA-256) with this signer's scheme."""
        return _sign(self.private_key, self.algorithm, message)


@dataclass(frozen=True)
class TestPki:
    """A CSCA and one document signer, kept as PEM files in `directory`."""

    __test__ = False  # the name starts with "Test"; keep pytest from collecting it

    directory: Path
    algorithm: str
    csca_cert: x509.Certificate
    csca_key: PrivateKey = field(repr=False)
    signer: DocumentSigner = field(repr=False)

    @property
    def csca_pem_path(self) -> Path:
        """The CSCA certificate file: what an agent configures as its trust anchor."""
        return _paths(self.directory, self.algorithm)["csca"]

    @classmethod
    def create(cls, directory: Path, algorithm: str = "ecdsa-p256") -> "TestPki":
        """Load the PKI for `algorithm` from `directory`, or create and persist it there.

        Raises ValueError for an unknown algorithm; OSError if the directory is not writable.
        """
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown signature algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
        directory = Path(directory)
        paths = _paths(directory, algorithm)
        if all(p.exists() for p in paths.values()):
            csca_cert = x509.load_pem_x509_certificate(paths["csca"].read_bytes())
            csca_key = _load_key(paths["csca_key"])
            signer_cert = x509.load_pem_x509_certificate(paths["signer"].read_bytes())
            signer_key = _load_key(paths["signer_key"])
            return cls(directory, algorithm, csca_cert, csca_key, DocumentSigner(signer_cert, signer_key, algorithm))

        directory.mkdir(parents=True, exist_ok=True)
        csca_key = _new_key(algorithm)
        csca_cert = _csca_certificate(csca_key, algorithm)
        signer = _issue_signer(csca_cert, csca_key, algorithm, SIGNER_NOT_BEFORE, SIGNER_NOT_AFTER, _SIGNER_NAME)
        _write_pem(paths["csca"], csca_cert.public_bytes(serialization.Encoding.PEM))
        _write_pem(paths["csca_key"], _key_pem(csca_key))
        _write_pem(paths["signer"], signer.cert.public_bytes(serialization.Encoding.PEM))
        _write_pem(paths["signer_key"], _key_pem(signer.private_key))
        return cls(directory, algorithm, csca_cert, csca_key, signer)

    def issue_signer(
        self,
        not_before: datetime = SIGNER_NOT_BEFORE,
        not_after: datetime = SIGNER_NOT_AFTER,
        common_name: str = _SIGNER_NAME,
    ) -> DocumentSigner:
        """Certify a fresh document signer (not persisted): for tests of expired or other signers."""
        return _issue_signer(self.csca_cert, self.csca_key, self.algorithm, not_before, not_after, common_name)


@lru_cache(maxsize=len(ALGORITHMS))
def untrusted_signer(algorithm: str = "ecdsa-p256") -> DocumentSigner:
    """A document signer certified by a CSCA of the same name as the test CSCA but another key,
    kept nowhere: no trust anchor knows it. Made once per process and algorithm.

    Raises ValueError for an unknown algorithm.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown signature algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    csca_key = _new_key(algorithm)
    csca_cert = _csca_certificate(csca_key, algorithm)
    return _issue_signer(csca_cert, csca_key, algorithm, SIGNER_NOT_BEFORE, SIGNER_NOT_AFTER, _SIGNER_NAME)


def _issue_signer(
    csca_cert: x509.Certificate,
    csca_key: PrivateKey,
    algorithm: str,
    not_before: datetime,
    not_after: datetime,
    common_name: str,
) -> DocumentSigner:
    key = _new_key(algorithm)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(csca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(csca_key.public_key()), critical=False)
    )
    return DocumentSigner(_sign_certificate(builder, csca_key, algorithm), key, algorithm)


def _paths(directory: Path, algorithm: str) -> dict[str, Path]:
    # One set of files per algorithm, so one folder can hold the PKIs of all three schemes.
    return {
        "csca": directory / f"csca-{algorithm}.pem",
        "csca_key": directory / f"csca-{algorithm}.key.pem",
        "signer": directory / f"document-signer-{algorithm}.pem",
        "signer_key": directory / f"document-signer-{algorithm}.key.pem",
    }


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ID"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "printstation test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _csca_certificate(key: PrivateKey, algorithm: str) -> x509.Certificate:
    name = _name(f"printstation test CSCA ({algorithm})")
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(CSCA_NOT_BEFORE)
        .not_valid_after(CSCA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _sign_certificate(builder, key, algorithm)


def _sign_certificate(builder: x509.CertificateBuilder, key: PrivateKey, algorithm: str) -> x509.Certificate:
    if algorithm == "rsa-pss":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=_PSS_SALT_LENGTH)
        return builder.sign(key, hashes.SHA256(), rsa_padding=pss)
    return builder.sign(key, hashes.SHA256())


def _new_key(algorithm: str) -> PrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _sign(key: PrivateKey, algorithm: str, message: bytes) -> bytes:
    if algorithm == "ecdsa-p256":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key.sign(message, ec.ECDSA(hashes.SHA256()))
    assert isinstance(key, rsa.RSAPrivateKey)
    if algorithm == "rsa-pss":
        return key.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=_PSS_SALT_LENGTH), hashes.SHA256())
    return key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError(f"{path}: not an EC or RSA private key")
    return key


def _write_pem(path: Path, data: bytes) -> None:
    # Write then rename, so a reader never sees half a PEM file; a private key is its owner's alone.
    tmp = path.with_name(path.name + ".tmp")
    mode = 0o600 if b"PRIVATE KEY" in data else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)  # whatever the umask
    tmp.replace(path)
