"""Alerts that reach a person, from the whole station: the real daemon on virtual printers, pcscd
and upstream, with a loopback webhook receiver and a local SMTP server (aiosmtpd) configured in
`[notify]`. A jam injected with the printer's control channel and a hopper below its threshold
each reach both channels once, in Indonesian with the remedy; while the station prints every job
on, the standing low-stock alert is not sent again; no holder's NIK or name is in any message.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from agent.core.messages import fault_message
from simulators.upstream.job_factory import synthetic_specs
from tests.station_rig import StationRig, wait_until
from tests.test_notify import Receiver, smtp_server

JOBS = 8
SEED = 1  # the upstream simulator's default: the same holders


def holders_personal_data() -> set[str]:
    """Every NIK and name the upstream simulator can have put in these jobs (issued today, UTC, or yesterday)."""
    today = datetime.now(timezone.utc).date()
    found: set[str] = set()
    for day in (today, today - timedelta(days=1)):
        for spec in synthetic_specs(JOBS, SEED, day):
            found |= {spec.holder.nik, spec.holder.name.lower()}
    return found


def codes(messages: list[str]) -> Counter[str]:
    return Counter(messages)


def test_a_jam_and_low_blanks_reach_the_webhook_and_the_mailbox_once_each_in_indonesian(pcscd, tmp_path):
    jam_text, low_text = fault_message("jam", "id"), fault_message("blanks-low", "id")
    receiver = Receiver()
    try:
        with smtp_server() as (mailbox, smtp_port), StationRig(tmp_path, jobs=JOBS, speed=10, prefetch=JOBS) as rig:
            rig.start()  # the hopper holds the jobs and 5 more: far under the threshold of 100
            rig.write_config(station={"language": "id"}, stock={"blanks_low": 100},
                             notify={"webhook_url": receiver.url, "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
                                     "smtp_from": "station@example.test", "smtp_to": ["operator@example.test"]})
            rig.start_agent()
            wait_until(lambda: rig.output_count() >= 1, 120, "the first card out")
            rig.ctl("p1", action="jam")
            wait_until(lambda: "jam" in [r["body"]["code"] for r in receiver.accepted], 60, "the jam on the webhook")
            rig.ctl("p1", action="clear")
            rig.wait_for_outcomes()  # the station prints on: many ticks with the hopper still low
            wait_until(lambda: {"jam", "blanks-low"} <= {r["body"]["code"] for r in receiver.accepted}
                       and len(mailbox.messages) >= 2, 60, "both alerts on both channels")
            rig.stop_agent()  # nothing more can arrive: count what did
            rig.assert_every_job_printed_once(rig.outcomes())
    finally:
        receiver.stop()

    posts = [r["body"] for r in receiver.accepted]
    per_code = codes([p["code"] for p in posts])
    assert per_code["jam"] == 1 and per_code["blanks-low"] == 1, per_code
    assert all(n == 1 for n in per_code.values()), f"an alert sent twice: {per_code}"
    jam = next(p for p in posts if p["code"] == "jam")
    low = next(p for p in posts if p["code"] == "blanks-low")
    assert (jam["message"], jam["remedy"], jam["printer"], jam["language"]) == (*jam_text, "p1", "id")
    assert (low["message"], low["remedy"], low["printer"]) == (*low_text, "p1")
    assert isinstance(low["count"], int) and low["count"] < 100

    subjects = [m["Subject"] for m in mailbox.messages]
    assert sum(jam_text[0] in s for s in subjects) == 1, subjects
    assert sum(low_text[0] in s for s in subjects) == 1, subjects
    for mail in mailbox.messages:
        body = mail.get_body().get_content()
        assert "Yang harus dilakukan" in body, body
    jam_mail = next(m for m in mailbox.messages if jam_text[0] in m["Subject"])
    assert jam_text[1] in jam_mail.get_body().get_content()

    personal = holders_personal_data()
    for raw in [r["raw"] for r in receiver.requests] + mailbox.raw:
        assert not [p for p in personal if p in raw.lower()], "personal data in an alert"
