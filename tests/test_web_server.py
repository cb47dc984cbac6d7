"""The page's server (uvicorn on a thread of the daemon) serves, dates its answers as HTTP wants,
and stops when the daemon closes it, without waking ten times a second in between."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import httpx
import pytest

from agent.core.config import WebConfig
from agent.core.listen import ListenAddress
from agent.ops.web import WebServer, create_app


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
