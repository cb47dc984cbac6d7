"""The page's server (uvicorn on a thread of the daemon) serves, dates its answers as HTTP wants,
and stops when the daemon closes it, without waking ten times a second in between. It serves the
API's document as it is kept, and refuses in the JSON `{"detail": ...}` scripts read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pytest

from agent.core.config import WebConfig
from agent.core.listen import ListenAddress
from agent.ops.web import API_DOCUMENT, WebServer, create_app


@pytest.fixture
def bare_server() -> Iterator[WebServer]:
    """The server with no station behind it: only what answers without one may be asked."""
    server = WebServer(create_app(None, WebConfig(), "id"), ListenAddress("127.0.0.1", 0))  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.close()


def test_it_serves_with_a_date_header_and_close_ends_its_thread_and_its_port() -> None:
    server = WebServer(create_app(None, WebConfig(), "id"), ListenAddress("127.0.0.1", 0))  # type: ignore[arg-type]
    server.start()
    assert server.url is not None and server.url.startswith("http://127.0.0.1:")
    try:
        answer = httpx.get(server.url + "openapi.json", timeout=10)
        assert answer.status_code == 200
        assert parsedate_to_datetime(answer.headers["date"]).tzinfo is not None  # RFC 9110 date, refreshed by the tick
    finally:
        server.close()
    assert not server._thread.is_alive(), "close() returned with the server still running"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "openapi.json", timeout=5)


def test_openapi_json_is_the_kept_document(bare_server: WebServer) -> None:
    answer = httpx.get(f"{bare_server.url}openapi.json", timeout=10)
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == json.loads(API_DOCUMENT.read_text())


def test_refusals_are_json_with_their_status(bare_server: WebServer) -> None:
    unknown = httpx.get(f"{bare_server.url}api/nothing-here", timeout=10)
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not Found"})
    wrong_method = httpx.delete(f"{bare_server.url}api/status", timeout=10)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "GET")
    assert wrong_method.json() == {"detail": "Method Not Allowed"}
    assert httpx.head(f"{bare_server.url}api/status", timeout=10).status_code == 405, "no HEAD beside GET"
    not_signed_in = httpx.post(f"{bare_server.url}api/printers/p1/pause", timeout=10)
    assert (not_signed_in.status_code, not_signed_in.json()) == (
        403, {"detail": "sign in with the operator's PIN on the page first"})
