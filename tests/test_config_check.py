"""`config check` misses nothing: each of 19 broken files is named with its key, its line and a fix;
no file makes it crash; `run` refuses a bad file with EX_CONFIG (78), which the unit does not restart.

The line a message must name is found here, in the broken text itself, not asked of the checker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.core.config import check_config_report
from agent.core.config_schema import STATION_SCHEMA

GOOD = """\
[station]
id = "st-1"
journal = "state/journal.db"
language = "id"
retention_days = 400

[upstream]
url = "http://127.0.0.1:8080"
token = "t"

[upstream.authority_keys]
"authority-1" = "authority.pem"

[chip]
trust_anchors = ["csca.pem"]

[pipeline]
panel_depth = 128

[[printers]]
name = "p1"
link = "serial://{tty}?baud=115200"
reader = "{reader}"
ribbon = "ymcko"

[[windows]]
days = ["mon", "tue"]
start = "07:30"
end = "20:00"

[metrics]
listen = "127.0.0.1:9464"

[web]
listen = "127.0.0.1:8631"

[notify]
smtp_host = "mail.example.go.id"
smtp_port = 25
smtp_to = ["operator@example.go.id"]
"""


@dataclass(frozen=True)
class Broken:
    name: str
    old: str              # a line of GOOD
    new: str              # what the file has instead
    key: str              # the key the message must name
    says: str             # a word the message must hold (the mistake, or the fix)
    warning: bool = False  # allowed, but named (a device not attached now)


BROKEN = [
    Broken("typo-in-a-key", 'language = "id"', 'langauge = "id"', "station.langauge", "did you mean `language`"),
    Broken("printer-for-printers", "[[printers]]", "[[printer]]", "printer", "did you mean `printers`"),
    Broken("device-not-attached", 'link = "serial://{tty}?baud=115200"', 'link = "serial:///dev/ttyNOPE7?baud=115200"',
           "printers[0].link", "/dev/ttyNOPE7", warning=True),
    Broken("reader-not-attached", 'reader = "{reader}"', 'reader = "No Such Reader 00 00"', "printers[0].reader",
           "No Such Reader", warning=True),
    Broken("device-path-as-link", 'link = "serial://{tty}?baud=115200"', 'link = "/dev/ttyUSB0"',
           "printers[0].link", 'link = "serial:///dev/ttyUSB0?baud=115200"'),
    Broken("listen-port-out-of-range", 'listen = "127.0.0.1:9464"', 'listen = "127.0.0.1:99999"', "metrics.listen",
           "99999"),
    Broken("host-with-a-space", 'url = "http://127.0.0.1:8080"', 'url = "https://issuance example.go.id"', "upstream.url",
           "neither an IP address nor a host name"),
    Broken("no-history-kept", "retention_days = 400", "retention_days = 0", "station.retention_days", "at least a day"),
    Broken("number-in-quotes", "retention_days = 400", 'retention_days = "400"', "station.retention_days",
           "retention_days = 400"),
    Broken("url-port-out-of-range", 'url = "http://127.0.0.1:8080"', 'url = "http://127.0.0.1:99999"', "upstream.url",
           "1 to 65535"),
    Broken("typo-in-a-printer-key", "ribbon = \"ymcko\"", 'ribon = "ymcko"', "printers[0].ribon", "did you mean `ribbon`"),
    Broken("unknown-language", 'language = "id"', 'language = "fr"', "station.language", '"en"'),
    Broken("unknown-panel-depth", "panel_depth = 128", "panel_depth = 100", "pipeline.panel_depth", "128"),
    Broken("unknown-ribbon", 'ribbon = "ymcko"', 'ribbon = "ymck0"', "printers[0].ribbon", "ymcko"),
    Broken("mail-port-out-of-range", "smtp_port = 25", "smtp_port = 99999", "notify.smtp_port", "1 to 65535"),
    Broken("mail-host-with-a-space", 'smtp_host = "mail.example.go.id"', 'smtp_host = "mail server"', "notify.smtp_host",
           "host name"),
    Broken("usb-link-without-ids", 'link = "serial://{tty}?baud=115200"', 'link = "usb://evolis"', "printers[0].link",
           "usb://"),
    Broken("no-such-hour", 'start = "07:30"', 'start = "25:00"', "windows[0].start", "24-hour"),
    Broken("unknown-table", "[web]", "[webb]", "webb", "did you mean `web`"),
]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "authority.pem").write_text("x")
    (tmp_path / "csca.pem").write_text("x")
    return tmp_path


def _good(tty: Path, reader: str) -> str:
    return GOOD.replace("{tty}", str(tty)).replace("{reader}", reader)


@pytest.fixture
def attached(folder):
    """A device that exists (a file stands in for the tty) and a reader PC/SC lists, if pcscd runs."""
    tty = folder / "ttyFAKE0"
    tty.write_text("")
    try:
        from smartcard.System import readers

        names = [str(r) for r in readers()]
    except Exception:  # noqa: BLE001 - no pcscd here: the reader cases still name the key and the line
        names = []
    return tty, (names[0] if names else "Virtual PCD 00 00"), bool(names)


def _check(path: Path) -> dict:
    run = subprocess.run([sys.executable, "-m", "agent", "config", "check", str(path), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert "Traceback" not in run.stderr, run.stderr
    result = json.loads(run.stdout)
    assert run.returncode == (0 if result["ok"] else 1), (run.returncode, result)
    return result


def test_the_good_file_is_ok_without_a_device_or_reader_warning(folder, attached):
    tty, reader, pcscd = attached
    path = folder / "station.toml"
    path.write_text(_good(tty, reader))
    path.chmod(0o600)
    result = _check(path)
    assert result["ok"] and result["errors"] == [], result
    if pcscd:
        assert result["warnings"] == [], result


@pytest.mark.parametrize("broken", BROKEN, ids=[b.name for b in BROKEN])
def test_each_mistake_is_named_with_its_key_line_and_a_fix(folder, attached, broken):
    tty, reader, pcscd = attached
    good = _good(tty, reader)
    old, new = (s.replace("{tty}", str(tty)).replace("{reader}", reader) for s in (broken.old, broken.new))
    assert good.count(old + "\n") == 1, old
    text = good.replace(old + "\n", new + "\n")
    line = text.splitlines().index(new) + 1
    path = folder / "station.toml"
    path.write_text(text)
    path.chmod(0o600)

    result = _check(path)
    messages = [w for w in result["warnings"]] if broken.warning else [e["message"] for e in result["errors"]]
    assert result["ok"] is broken.warning, result
    named = [m for m in messages if f"{path}:{line}: {broken.key} " in m]
    assert len(named) == 1, (broken.key, line, messages)
    assert "Fix: " in named[0] and named[0].split("Fix: ", 1)[1].strip(), named[0]
    if broken.name != "reader-not-attached" or pcscd:  # without pcscd: "cannot be looked for", and how to start it
        assert broken.says in named[0], named[0]
    if not broken.warning:
        assert [e["line"] for e in result["errors"] if e["message"] == named[0]] == [line]


def _wrong_values(kind: str) -> list[object]:
    values: list[object] = ["text", 7, 2.5, True, [1], {"a": 1}]
    wanted = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}[kind]
    return [v for v in values if not isinstance(v, wanted) or (kind in ("integer", "number") and isinstance(v, bool))]


def _scalar_keys() -> list[tuple[str, str, str]]:
    """(table, key, JSON type) for every typed key of a table the good file has, from the schema."""
    found = []
    for table, shape in STATION_SCHEMA["properties"].items():
        properties = shape.get("properties") or shape.get("items", {}).get("properties") or {}
        for key, rule in properties.items():
            if "type" in rule and table in ("station", "upstream", "chip", "pipeline", "printers", "metrics", "web",
                                            "notify"):
                found.append((table, key, rule["type"]))
    return found


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def test_no_value_of_any_wrong_type_makes_it_crash_and_each_is_named(folder, attached):
    tty, reader, _ = attached
    good = _good(tty, reader)
    keys = _scalar_keys()
    assert len(keys) > 40
    for table, key, kind in keys:
        header = f"[[{table}]]" if table == "printers" else f"[{table}]"
        for value in _wrong_values(kind):
            lines = [ln for ln in good.splitlines() if not ln.startswith(f"{key} = ")
                     and not (key == "authority_keys" and ("authority" in ln))]
            at = lines.index(header) + 1
            lines.insert(at, f"{key} = {_toml(value)}")
            path = folder / "station.toml"
            path.write_text("\n".join(lines) + "\n")
            problems, _ = check_config_report(path)  # never raises
            where = f"{table}[0].{key}" if table == "printers" else f"{table}.{key}"
            assert any(f"{path}:{at + 1}: {where} " in str(p) and "Fix: " in str(p) for p in problems), \
                (where, value, [str(p) for p in problems])


def test_run_refuses_a_bad_file_with_ex_config_and_the_unit_does_not_restart_on_it(folder, attached):
    tty, reader, _ = attached
    path = folder / "station.toml"
    path.write_text(_good(tty, reader).replace(f'link = "serial://{tty}?baud=115200"', 'link = "/dev/ttyUSB0"'))
    run = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 78, (run.returncode, run.stderr)
    assert "printers[0].link" in run.stderr and "serial:///dev/ttyUSB0" in run.stderr
    assert "Traceback" not in run.stderr
    unit = (Path(__file__).parent.parent / "systemd" / "printstation.service").read_text()
    prevent = next(line for line in unit.splitlines() if line.startswith("RestartPreventExitStatus="))
    assert "78" in prevent.split("=", 1)[1].split()
