"""CLI commands that need no daemon: `config check` (human and --json), languages of every fault and alert."""

from __future__ import annotations

import json
import subprocess
import sys

from agent.core.messages import Alert, choose_language, fault_message
from drivers.faults import LANGUAGES, Fault

BROKEN = """[station]
id = "st-1"
journal = "journal.db"
language = "fr"

[upstream]
url = "ftp://example"
token = 5

[upstream.authority_keys]
"authority-1" = "missing.pem"

[pipeline]
panel_depth = 100

[[windows]]
days = ["mon"]
start = "7:30"
end = "20:00"

[[printers]]
name = "p1"
link = "serial:///dev/ttyUSB0"
reader = "Virtual PCD 00 00"
"""


def config_check(path, *extra):
    return subprocess.run([sys.executable, "-m", "agent", "config", "check", str(path), *extra],
                          capture_output=True, text=True, timeout=60)


def test_config_check_names_every_mistake_with_its_line_and_a_fix(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(BROKEN)
    run = config_check(path)
    assert run.returncode == 1
    lines = [line for line in run.stdout.splitlines() if not line.startswith("warning: ")]  # /dev/ttyUSB0 is not here
    expected = {"station.language": 4, "upstream.url": 7, "upstream.token": 8, "upstream.authority_keys.authority-1": 11,
                "pipeline.panel_depth": 14, "windows[0].start": 18}
    for key, line in expected.items():
        assert any(l.startswith(f"{path}:{line}: {key} ") and "Fix: " in l for l in lines), (key, run.stdout)
    assert len(lines) == len(expected)


def test_config_check_json_lists_errors_with_lines(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(BROKEN)
    result = json.loads(config_check(path, "--json").stdout)
    assert result["ok"] is False and sorted(e["line"] for e in result["errors"]) == [4, 7, 8, 11, 14, 18]


def test_config_check_of_a_good_file_says_ok(tmp_path):
    (tmp_path / "a.pem").write_text("x")
    good = BROKEN.replace('"fr"', '"id"').replace("ftp://", "https://").replace("token = 5", 'token = "t"')
    (tmp_path / "ttyFAKE0").write_text("")  # the printer's device: there (a missing one is a warning)
    good = good.replace("/dev/ttyUSB0", str(tmp_path / "ttyFAKE0")).replace("missing.pem", "a.pem").replace("panel_depth = 100", "panel_depth = 128").replace('"7:30"', '"07:30"')
    path = tmp_path / "station.toml"
    path.write_text(good)
    path.chmod(0o600)  # it holds the token: readable by others, it would be a warning
    run = config_check(path)
    # The reader is reported when this machine's PC/SC does not list it (tests/test_config_check.py).
    assert run.returncode == 0 and run.stdout.splitlines()[-1] == f"{path}: OK"
    assert all("printers[0].reader" in line for line in run.stdout.splitlines()[:-1]), run.stdout
    result = json.loads(config_check(path, "--json").stdout)
    assert result["ok"] is True and result["errors"] == [], result
    assert all("printers[0].reader" in w for w in result["warnings"]), result
    path.chmod(0o644)
    warned = config_check(path)
    assert warned.returncode == 0 and "warning:" in warned.stdout and f"chmod 600 {path}" in warned.stdout


def test_every_fault_and_alert_has_indonesian_and_english_texts():
    for code in [f.value for f in Fault] + [a.value for a in Alert]:
        texts = {lang: fault_message(code, lang) for lang in LANGUAGES}
        assert set(texts) == {"id", "en"}
        for message, remedy in texts.values():
            assert message and remedy and message != code
        assert texts["id"] != texts["en"], code


def test_language_follows_the_locale_then_the_configuration():
    assert choose_language("id", {"LANG": "en_US.UTF-8"}) == "en"
    assert choose_language("en", {"LANG": "id_ID.UTF-8"}) == "id"
    assert choose_language("en", {"LANG": "fr_FR.UTF-8"}) == "en"
    assert choose_language("id", {"LC_ALL": "C"}) == "id"
