"""Store and forward: the station prints the jobs it holds through a long upstream outage, and
upstream receives every result, once, when the link returns; flaky links lose nothing either."""

from __future__ import annotations

import time

from tests.station_rig import StationRig, wait_until
from tests.faulty_proxy import FaultyProxy, Mode

# The field rate the station plans its outage cover with, made small so that an "hour" is a few cards.
CARDS_PER_HOUR = 4
OUTAGE_HOURS = 2.0  # prefetch = 2 h x 4 cards/h = 8 jobs


def test_station_prints_through_an_outage_longer_than_an_hour_and_reports_everything_after(pcscd, tmp_path):
    jobs = int(OUTAGE_HOURS * CARDS_PER_HOUR)
    settings = {"prefetch": 1, "outage_hours": OUTAGE_HOURS, "cards_per_hour": CARDS_PER_HOUR}
    with StationRig(tmp_path, jobs=jobs, blanks=jobs + 4, upstream=settings) as rig:
        rig.start()
        rig.start_agent()
        wait_until(lambda: rig.journal_path.exists() and rig.journal_query("SELECT COUNT(*) FROM jobs")[0][0] == jobs,
                   60, "the agent to hold its outage cover")
        port = rig.upstream_port
        rig.stop_upstream()  # the link to the centre is gone
        wait_until(lambda: rig.output_count() >= jobs, 120, "the held jobs printed while upstream is down")
        # The card leaves the printer a moment before the agent records its outcome: wait on that state.
        backlog_sql = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND kind = 'outcome'"
        wait_until(lambda: rig.journal_query(backlog_sql)[0][0] >= jobs, 60, "every result waiting in the outbox")
        assert rig.journal_query(backlog_sql)[0][0] == jobs, "every result waits in the outbox, once"
        rig.start_upstream(port)  # the link returns
        rig.wait_for_outcomes(timeout=120)
        wait_until(lambda: rig.journal_query("SELECT COUNT(*) FROM job_payloads")[0][0] == 0,
                   30, "personal data purged once upstream acknowledged")
        rig.stop_agent()
        figures = rig.figures()
        outcomes = rig.outcomes()
    assert figures.clean, figures
    assert {o["status"] for o in outcomes.values()} == {"printed"} and len(outcomes) == jobs


def test_resets_slow_answers_and_5xx_bursts_lose_nothing_and_duplicate_nothing(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=6, blanks=10, prefetch=2, upstream={"timeout_s": 1}) as rig:
        rig.start_upstream()
        proxy = FaultyProxy(rig.upstream_port, delay_s=1.5)
        try:
            rig.upstream_url = proxy.url
            rig.start_simulator()
            rig.write_config()
            rig.load_blanks()
            rig.start_agent()
            for mode in (Mode.RESET, Mode.SLOW, Mode.REFUSE, Mode.DOWN, Mode.PASS):
                proxy.set_mode(mode)
                time.sleep(2.0)
            rig.wait_for_outcomes(timeout=120)
            rig.stop_agent()
        finally:
            proxy.close()
        figures = rig.figures()
        posts = rig.upstream_state()["outcome_posts"]
    assert figures.clean, figures
    assert figures.printed == 6 and posts >= 6
