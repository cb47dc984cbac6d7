"""`printstation upstream-sim report`: the centre's per-station view, from the reference server's state folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from simulators.upstream.server import UpstreamConfig, UpstreamServer

RUN_OUT = {"remaining": 40, "per_print_hour": 12.0, "days": 1.5, "date": "2026-06-04"}
REPORT = {
    "at": "2026-06-03T05:00:00.000Z",
    "printers": [{"name": "p1", "state": "stopped", "reasons": ["cover-open-error", "media-low-warning"],
                  "blanks": {"remaining": 40, "lots": [{"lot": "LOT-1", "loaded": 500, "remaining": 40}]},
                  "ribbon": {"cards_left": None}, "forecast": {"blanks": RUN_OUT, "ribbon": None}}],
    "forecast": {"blanks": RUN_OUT},
    "alerts": [{"kind": "blanks-low", "severity": "warning", "printer": "p1", "message": "40 blanks left"}],
}


def _report(state_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "upstream-sim", "report", "--state-dir", str(state_dir), *extra],
                          capture_output=True, text=True, timeout=60)


def test_the_report_shows_each_stations_last_stock_forecast_and_alerts(tmp_path):
    server = UpstreamServer(UpstreamConfig(state_dir=tmp_path, jobs=1))
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10) as http:
            assert http.post("/v1/stations/st-7/telemetry", json=REPORT, headers={"Idempotency-Key": "st-7:t:1"}).status_code == 200
            held = {"at": "2026-06-03T05:01:00.000Z", "alerts": [{"kind": "job-held", "job_id": "J-000001"}]}
            assert http.post("/v1/stations/st-7/telemetry", json=held, headers={"Idempotency-Key": "st-7:t:2"}).status_code == 200
            outcome = {"station": "st-7", "status": "rejected", "reason": "bad-signature", "attempts": []}
            assert http.put("/v1/jobs/J-000001/outcome", json=outcome, headers={"Idempotency-Key": "k1"}).status_code == 200
    finally:
        server.stop()
    as_json = _report(tmp_path, "--json")
    assert as_json.returncode == 0, as_json.stderr
    view = json.loads(as_json.stdout)["stations"]["st-7"]
    assert view["printers"][0]["blanks"]["remaining"] == 40, "an alert-only report keeps the last stock view"
    assert view["recent_alerts"][-1]["alerts"][0]["kind"] == "job-held"
    assert view["rejections"] == {"bad-signature": 1}
    text = _report(tmp_path)
    assert text.returncode == 0, text.stderr
    assert "st-7" in text.stdout and "2026-06-04" in text.stdout and "blanks-low" in text.stdout


def test_a_report_before_any_station_reported_says_so(tmp_path):
    text = _report(tmp_path)
    assert text.returncode == 0 and "No station has reported" in text.stdout
