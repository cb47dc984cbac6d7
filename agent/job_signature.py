"""Checks that a job was approved by the issuing authority (detached Ed25519 over canonical JSON)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from agent.job import JobRejected, JobRejection


def canonical_json(value: Any) -> bytes:
    """RFC 8785 form for what jobs hold (objects, strings, integers): sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class AuthorityKeys:
    """The authority's public keys by key id, so keys can rotate."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def load(cls, paths_by_kid: dict[str, Path]) -> "AuthorityKeys":
        """Load PEM public keys; raises ValueError naming a file that is missing or not Ed25519."""
        keys = {}
        for kid, path in paths_by_kid.items():
            try:
                key = load_pem_public_key(Path(path).read_bytes())
            except (OSError, ValueError) as exc:
                raise ValueError(f"authority key {kid!r} at {path}: {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError(f"authority key {kid!r} at {path} is not an Ed25519 key")
            keys[kid] = key
        return cls(keys)

    def verify(self, raw: Any) -> None:
        """Raise JobRejected unless `raw` carries a valid signature by a known key."""
        if not isinstance(raw, dict):
            raise JobRejected(JobRejection.MALFORMED, "job must be an object")
        signature = raw.get("signature")
        if not isinstance(signature, dict):
            raise JobRejected(JobRejection.UNSIGNED, "job carries no signature")
        if signature.get("alg") != "EdDSA":
            raise JobRejected(JobRejection.BAD_SIGNATURE, f"signature algorithm {str(signature.get('alg'))[:20]!r} is not accepted")
        key = self.keys.get(signature.get("kid"))
        if key is None:
            raise JobRejected(JobRejection.UNKNOWN_KEY, f"signing key {str(signature.get('kid'))[:40]!r} is not a configured authority key")
        value = signature.get("value")
        try:
            sig = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (TypeError, binascii.Error, ValueError):
            raise JobRejected(JobRejection.BAD_SIGNATURE, "signature value is not base64url") from None
        body = {k: v for k, v in raw.items() if k != "signature"}
        try:
            key.verify(sig, canonical_json(body))
        except InvalidSignature:
            raise JobRejected(JobRejection.BAD_SIGNATURE, "signature does not match the job: altered or not signed by the authority") from None
