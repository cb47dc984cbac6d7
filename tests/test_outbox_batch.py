"""The outbox drains in batches (deliverOutbox): one request and one journal commit per batch,
each message with its own idempotency key and its own answer. The reference upstream on loopback
and a journal on disk are the real ones; upstream's outcomes.jsonl is the witness of what
arrived, and how often. An upstream without the batch endpoint gets one message at a time; an
agent killed between upstream's answer and its journal commit sends the batch again, and
upstream records each message once."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from agent.core.config import UpstreamConfig
from agent.journal import Journal, utcnow
from agent.upstream.client import UpstreamClient
from agent.upstream.sender import OutboxSender
from simulators.upstream.server import UpstreamConfig as ServerConfig, UpstreamServer
from tests.station_rig import StationRig, wait_until

STATION = "st-1"


class Counting(httpx.BaseTransport):
    """The real HTTP transport, keeping the method and path of every request."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def upstream(tmp_path: Path, *, batch: bool = True, jobs: int = 500) -> UpstreamServer:
    server = UpstreamServer(ServerConfig(state_dir=tmp_path / "upstream", jobs=jobs, max_wait_s=1.0,
                                         outbox_batch=batch))
    server.start()
    return server


def print_jobs(journal: Journal, job_ids: list[str]) -> None:
    """Each job leased, fed and printed: its outcome waits in the outbox, its payload in the journal."""
    now = utcnow()
    for job_id in job_ids:
        journal.add_leased(job_id, {"job_id": job_id, "subject": {"nik": "3174010101010001"}},
                           not_after=now + timedelta(days=1), lease_expires_at=now + timedelta(hours=1), priority=0)
        claimed = journal.claim_next("p1")
        assert claimed is not None and claimed.job_id == job_id
        journal.fed(claimed.job_id, claimed.attempt, "p1")
        journal.printed(claimed.job_id, claimed.attempt, 1)


def recorded(server: UpstreamServer) -> Counter[str]:
    """How many times upstream wrote each job's outcome to outcomes.jsonl (its durable record)."""
    path = server.config.state_dir / "outcomes.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["job_id"] for line in lines)


def sim_state(server: UpstreamServer) -> dict:
    return httpx.get(f"{server.url}/v1/_sim/state", headers={"Authorization": f"Bearer {server.token}"}).json()


@pytest.fixture
def sending() -> Iterator:
    """Start an OutboxSender thread on a journal and client; every one is stopped at the end."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(journal: Journal, client: UpstreamClient, **options: object) -> OutboxSender:
        sender = OutboxSender(journal, client, max_backoff_s=0.2, **options)  # type: ignore[arg-type]
        stop = threading.Event()
        thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        sender.journal.outbox_ready.set()
        return sender

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()


def client_for(server: UpstreamServer, transport: httpx.BaseTransport | None = None) -> UpstreamClient:
    return UpstreamClient(UpstreamConfig(url=server.url, token=server.token, authority_keys={}), STATION,
                          transport=transport)


def test_a_backlog_drains_in_batches_one_commit_each_and_upstream_records_every_outcome_once(tmp_path, sending):
    server = upstream(tmp_path)
    journal = Journal(tmp_path / "journal.db", STATION)
    transport = Counting()
    client = client_for(server, transport)
    try:
        jobs = [f"J-{i:06d}" for i in range(1, 451)]
        print_jobs(journal, jobs)
        journal.queue_report("telemetry", {"at": "2026-12-01T10:00:00.000Z", "alerts": []}, key="telemetry:1")
        assert journal.queue_local("notify-webhook", {"text": "jam"}, key="notify:1")
        commits: list[str] = []
        journal._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        sending(journal, client)
        wait_until(lambda: journal.outbox_backlog() == 0, 60, "the backlog delivered")
        journal._db.set_trace_callback(None)
        state = sim_state(server)
    finally:
        client.close()
        server.stop()
    assert recorded(server) == Counter({job_id: 1 for job_id in jobs}), "every outcome arrived, once"
    assert transport.requests == [("POST", f"/v1/stations/{STATION}/outbox")] * 3, "451 messages: 200, 200, 51"
    assert state["outbox_batches"] == 3 and state["outcome_posts"] == 450
    assert len(commits) == 3, "one journal commit per batch"
    assert state["telemetry"][STATION]["at"] == "2026-12-01T10:00:00.000Z"
    rows = journal._db.execute("SELECT kind, delivered_at, refused_at FROM outbox ORDER BY id").fetchall()
    assert [r[0] for r in rows if r[1] is None] == ["notify-webhook"], "a local kind never goes upstream"
    assert all(r[2] is None for r in rows)
    assert journal.privacy_report()["payloads_held"] == 0, "each acknowledged outcome's personal data purged"
    journal.close()


def test_a_message_refused_inside_a_batch_is_kept_and_marked_refused_the_others_delivered(tmp_path, sending):
    server = upstream(tmp_path, jobs=10)
    journal = Journal(tmp_path / "journal.db", STATION)
    client = client_for(server)
    try:
        # Upstream already holds another outcome of J-000002: the station's contradicts it (409).
        client.deliver("outcome", "J-000002", "elsewhere:J-000002:outcome",
                       {"station": "elsewhere", "status": "failed", "attempts": []})
        # J-777777 is no job of upstream's (404); the rest are.
        print_jobs(journal, ["J-000001", "J-000002", "J-777777", "J-000003", "J-000004"])
        sending(journal, client)
        wait_until(lambda: journal.outbox_backlog() == 0, 60, "the batch settled")
        state = sim_state(server)
    finally:
        client.close()
        server.stop()
    assert state["outbox_batches"] == 1
    assert recorded(server) == Counter({"J-000001": 1, "J-000002": 1, "J-000003": 1, "J-000004": 1})
    assert state["outcomes"]["J-000002"]["status"] == "failed", "the first outcome stands"
    rows = {job: (delivered, refused, error) for job, delivered, refused, error in journal._db.execute(
        "SELECT job_id, delivered_at, refused_at, last_error FROM outbox WHERE kind = 'outcome'")}
    assert {job for job, (delivered, _, _) in rows.items() if delivered} == {"J-000001", "J-000003", "J-000004"}
    assert rows["J-000002"][1] and "409" in rows["J-000002"][2] and "contradicts" in rows["J-000002"][2]
    assert rows["J-777777"][1] and "404" in rows["J-777777"][2]
    # Kept, with the personal data upstream never acknowledged.
    held = {job for (job,) in journal._db.execute("SELECT job_id FROM job_payloads")}
    assert held == {"J-000002", "J-777777"}
    journal.close()


def test_an_upstream_without_the_batch_endpoint_gets_one_message_at_a_time(tmp_path, sending):
    server = upstream(tmp_path, batch=False, jobs=30)
    journal = Journal(tmp_path / "journal.db", STATION)
    transport = Counting()
    client = client_for(server, transport)
    try:
        jobs = [f"J-{i:06d}" for i in range(1, 31)]
        print_jobs(journal, jobs)
        sending(journal, client)
        wait_until(lambda: journal.outbox_backlog() == 0, 60, "the backlog delivered one by one")
        state = sim_state(server)
    finally:
        client.close()
        server.stop()
    assert recorded(server) == Counter({job_id: 1 for job_id in jobs})
    batch_posts = [r for r in transport.requests if r[1].endswith("/outbox")]
    assert len(batch_posts) == 1, "a 404 on the batch endpoint is remembered, not asked again for each message"
    assert [r for r in transport.requests if r[0] == "PUT"] == [("PUT", f"/v1/jobs/{j}/outcome") for j in jobs], \
        "in order, each on its own endpoint"
    assert state["outbox_batches"] == 0 and state["outcome_posts"] == 30
    assert journal.privacy_report()["payloads_held"] == 0
    journal.close()


def test_agent_killed_after_upstream_recorded_a_batch_before_its_journal_commit_sends_it_again_once(pcscd, tmp_path):
    """An outage queues the outcomes; the agent comes back with upstream, sends them in one batch
    and is killed once upstream has recorded it and before the journal does; started again, it
    sends them again: upstream records each once (the replays are recognised by their keys)."""
    jobs = 6
    settings = {"prefetch": 1, "outage_hours": 1.5, "cards_per_hour": 4}
    with StationRig(tmp_path, jobs=jobs, blanks=jobs + 4, upstream=settings) as rig:
        rig.start()
        rig.start_agent()
        wait_until(lambda: rig.journal_path.exists() and rig.journal_query("SELECT COUNT(*) FROM jobs")[0][0] == jobs,
                   60, "the agent to hold its outage cover")
        port = rig.upstream_port
        rig.stop_upstream()
        wait_until(lambda: rig.output_count() >= jobs, 120, "the held jobs printed while upstream is down")
        waiting_sql = "SELECT job_id FROM outbox WHERE delivered_at IS NULL AND kind = 'outcome'"
        wait_until(lambda: len(rig.journal_query(waiting_sql)) + len(recorded_jobs(rig)) >= jobs, 60,
                   "every result waiting in the outbox")
        rig.stop_agent()
        waiting = {job for (job,) in rig.journal_query(waiting_sql)}
        assert len(waiting) >= jobs - 1, "the outage left the results in the outbox"
        rig.start_upstream(port)
        rig.agent_killed_at("after-batch-before-journal:1")
        # Upstream has the batch on disk; the journal still has every one of them waiting.
        assert waiting <= set(recorded_jobs(rig)), "upstream recorded the whole backlog in the first batch"
        assert {job for (job,) in rig.journal_query(waiting_sql)} == waiting, "the kill came before the commit"
        rig.start_agent()
        wait_until(lambda: not rig.journal_query(waiting_sql), 60, "the journal to record the outcomes delivered")
        state = rig.upstream_state()
        rig.stop_agent()
        figures = rig.figures()
        records = recorded_jobs(rig)
        refused = rig.journal_query("SELECT COUNT(*) FROM outbox WHERE refused_at IS NOT NULL")[0][0]
        payloads = rig.journal_query("SELECT COUNT(*) FROM job_payloads")[0][0]
    assert figures.clean and figures.kills == 1, figures
    assert records == Counter({f"J-{i:06d}": 1 for i in range(1, jobs + 1)}), "each outcome recorded exactly once"
    assert {o["status"] for o in state["outcomes"].values()} == {"printed"}
    assert state["outcome_posts"] >= 2 * len(waiting), "the killed batch was sent again and taken as replays"
    assert state["outbox_batches"] >= 2
    assert refused == 0 and payloads == 0


def recorded_jobs(rig: StationRig) -> Counter[str]:
    path = rig.up_dir / "outcomes.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["job_id"] for line in lines)
