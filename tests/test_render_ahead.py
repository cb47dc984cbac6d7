"""The next jobs' panels are ready before a printer claims them, and equal to a render done then."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image

from agent.station.card_render import render_card
from agent.upstream.job import parse_job
from agent.journal import Journal
from agent.station.render_ahead import RenderAhead

NOW = datetime.now(timezone.utc)


def png(colour: tuple[int, int, int], size: tuple[int, int] = (1016, 648)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG", compress_level=1)
    return base64.b64encode(out.getvalue()).decode()


def job(job_id: str, front: str) -> dict:
    return {
        "job_id": job_id, "not_after": (NOW + timedelta(days=1)).isoformat(), "priority": 0,
        "subject": {"nik": "3174015505900001", "name": "SITI AMINAH", "document_number": "KTP000001"},
        "card": {"front_png": front, "back_png": png((255, 255, 255))},
        "chip": {"profile": "icao9303", "files": {"EF.SOD": base64.b64encode(b"\x77\x00").decode()}},
    }


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.db", "st-1")
    yield j
    j.close()


def add(journal: Journal, raw: dict) -> None:
    journal.add_leased(raw["job_id"], raw, not_after=NOW + timedelta(days=1),
                       lease_expires_at=NOW + timedelta(hours=1), priority=0)


def test_panels_rendered_ahead_equal_a_render_at_claim_time(journal):
    raws = [job("J-1", png((200, 30, 30))), job("J-2", png((30, 200, 30)))]
    for raw in raws:
        add(journal, raw)
    ahead = RenderAhead(journal, depth=128, lookahead=2)
    try:
        ahead.prepare_next()
        ahead._pool.submit(lambda: None).result(timeout=30)  # the render thread has done its work
        assert set(ahead._ready) == {"J-1", "J-2"}
        for raw in raws:
            parsed = parse_job(raw)
            prepared = ahead.prepared(raw["job_id"])
            assert prepared.job == parsed  # parsed on the render thread, once, with the same limits
            assert prepared.panels == render_card(parsed.front_png, parsed.back_png, depth=128)
        assert not ahead._ready, "a job's panels are handed out once"
    finally:
        ahead.close()


def test_a_job_not_rendered_ahead_is_rendered_when_claimed(journal):
    ahead = RenderAhead(journal, depth=128, lookahead=1)
    try:
        raw = job("J-9", png((10, 10, 10)))
        add(journal, raw)  # leased after the last look ahead: read from the journal at claim time
        parsed = parse_job(raw)
        prepared = ahead.prepared("J-9")
        assert prepared.job == parsed
        assert prepared.panels == render_card(parsed.front_png, parsed.back_png, depth=128)
    finally:
        ahead.close()


def test_a_job_given_back_unprinted_is_not_rendered_again(journal):
    raw = job("J-5", png((40, 40, 200)))
    add(journal, raw)
    ahead = RenderAhead(journal, depth=128, lookahead=1)
    try:
        first = ahead.prepared("J-5")
        ahead.give_back("J-5", first)  # its feed was refused (a cooling head): the job waits
        assert ahead.prepared("J-5") is first  # the same panels, not a second render
    finally:
        ahead.close()


def test_panels_of_a_job_that_no_longer_waits_for_a_printer_are_let_go(journal):
    # A printer claimed J-1 and rendered it itself before render-ahead made its entry for it (it
    # never asks `prepared`, as here); once the card is under way, that entry must not stay
    # (2-3.5 MB a card).
    for raw in (job("J-1", png((200, 30, 30))), job("J-2", png((30, 200, 30)))):
        add(journal, raw)
    ahead = RenderAhead(journal, depth=128, lookahead=2)
    try:
        ahead.prepare_next()
        ahead._pool.submit(lambda: None).result(timeout=30)
        claimed = journal.claim_next("p1")
        assert claimed is not None and claimed.job_id == "J-1"
        ahead.forget_finished()
        assert set(ahead._ready) == {"J-1", "J-2"}, "claimed, not yet fed: its printer may still ask"
        journal.fed("J-1", claimed.attempt, "p1")
        ahead.forget_finished()
        assert set(ahead._ready) == {"J-2"}, "fed: nobody will ask for J-1's panels any more"
        assert ahead.prepared("J-2").job.job_id == "J-2"
    finally:
        ahead.close()
