"""A broken configuration is named: file, line, key, and a fix; never a traceback."""

from __future__ import annotations

import pytest

from agent.core.config import ConfigError, load_config

GOOD = """
[station]
id = "st-1"
journal = "state/journal.db"

[upstream]
url = "http://127.0.0.1:8080"
token = "t"

[upstream.authority_keys]
"authority-1" = "authority.pem"

[chip]
trust_anchors = ["csca.pem"]

[[printers]]
name = "p1"
link = "serial:///dev/ttyUSB0?baud=115200"
reader = "Virtual PCD 00 00"
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "authority.pem").write_text("x")
    (tmp_path / "csca.pem").write_text("x")
    return tmp_path


def write(folder, text):
    path = folder / "station.toml"
    path.write_text(text)
    return path


def test_good_config_loads_with_paths_relative_to_the_file(folder):
    config = load_config(write(folder, GOOD))
    assert config.station_id == "st-1"
    assert config.journal == folder / "state" / "journal.db"
    assert config.printers[0].reader == "Virtual PCD 00 00"
    assert config.max_attempts == 3 and config.panel_depth == 128


def test_missing_file_says_so(folder):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(folder / "nope.toml")


def test_toml_syntax_error_names_the_line(folder):
    with pytest.raises(ConfigError, match="line 3"):
        load_config(write(folder, GOOD.replace('id = "st-1"', 'id = "st-1')))


def test_wrong_type_names_key_and_line(folder):
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, GOOD.replace('token = "t"', "token = 5")))
    assert "upstream.token" in str(caught.value) and "station.toml:8" in str(caught.value)


def test_missing_trust_anchor_file_is_named(folder):
    (folder / "csca.pem").unlink()
    with pytest.raises(ConfigError, match="csca.pem"):
        load_config(write(folder, GOOD))


def test_bad_panel_depth_offers_the_valid_ones(folder):
    with pytest.raises(ConfigError, match="2, 32, 64, 128"):
        load_config(write(folder, GOOD + "\n[pipeline]\npanel_depth = 100\n"))


def test_duplicate_printer_names_are_refused(folder):
    with pytest.raises(ConfigError, match="repeats a printer name"):
        load_config(write(folder, GOOD + GOOD[GOOD.index("[[printers]]"):]))


def test_error_in_second_printer_names_its_line(folder):
    text = GOOD + '\n[[printers]]\nname = "p2"\nlink = 7\nreader = "Virtual PCD 00 01"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, text))
    line = text.splitlines().index("link = 7") + 1
    assert f"station.toml:{line}: printers[1].link" in str(caught.value)


def test_plain_http_to_another_machine_is_a_warning_loopback_is_not(folder):
    from agent.core.config import check_config_report

    path = write(folder, GOOD)
    path.chmod(0o600)
    assert check_config_report(path) == ([], [])
    path = write(folder, GOOD.replace("127.0.0.1", "10.20.30.40"))
    path.chmod(0o644)
    problems, warnings = check_config_report(path)
    assert problems == [] and len(warnings) == 2  # plain http; and a file others can read holds the token
    assert any("upstream.url is plain http" in w and "https://" in w for w in warnings), warnings
    assert any("upstream.token" in w and "chmod 600" in w for w in warnings), warnings


def test_the_token_may_come_from_a_file_or_a_systemd_credential(folder, monkeypatch):
    secret = folder / "token"
    secret.write_text("from-the-file\n")
    secret.chmod(0o600)
    without = GOOD.replace('token = "t"\n', "")
    assert load_config(write(folder, without.replace("[upstream]\n", '[upstream]\ntoken_file = "token"\n'))).upstream.token == "from-the-file"
    with pytest.raises(ConfigError, match="upstream.token is missing"):
        load_config(write(folder, without))
    credentials = folder / "credentials"
    credentials.mkdir()
    (credentials / "printstation-token").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert load_config(write(folder, without)).upstream.token == "from-systemd"
    with pytest.raises(ConfigError, match="upstream.token_file cannot be read"):
        load_config(write(folder, without.replace("[upstream]\n", '[upstream]\ntoken_file = "missing"\n')))
