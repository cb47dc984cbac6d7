"""Logging: structlog, JSON for journald under systemd, readable lines for people; personal data masked in both."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are personal data wherever they appear in a log event.
PERSONAL_KEYS = frozenset({"nik", "name", "subject", "photo", "face", "front_png", "back_png", "chip_files", "payload"})
_NIK = re.compile(r"(?<!\d)(\d{4})\d{12}(?!\d)")


def mask_nik(text: str) -> str:
    """Hide the 12 digits of a NIK that identify a person (the region code stays, for support)."""
    return _NIK.sub(lambda m: m.group(1) + "*" * 12, text)


def mask_name(name: str) -> str:
    return " ".join(part[:1] + "*" * (len(part) - 1) for part in name.split())


def _mask_value(key: str, value: Any) -> Any:
    if key in PERSONAL_KEYS:
        if key == "name" and isinstance(value, str):
            return mask_name(value)
        if key == "nik" and isinstance(value, str):
            return mask_nik(value)
        return "<personal data>"
    if isinstance(value, str):
        return mask_nik(value)
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value("", v) for v in value]
    return value


def mask_personal_data(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no NIK, name, photo or chip image leaves the process unmasked."""
    return {key: _mask_value(key, value) for key, value in event_dict.items()}


def under_journald(environ: dict[str, str] | None = None) -> bool:
    """True when stderr is journald's stream: systemd sets JOURNAL_STREAM to its device:inode."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def configure(*, json_output: bool, level: str = "info") -> None:
    """Set up structlog for the process: JSON lines (journald) or coloured console lines."""
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
