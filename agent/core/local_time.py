"""Times and dates as people at the station read them: in its local time zone, day first."""

from __future__ import annotations

from datetime import datetime


def local_time(stamp: str | None) -> str:
    """An RFC 3339 UTC stamp as the station's local date and time ("" for none)."""
    if not stamp:
        return ""
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return ""
    return at.strftime("%d-%m-%Y %H:%M %Z").strip()


def local_date(text: str | None) -> str:
    """A forecast's date (YYYY-MM-DD) as the page writes dates."""
    if not text:
        return ""
    try:
        return datetime.fromisoformat(text).strftime("%d-%m-%Y")
    except ValueError:
        return text
