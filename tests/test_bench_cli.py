"""`printstation bench` as others script against it: `--json` leaves one JSON object on stdout and
nothing else (the table and any log lines go to stderr), `--only` takes the figures named and
refuses an unknown one by name."""

from __future__ import annotations

import json
import subprocess
import sys


def bench(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", "bench", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_json_leaves_stdout_one_object_even_from_a_figure_taken_in_process(pcscd, tmp_path):
    # The outbox drain runs the outbox sender in the bench's own process: its log lines once went
    # to stdout, ahead of the JSON.
    run = bench("--quick", "--only", "outbox_drain", "--json", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 1, f"stdout holds more than the JSON object: {lines[:3]}"
    figures = json.loads(lines[0])
    assert set(figures) == {"outbox_drain_per_s"}
    assert figures["outbox_drain_per_s"] > 0
    assert "outbox_drain_per_s" in run.stderr, "the table is for people, on stderr"


def test_only_refuses_an_unknown_figure_by_name(tmp_path):
    run = bench("--only", "utilisation,utilization", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert "no figure utilization" in run.stderr
    assert "utilisation_speed50" in run.stderr, "the message lists the figures there are"


def _status_server(states_by_request):
    """A loopback stand-in for the daemon's GET /api/status: the Nth request sees the Nth states.

    What it answers is held to the station's API document (agent/ops/station-api.openapi.json,
    which schemathesis checks the running daemon against): the path, the members the bench reads
    and every state it uses must be there, so the stand-in cannot drift from the daemon unseen."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    import agent.ops

    document = json.loads((Path(agent.ops.__file__).parent / "station-api.openapi.json").read_text())
    schemas = document["components"]["schemas"]
    assert "get" in document["paths"]["/api/status"]
    assert "printers" in schemas["StationStatus"]["required"] and "state" in schemas["PrinterStatus"]["required"]
    documented_states = set(schemas["PrinterState"]["enum"])
    assert {s for states in states_by_request for s in states} <= documented_states, documented_states
    seen = []

    class Status(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.path)
            states = states_by_request[min(len(seen), len(states_by_request)) - 1]
            body = json.dumps({"printers": [{"name": f"p{i}", "state": s} for i, s in enumerate(states, 1)]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def test_memory_is_read_once_the_station_says_every_printer_is_idle():
    # The RSS figure is read at a state the station reports, not at whatever moment upstream
    # happened to hold the last outcome (a worker gives freed memory back when it goes idle).
    from agent.tools.bench import _wait_until_printers_idle

    server, seen = _status_server([["processing", "idle"], ["idle", "processing"], ["idle", "idle"]])
    try:
        _wait_until_printers_idle(f"http://127.0.0.1:{server.server_address[1]}/", timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/api/status"] * 3, "it asked until both printers were idle, and no longer"


def test_a_station_that_never_goes_idle_is_named_not_waited_on_for_ever():
    import pytest

    from agent.tools.bench import _wait_until_printers_idle
    from agent.tools.demo import DemoError

    server, _seen = _status_server([["idle", "stopped"]])
    try:
        with pytest.raises(DemoError, match=r"not all idle.*'stopped'"):
            _wait_until_printers_idle(f"http://127.0.0.1:{server.server_address[1]}/", timeout=1)
    finally:
        server.shutdown()
        server.server_close()


def test_a_status_that_does_not_answer_is_named():
    import pytest

    from agent.tools.bench import _wait_until_printers_idle
    from agent.tools.demo import DemoError

    server, _seen = _status_server([["idle"]])
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()  # nothing listens there any more
    with pytest.raises(DemoError, match="did not answer as documented"):
        _wait_until_printers_idle(url, timeout=5)


def _web_ready_line(*, json_output: bool) -> str:
    """The line the agent writes when its page is up, rendered by the agent's own log set-up."""
    code = ("from agent.core import logs; logs.configure(json_output=%r); import structlog; "
            "structlog.get_logger().info('web-ready', url='http://127.0.0.1:8123/')" % json_output)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return run.stderr


def test_the_page_is_found_in_either_form_of_the_agents_log():
    # The bench runs the agent with --log-json; the page was once looked for only in the console
    # form, so the bench never saw it there.
    from agent.tools.demo import page_url_in_log

    for json_output in (True, False):
        text = "starting\n" + _web_ready_line(json_output=json_output) + "more\n"
        assert page_url_in_log(text) == "http://127.0.0.1:8123/", (json_output, text)
    assert page_url_in_log('{"event": "web-unavailable", "listen": "web-ready"}\n') is None


def test_a_small_batch_reads_memory_at_idle_through_the_agents_own_page(pcscd, tmp_path, monkeypatch):
    # The whole bench path as a whole run takes it: the agent under --log-json, the page found in
    # its log, every printer idle on the station's status, then resident memory.
    from agent.tools import bench
    from agent.tools.demo import page_url_in_log

    waited_on = []
    real_wait = bench._wait_until_printers_idle

    def recorded_wait(page_url: str, timeout: float = 60.0) -> None:
        waited_on.append(page_url)
        real_wait(page_url, timeout)  # the real wait, against the running agent

    monkeypatch.setattr(bench, "_wait_until_printers_idle", recorded_wait)
    figures = bench.batch(tmp_path / "state", cards=2, printers=1, speed=100000)
    assert figures.cards == 2, "the simulator's card log holds both cards"
    assert figures.rss_mb > 0 and figures.agent_cpu_s > 0
    announced = page_url_in_log((tmp_path / "state" / "agent.log").read_text())
    assert announced and waited_on == [announced], "memory was read after waiting on the agent's own page"
