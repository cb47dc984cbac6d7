"""The issuing authority's job-signing key: an Ed25519 key kept in the state folder, and signing.

A job is signed over its canonical JSON without the `signature` member (docs/PROTOCOLS.md
section 4): keys sorted, no white space, UTF-8. The station holds only the public key.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEFAULT_KID = "authority-1"


class AuthorityKeyError(Exception):
    """The authority key in the state folder cannot be used (unreadable or not Ed25519)."""


def canonical_json(value: Any) -> bytes:
    """The bytes a job signature covers: sorted keys, no white space, UTF-8 (RFC 8785 for our members)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Authority:
    """One signing key of the issuing authority, named by its key id (`kid`)."""

    kid: str
    private_key: Ed25519PrivateKey
    public_key_path: Path

    @classmethod
    def load_or_create(cls, state_dir: Path, kid: str = DEFAULT_KID) -> "Authority":
        """Load `<kid>.key.pem` from `state_dir`, or create it and `<kid>.pub.pem` on first use.

        Raises AuthorityKeyError when the key file exists but is not an Ed25519 private key.
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        key_path = state_dir / f"{kid}.key.pem"
        pub_path = state_dir / f"{kid}.pub.pem"
        if key_path.exists():
            try:
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            except (OSError, ValueError) as exc:
                raise AuthorityKeyError(f"authority key {key_path} cannot be read: {exc}") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise AuthorityKeyError(f"authority key {key_path} is not an Ed25519 key")
        else:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            # Owner-only: anyone holding this file can approve jobs.
            _write_atomically(key_path, pem, 0o600)
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Rewritten every start so a lost or stale public file cannot disagree with the key.
        _write_atomically(pub_path, public_pem, 0o644)
        return cls(kid=kid, private_key=key, public_key_path=pub_path)

    def sign_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of `job` carrying a `signature` over everything else in it."""
        body = {k: v for k, v in job.items() if k != "signature"}
        value = self.private_key.sign(canonical_json(body))
        signature = {
            "alg": "EdDSA",
            "kid": self.kid,
            "value": base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii"),
        }
        return {**body, "signature": signature}
