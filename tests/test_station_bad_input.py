"""Bad input at start gets a clear message, not a traceback: missing config, missing serial device,
unreachable upstream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulators.pki import TestPki


def write_config(folder: Path, *, url: str, link: str) -> Path:
    key = Ed25519PrivateKey.generate().public_key()
    (folder / "authority.pem").write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    pki = TestPki.create(folder / "pki")
    config = folder / "station.toml"
    config.write_text(f"""
[station]
id = "st-bad"
journal = "journal.db"
language = "en"
[upstream]
url = "{url}"
token = "t"
wait_s = 1
[upstream.authority_keys]
"authority-1" = "authority.pem"
[chip]
trust_anchors = ["{pki.csca_pem_path}"]
[[printers]]
name = "p1"
link = "{link}"
reader = "Virtual PCD 00 00"
""")
    return config


def run_for(config: Path, seconds: float) -> str:
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        time.sleep(seconds)
        assert proc.poll() is None, "the daemon must keep running: the condition may clear"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]
    return out


def test_missing_config_file_is_named_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(tmp_path / "station.toml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 78  # EX_CONFIG: the unit does not restart on it
    assert "station.toml: no such configuration file" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_serial_device_is_named_and_the_daemon_waits_for_it(tmp_path):
    out = run_for(write_config(tmp_path, url="http://127.0.0.1:9", link="serial:///dev/ttyNOPE0?baud=115200"), 3)
    assert "/dev/ttyNOPE0" in out and "printer-link-lost" in out
    assert "Traceback" not in out


def test_unreachable_upstream_is_named_and_the_daemon_keeps_running(tmp_path):
    out = run_for(write_config(tmp_path, url="http://127.0.0.1:9", link="serial:///dev/ttyNOPE0?baud=115200"), 3)
    assert "upstream-unreachable" in out and "127.0.0.1:9" in out
    assert "Traceback" not in out
