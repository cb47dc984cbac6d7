"""Every text people read lives in gettext catalogs a translator can edit (agent/locale/*/LC_MESSAGES/
printstation.po, read with Babel): none is missing, and an edited msgstr is what the station says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

from agent.core import catalog
from agent.core.messages import Alert, fault_message, word
from agent.ops.reason_words import reason_words

ROOT = Path(__file__).resolve().parents[1]


def test_the_catalogs_hold_every_text_of_the_code():
    check = subprocess.run([sys.executable, "scripts/make-catalogs.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    for lang in ("id", "en"):
        with catalog.catalog_path(lang).open("rb") as f:
            entries = {m.id: m.string for m in read_po(f) if m.id}
        assert entries["fault.jam.message"] and entries["word.idle"] and entries["alert.blanks-low.remedy"]
        assert all(entries.values()), [k for k, v in entries.items() if not v]


def test_a_translators_edit_is_what_the_station_says(tmp_path, monkeypatch):
    folder = tmp_path / "locale"
    shutil.copytree(catalog.LOCALE_DIR, folder)
    path = catalog.catalog_path("id", folder)
    with path.open("rb") as f:
        edited = read_po(f, locale="id")
    edits = {"fault.jam.message": "Kartu tersangkut.", "word.idle": "siap mencetak",
             "alert.blanks-low.remedy": "Hubungi gudang pusat.", "reason.chip-mute": "chip diam"}
    for key, text in edits.items():
        edited[key].string = text
    with path.open("wb") as f:
        write_po(f, edited)
    monkeypatch.setenv("PRINTSTATION_LOCALE_DIR", str(folder))
    catalog.reload()
    try:
        assert fault_message("jam", "id")[0] == "Kartu tersangkut."
        assert word("idle", "id") == "siap mencetak"
        assert Alert.BLANKS_LOW.remedy("id") == "Hubungi gudang pusat."
        assert reason_words("chip-mute", "id") == "chip diam"
        assert word("idle", "en") == "idle", "the other language keeps its own catalog"
    finally:
        monkeypatch.delenv("PRINTSTATION_LOCALE_DIR")
        catalog.reload()
    assert word("idle", "id") == "siap"
