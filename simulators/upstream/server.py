"""The reference upstream issuance server: leases signed jobs to stations and takes their outcomes.

It follows docs/upstream.openapi.yaml over HTTP, or HTTPS with test certificates, on the
loopback interface, so the agent, the demo and the tests meet the same API the national
system offers. Jobs come from `JobFactory` (deterministic for a seed and count); accepted
outcomes are appended to `outcomes.jsonl` and each station's last telemetry is kept in
`stations.json` in the state folder, so a restarted server still knows them and
`printstation upstream-sim report` can show the centre's view.

Tests can hand it raw jobs to lease (`POST /v1/_sim/jobs`) and tell it to fail
(`POST /v1/_sim/faults`).

Run it as `printstation upstream-sim ...` or `python -m simulators.upstream.server ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import structlog

from simulators.upstream.authority import DEFAULT_KID, Authority
from simulators.upstream.job_factory import DEFAULT_VALIDITY, JobFactory
from simulators.pki import TestPki
from simulators.upstream.contract import problem

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # outcomes and telemetry are small; anything bigger is a mistake (a batch too)
MAX_JOBS_PER_LEASE = 100
DEFAULT_LEASE_S = 3600.0
DEFAULT_MAX_WAIT_S = 30.0
# An idle keep-alive connection is dropped after this; stop() does not wait for it.
IDLE_CONNECTION_S = 60.0
# How often the accept loop looks for a stop request: the most stop() waits for it.
SHUTDOWN_POLL_S = 0.05
OUTCOME_STATUSES = frozenset({"printed", "failed", "rejected"})
FAULT_MODES = frozenset({"5xx", "slow", "reset", "none"})
DEFAULT_SLOW_S = 5.0
MAX_INJECTED_JOBS = 100
MAX_INJECT_BODY_BYTES = 64 * 1024 * 1024  # raw jobs carry card images
# Telemetry reports remembered per station for the report (the latest full one is kept apart).
KEPT_REPORTS = 20
ATTEMPT_RESULTS = frozenset({"printed", "spoiled", "interrupted"})
_NAME = r"[A-Za-z0-9._-]{1,64}"


class ApiError(Exception):
    """A request the server refuses: HTTP status, a short code and plain words for the caller."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UpstreamConfig:
    """How one run of the reference server behaves."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0: the kernel picks a free port; the real one is in upstream.json
    jobs: int = 20
    token: str | None = None  # None: keep the one in upstream.json, or make a new one
    seed: int = 1
    lease_s: float = DEFAULT_LEASE_S
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    validity: timedelta = DEFAULT_VALIDITY
    kid: str = DEFAULT_KID  # the key that signs this run's jobs; every key in the folder is published
    tls_cert: Path | None = None  # PEM certificate (chain) to serve HTTPS with
    tls_key: Path | None = None
    client_ca: Path | None = None  # when set, stations must present a certificate this CA issued
    outbox_batch: bool = True  # False: an upstream from before deliverOutbox (404 on its path)


@dataclass
class _Lease:
    station: str
    expires_at: float  # wall clock (time.time()), since it is reported as a timestamp


@dataclass
class _Fault:
    """What the server was told to do wrong, until when (time.monotonic())."""

    mode: str = "none"
    until: float = 0.0
    delay_s: float = DEFAULT_SLOW_S


@dataclass
class _Outcome:
    key: str
    body: dict[str, Any]
    answer: dict[str, Any]


def _rfc3339(at: float) -> str:
    moment = datetime.fromtimestamp(at, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _write_json_atomically(path: Path, value: Any) -> None:
    # upstream.json holds the token: its owner's alone (0600), whatever the umask.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class IssuanceDesk:
    """Leases, outcomes and telemetry of one server run. Thread-safe; long polls wait on a condition."""

    def __init__(self, factory: JobFactory, outcomes_path: Path, lease_s: float, max_wait_s: float,
                 stations_path: Path | None = None) -> None:
        self._factory = factory
        self._outcomes_path = outcomes_path
        self._stations_path = stations_path or outcomes_path.with_name("stations.json")
        self._lease_s = lease_s
        self._max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._leases: dict[str, _Lease] = {}
        self._outcomes: dict[str, _Outcome] = {}
        self._keys: dict[str, str] = {}  # idempotency key -> job id
        self._telemetry: dict[str, Any] = {}
        self._stations: dict[str, dict[str, Any]] = {}
        self._telemetry_keys: set[str] = set()
        self._polls_waiting = 0  # lease calls in their long poll now
        self._releases: list[dict[str, str]] = []
        self._injected: list[Any] = []  # raw jobs from tests, each offered once, before the factory's
        self._injected_leased = 0
        self._fault = _Fault()
        self._outcome_posts = 0
        self._outbox_batches = 0
        self._closing = False
        self._load_outcomes()
        self._load_stations()

    def _load_outcomes(self) -> None:
        if not self._outcomes_path.exists():
            return
        with open(self._outcomes_path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    job_id, key, body = record["job_id"], record["key"], record["outcome"]
                except (ValueError, KeyError, TypeError):
                    # A line torn by a crash mid-write was never acknowledged: the station re-sends it.
                    continue
                self._outcomes[job_id] = _Outcome(key, body, {"accepted": True, "replay": False})
                self._keys[key] = job_id

    def _load_stations(self) -> None:
        try:
            stations = json.loads(self._stations_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # none yet, or torn: telemetry is resent periodically anyway
        if isinstance(stations, dict):
            self._stations = stations

    def close(self) -> None:
        """Wake every waiting long poll; they answer with no jobs."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    # leases

    def lease(self, station: str, max_jobs: int, wait_s: float) -> dict[str, Any]:
        """Lease up to `max_jobs` free jobs to `station`, waiting up to `wait_s` (capped) for one."""
        deadline = time.monotonic() + min(wait_s, self._max_wait_s)
        with self._cond:
            while True:
                now = time.time()
                injected = self._injected[self._injected_leased:self._injected_leased + max_jobs]
                granted = self._free_jobs(now, max_jobs - len(injected))
                remaining = deadline - time.monotonic()
                if injected or granted or remaining <= 0 or self._closing:
                    break
                # Wake when the next lease runs out, too: its job becomes free then.
                expiries = [lease.expires_at - now for lease in self._leases.values()]
                self._polls_waiting += 1
                try:
                    self._cond.wait(min([remaining, *[e for e in expiries if e > 0]]))
                finally:
                    self._polls_waiting -= 1
            expires_at = now + self._lease_s
            self._injected_leased += len(injected)
            for job_id in granted:
                self._leases[job_id] = _Lease(station, expires_at)
            for raw in injected:
                injected_id = raw.get("job_id") if isinstance(raw, dict) else None
                if isinstance(injected_id, str) and injected_id not in self._factory and injected_id not in self._outcomes:
                    self._leases[injected_id] = _Lease(station, expires_at)
        if granted or injected:
            log.info("jobs leased", station=station, count=len(granted) + len(injected))
        # Built outside the lock: a body takes tens of milliseconds and other stations may be waiting.
        jobs = [*injected, *(self._factory.job(job_id) for job_id in granted)]
        return {"jobs": jobs, "lease_expires_at": _rfc3339(expires_at)}

    def inject(self, jobs: list[Any]) -> dict[str, Any]:
        """Queue raw jobs (any JSON, hostile on purpose) to be leased once each, before the factory's jobs."""
        with self._cond:
            self._injected.extend(jobs)
            self._cond.notify_all()
            return {"queued": len(self._injected) - self._injected_leased}

    def _known_job(self, job_id: str) -> bool:
        return job_id in self._factory or any(
            isinstance(raw, dict) and raw.get("job_id") == job_id for raw in self._injected
        )

    def _free_jobs(self, now: float, limit: int) -> list[str]:
        free: list[str] = []
        for spec in self._factory.specs:
            if len(free) >= limit:
                break
            lease = self._leases.get(spec.job_id)
            if spec.job_id not in self._outcomes and (lease is None or lease.expires_at <= now):
                free.append(spec.job_id)
        return free

    def renew(self, station: str, job_ids: list[str]) -> dict[str, Any]:
        """Extend the leases `station` still holds; the others are listed as lost, with why."""
        renewed: list[str] = []
        lost: list[dict[str, str]] = []
        with self._cond:
            now = time.time()
            expires_at = now + self._lease_s
            for job_id in job_ids:
                reason = self._lease_problem(station, job_id, now)
                if reason:
                    lost.append({"job_id": job_id, "reason": reason})
                else:
                    self._leases[job_id].expires_at = expires_at
                    renewed.append(job_id)
        return {"renewed": renewed, "lost": lost, "lease_expires_at": _rfc3339(expires_at)}

    def _lease_problem(self, station: str, job_id: str, now: float) -> str | None:
        if not self._known_job(job_id):
            return "unknown-job"
        if job_id in self._outcomes:
            return "outcome-recorded"
        lease = self._leases.get(job_id)
        if lease is None or lease.station != station:
            return "not-leased"
        if lease.expires_at <= now:
            # Strict on purpose: a station must never start a job whose lease ran out.
            return "lease-expired"
        return None

    def held(self, station: str) -> dict[str, Any]:
        """The leases `station` holds now (not run out, no outcome yet), oldest job first."""
        with self._cond:
            now = time.time()
            held = [{"job_id": job_id, "lease_expires_at": _rfc3339(lease.expires_at)}
                    for job_id, lease in self._leases.items()
                    if lease.station == station and lease.expires_at > now and job_id not in self._outcomes]
        return {"jobs": held}

    def release(self, station: str, job_ids: list[str], reason: str) -> dict[str, Any]:
        """Hand jobs back: each becomes leasable again at once. Jobs `station` does not hold are listed."""
        released: list[str] = []
        not_held: list[str] = []
        with self._cond:
            for job_id in job_ids:
                lease = self._leases.get(job_id)
                if lease is not None and lease.station == station:
                    del self._leases[job_id]
                    released.append(job_id)
                    self._releases.append({"job_id": job_id, "station": station, "reason": reason})
                else:
                    not_held.append(job_id)
            if released:
                self._cond.notify_all()
        return {"released": released, "not_held": not_held}

    # outcomes

    def record_outcome(self, job_id: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """Accept a job's final outcome once; replays get the first answer, a different outcome is refused.

        Raises ApiError 404 for an unknown job, 409 for a conflicting outcome or a reused key.
        """
        with self._cond:
            replay = self._judge_outcome(job_id, key, body)
            if replay is not None:
                return replay
            record = self._outcome_record(job_id, key, body)
            # Durable before the answer: an acknowledged outcome must survive a restart.
            self._append_outcomes([record])
            answer = self._remember_outcome(record)
        log.info("outcome accepted", job_id=job_id, status=body["status"], station=body["station"])
        return answer

    def _judge_outcome(self, job_id: str, key: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Under the lock: the answer to a replay, None for an outcome to record; raises ApiError
        404 for an unknown job, 409 for a conflicting outcome or a reused key."""
        if not self._known_job(job_id):
            raise ApiError(HTTPStatus.NOT_FOUND, "unknown-job", f"there is no job {job_id}")
        self._outcome_posts += 1
        keyed_job = self._keys.get(key)
        if keyed_job is not None and keyed_job != job_id:
            raise ApiError(
                HTTPStatus.CONFLICT,
                "idempotency-key-reused",
                f"this Idempotency-Key was already used for job {keyed_job}",
            )
        first = self._outcomes.get(job_id)
        if first is None:
            return None
        if first.body["status"] != body["status"]:
            raise ApiError(
                HTTPStatus.CONFLICT,
                "outcome-conflict",
                f"job {job_id} already has the outcome {first.body['status']!r}; "
                f"{body['status']!r} contradicts it",
            )
        self._keys[key] = job_id
        return {**first.answer, "replay": True}

    @staticmethod
    def _outcome_record(job_id: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"job_id": job_id, "key": key, "outcome": body, "at": _rfc3339(time.time())}

    def _append_outcomes(self, records: list[dict[str, Any]]) -> None:
        """Append outcome records to outcomes.jsonl with one write and one fsync. Raises OSError."""
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        with open(self._outcomes_path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def _remember_outcome(self, record: dict[str, Any]) -> dict[str, Any]:
        answer = {"accepted": True, "replay": False}
        job_id = record["job_id"]
        self._outcomes[job_id] = _Outcome(record["key"], record["outcome"], answer)
        self._keys[record["key"]] = job_id
        self._leases.pop(job_id, None)
        return answer

    def record_batch(self, station: str, messages: list[tuple[str, str | None, str, dict[str, Any]] | ApiError]
                     ) -> list[dict[str, Any]]:
        """deliverOutbox: each message (kind, job id, key, body; or the ApiError its checks raised)
        handled in order as its own endpoint would, answered one by one; the whole batch durable
        (one fsync of outcomes.jsonl, one write of stations.json if it carries telemetry) before
        any answer. Raises OSError when it cannot be made durable: then nothing of it is kept."""
        results: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        with self._cond:
            saved = (dict(self._outcomes), dict(self._keys), dict(self._leases), list(self._releases),
                     dict(self._telemetry), set(self._telemetry_keys), json.loads(json.dumps(self._stations)),
                     self._outcome_posts)
            telemetry = False
            for message in messages:
                try:
                    if isinstance(message, ApiError):
                        raise message
                    kind, job_id, key, body = message
                    if kind == "outcome":
                        assert job_id is not None
                        answer = self._judge_outcome(job_id, key, body)
                        if answer is None:
                            record = self._outcome_record(job_id, key, body)
                            records.append(record)
                            answer = self._remember_outcome(record)
                    elif kind == "release":
                        answer = self.release(station, body["job_ids"], body["reason"])
                    else:
                        answer, changed = self._telemetry_locked(station, key, body)
                        telemetry = telemetry or changed
                except ApiError as exc:
                    results.append({"status": int(exc.status), "error": exc.code, "message": exc.message})
                else:
                    results.append({"status": 200, "answer": answer})
            try:
                if records:
                    self._append_outcomes(records)  # the batch's one fsync
                if telemetry:
                    _write_json_atomically(self._stations_path, self._stations)
            except OSError:
                (self._outcomes, self._keys, self._leases, self._releases, self._telemetry, self._telemetry_keys,
                 self._stations, self._outcome_posts) = saved
                raise
            self._outbox_batches += 1
        for record in records:
            log.info("outcome accepted", job_id=record["job_id"], status=record["outcome"]["status"],
                     station=record["outcome"]["station"])
        log.info("outbox batch", station=station, messages=len(messages), outcomes=len(records),
                 refused=sum(1 for r in results if r["status"] != 200))
        return results

    # telemetry and the simulator's own view

    def record_telemetry(self, station: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """Keep `station`'s telemetry: the last body, the last full report (printers) and recent alerts.

        A repeated Idempotency-Key answers `replay: true` and changes nothing.
        """
        with self._cond:
            answer, changed = self._telemetry_locked(station, key, body)
            if changed:
                _write_json_atomically(self._stations_path, self._stations)
        return answer

    def _telemetry_locked(self, station: str, key: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Under the lock: take a report into memory; the answer, and whether stations.json must be written."""
        if key in self._telemetry_keys:
            return {"accepted": True, "replay": True}, False
        self._telemetry_keys.add(key)
        self._telemetry[station] = body
        view = self._stations.setdefault(station, {"reports": 0, "recent": []})
        view["reports"] += 1
        view["last_at"] = body["at"]
        view["received_at"] = _rfc3339(time.time())
        if "printers" in body:
            view["last_report"] = body
        if body.get("alerts"):
            view["recent"] = [*view["recent"], {"at": body["at"], "alerts": body["alerts"]}][-KEPT_REPORTS:]
        return {"accepted": True, "replay": False}, True

    # faults on request

    def set_fault(self, mode: str, for_s: float, delay_s: float) -> dict[str, Any]:
        """Fail every station request in `mode` for `for_s` seconds ("none" ends a fault at once)."""
        with self._cond:
            self._fault = _Fault(mode, time.monotonic() + for_s if mode != "none" else 0.0, delay_s)
        log.info("fault set", mode=mode, for_s=for_s)
        return {"mode": mode, "for_s": for_s}

    def fault(self) -> _Fault | None:
        """The fault in force now, if any."""
        with self._cond:
            fault = self._fault
        return fault if fault.mode != "none" and time.monotonic() < fault.until else None

    def pause(self, seconds: float) -> None:
        """Sleep `seconds` for a slow answer, but wake when the server stops."""
        with self._cond:
            self._cond.wait_for(lambda: self._closing, timeout=seconds)

    def snapshot(self) -> dict[str, Any]:
        """What tests and the demo look at: job count, live leases, outcomes, telemetry, releases."""
        with self._cond:
            now = time.time()
            return {
                "jobs": len(self._factory),
                "leased": sum(1 for lease in self._leases.values() if lease.expires_at > now),
                "outcomes": {job_id: o.body for job_id, o in self._outcomes.items()},
                "outcome_posts": self._outcome_posts,
                "outbox_batches": self._outbox_batches,
                "polls_waiting": self._polls_waiting,
                "telemetry": dict(self._telemetry),
                "releases": list(self._releases),
                "stations": json.loads(json.dumps(self._stations)),
            }


# request validation


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", f"{where} must be a JSON object")
    return value


def _text(obj: dict[str, Any], key: str, where: str, max_len: int = 500) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "bad-request", f"{where}.{key} must be text of 1 to {max_len} characters"
        )
    return value


def _optional_text(obj: dict[str, Any], key: str, where: str, max_len: int = 500) -> None:
    if obj.get(key) is not None:
        _text(obj, key, where, max_len)


def _job_ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("job_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
        raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", "job_ids must be a list of up to 1000 job ids")
    return ids


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", f"{key} must be a number from {low:g} to {high:g}")
    return value


def _optional_idempotency_key(headers: Any) -> None:
    if "Idempotency-Key" in headers:
        _idempotency_key(headers)


def _idempotency_key(headers: Any) -> str:
    key = headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200:
        raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", "an Idempotency-Key header (1 to 200 characters) is required")
    return key


# Each kind of batched message: the schema of the body its own endpoint takes.
_BATCH_BODIES = {"outcome": "Outcome", "release": "ReleaseRequest", "telemetry": "Telemetry", "alert": "Telemetry",
                 "morning-report": "Telemetry"}


def _batch_message(index: int, item: dict[str, Any]) -> tuple[str, str | None, str, dict[str, Any]] | ApiError:
    """One message of a batch checked as its own endpoint checks its request (path, key, body):
    (kind, job id, key, body), or the ApiError that endpoint would answer, for this message alone."""
    where = f"messages.{index}"
    kind, body, job_id = item["kind"], item["body"], item.get("job_id")
    key = item["idempotency_key"].strip()
    if not key:
        return ApiError(HTTPStatus.BAD_REQUEST, "bad-request", f"{where}.idempotency_key must not be blank")
    if kind == "outcome" and job_id is None:
        return ApiError(HTTPStatus.BAD_REQUEST, "bad-request", f"{where}.job_id: an outcome names its job")
    wrong = problem(body, _BATCH_BODIES[kind], f"{where}.body")
    if wrong is not None:
        return ApiError(HTTPStatus.BAD_REQUEST, "bad-request", wrong)
    if kind == "release":
        try:
            _job_ids(body)
            _text(body, "reason", f"{where}.body")
        except ApiError as exc:
            return exc
    return kind, job_id if kind == "outcome" else None, key, body


# HTTP


class _HttpServer(ThreadingHTTPServer):
    """Keeps track of open connections so stop() can end idle keep-alive ones and then join every thread."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], desk: IssuanceDesk, token: str,
                 tls: ssl.SSLContext | None = None, outbox_batch: bool = True) -> None:
        self.desk = desk
        self.token = token
        self.tls = tls
        self.outbox_batch = outbox_batch
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._answering = 0  # requests between their dispatch and their reply written
        self._answered = threading.Condition(self._connections_lock)
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.tls is not None:
            # The handshake happens on the first read, in the request's own thread: a client that
            # connects and says nothing holds up only itself.
            connection = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
            # A station that hangs up or goes away mid-request is normal on a flaky link.
            log.debug("connection dropped", error=type(error).__name__)
        else:
            log.exception("connection failed")

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Held by a request from its dispatch until its reply is written (see end_connections)."""
        with self._answered:
            self._answering += 1
        try:
            yield
        finally:
            with self._answered:
                self._answering -= 1
                self._answered.notify_all()

    def end_connections(self, answer_within_s: float = 5.0) -> None:
        """Cut every connection once the requests being answered have their replies written (a
        long poll woken by the desk's close is one; on a busy machine its thread may not have
        written yet), or after `answer_within_s`: then idle keep-alive connections are cut too."""
        with self._answered:
            self._answered.wait_for(lambda: self._answering == 0, timeout=answer_within_s)
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by its handler
                pass


Route = tuple[str, re.Pattern[str], str]
_ROUTES: list[Route] = [
    ("POST", re.compile(rf"/v1/stations/(?P<station>{_NAME})/leases"), "_lease"),
    ("GET", re.compile(rf"/v1/stations/(?P<station>{_NAME})/leases"), "_held"),
    ("POST", re.compile(rf"/v1/stations/(?P<station>{_NAME})/leases/renew"), "_renew"),
    ("POST", re.compile(rf"/v1/stations/(?P<station>{_NAME})/leases/release"), "_release"),
    ("PUT", re.compile(rf"/v1/jobs/(?P<job_id>{_NAME})/outcome"), "_outcome"),
    ("POST", re.compile(rf"/v1/stations/(?P<station>{_NAME})/telemetry"), "_telemetry"),
    ("POST", re.compile(rf"/v1/stations/(?P<station>{_NAME})/outbox"), "_outbox"),
    ("GET", re.compile(r"/v1/_sim/state"), "_state"),
    ("POST", re.compile(r"/v1/_sim/faults"), "_faults"),
    ("POST", re.compile(r"/v1/_sim/jobs"), "_inject"),
]
_SIM_PREFIX = "/v1/_sim/"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the agent's HTTP client expects
    # The headers and the body leave as two writes; with Nagle on, the second waits for the ACK
    # of the first, which the client delays (40 ms on Linux): every answer took 40 ms more than
    # any real server's. TCP_NODELAY sends each at once.
    disable_nagle_algorithm = True
    server_version = "printstation-upstream-sim/1"
    timeout = IDLE_CONNECTION_S
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        # The access log goes through structlog at debug level instead of raw stderr lines.
        log.debug("http request", line=format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def __getattr__(self, name: str) -> Any:
        # Any other method (DELETE, PATCH, TRACE, OPTIONS, ...): 405 on a known path, 404
        # elsewhere, with the contract's error body, never the base class's 501 page.
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    def _dispatch(self, method: str) -> None:
        with self.server.answering():
            self._answer(method)

    def _answer(self, method: str) -> None:
        self._body_read = False
        self._allow: str | None = None
        try:
            path = self.path.split("?", 1)[0]
            if not path.startswith(_SIM_PREFIX) and self._misbehave():
                return
            handler, params = self._route(method, path)
            self._authorise(params.get("station"))
            status, body = handler(params)
        except ApiError as exc:
            status, body = exc.status, {"error": exc.code, "message": exc.message}
        except Exception:
            # A bug here must still give the station an answer it can retry, and leave a trace.
            log.exception("request failed", method=method, path=self.path[:100])
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal", "message": "the server failed; retry later"}
        self._reply(status, body)

    def _route(self, method: str, path: str) -> tuple[Callable[[dict[str, str]], tuple[HTTPStatus, Any]], dict[str, str]]:
        path_known = False
        for route_method, pattern, name in self._routes():
            match = pattern.fullmatch(path)
            if match:
                path_known = True
                if route_method == method:
                    return getattr(self, name), match.groupdict()
        if path_known:
            self._allow = ", ".join(m for m, pattern, _ in self._routes() if pattern.fullmatch(path))
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "method-not-allowed", f"{method} is not allowed on {path}")
        raise ApiError(HTTPStatus.NOT_FOUND, "not-found", f"no such endpoint: {path[:100]}")

    def _routes(self) -> list[Route]:
        # An upstream from before deliverOutbox does not know its path: 404, as it would answer.
        return _ROUTES if self.server.outbox_batch else [r for r in _ROUTES if r[2] != "_outbox"]

    def _misbehave(self) -> bool:
        """Act out the fault in force: True when the request must get no proper answer."""
        fault = self.server.desk.fault()
        if fault is None:
            return False
        if fault.mode == "slow":
            self.server.desk.pause(fault.delay_s)
            return False
        if fault.mode == "reset":
            # Linger 0: closing sends a TCP reset, as a crashing proxy or a cut line does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return True
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", "the server is told to fail (_sim/faults); retry later")

    def _authorise(self, station: str | None) -> None:
        """A station proves who it is by its TLS client certificate (when the server asks for one) or its token."""
        certificate = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        if certificate:
            subject: Any = certificate.get("subject", ())  # ((("commonName", "st-1"),), ...)
            names = [value for rdn in subject for key, value in rdn if key == "commonName"]
            if station is not None and station not in names:
                raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", f"this client certificate is not for station {station}")
            return
        expected = f"Bearer {self.server.token}".encode()
        given = self.headers.get("Authorization", "").encode()
        if not secrets.compare_digest(given, expected):
            raise ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required")

    def _contract_body(self, schema_name: str) -> dict[str, Any]:
        """The JSON body, refused (400) unless the contract's schema `schema_name` allows it."""
        body = self._json_body()
        wrong = problem(body, schema_name, schema_name.lower())
        if wrong is not None:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", wrong)
        return body

    def _json_body(self, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "length-required", "send the body with a Content-Length header")
        try:
            length = int(length_header)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", "Content-Length is not a number") from None
        if length > limit or length < 0:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body-too-large", f"the body may be at most {limit} bytes")
        raw = self.rfile.read(length)
        self._body_read = True
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", f"the body is not valid JSON: {exc}") from None
        return _object(value, "the body")

    def _reply(self, status: HTTPStatus, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if not self._body_read and (self.command in ("POST", "PUT") or self.headers.get("Content-Length", "0") != "0"):
            # The request body is still on the wire: the connection cannot carry another request.
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        allow = getattr(self, "_allow", None)
        if status == HTTPStatus.METHOD_NOT_ALLOWED and allow:
            self.send_header("Allow", allow)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    # endpoints

    def _lease(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        body = self._contract_body("LeaseRequest")  # max 1..100, wait_s 0..3600, as the contract says
        max_jobs = int(body.get("max", 10))
        wait_s = float(body.get("wait_s", 0))
        return HTTPStatus.OK, self.server.desk.lease(params["station"], max_jobs, wait_s)

    def _held(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self.server.desk.held(params["station"])

    def _renew(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        job_ids = _job_ids(self._contract_body("JobIds"))
        return HTTPStatus.OK, self.server.desk.renew(params["station"], job_ids)

    def _release(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        body = self._contract_body("ReleaseRequest")
        _optional_idempotency_key(self.headers)
        job_ids = _job_ids(body)
        reason = _text(body, "reason", "release")
        return HTTPStatus.OK, self.server.desk.release(params["station"], job_ids, reason)

    def _outcome(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        body = self._contract_body("Outcome")
        key = _idempotency_key(self.headers)
        return HTTPStatus.OK, self.server.desk.record_outcome(params["job_id"], key, body)

    def _telemetry(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        body = self._contract_body("Telemetry")
        key = _idempotency_key(self.headers)
        return HTTPStatus.OK, self.server.desk.record_telemetry(params["station"], key, body)

    def _outbox(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        batch = self._contract_body("OutboxBatch")  # 1..200 messages, each kind, key and body an object
        messages = [_batch_message(i, item) for i, item in enumerate(batch["messages"])]
        results = self.server.desk.record_batch(params["station"], messages)
        keys = [item["idempotency_key"] for item in batch["messages"]]
        return HTTPStatus.OK, {"results": [{"idempotency_key": key, **result} for key, result in zip(keys, results)]}

    def _state(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        return HTTPStatus.OK, self.server.desk.snapshot()

    def _faults(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        body = self._json_body()
        if body.get("mode") not in FAULT_MODES:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", f"mode must be one of {', '.join(sorted(FAULT_MODES))}")
        for_s = _number(body, "for_s", 60, 0, 86400)
        delay_s = _number(body, "delay_s", DEFAULT_SLOW_S, 0, 600)
        return HTTPStatus.OK, self.server.desk.set_fault(body["mode"], for_s, delay_s)

    def _inject(self, params: dict[str, str]) -> tuple[HTTPStatus, Any]:
        jobs = self._json_body(MAX_INJECT_BODY_BYTES).get("jobs")
        if not isinstance(jobs, list) or len(jobs) > MAX_INJECTED_JOBS:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad-request", f"jobs must be a list of up to {MAX_INJECTED_JOBS} raw jobs")
        return HTTPStatus.OK, self.server.desk.inject(jobs)


@dataclass
class UpstreamServer:
    """One running reference server. `start()` listens and writes upstream.json; `stop()` ends it.

    Usable as a context manager.
    """

    config: UpstreamConfig
    url: str = field(init=False, default="")
    token: str = field(init=False, default="")
    _httpd: _HttpServer | None = field(init=False, default=None)
    _desk: IssuanceDesk | None = field(init=False, default=None)
    _thread: threading.Thread | None = field(init=False, default=None)

    @property
    def info_path(self) -> Path:
        return self.config.state_dir / "upstream.json"

    def start(self) -> None:
        """Load or create the keys, listen, and write upstream.json.

        Raises OSError if the address is taken or the state folder is not writable, and
        ssl.SSLError if the TLS files do not fit together.
        """
        # Absolute, because upstream.json is read by processes started elsewhere (the demo, the agent).
        state_dir = self.config.state_dir.resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        authority = Authority.load_or_create(state_dir, self.config.kid)
        pki = TestPki.create(state_dir / "pki")
        factory = JobFactory(
            self.config.jobs, authority, pki.signer, seed=self.config.seed, validity=self.config.validity
        )
        # Hex: a token that began with "-" would read as an option on a command line (--token).
        self.token = self.config.token or self._previous_token() or secrets.token_hex(24)
        self._desk = IssuanceDesk(factory, state_dir / "outcomes.jsonl", self.config.lease_s, self.config.max_wait_s)
        self._httpd = _HttpServer((self.config.host, self.config.port), self._desk, self.token, self._tls_context(),
                                  outbox_batch=self.config.outbox_batch)
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        self.url = f"{'https' if self.config.tls_cert else 'http'}://{host}:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S}, name="upstream-sim", daemon=True
        )
        self._thread.start()
        _write_json_atomically(
            self.info_path,
            {
                "url": self.url,
                "token": self.token,
                # Every key in the folder: stations keep verifying jobs signed before a rotation.
                "authority_keys": {path.name.removesuffix(".pub.pem"): str(path)
                                   for path in sorted(state_dir.glob("*.pub.pem"))},
                "trust_anchors": [str(pki.csca_pem_path)],
            },
        )
        log.info("upstream listening", url=self.url, jobs=self.config.jobs, state_dir=str(state_dir))

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        if self.config.client_ca is not None:
            context.load_verify_locations(self.config.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _previous_token(self) -> str | None:
        # A restarted server keeps its token, so an agent configured from upstream.json keeps working.
        try:
            token = json.loads(self.info_path.read_text(encoding="utf-8")).get("token")
        except (OSError, ValueError, AttributeError):
            return None
        return token if isinstance(token, str) and token else None

    def stop(self) -> None:
        """Answer waiting long polls, stop listening, close connections and join every thread."""
        if self._httpd is None or self._desk is None or self._thread is None:
            return
        self._desk.close()
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.end_connections()
        self._httpd.server_close()
        self._httpd = None
        log.info("upstream stopped", url=self.url)

    def __enter__(self) -> "UpstreamServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# command line


def _listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (for example 127.0.0.1:0)")
    return host, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `upstream-sim` options to `parser`: serving (the default) and `report`."""
    parser.add_argument("action", nargs="?", choices=("serve", "report"), default="serve",
                        help="serve (default), or report: print each station's stock, forecast and alerts")
    parser.add_argument("--state-dir", type=Path, required=True, help="keys, outcomes and upstream.json live here")
    parser.add_argument("--json", action="store_true", help="report: one JSON document instead of tables")
    parser.add_argument("--listen", type=_listen_address, default=("127.0.0.1", 0), help="HOST:PORT; port 0 picks a free one")
    parser.add_argument("--jobs", type=int, default=20, help="how many approved jobs to offer")
    parser.add_argument("--token", help="bearer token stations must send (default: kept from upstream.json, or new)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic holders (same seed, same jobs)")
    parser.add_argument("--lease-s", type=float, default=DEFAULT_LEASE_S, help="how long a lease lasts")
    parser.add_argument("--max-wait-s", type=float, default=DEFAULT_MAX_WAIT_S, help="cap on a long poll's wait")
    parser.add_argument(
        "--validity-h", type=float, default=DEFAULT_VALIDITY.total_seconds() / 3600, help="hours until jobs expire"
    )
    parser.add_argument("--kid", default=DEFAULT_KID, help="key id of the authority key that signs the jobs (rotation)")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", type=Path, help="the private key of --tls-cert")
    parser.add_argument("--client-ca", type=Path, help="require station certificates issued by this CA")
    parser.add_argument("--no-outbox-batch", action="store_true",
                        help="act as an upstream from before the batch endpoint (POST /v1/stations/ID/outbox: 404)")


def config_from_args(args: argparse.Namespace) -> UpstreamConfig:
    """The server configuration the parsed `upstream-sim` options describe."""
    host, port = args.listen
    return UpstreamConfig(
        state_dir=args.state_dir,
        host=host,
        port=port,
        jobs=args.jobs,
        token=args.token,
        seed=args.seed,
        lease_s=args.lease_s,
        max_wait_s=args.max_wait_s,
        validity=timedelta(hours=args.validity_h),
        kid=args.kid,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        outbox_batch=not args.no_outbox_batch,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly; or print the report. Returns the process exit status."""
    if args.action == "report":
        from simulators.upstream.report import print_report

        return print_report(args.state_dir, as_json=args.json)
    if args.client_ca and not args.tls_cert:
        log.error("upstream cannot start", error="--client-ca needs --tls-cert and --tls-key")
        return 2
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    # Blocked before any thread starts, so every thread inherits the mask and only sigwait sees them.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        server = UpstreamServer(config_from_args(args))
        try:
            server.start()
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.error("upstream cannot start", error=str(exc))
            return 1
        received = signal.sigwait(stop_signals)
        log.info("stop requested", signal=signal.Signals(received).name)
        server.stop()
        return 0
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.upstream.server", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
