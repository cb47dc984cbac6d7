"""Where a local endpoint listens (`[metrics] listen`): "HOST:PORT", "[::1]:PORT" or a bare port."""

from __future__ import annotations

import ipaddress
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
    if m is None:
        raise ValueError(f"is {text!r}, not HOST:PORT")
    if not 0 <= int(m.group("port")) < 65536:
        raise ValueError(f"has port {m.group('port')}, outside 1 to 65535 (0: any free port)")
    host = (m.group("host") or LOOPBACK).strip("[]")
    if not valid_host(host):
        raise ValueError(f"has host {host!r}, which is neither an IP address nor a host name")
    return ListenAddress(host, int(m.group("port")))


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def valid_host(host: str) -> bool:
    """An IP address (v4 or v6) or a host name of dot-separated labels (letters, digits, hyphens)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))
