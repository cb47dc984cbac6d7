"""Intake tops the prefetch up in lots (agent/upstream/intake.py `refill_at`): once half a lease (at
most a quarter of the prefetch) is missing, it asks upstream for everything missing at once; a
busy station asks once for several jobs, not once a card, and a station with nothing to print
always asks."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from agent.journal import Journal
from agent.upstream.intake import Intake, refill_at
from agent.upstream.signature import AuthorityKeys


@pytest.mark.parametrize(("prefetch", "lease_max", "expected"), [(20, 10, 5), (1200, 10, 5), (8, 10, 2), (4, 10, 1),
                                                                  (1, 10, 1), (10, 3, 1), (100, 1, 1)])
def test_the_refill_point_is_half_a_lease_at_most_a_quarter_of_the_prefetch_at_least_one(prefetch, lease_max,
                                                                                        expected):
    assert refill_at(prefetch, lease_max) == expected


@pytest.mark.parametrize(("printable", "asked"), [(20, 0), (19, 0), (16, 0), (15, 5), (1, 19), (0, 20)])
def test_intake_asks_for_all_that_is_missing_once_the_refill_point_is_reached(tmp_path, printable, asked):
    journal = Journal(tmp_path / "journal.db", "st-1")
    now = datetime.now(timezone.utc)
    for n in range(printable):
        journal.add_leased(f"J-{n}", {"job_id": f"J-{n}"}, not_after=now + timedelta(days=1),
                           lease_expires_at=now + timedelta(hours=1), priority=0)
    intake = Intake(journal, None, AuthorityKeys({}), prefetch=20, lease_max=10, wait_s=0,  # type: ignore[arg-type]
                    work=threading.Condition())
    try:
        assert intake.shortfall() == asked
    finally:
        journal.close()
