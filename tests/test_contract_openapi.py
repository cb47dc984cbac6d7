"""Both sides of the upstream link against docs/upstream.openapi.yaml: every request the agent's
client (and its outbox) sends, and every answer the reference server gives, fits the document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from agent.core.config import StockConfig, UpstreamConfig
from agent.journal import Journal, utcnow
from agent.core.printer_snapshot import PrinterSnapshot
from agent.upstream.telemetry import TelemetryReporter
from agent.upstream.client import UpstreamClient, UpstreamRefused
from simulators.upstream import server as upstream_module
from simulators.upstream.server import UpstreamConfig as ServerConfig, UpstreamServer

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "upstream.openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
_REGISTRY = Registry().with_resource("urn:upstream", Resource.from_contents(SPEC, default_specification=DRAFT202012))


def _absolute(schema: Any) -> Any:
    """The schema with its "#/components/..." references pointed into the document."""
    if isinstance(schema, dict):
        return {k: ("urn:upstream" + v if k == "$ref" and v.startswith("#") else _absolute(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_absolute(v) for v in schema]
    return schema


def validate(schema: dict, instance: Any) -> None:
    """Validate `instance` against a schema of the document (its $refs resolve inside the document)."""
    jsonschema.Draft202012Validator(_absolute(schema), registry=_REGISTRY).validate(instance)


def operation(method: str, path: str) -> tuple[dict, dict[str, str]]:
    """The document's operation for a concrete request path, and the path parameters."""
    for template, item in SPEC["paths"].items():
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        match = re.fullmatch(pattern, path)
        if match and method.lower() in item:
            return item[method.lower()], match.groupdict()
    raise AssertionError(f"{method} {path} is not in the contract")


def _parameter(ref_or_param: dict) -> dict:
    if "$ref" in ref_or_param:
        return SPEC["components"]["parameters"][ref_or_param["$ref"].rsplit("/", 1)[1]]
    return ref_or_param


def check_request(request: httpx.Request) -> None:
    """The request's path, headers and JSON body fit its operation."""
    op, path_params = operation(request.method, request.url.path)
    for param in map(_parameter, op.get("parameters", [])):
        if param["in"] == "path":
            validate(param["schema"], path_params[param["name"]])
        elif param["in"] == "header":
            value = request.headers.get(param["name"])
            assert value is not None or not param.get("required"), f"{param['name']} missing on {request.url.path}"
            if value is not None:
                validate(param["schema"], value)
    body = op["requestBody"]["content"]["application/json"]["schema"]
    validate(body, httpx.Response(200, content=request.content).json())


def check_response(request: httpx.Request, response: httpx.Response) -> None:
    """The answer's status is documented and its JSON body fits the schema for it."""
    op, _ = operation(request.method, request.url.path)
    answer = op["responses"].get(str(response.status_code)) or op["responses"]["default"]
    if "$ref" in answer:
        answer = SPEC["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    if response.status_code >= 400:
        assert str(response.status_code) in answer["description"], f"{response.status_code} is not documented"
    validate(answer["content"]["application/json"]["schema"], response.json())


class Recording(httpx.BaseTransport):
    """A real HTTP transport that keeps every exchange, so the test can hold it to the document."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        response = self.inner.handle_request(request)
        content = response.read()
        response.close()
        copy = httpx.Response(response.status_code, headers=response.headers, content=content, request=request)
        self.exchanges.append((request, copy))
        return copy

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UpstreamServer]:
    server = UpstreamServer(ServerConfig(state_dir=tmp_path / "upstream", jobs=4, max_wait_s=1.0))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _client(server: UpstreamServer, transport: httpx.BaseTransport) -> UpstreamClient:
    config = UpstreamConfig(url=server.url, token=server.token, authority_keys={}, wait_s=1.0)
    return UpstreamClient(config, "st-1", transport=transport)


def _deliver_outbox(journal: Journal, client: UpstreamClient) -> int:
    delivered = 0
    for _ in range(50):
        message = journal.outbox_next()
        if message is None:
            return delivered
        client.deliver(message.kind, message.job_id, message.idempotency_key, message.body)
        journal.outbox_delivered(message.id)
        delivered += 1
    raise AssertionError("the outbox did not drain")


def test_every_request_of_the_agent_and_every_answer_of_the_server_fit_the_document(server, tmp_path):
    recording = Recording()
    client = _client(server, recording)
    journal = Journal(tmp_path / "journal.db", "st-1", max_attempts=3)
    try:
        lease = client.lease(4, 0)
        ids = [job["job_id"] for job in lease.jobs]
        assert len(ids) == 4
        for job in lease.jobs:
            journal.add_leased(job["job_id"], {"job_id": job["job_id"]}, not_after=utcnow() + timedelta(days=1),
                               lease_expires_at=lease.expires_at, priority=0)
        renewal = client.renew([*ids, "J-999999"])
        assert renewal.lost == {"J-999999": "unknown-job"}
        journal.receive_blanks("LOT-1", 10)
        journal.load_blanks("p1", 10, "LOT-1")
        # J-000001: a spoiled card with its chip checks, then printed on a fresh blank.
        first = journal.claim_next("p1")
        journal.fed(first.job_id, first.attempt, "p1")
        journal.spoiled(first.job_id, first.attempt, "hash-mismatch",
                        [{"name": "DG1", "verdict": "failed", "reason": "hash differs"}])
        again = journal.claim_next("p1")
        journal.fed(again.job_id, again.attempt, "p1")
        journal.printed(again.job_id, again.attempt, card_counter=2)
        journal.reject("J-000002", "bad-signature", "signature does not match the job")
        journal.hold("J-000003", "card-not-accounted-for")
        assert client.release(["J-000004"], "the station will not print it") == ["J-000004"]
        reporter = TelemetryReporter(journal, lambda: [PrinterSnapshot("p1", "idle", (), ribbon_left=120, card_counter=2)], StockConfig())
        reporter.queue(reporter.report())
        assert _deliver_outbox(journal, client) >= 4
        with pytest.raises(UpstreamRefused):  # a conflicting outcome: the 409 body is in the contract too
            client.deliver("outcome", "J-000001", "st-1:J-000001:other",
                           {"station": "st-1", "status": "failed", "attempts": []})
    finally:
        client.close()
        journal.close()
    kinds = {(r.method, operation(r.method, r.url.path)[0]["operationId"]) for r, _ in recording.exchanges}
    assert {op for _, op in kinds} >= {"leaseJobs", "renewLeases", "releaseLeases", "reportOutcome", "reportTelemetry"}
    for request, response in recording.exchanges:
        check_request(request)
        check_response(request, response)
    statuses = {response.status_code for _, response in recording.exchanges}
    assert 409 in statuses and 200 in statuses


def test_a_batch_of_the_outbox_and_its_answer_fit_the_document(server):
    recording = Recording()
    client = _client(server, recording)
    try:
        printed = {"station": "st-1", "status": "printed", "printed_at": "2026-11-29T10:00:00.000Z",
                   "attempts": [{"n": 1, "printer": "p1", "result": "printed", "reason": None}]}
        lease = client.lease(2, 0)
        messages = [
            ("outcome", "J-000001", "st-1:J-000001:outcome", printed),
            ("outcome", "J-000001", "st-1:J-000001:outcome", printed),  # a replay
            ("outcome", "J-000001", "st-1:J-000001:again", {**printed, "status": "failed"}),  # a conflict
            ("outcome", "J-404", "st-1:J-404:outcome", printed),  # no such job
            ("outcome", "J-000003", "st-1:J-000003:outcome", {"station": "st-1", "status": "rejected"}),  # no reason
            ("release", None, "st-1:release:1", {"job_ids": [lease.jobs[1]["job_id"]], "reason": "not printed"}),
            ("telemetry", None, "st-1:telemetry:1", {"at": "2026-11-29T10:00:00.000Z", "alerts": []}),
            ("alert", None, "st-1:alert:1", {"at": "2026-11-29T10:00:01.000Z", "alerts": [{"kind": "job-held"}]}),
        ]
        results = client.deliver_batch(messages)
    finally:
        client.close()
    assert [r.status for r in results] == [200, 200, 409, 404, 400, 200, 200, 200]
    assert "contradicts" in results[2].error
    (request, response), = [(r, a) for r, a in recording.exchanges if r.url.path.endswith("/outbox")]
    assert operation("POST", request.url.path)[0]["operationId"] == "deliverOutbox"
    check_request(request)
    check_response(request, response)
    assert response.json()["results"][1]["answer"] == {"accepted": True, "replay": True}


def test_an_upstream_without_the_batch_endpoint_answers_404_in_the_contract_s_words(tmp_path):
    old = UpstreamServer(ServerConfig(state_dir=tmp_path / "old", jobs=1, outbox_batch=False))
    old.start()
    try:
        with httpx.Client(base_url=old.url, headers={"Authorization": f"Bearer {old.token}"}, timeout=10) as http:
            response = http.post("/v1/stations/st-1/outbox", json={"messages": [
                {"kind": "telemetry", "idempotency_key": "k", "body": {"at": "2026-11-29T10:00:00Z"}}]})
    finally:
        old.stop()
    assert response.status_code == 404
    check_response(response.request, response)


@pytest.mark.parametrize("method, path, body, headers, status", [
    ("POST", "/v1/stations/st-1/leases", b"{not json", {}, 400),
    ("POST", "/v1/stations/st-1/leases", b'{"max": 0}', {}, 400),
    ("POST", "/v1/stations/st-1/leases", b"{}", {"Authorization": "Bearer wrong"}, 401),
    ("PUT", "/v1/jobs/J-000001/outcome", b'{"station": "st-1", "status": "printed"}', {}, 400),
    ("PUT", "/v1/jobs/J-404/outcome", b'{"station": "st-1", "status": "printed"}', {"Idempotency-Key": "k"}, 404),
    ("PUT", "/v1/jobs/J-000001/outcome", b'{"station": "st-1", "status": "rejected"}', {"Idempotency-Key": "k"}, 400),
    ("POST", "/v1/stations/st-1/telemetry", b'{"at": "2026-11-29T10:00:00Z", "printers": [{"name": "p1"}]}',
     {"Idempotency-Key": "k"}, 400),
    ("POST", "/v1/stations/st-1/outbox", b'{"messages": []}', {}, 400),
    ("POST", "/v1/stations/st-1/outbox", b'{"messages": [{"kind": "parcel", "idempotency_key": "k", "body": {}}]}',
     {}, 400),
    ("PUT", "/v1/stations/st-1/outbox", b"{}", {}, 405),
    ("DELETE", "/v1/stations/st-1/leases", None, {}, 405),
    ("POST", "/v1/_sim/faults", b'{"mode": "melt"}', {}, 400),
])
def test_error_answers_of_the_server_fit_the_document(server, method, path, body, headers, status):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10) as http:
        response = http.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 405:  # no operation to look up: the method is not in the contract, the error body is
        validate(SPEC["components"]["responses"]["Error"]["content"]["application/json"]["schema"], response.json())
    else:
        check_response(response.request, response)


def test_the_simulator_state_fits_the_document(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=10) as http:
        response = http.get("/v1/_sim/state")
    check_response(response.request, response)


def test_every_route_of_the_server_is_in_the_document_and_every_schema_is_valid():
    for method, pattern, _ in upstream_module._ROUTES:
        example = re.sub(r"\(\?P<(\w+)>[^)]*\)", "x-1", pattern.pattern)
        operation(method, example)
    for name, schema in SPEC["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert SPEC["openapi"].startswith("3.1")
