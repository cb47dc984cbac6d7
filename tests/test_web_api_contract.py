"""The station's local API is documented in docs/station-api.openapi.json, and that file is what
the server says of itself (FastAPI's /openapi.json): a change to one without the other fails here.
The operator's PIN is kept only as a salted PBKDF2 hash."""

from __future__ import annotations

import json
from pathlib import Path

from agent.core.config import WebConfig
from agent.ops.web import create_app
from agent.ops.web_auth import Sessions, hash_pin, verify_pin

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "station-api.openapi.json"


def test_the_documented_api_is_the_served_one():
    served = create_app(None, WebConfig(), "id").openapi()  # the routes are not called: no station needed
    assert json.loads(DOCUMENT.read_text()) == json.loads(json.dumps(served)), \
        "regenerate docs/station-api.openapi.json from create_app(...).openapi()"
    assert {"/api/status", "/api/alerts", "/api/events", "/api/printers/{printer}/{action}",
            "/api/alerts/{key}/ack"} <= set(served["paths"])


def test_a_pin_is_kept_as_a_salted_hash_and_only_the_pin_matches():
    one, two = hash_pin("2468"), hash_pin("2468")
    assert one != two and "2468" not in one, "salted, never the PIN itself"
    assert verify_pin("2468", one) and not verify_pin("2469", one)
    assert not verify_pin("2468", None) and not verify_pin("2468", "garbage") and not verify_pin("2468", "a$b$c$d")


def test_an_action_needs_the_session_and_its_csrf_token():
    sessions = Sessions()
    token, session = sessions.open()
    assert sessions.allows(token, session.csrf)
    assert not sessions.allows(token, None) and not sessions.allows(token, "forged")
    assert not sessions.allows("not-a-session", session.csrf)
    sessions.close(token)
    assert not sessions.allows(token, session.csrf)


def test_web_pin_prints_the_line_for_the_configuration():
    import subprocess
    import sys

    made = subprocess.run([sys.executable, "-m", "agent", "web-pin", "--stdin"], input="2468\n",
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key, _, value = made.stdout.strip().partition(" = ")
    assert key == "operator_pin_hash" and verify_pin("2468", json.loads(value))
    short = subprocess.run([sys.executable, "-m", "agent", "web-pin", "--stdin"], input="12\n",
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "4 characters" in short.stderr
