"""Checks that a job was approved by the issuing authority (detached Ed25519 over canonical JSON).

The authority's public keys are held by key id (`kid`), so a new key can be added before
the authority starts signing with it and the old one removed after (rotation).
"""

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

from agent.upstream.job import JobRejected, JobRejection

SIGNATURE_MEMBERS = frozenset({"alg", "kid", "value"})
ED25519_SIGNATURE_BYTES = 64


def canonical_json(value: Any) -> bytes:
    """RFC 8785 form for what jobs hold (objects, strings, integers): sorted keys, no spaces, UTF-8.

    Raises ValueError for values outside that set that JSON cannot carry (NaN) and
    UnicodeEncodeError for lone surrogates.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


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

    def verify(self, raw: Any) -> str:
        """Raise JobRejected unless `raw` carries a valid signature by a known key; return the
        job as JSON text to keep: the signed body in the canonical form just checked, with the
        signature after it (JSON, not canonical: the signature's member is last, not in order).
        The body is encoded once, for the check and the journal both (~2 ms for a job of faces).

        UNSIGNED: no signature object; UNKNOWN_KEY: a kid not configured; BAD_SIGNATURE:
        wrong algorithm, undecodable value, or a signature that does not match the job
        (altered, or signed by another key); MALFORMED: not a JSON object that can be signed.
        """
        if not isinstance(raw, dict):
            raise JobRejected(JobRejection.MALFORMED, "job must be an object")
        signature = raw.get("signature")
        if not isinstance(signature, dict):
            raise JobRejected(JobRejection.UNSIGNED, "job carries no signature")
        if set(signature) != SIGNATURE_MEMBERS:
            raise JobRejected(JobRejection.BAD_SIGNATURE, "signature must have exactly alg, kid and value")
        if signature["alg"] != "EdDSA":
            raise JobRejected(JobRejection.BAD_SIGNATURE, f"signature algorithm {str(signature['alg'])[:20]!r} is not accepted")
        kid = signature["kid"]
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise JobRejected(JobRejection.UNKNOWN_KEY, f"signing key {str(kid)[:40]!r} is not a configured authority key")
        value = signature["value"]
        try:
            if not isinstance(value, str) or not value.isascii():
                raise ValueError("not ASCII text")
            sig = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise JobRejected(JobRejection.BAD_SIGNATURE, "signature value is not base64url") from None
        if len(sig) != ED25519_SIGNATURE_BYTES:
            raise JobRejected(JobRejection.BAD_SIGNATURE, "signature value is not an Ed25519 signature (64 bytes)")
        body = {k: v for k, v in raw.items() if k != "signature"}
        try:
            signed_bytes = canonical_json(body)
        except (ValueError, UnicodeEncodeError):
            raise JobRejected(JobRejection.MALFORMED, "job holds values canonical JSON cannot carry") from None
        try:
            key.verify(sig, signed_bytes)
        except InvalidSignature:
            raise JobRejected(JobRejection.BAD_SIGNATURE, "signature does not match the job: altered or not signed by the authority") from None
        signed = signed_bytes.decode("utf-8")
        opening = "{" if signed == "{}" else signed[:-1] + ","
        return opening + '"signature":' + canonical_json(signature).decode("utf-8") + "}"
