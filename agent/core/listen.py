"""Where a local endpoint listens (`[metrics] listen`): "HOST:PORT", "[::1]:PORT" or a bare port."""

from __future__ import annotations

import re
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
_LISTEN = re.compile(r"(?:(?P<host>\[[0-9a-fA-F:]+\]|[^:\[\]]+):)?(?P<port>\d{1,5})")


@dataclass(frozen=True)
class ListenAddress:
    """Where an endpoint listens."""

    host: str
    port: int

    def describe(self) -> str:
        return f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """Reads "HOST:PORT", "[::1]:PORT" or a bare "PORT" (loopback); port 0 takes any free port
    (the endpoint logs the one it got).

    Raises ValueError with what is wrong; the configuration adds the line and a fix.
    """
    m = _LISTEN.fullmatch(text.strip())
    if m is None or not 0 <= int(m.group("port")) < 65536:
        raise ValueError(f"is {text!r}, not HOST:PORT")
    host = (m.group("host") or LOOPBACK).strip("[]")
    return ListenAddress(host, int(m.group("port")))
