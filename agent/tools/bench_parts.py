"""The benchmark's figures for single parts, in-process and without hardware: what a card costs
the agent to render and to parse, and what a job costs the reference upstream to build (its chip
image included). Mean milliseconds over a fixed count of repetitions, each part warmed once.

These were timed unit tests once; a bound in a unit test fails on a busy machine, a figure here
is read beside the rest of `printstation bench`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _mean_ms(repeat: int, action: Callable[[int], Any]) -> float:
    action(0)  # warm up: imports, caches
    started = time.perf_counter()
    for i in range(repeat):
        action(i + 1)
    return round((time.perf_counter() - started) / repeat * 1000, 2)


def part_costs(root: Path, *, repeat: int = 50) -> dict[str, float]:
    """`render_ms` (a job's two faces to panels), `parse_job_ms` (a signed job's body, the
    configured limits applied), `chip_image_ms` and `job_build_ms` (the reference upstream)."""
    import base64
    import json

    from agent.core.limits import DEFAULT_LIMITS
    from agent.station.card_render import render_card
    from agent.upstream.job import parse_job
    from simulators.chip.image import ChipSubject, build_chip_files
    from simulators.pki import TestPki
    from simulators.upstream.authority import Authority
    from simulators.upstream.card_art import face_jpeg
    from simulators.upstream.job_factory import JobFactory

    pki = TestPki.create(root / "pki")
    factory = JobFactory(repeat + 1, Authority.load_or_create(root / "authority"), pki.signer, seed=7)
    ids = [spec.job_id for spec in factory.specs]
    figures: dict[str, float] = {"job_build_ms": _mean_ms(repeat, lambda i: factory.job(ids[i]))}
    body = factory.job(ids[0])
    front, back = base64.b64decode(body["card"]["front_png"]), base64.b64decode(body["card"]["back_png"])
    figures["render_ms"] = _mean_ms(repeat, lambda i: render_card(front, back))
    wire = json.dumps(body)
    figures["parse_job_ms"] = _mean_ms(repeat, lambda i: parse_job(json.loads(wire), DEFAULT_LIMITS))
    holder = factory.specs[0].holder
    face = face_jpeg(holder)
    subject = ChipSubject("KTP000001", holder.nik, holder.name, holder.birth_date, holder.sex.value, None)
    figures["chip_image_ms"] = _mean_ms(repeat * 4, lambda i: build_chip_files(subject, face, pki.signer))
    return figures
