"""SIGKILL the agent at every step of the card pipeline, restart it, and prove nothing was printed
twice or lost: the printer's card log, its saved state, the upstream's record and the ledger agree."""

from __future__ import annotations

import pytest

from agent.station.crashpoints import CrashPoint
from tests.station_rig import StationRig

# Steps every card passes; the reject steps are reached through recovery of an interrupted card, and
# the outbox's own step (after-batch-before-journal) has its test in tests/test_outbox_batch.py.
PIPELINE = [p for p in CrashPoint if p not in (CrashPoint.BEFORE_REJECT, CrashPoint.AFTER_REJECT_BEFORE_JOURNAL,
                                               CrashPoint.AFTER_BATCH_BEFORE_JOURNAL)]


@pytest.mark.parametrize("point", PIPELINE, ids=[p.value for p in PIPELINE])
def test_agent_killed_at_a_pipeline_step_prints_every_job_exactly_once(pcscd, tmp_path, point):
    with StationRig(tmp_path, jobs=2, blanks=6, prefetch=2) as rig:
        rig.start()
        rig.agent_killed_at(f"{point.value}:1")
        rig.start_agent()
        rig.wait_for_outcomes()
        rig.stop_agent()
        figures = rig.figures()
    assert figures.clean, figures
    assert figures.printed == 2 and figures.kills == 1


@pytest.mark.parametrize("point", [CrashPoint.BEFORE_REJECT, CrashPoint.AFTER_REJECT_BEFORE_JOURNAL],
                         ids=lambda p: p.value)
def test_agent_killed_while_rejecting_an_interrupted_card_settles_it_once(pcscd, tmp_path, point):
    with StationRig(tmp_path, jobs=1, blanks=4, prefetch=1) as rig:
        rig.start()
        rig.agent_killed_at("after-feed:1")       # a card left inside: the next start rejects it
        rig.agent_killed_at(f"{point.value}:1")   # ... and dies in the middle of that
        rig.start_agent()
        rig.wait_for_outcomes()
        rig.stop_agent()
        figures = rig.figures()
        rejected = [c for c in rig.cards() if c["bin"] == "reject"]
    assert figures.clean, figures
    assert len(rejected) == 1, "the interrupted card went to the reject box once"
