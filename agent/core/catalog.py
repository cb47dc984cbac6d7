"""Every text a person reads (CLI, page, alerts, reports) looked up in gettext catalogs that a
translator can edit: agent/locale/<lang>/LC_MESSAGES/printstation.po (Babel reads them).

A text is named by a key ("fault.jam.message", "word.idle", "alert.blanks-low.remedy"); the
catalog's msgstr wins, and the text written in the code is the fallback for a key the catalog
lacks. `scripts/make-catalogs.py` adds new keys to the catalogs (keeping every translation) and
checks that none is missing. PRINTSTATION_LOCALE_DIR points at another folder of catalogs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
DOMAIN = "printstation"


def catalog_path(lang: str, folder: Path | None = None) -> Path:
    return (folder or LOCALE_DIR) / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=16)
def _texts(lang: str, folder: str) -> dict[str, str]:
    path = catalog_path(lang, Path(folder))
    if not path.is_file():
        return {}
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        catalog = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


def translate(key: str, lang: str, fallback: str) -> str:
    """The catalog's text for `key` in `lang`, else `fallback` (the code's own)."""
    folder = os.environ.get("PRINTSTATION_LOCALE_DIR") or str(LOCALE_DIR)
    return _texts(lang, folder).get(key) or fallback


def reload() -> None:
    """Forget the catalogs read so far (after a translator's edit, or in tests)."""
    _texts.cache_clear()
