"""The reference upstream server over real loopback HTTP: leases, outcomes, auth, errors, stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from simulators.upstream.server import MAX_BODY_BYTES, UpstreamConfig, UpstreamServer
from tests.station_rig import wait_until

REPO = Path(__file__).resolve().parent.parent


def _start(state_dir: Path, **overrides) -> UpstreamServer:
    config = UpstreamConfig(state_dir=state_dir, jobs=overrides.pop("jobs", 4), **overrides)
    server = UpstreamServer(config)
    server.start()
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UpstreamServer]:
    server = _start(tmp_path, lease_s=1.0, max_wait_s=5.0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(server: UpstreamServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10) as c:
        yield c


def _lease(client: httpx.Client, station: str, max_jobs: int = 10, wait_s: float = 0) -> list[str]:
    response = client.post(f"/v1/stations/{station}/leases", json={"max": max_jobs, "wait_s": wait_s})
    assert response.status_code == 200, response.text
    return [job["job_id"] for job in response.json()["jobs"]]


def _outcome(client: httpx.Client, job_id: str, status: str = "printed", key: str | None = None) -> httpx.Response:
    body = {
        "station": "s1",
        "status": status,
        "attempts": [{"blank_serial": "BLK-p1-000001", "result": "printed" if status == "printed" else "spoiled"}],
        "printed_at": "2026-11-29T10:00:00Z",
    }
    return client.put(f"/v1/jobs/{job_id}/outcome", json=body, headers={"Idempotency-Key": key or f"s1:{job_id}:outcome"})


def _state(client: httpx.Client) -> dict:
    response = client.get("/v1/_sim/state")
    assert response.status_code == 200
    return response.json()


def test_lease_hands_out_at_most_max_jobs_in_order(client: httpx.Client) -> None:
    response = client.post("/v1/stations/s1/leases", json={"max": 2, "wait_s": 0})
    body = response.json()
    assert [job["job_id"] for job in body["jobs"]] == ["J-000001", "J-000002"]
    assert body["lease_expires_at"].endswith("Z")
    assert all(job["signature"]["alg"] == "EdDSA" for job in body["jobs"])
    assert _state(client)["leased"] == 2


def test_a_leased_job_is_not_leased_to_another_station(client: httpx.Client) -> None:
    assert _lease(client, "s1", max_jobs=3) == ["J-000001", "J-000002", "J-000003"]
    assert _lease(client, "s2") == ["J-000004"]
    assert _lease(client, "s3") == []


def test_long_poll_waits_for_wait_s_then_answers_empty(client: httpx.Client) -> None:
    _lease(client, "s1")
    started = time.monotonic()
    assert _lease(client, "s2", wait_s=0.3) == []
    assert 0.3 <= time.monotonic() - started < 5.0  # it waited wait_s, and not the default 25 s


def test_expired_lease_frees_the_job_for_a_waiting_station(client: httpx.Client) -> None:
    started = time.monotonic()
    _lease(client, "s1")
    # s2 waits longer than the 1 s lease: the long poll must wake when the leases run out.
    assert _lease(client, "s2", max_jobs=10, wait_s=4) == ["J-000001", "J-000002", "J-000003", "J-000004"]
    assert 1.0 <= time.monotonic() - started < 3.5  # woken by the expiry (1 s), not at wait_s (4 s)


def test_release_wakes_a_waiting_long_poll_with_the_released_job(client: httpx.Client) -> None:
    _lease(client, "s1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(_lease, client, "s2", 10, 4)
        time.sleep(0.2)
        response = client.post("/v1/stations/s1/leases/release", json={"job_ids": ["J-000003"], "reason": "printer jammed"})
        # Only J-000003: a poll woken by the leases running out would get all four.
        assert waiting.result(timeout=5) == ["J-000003"]
    assert response.json() == {"released": ["J-000003"], "not_held": []}
    assert _state(client)["releases"] == [{"job_id": "J-000003", "station": "s1", "reason": "printer jammed"}]


def test_release_of_a_job_held_by_another_station_changes_nothing(client: httpx.Client) -> None:
    _lease(client, "s1", max_jobs=1)
    response = client.post("/v1/stations/s2/leases/release", json={"job_ids": ["J-000001"], "reason": "not mine"})
    assert response.json() == {"released": [], "not_held": ["J-000001"]}
    assert "J-000001" not in _lease(client, "s2")


def test_renew_keeps_the_lease_past_its_first_expiry(client: httpx.Client) -> None:
    _lease(client, "s1", max_jobs=1)
    time.sleep(0.6)
    renewed = client.post("/v1/stations/s1/leases/renew", json={"job_ids": ["J-000001"]}).json()
    assert renewed["renewed"] == ["J-000001"] and renewed["lost"] == []
    time.sleep(0.6)  # past the first lease's end, within the renewed one
    assert "J-000001" not in _lease(client, "s2")


def test_renew_reports_leases_it_cannot_extend_with_the_reason(client: httpx.Client) -> None:
    _lease(client, "s1", max_jobs=1)
    _lease(client, "s2", max_jobs=1)
    assert _outcome(client, "J-000002").status_code == 200
    response = client.post("/v1/stations/s1/leases/renew", json={"job_ids": ["J-000001", "J-000002", "J-000003", "J-999999"]})
    assert response.json()["lost"] == [
        {"job_id": "J-000002", "reason": "outcome-recorded"},
        {"job_id": "J-000003", "reason": "not-leased"},
        {"job_id": "J-999999", "reason": "unknown-job"},
    ]
    time.sleep(1.1)
    response = client.post("/v1/stations/s1/leases/renew", json={"job_ids": ["J-000001"]})
    assert response.json()["lost"] == [{"job_id": "J-000001", "reason": "lease-expired"}]


def test_outcome_replay_returns_the_first_answer(server: UpstreamServer, client: httpx.Client) -> None:
    first = _outcome(client, "J-000001")
    again = _outcome(client, "J-000001")
    assert first.json() == {"accepted": True, "replay": False}
    assert again.status_code == 200
    assert again.json() == {"accepted": True, "replay": True}
    state = _state(client)
    assert state["outcome_posts"] == 2
    assert state["outcomes"]["J-000001"]["status"] == "printed"
    lines = (server.config.state_dir / "outcomes.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_a_different_outcome_for_a_finished_job_is_409(client: httpx.Client) -> None:
    assert _outcome(client, "J-000001", "printed").status_code == 200
    response = _outcome(client, "J-000001", "failed", key="s1:J-000001:outcome-2")
    assert response.status_code == 409
    assert response.json()["error"] == "outcome-conflict"
    assert "printed" in response.json()["message"]
    assert _state(client)["outcomes"]["J-000001"]["status"] == "printed"


def test_an_idempotency_key_reused_for_another_job_is_409(client: httpx.Client) -> None:
    assert _outcome(client, "J-000001", key="k-1").status_code == 200
    response = _outcome(client, "J-000002", key="k-1")
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency-key-reused"


def test_a_job_with_an_outcome_is_never_leased_again(client: httpx.Client) -> None:
    _outcome(client, "J-000001", "failed")
    assert "J-000001" not in _lease(client, "s1")


def test_outcome_for_an_unknown_job_is_404(client: httpx.Client) -> None:
    response = _outcome(client, "J-999999")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown-job"


def test_outcome_without_an_idempotency_key_is_400(client: httpx.Client) -> None:
    response = client.put("/v1/jobs/J-000001/outcome", json={"station": "s1", "status": "printed", "attempts": []})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["message"]


def test_requests_without_the_token_are_401(server: UpstreamServer) -> None:
    with httpx.Client(base_url=server.url, timeout=5) as anonymous:
        response = anonymous.post("/v1/stations/s1/leases", json={"max": 1})
        wrong = anonymous.get("/v1/_sim/state", headers={"Authorization": "Bearer not-the-token"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert wrong.status_code == 401


def test_malformed_json_is_400_with_plain_words(client: httpx.Client) -> None:
    response = client.post("/v1/stations/s1/leases", content=b'{"max": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad-request"
    assert "JSON" in response.json()["message"]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/stations/s1/leases", {"max": 0}),
        ("/v1/stations/s1/leases", {"max": 1, "wait_s": "soon"}),
        ("/v1/stations/s1/leases/renew", {"job_ids": "J-000001"}),
        ("/v1/stations/s1/leases/release", {"job_ids": ["J-000001"]}),
        ("/v1/stations/s1/leases", [1, 2]),
    ],
)
def test_wrong_fields_are_400(client: httpx.Client, path: str, body: object) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "bad-request"


def test_an_outcome_with_a_wrong_status_is_400(client: httpx.Client) -> None:
    response = client.put(
        "/v1/jobs/J-000001/outcome",
        json={"station": "s1", "status": "done", "attempts": []},
        headers={"Idempotency-Key": "s1:J-000001:outcome"},
    )
    assert response.status_code == 400
    assert _state(client)["outcomes"] == {}


def test_a_body_over_the_limit_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/stations/s1/telemetry", content=b"x" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "body-too-large"


def test_telemetry_keeps_the_last_body_per_station(client: httpx.Client) -> None:
    for n in (1, 2):
        response = client.post("/v1/stations/s1/telemetry", json={"at": f"2026-12-02T0{n}:00:00Z", "printers": []},
                               headers={"Idempotency-Key": f"s1:telemetry:{n}"})
        assert response.status_code == 200
    assert _state(client)["telemetry"] == {"s1": {"at": "2026-12-02T02:00:00Z", "printers": []}}


def test_a_replayed_telemetry_report_changes_nothing(client: httpx.Client) -> None:
    key = {"Idempotency-Key": "s1:telemetry:1"}
    assert client.post("/v1/stations/s1/telemetry", json={"at": "2026-12-02T01:00:00Z"}, headers=key).json()["replay"] is False
    assert client.post("/v1/stations/s1/telemetry", json={"at": "2026-12-02T02:00:00Z"}, headers=key).json()["replay"] is True
    state = _state(client)
    assert state["telemetry"]["s1"] == {"at": "2026-12-02T01:00:00Z"} and state["stations"]["s1"]["reports"] == 1


def test_telemetry_without_an_idempotency_key_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/stations/s1/telemetry", json={"at": "2026-12-02T01:00:00Z"})
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["message"]


def test_upstream_json_tells_the_demo_how_to_reach_the_server(server: UpstreamServer) -> None:
    info = json.loads((server.config.state_dir / "upstream.json").read_text())
    assert info["url"] == server.url and info["url"].startswith("http://127.0.0.1:")
    assert info["token"] == server.token
    assert Path(info["authority_keys"]["authority-1"]).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert Path(info["trust_anchors"][0]).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_restarted_server_keeps_outcomes_token_and_jobs(tmp_path: Path) -> None:
    server = _start(tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as c:
            before = c.post("/v1/stations/s1/leases", json={"max": 2}).json()["jobs"]
            assert _outcome(c, "J-000001").status_code == 200
    finally:
        server.stop()
    again = _start(tmp_path)
    try:
        assert again.token == server.token
        with httpx.Client(base_url=again.url, headers={"Authorization": f"Bearer {again.token}"}) as c:
            assert _state(c)["outcomes"]["J-000001"]["status"] == "printed"
            assert _outcome(c, "J-000001").json() == {"accepted": True, "replay": True}
            after = c.post("/v1/stations/s1/leases", json={"max": 1}).json()["jobs"]
    finally:
        again.stop()
    # J-000001 is finished; J-000002 comes back with the same holder and card.
    assert after[0]["job_id"] == "J-000002"
    assert after[0]["subject"] == before[1]["subject"]
    assert after[0]["card"] == before[1]["card"]


def test_stop_answers_a_waiting_long_poll_and_ends_every_thread(tmp_path: Path) -> None:
    threads_before = threading.active_count()
    server = _start(tmp_path, jobs=1, max_wait_s=30.0)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10) as c:
        _lease(c, "s1")
        # An idle keep-alive connection must not hold stop() up either.
        _state(c)
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(_lease, c, "s2", 1, 30)
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as other:
                wait_until(lambda: _state(other)["polls_waiting"] == 1, 10, "the second lease in its long poll")
            started = time.monotonic()
            server.stop()
            assert waiting.result(timeout=5) == []
        assert time.monotonic() - started < 10.0  # not held up by the 30 s long poll
    assert threading.active_count() == threads_before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v1/_sim/state", timeout=2)


def test_cli_serves_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.upstream.server", "--state-dir", str(tmp_path), "--listen", "127.0.0.1:0",
         "--jobs", "2", "--token", "t0ken"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info_path = tmp_path / "upstream.json"
        deadline = time.monotonic() + 15
        while not info_path.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        info = json.loads(info_path.read_text())
        assert info["token"] == "t0ken"
        response = httpx.get(f"{info['url']}/v1/_sim/state", headers={"Authorization": "Bearer t0ken"}, timeout=5)
        assert response.json()["jobs"] == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
