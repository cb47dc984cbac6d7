"""The station's HTTP client for the upstream issuance server (httpx), as docs/upstream.openapi.yaml describes it.

The station authenticates with a bearer token, a TLS client certificate, or both; the
server's certificate is checked against the system trust store or a configured CA. Every
answer is read with a size cap, so a hostile or broken server cannot exhaust the station.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from agent.core.config import UpstreamConfig
from agent.upstream.job import JobRejected, parse_timestamp, valid_job_id

USER_AGENT = "printstation/0.1"


class UpstreamUnavailable(Exception):
    """Upstream cannot be reached or answered 5xx: try again later, nothing is lost."""


class UpstreamRefused(Exception):
    """Upstream answered 4xx, or an answer the contract does not allow: retrying it unchanged will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"upstream refused ({status}): {message}")
        self.status = status


class UpstreamOffContract(UpstreamRefused):
    """Upstream answered outside the contract (a redirect, a body that is not a JSON object, JSON
    nested past reason): it is upstream that is wrong, not the request. A message it was sent stays
    queued and is sent again; `job_ids` are the jobs a lease answer carried, to hand back."""

    def __init__(self, status: int, message: str, job_ids: tuple[str, ...] = ()) -> None:
        super().__init__(status, message)
        self.job_ids = job_ids


# No answer of the contract nests deeper than a few levels: refuse deeper ones. The parser itself
# stops at Python's recursion limit (RecursionError), so a hostile nesting costs a bounded walk.
MAX_JSON_DEPTH = 32


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep a parsed JSON value nests (objects and arrays; strings are leaves, whatever they
    hold); stops counting past `limit`. Walks the containers level by level, never the strings."""
    depth = 0
    level = [value]
    while depth <= limit:
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            break
        depth += 1
        level = [item for c in containers for item in (c.values() if isinstance(c, dict) else c)]
    return depth


@dataclass(frozen=True)
class Lease:
    """Jobs handed to this station (raw: each is checked by intake) and when the lease runs out."""

    jobs: list[Any]
    expires_at: datetime


@dataclass(frozen=True)
class Renewal:
    """Leases extended, and the jobs the station must not start, with upstream's reason."""

    renewed: list[str]
    lost: dict[str, str]  # job id -> reason (lease-expired, not-leased, outcome-recorded, unknown-job)
    expires_at: datetime


def tls_context(config: UpstreamConfig) -> ssl.SSLContext:
    """Server verification against the system store or `ca_file`; the client certificate when configured.

    Raises ssl.SSLError or OSError when a configured file is missing or not PEM.
    """
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if config.client_cert:
        context.load_cert_chain(str(config.client_cert), str(config.client_key) if config.client_key else None)
    return context


# Where each kind of queued message goes (docs/upstream.openapi.yaml): the journal keeps what a
# message is, the client where it is sent.
TELEMETRY_KINDS = frozenset({"telemetry", "alert", "morning-report"})


def route(kind: str, station: str, job_id: str | None) -> tuple[str, str]:
    """The method and path of a queued message. Raises ValueError for a kind with no route, or an
    outcome without its job."""
    if kind == "outcome":
        if not job_id:
            raise ValueError("an outcome message names no job")
        return "PUT", f"/v1/jobs/{job_id}/outcome"
    if kind == "release":
        return "POST", f"/v1/stations/{station}/leases/release"
    if kind in TELEMETRY_KINDS:
        return "POST", f"/v1/stations/{station}/telemetry"
    raise ValueError(f"no upstream route for a message of kind {kind!r}")


# deliverOutbox (docs/upstream.openapi.yaml): up to this many messages, each with a route, in one request.
MAX_BATCH = 200


def batchable(kind: str, job_id: str | None) -> bool:
    """Whether a queued message may go in a batch: every message with a route may."""
    try:
        route(kind, "-", job_id)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class BatchResult:
    """What upstream made of one message of a batch: `status` 200 (it has it), or its refusal of
    that message alone with the plain words (`error`) an UpstreamRefused for it would carry."""

    status: int
    error: str = ""


class UpstreamClient:
    """One station's link to upstream: leases, renewals, releases and outbox delivery."""

    def __init__(self, config: UpstreamConfig, station_id: str, transport: httpx.BaseTransport | None = None) -> None:
        """Raises ssl.SSLError or OSError when the TLS files in `config` cannot be loaded."""
        self.station_id = station_id
        self.url = config.url
        self.max_answer_bytes = config.max_answer_bytes
        # One exchange, from the request to the answer's last byte (an answer trickled a byte at a
        # time passes every per-read timeout): past this it is abandoned and tried again later.
        self.deadline_s = config.exchange_deadline_s or (2 * config.timeout_s + config.wait_s)
        headers = {"User-Agent": USER_AGENT}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.Client(
            base_url=config.url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, read=config.timeout_s + config.wait_s),
            verify=tls_context(config) if config.url.startswith("https:") else True,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict | None, headers: dict | None = None) -> dict:
        where = f"{method} {self.url}{path}"
        deadline = time.monotonic() + self.deadline_s
        try:
            with self._http.stream(method, path, json=body, headers=headers) as response:
                raw = self._read_capped(response, where, deadline)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{where}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status >= 500:
            raise UpstreamUnavailable(f"{where}: upstream answered {status}")
        if 300 <= status < 400:
            raise UpstreamOffContract(status, f"{where}: upstream answered a redirect ({status}) to "
                                              f"{response.headers.get('Location', '?')[:100]}; the contract has none")
        deep = UpstreamOffContract(status, f"{where}: the answer nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(raw)
        except RecursionError:
            raise deep from None
        except (ValueError, UnicodeDecodeError):
            data = None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise deep
        if status >= 400:
            message = data.get("message", data) if isinstance(data, dict) else raw[:200].decode("utf-8", "replace")
            raise UpstreamRefused(status, str(message)[:300])
        if not isinstance(data, dict):
            kind = response.headers.get("Content-Type", "no type").split(";")[0][:40]
            raise UpstreamOffContract(status, f"{where}: the answer is not a JSON object ({kind})")
        return data

    def _read_capped(self, response: httpx.Response, where: str, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_answer_bytes:
            raise UpstreamRefused(response.status_code, f"{where}: answer of {declared} bytes is over the limit "
                                                        f"of {self.max_answer_bytes} (limits.max_answer_mb)")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise UpstreamRefused(response.status_code, f"{where}: answer is over the limit of "
                                                            f"{self.max_answer_bytes} bytes (limits.max_answer_mb)")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise UpstreamUnavailable(f"{where}: the answer took longer than {self.deadline_s:.0f} s "
                                          f"({size} bytes so far); abandoned, tried again later")
        return b"".join(chunks)

    def lease(self, max_jobs: int, wait_s: float) -> Lease:
        """Ask for up to `max_jobs` jobs, waiting up to `wait_s` for some to be approved.

        Raises UpstreamUnavailable (try later) or UpstreamRefused (a refusal or an answer
        outside the contract: no jobs list, no lease expiry).
        """
        data = self._call("POST", f"/v1/stations/{self.station_id}/leases", {"max": max_jobs, "wait_s": wait_s})
        jobs = data.get("jobs")
        if not isinstance(jobs, list):
            raise UpstreamOffContract(200, "lease answer has no jobs list")
        try:
            expires_at = parse_timestamp(data.get("lease_expires_at"), "lease_expires_at")
        except JobRejected as exc:
            # Jobs leased to us with no lease time: not recorded, so they are handed back at once.
            ids = tuple(j["job_id"] for j in jobs if isinstance(j, dict) and valid_job_id(j.get("job_id")))
            raise UpstreamOffContract(200, f"lease answer: {exc.message}", job_ids=ids) from None
        return Lease(jobs=jobs, expires_at=expires_at)

    def renew(self, job_ids: list[str]) -> Renewal:
        """Extend the leases of `job_ids`; those upstream will not extend come back in `lost` with the reason.

        Raises UpstreamUnavailable or UpstreamRefused.
        """
        data = self._call("POST", f"/v1/stations/{self.station_id}/leases/renew", {"job_ids": job_ids})
        renewed, lost = data.get("renewed"), data.get("lost")
        if not isinstance(renewed, list) or not isinstance(lost, list):
            raise UpstreamRefused(200, "renew answer has no renewed and lost lists")
        try:
            expires_at = parse_timestamp(data.get("lease_expires_at"), "lease_expires_at")
        except JobRejected as exc:
            raise UpstreamRefused(200, f"renew answer: {exc.message}") from None
        lost_by_id = {str(item.get("job_id")): str(item.get("reason")) for item in lost if isinstance(item, dict)}
        return Renewal(renewed=[str(job_id) for job_id in renewed], lost=lost_by_id, expires_at=expires_at)

    def release(self, job_ids: list[str], reason: str) -> list[str]:
        """Hand jobs back unprinted; returns the ids upstream released. Raises UpstreamUnavailable or UpstreamRefused."""
        data = self._call("POST", f"/v1/stations/{self.station_id}/leases/release", {"job_ids": job_ids, "reason": reason})
        released = data.get("released")
        if not isinstance(released, list):
            raise UpstreamRefused(200, "release answer has no released list")
        return [str(job_id) for job_id in released]

    def held_leases(self) -> list[str]:
        """The jobs upstream says this station holds a lease on now.

        Raises UpstreamUnavailable or UpstreamRefused (also for an answer outside the contract).
        """
        data = self._call("GET", f"/v1/stations/{self.station_id}/leases", None)
        jobs = data.get("jobs")
        if not isinstance(jobs, list) or not all(isinstance(j, dict) and isinstance(j.get("job_id"), str) for j in jobs):
            raise UpstreamRefused(200, "held-leases answer has no jobs list of job ids")
        return [j["job_id"] for j in jobs]

    def deliver(self, kind: str, job_id: str | None, idempotency_key: str, body: dict) -> dict:
        """Send one outbox message to where its kind goes; replays are harmless thanks to the
        idempotency key.

        Raises UpstreamUnavailable or UpstreamRefused (also for a kind this client does not know).
        """
        try:
            method, path = route(kind, self.station_id, job_id)
        except ValueError as exc:
            raise UpstreamRefused(0, str(exc)) from None
        return self._call(method, path, body, headers={"Idempotency-Key": idempotency_key})

    def deliver_batch(self, messages: Sequence[tuple[str, str | None, str, dict]]) -> list[BatchResult]:
        """Send up to MAX_BATCH outbox messages (kind, job id, idempotency key, body; each `batchable`)
        in one request; one result per message, in order.

        Raises UpstreamUnavailable or UpstreamRefused for the request as a whole (none of the
        messages was taken: 404 or 405 from an upstream without the batch endpoint), and
        UpstreamOffContract for an answer without a proper result for each message.
        """
        if not 1 <= len(messages) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} messages, not {len(messages)}")
        path = f"/v1/stations/{self.station_id}/outbox"
        payload = {"messages": [{"kind": kind, "idempotency_key": key, "body": body,
                                 **({"job_id": job_id} if job_id is not None else {})}
                                for kind, job_id, key, body in messages]}
        data = self._call("POST", path, payload)
        where = f"POST {self.url}{path}"
        results = data.get("results")
        if not isinstance(results, list) or len(results) != len(messages):
            raise UpstreamOffContract(200, f"{where}: the answer has no result for each of the {len(messages)} messages")
        answered: list[BatchResult] = []
        for (_kind, _job, key, _body), result in zip(messages, results):
            status = result.get("status") if isinstance(result, dict) else None
            if (not isinstance(result, dict) or result.get("idempotency_key") != key or not isinstance(status, int)
                    or isinstance(status, bool) or not (status == 200 or 400 <= status <= 599)
                    or (status == 200 and not isinstance(result.get("answer"), dict))):
                raise UpstreamOffContract(200, f"{where}: the result for {key[:100]!r} is not one the contract allows")
            if status == 200:
                answered.append(BatchResult(200))
            else:
                words = str(result.get("message") or result.get("error") or "no reason given")[:300]
                answered.append(BatchResult(status, f"upstream refused ({status}): {words}"))
        return answered
