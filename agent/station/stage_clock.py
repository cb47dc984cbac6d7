"""Wall milliseconds per stage of one card, for the log line and the benchmark's breakdown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageClock:
    def __init__(self) -> None:
        self._ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._ms[name] = self._ms.get(name, 0.0) + (time.perf_counter() - started) * 1000

    def as_ms(self) -> dict[str, float]:
        return {name: round(ms, 2) for name, ms in self._ms.items()}
