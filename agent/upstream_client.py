"""The station's HTTP client for the upstream issuance server (httpx)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from agent.config import UpstreamConfig
from agent.job import parse_timestamp


class UpstreamUnavailable(Exception):
    """Upstream cannot be reached or answered 5xx: try again later, nothing is lost."""


class UpstreamRefused(Exception):
    """Upstream answered 4xx: the request itself is wrong; retrying it unchanged will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"upstream refused ({status}): {message}")
        self.status = status


@dataclass(frozen=True)
class Lease:
    jobs: list[Any]
    expires_at: datetime


class UpstreamClient:
    def __init__(self, config: UpstreamConfig, station_id: str, transport: httpx.BaseTransport | None = None) -> None:
        self.station_id = station_id
        self.url = config.url
        self._http = httpx.Client(
            base_url=config.url,
            headers={"Authorization": f"Bearer {config.token}", "User-Agent": "printstation/0.1"},
            timeout=httpx.Timeout(config.timeout_s, read=config.timeout_s + config.wait_s),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict, headers: dict | None = None) -> dict:
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"{method} {self.url}{path}: upstream answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            data = {"message": response.text[:200]}
        if response.status_code >= 400:
            raise UpstreamRefused(response.status_code, str(data.get("message", data))[:300])
        if not isinstance(data, dict):
            raise UpstreamRefused(response.status_code, "answer is not a JSON object")
        return data

    def lease(self, max_jobs: int, wait_s: float) -> Lease:
        """Ask for up to `max_jobs` jobs, waiting up to `wait_s` for some to be approved."""
        data = self._call("POST", f"/v1/stations/{self.station_id}/leases", {"max": max_jobs, "wait_s": wait_s})
        jobs = data.get("jobs")
        if not isinstance(jobs, list):
            raise UpstreamRefused(200, "lease answer has no jobs list")
        return Lease(jobs=jobs, expires_at=parse_timestamp(data.get("lease_expires_at"), "lease_expires_at"))

    def deliver(self, method: str, path: str, idempotency_key: str, body: dict) -> dict:
        """Send one outbox message; replays are harmless thanks to the idempotency key."""
        return self._call(method, path, body, headers={"Idempotency-Key": idempotency_key})
