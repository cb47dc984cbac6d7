"""A hostile or broken upstream, written here from scratch (raw HTTP over a loopback socket), must
not stop or starve the station: JSON nested 100,000 deep, an answer trickled a byte at a time, an
outcome "acknowledged" with HTML or a redirect, a lease answer without its expiry. The station's
real client, intake and outbox sender meet it with a real journal on disk; what the server
received is the witness."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from agent.core.config import UpstreamConfig
from agent.upstream.intake import Intake
from agent.upstream.signature import AuthorityKeys
from agent.journal import Journal
from agent.upstream.sender import OutboxSender
from agent.upstream.client import UpstreamClient, UpstreamOffContract, UpstreamUnavailable, json_depth

Answer = Callable[[socket.socket, str, str, bytes], None]


def send(conn: socket.socket, status: str, body: bytes, content_type: str = "application/json",
         extra: str = "") -> None:
    conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                 f"{extra}Connection: close\r\n\r\n".encode() + body)


class HostileUpstream:
    """One request a connection; `script(method, path, body)` picks the answer. Records every request."""

    def __init__(self, script: Callable[[str, str, bytes], Answer]) -> None:
        self.script = script
        self.requests: list[dict] = []
        self.changed = threading.Condition()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                body += conn.recv(65536)
            with self.changed:
                self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
                self.changed.notify_all()
            try:
                self.script(method, path, body)(conn, method, path, body)
            except OSError:
                pass  # the station hung up: what the trickle test wants to see
            with self.changed:
                self.changed.notify_all()

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Wait on state (what the server received, what the journal holds), looking again each 50 ms."""
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"{what}; requests: {[r['path'] for r in self.requests]}"
            with self.changed:
                self.changed.wait(0.05)

    def stop(self) -> None:
        self.stopping = True
        self.sock.close()


@pytest.fixture
def served():
    servers: list[HostileUpstream] = []

    def start(script: Callable[[str, str, bytes], Answer]) -> HostileUpstream:
        server = HostileUpstream(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def client_for(server: HostileUpstream, **extra) -> UpstreamClient:
    return UpstreamClient(UpstreamConfig(url=server.url, token="t", authority_keys={}, timeout_s=5, wait_s=0, **extra),
                          "st-1")


def later(iso_offset_s: float = 600) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=iso_offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_depth_counts_objects_and_arrays_not_brackets_in_strings():
    assert json_depth(json.loads(b'{"a": "[[[[{{{{", "b": [[1]], "c": "\\\\", "d": "\\"[["}')) == 3
    assert json_depth(json.loads(b"[" * 40 + b"]" * 40)) > 32
    assert json_depth("[[[[") == 0 and json_depth({}) == 1


def test_a_lease_answer_nested_100000_deep_is_refused_not_a_crash(served):
    deep = b'{"jobs": ' + b"[" * 100_000 + b"]" * 100_000 + b', "lease_expires_at": "2030-01-01T00:00:00Z"}'
    server = served(lambda m, p, b: lambda conn, *_: send(conn, "200 OK", deep))
    client = client_for(server)
    with pytest.raises(UpstreamOffContract, match="nests deeper"):
        client.lease(5, 0)
    client.close()


def test_an_answer_trickled_a_byte_at_a_time_is_abandoned_at_the_exchange_deadline(served):
    body = json.dumps({"jobs": [], "lease_expires_at": later()}).encode()
    hung_up = threading.Event()

    def trickle(conn: socket.socket, *_):
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        try:
            for byte in body:  # a byte every 0.4 s: each read is quick, the whole is not
                conn.sendall(bytes([byte]))
                if hung_up.wait(0.4):
                    return
        except OSError:
            hung_up.set()

    server = served(lambda m, p, b: trickle)
    client = client_for(server, exchange_deadline_s=2.0)
    with pytest.raises(UpstreamUnavailable, match="longer than 2 s"):
        client.lease(5, 0)
    hung_up.set()
    client.close()


def _bad_answer(bad: str) -> Answer:
    if bad == "html":
        return lambda conn, *_: send(conn, "200 OK", b"<html><body>Welcome to the portal</body></html>",
                                     content_type="text/html")
    return lambda conn, *_: send(conn, "307 Temporary Redirect", b"", extra="Location: http://10.9.9.9/login\r\n")


def _batch_answer(body: bytes) -> Answer:
    results = [{"idempotency_key": m["idempotency_key"], "status": 200, "answer": {"accepted": True}}
               for m in json.loads(body)["messages"]]
    return lambda conn, *_: send(conn, "200 OK", json.dumps({"results": results}).encode())


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "one-by-one"])
@pytest.mark.parametrize("bad", ["html", "redirect"])
def test_an_outcome_acknowledged_outside_the_contract_stays_queued_and_is_sent_again(served, tmp_path, bad, batch):
    """`batch`: upstream takes the outbox in batches (and answers them badly at first); otherwise it
    has no batch endpoint (404) and the outcome goes on its own endpoint."""
    sent: list[dict] = []  # every outcome as sent, with its key

    def script(method: str, path: str, body: bytes) -> Answer:
        if path.endswith("/outbox") and not batch:
            return lambda conn, *_: send(conn, "404 Not Found", b'{"error": "not-found", "message": "no such endpoint"}')
        if path.endswith("/outbox"):
            outcomes = [m for m in json.loads(body)["messages"] if m["kind"] == "outcome"]
            sent.extend({"key": m["idempotency_key"], "body": m["body"]} for m in outcomes)
            return _bad_answer(bad) if outcomes and len(sent) <= 2 else _batch_answer(body)
        if method == "PUT" and path.endswith("/outcome"):
            sent.append({"key": None, "body": json.loads(body)})  # its key: from the request's headers, below
            if len(sent) <= 2:
                return _bad_answer(bad)
            return lambda conn, *_: send(conn, "200 OK", json.dumps({"job_id": "J1", "status": "printed"}).encode())
        return lambda conn, *_: send(conn, "200 OK", b"{}")  # telemetry, the alert

    server = served(script)
    journal = Journal(tmp_path / "journal.db", "st-1")
    journal.add_leased("J1", {"job_id": "J1", "subject": {"nik": "3174010101010001"}},
                       not_after=datetime.now(timezone.utc) + timedelta(days=1),
                       lease_expires_at=datetime.now(timezone.utc) + timedelta(hours=1), priority=0)
    c = journal.claim_next("p1")
    journal.fed(c.job_id, c.attempt, "p1")
    journal.printed(c.job_id, c.attempt, 1)
    client = client_for(server)
    stop = threading.Event()
    sender = threading.Thread(target=OutboxSender(journal, client, max_backoff_s=0.2).run, args=(stop,), daemon=True)
    sender.start()
    try:
        server.wait_for(lambda: len(sent) >= 3 and journal.outbox_backlog() == 0, "the outcome was not sent again")
        server.wait_for(lambda: any(b"upstream-off-contract" in r["body"] for r in server.requests),
                        "no alert reached upstream")
    finally:
        stop.set()
        journal.outbox_ready.set()
        sender.join(timeout=30)
    keys = {s["key"] for s in sent if s["key"]} | {r["headers"]["idempotency-key"] for r in server.requests
                                                     if r["method"] == "PUT"}
    assert keys == {"st-1:J1:outcome"}, "the same message, with the same idempotency key, every time"
    assert {s["body"]["status"] for s in sent} == {"printed"}
    assert any(r["method"] == "PUT" for r in server.requests) is not batch
    assert journal.privacy_report()["payloads_held"] == 0, "purged once upstream truly has it"
    assert journal._db.execute("SELECT COUNT(*) FROM outbox WHERE refused_at IS NOT NULL").fetchone()[0] == 0
    client.close()
    journal.close()


def test_jobs_in_a_lease_answer_without_its_expiry_are_handed_back_not_dropped(served, tmp_path):
    def script(method: str, path: str, body: bytes) -> Answer:
        if path.endswith("/leases") and method == "POST":
            jobs = [{"job_id": "J-A"}, {"job_id": "J-B"}]
            return lambda conn, *_: send(conn, "200 OK", json.dumps({"jobs": jobs}).encode())
        if path.endswith("/leases/release"):
            ids = json.loads(body)["job_ids"]
            return lambda conn, *_: send(conn, "200 OK", json.dumps({"released": ids}).encode())
        if path.endswith("/leases") and method == "GET":
            return lambda conn, *_: send(conn, "200 OK", json.dumps({"jobs": []}).encode())
        return lambda conn, *_: send(conn, "404 Not Found", b'{"error": "not-found", "message": "no"}')

    server = served(script)
    journal = Journal(tmp_path / "journal.db", "st-1")
    client = client_for(server)
    stop = threading.Event()
    intake = Intake(journal, client, AuthorityKeys({}), prefetch=2, lease_max=2, wait_s=0, work=threading.Condition(),
                    retry_max_s=0.5)
    thread = threading.Thread(target=intake.run, args=(stop,), daemon=True)
    thread.start()
    try:
        server.wait_for(lambda: any(r["path"].endswith("/leases/release") for r in server.requests),
                        "the jobs of a lease answer without lease_expires_at were never handed back")
    finally:
        stop.set()
        thread.join(timeout=30)
    release = next(json.loads(r["body"]) for r in server.requests if r["path"].endswith("/leases/release"))
    assert sorted(release["job_ids"]) == ["J-A", "J-B"]
    assert not journal.knows("J-A") and not journal.knows("J-B")
    assert not thread.is_alive()
    client.close()
    journal.close()
