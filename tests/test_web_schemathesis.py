"""The station's local API keeps its hand-kept contract (agent/ops/station-api.openapi.json), as a
tool that did not write it checks: schemathesis, seeded and bounded, against a real daemon on
virtual hardware, signed in as the operator the way the page signs in (the PIN on the login form,
then the session's CSRF token from the page). No server error, every answer's status, type and body
as documented, invalid requests refused with 4xx, valid ones accepted, undeclared methods 405 with
`Allow`, and the operator's operations refused without the session and its token.

A request the document allows can still be refused for what the station holds now: a random job
id is not a held job (409), a random printer name no printer (404). The document lists those
answers, so every check applies; /api/events alone is left out, a stream that never ends.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from agent.ops.web import API_DOCUMENT
from agent.ops.web_auth import COOKIE, hash_pin
from tests.station_rig import StationRig, closed_window, wait_until

PIN = "2468"


def operator_session(url: str) -> tuple[str, str]:
    """The session cookie and its CSRF token, got as the page gets them."""
    login = httpx.post(url + "login", data={"pin": PIN}, timeout=30)
    assert login.status_code == 303, login.text
    session = login.cookies[COOKIE]
    page = httpx.get(url, cookies={COOKIE: session}, timeout=30)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, "the signed-in page carries its CSRF token"
    return session, found.group(1)


def test_schemathesis_finds_the_station_api_as_its_document_says(pcscd, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency (pyproject: test)"
    # A closed print window: nothing prints, so what the tool reads holds still; the blanks are
    # below the default `blanks_low`, so the board has an alert for the answers to carry.
    with StationRig(tmp_path, jobs=4, extra_config=closed_window()) as rig:
        rig.start()
        rig.write_config(web={"operator_pin_hash": hash_pin(PIN)})
        rig.start_agent()
        url = rig.web_url()
        wait_until(lambda: httpx.get(url + "api/alerts", timeout=10).json(), 60, "an alert on the board")
        session, csrf = operator_session(url)
        # The credentials go to the document's security schemes by name, not as plain -H headers: a
        # header the tool did not set, it cannot take away, so its requests "without the session"
        # would still carry it and the operator's operations would seem to accept them.
        config = tmp_path / "schemathesis.toml"
        config.write_text('[auth.openapi.session]\napi_key = "${STATION_SESSION}"\n\n'
                          '[auth.openapi.csrf]\napi_key = "${STATION_CSRF}"\n')
        run = subprocess.run(
            [st, "--config-file", str(config), "run", str(API_DOCUMENT), "--url", url.rstrip("/"),
             "--checks", "all", "--exclude-path-regex", "^/api/events$", "--generation-deterministic",
             "-n", "30", "--max-time", "60", "--request-timeout", "20", "--suppress-health-check", "all",
             "--no-color"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
            env={**os.environ, "STATION_SESSION": session, "STATION_CSRF": csrf})
    report = run.stdout[-20000:]
    assert run.returncode == 0, report + run.stderr[-5000:]
    assert re.search(r"\b\d+ passed\b", report), report
