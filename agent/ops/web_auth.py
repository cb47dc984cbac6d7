"""The operator's login on the local page: a PIN from the configuration, kept only as a hash, and
sessions in memory with a CSRF token each.

`[web] operator_pin_hash` holds `pbkdf2-sha256$ROUNDS$SALT$HASH` (hex), as `printstation web-pin`
writes it. A session lives in a cookie (HttpOnly, SameSite=Strict) for `SESSION_S`; every action
must carry the session's CSRF token in the `X-CSRF-Token` header, which a page from elsewhere
cannot read. A restart of the daemon ends every session.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import secrets
import sys
import threading
import time
from dataclasses import dataclass

SCHEME = "pbkdf2-sha256"
ROUNDS = 200_000
SESSION_S = 8 * 3600.0
COOKIE = "printstation_session"


def hash_pin(pin: str, *, rounds: int = ROUNDS, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, rounds)
    return f"{SCHEME}${rounds}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str | None) -> bool:
    """True when `pin` matches the stored hash; False for none or a malformed one."""
    if not stored:
        return False
    try:
        scheme, rounds, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        got = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass
class Session:
    csrf: str
    expires: float


class Sessions:
    """Signed-in operators' sessions, in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, Session] = {}

    def open(self) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(24), time.monotonic() + SESSION_S)
        with self._lock:
            self._by_token = {k: s for k, s in self._by_token.items() if s.expires > time.monotonic()}
            self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._by_token.get(token)
        return session if session is not None and session.expires > time.monotonic() else None

    def close(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def allows(self, token: str | None, csrf: str | None) -> bool:
        """A signed-in session whose CSRF token came with the request."""
        session = self.get(token)
        return session is not None and bool(csrf) and hmac.compare_digest(session.csrf, csrf or "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdin", action="store_true", help="read the PIN from standard input (for scripts)")


def run(args: argparse.Namespace) -> int:
    """`printstation web-pin`: ask for the operator's PIN, print the line for [web]."""
    pin = sys.stdin.readline().strip() if args.stdin else getpass.getpass("PIN petugas / operator PIN: ")
    if len(pin) < 4:
        print("printstation web-pin: a PIN has at least 4 characters", file=sys.stderr)
        return 2
    print(f'operator_pin_hash = "{hash_pin(pin)}"')
    return 0
