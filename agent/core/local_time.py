"""Times, dates and numbers as people at the station read them: in its local time zone, in the
words and separators of their language (Babel's CLDR data: "2 Des 2026 22.00 WIB" and "1.234" in
Indonesian, "2 Dec 2026 10:00 PM WIB" and "1,234" in English)."""

from __future__ import annotations

from datetime import date, datetime

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.numbers import format_decimal

_DATE = "d MMM y"  # day first, the month as a word: never ambiguous between languages


def _locale(lang: str) -> Locale:
    try:
        return Locale.parse(lang)
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def local_time(stamp: str | None, lang: str = "id") -> str:
    """An RFC 3339 UTC stamp as the station's local date and time ("" for none)."""
    if not stamp:
        return ""
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return ""
    locale = _locale(lang)
    return f"{format_date(at, _DATE, locale=locale)} {format_time(at, 'short', locale=locale)} {at.strftime('%Z')}".strip()


def local_date(text: str | None, lang: str = "id") -> str:
    """A forecast's date (YYYY-MM-DD) as the station's people write dates."""
    if not text:
        return ""
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return text
    return format_date(day, _DATE, locale=_locale(lang))


def local_number(value: int | float | None, lang: str = "id") -> str:
    """A count or a figure with the language's separators ("?" for an unknown one)."""
    if value is None:
        return "?"
    return format_decimal(value, locale=_locale(lang))
