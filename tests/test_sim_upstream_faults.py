"""The reference upstream told to fail (POST /v1/_sim/faults), for other tests: 5xx, slow, reset, none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulators.upstream.server import UpstreamConfig, UpstreamServer


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    server = UpstreamServer(UpstreamConfig(state_dir=tmp_path, jobs=2))
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10) as c:
            yield c
    finally:
        server.stop()


def _lease(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/stations/s1/leases", json={"max": 1, "wait_s": 0})


def _fault(client: httpx.Client, **body) -> None:
    assert client.post("/v1/_sim/faults", json=body).status_code == 200


def test_5xx_mode_answers_503_until_told_none_while_sim_paths_keep_working(client):
    _fault(client, mode="5xx", for_s=60)
    response = _lease(client)
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    assert client.get("/v1/_sim/state").status_code == 200
    _fault(client, mode="none")
    assert _lease(client).status_code == 200


def test_a_fault_ends_by_itself_after_for_s(client):
    _fault(client, mode="5xx", for_s=0)
    assert _lease(client).status_code == 200


def test_reset_mode_drops_the_connection_without_an_answer(client):
    _fault(client, mode="reset", for_s=60)
    with pytest.raises(httpx.TransportError):
        _lease(client)
    _fault(client, mode="none")
    assert _lease(client).status_code == 200


def test_slow_mode_still_answers(client):
    _fault(client, mode="slow", for_s=60, delay_s=0.2)
    assert _lease(client).status_code == 200


def test_an_unknown_mode_is_refused(client):
    response = client.post("/v1/_sim/faults", json={"mode": "explode", "for_s": 1})
    assert response.status_code == 400
