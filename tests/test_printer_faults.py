"""Faults injected into the virtual printer during a batch, against the real agent, simulator,
upstream and pcscd. Whatever happens, every job is printed exactly once, every blank is
accounted for in cards.jsonl, and every rejected card has its reason upstream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.station_rig import as_the_demo, running_station

TRANSPORTS = ["serial", "usb"]


def schedule(tmp_path: Path, **entry: object) -> list[str]:
    """`--faults FILE` for one action on p1 at card 2."""
    path = tmp_path / "faults.json"
    path.write_text(json.dumps({"faults": [{"printer": "p1", "at_card": 2, **entry}]}))
    return ["--faults", str(path)]


def reasons(result: dict) -> list[str]:
    return [a["reason"] for a in result["spoiled"]]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_jam_mid_card_pauses_until_cleared_then_the_card_is_rejected_and_the_job_retried(pcscd, tmp_path, transport):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport, sim_extra=schedule(tmp_path, action="jam")) as st:
        st.wait_for_log("printer-paused")
        st.ctl("p1", action="clear")
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert reasons(result) == ["printer-fault:jam"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cover_opened_mid_card_spoils_that_card_and_printing_resumes_when_it_closes(pcscd, tmp_path, transport):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport, sim_extra=schedule(tmp_path, action="cover-open", for_s=1.5)) as st:
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert reasons(result) == ["printer-fault:cover_open"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_ribbon_ending_mid_card_waits_for_a_new_ribbon(pcscd, tmp_path, transport):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport, sim_extra=schedule(tmp_path, action="ribbon-end")) as st:
        st.wait_for_log("printer-paused")
        st.ctl("p1", action="ribbon-load", count=100)
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert reasons(result) == ["printer-fault:ribbon_ended"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_emptied_hopper_pauses_without_spoiling_and_resumes_when_blanks_are_loaded(pcscd, tmp_path, transport):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport, sim_extra=schedule(tmp_path, action="hopper-empty")) as st:
        st.wait_for_log("printer-paused")
        taken = st.printer_state()["blanks_unloaded"]
        assert taken > 0
        st.ctl("p1", action="hopper-load", count=taken)
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert result["spoiled"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_overheated_head_pauses_the_printer_until_it_has_cooled(pcscd, tmp_path, transport):
    # A slow-cooling head (about 5 s from hot to ready at speed 200), so the pause outlasts card 2.
    extra = schedule(tmp_path, action="overheat") + ["--head-cooling-per-s", "0.03"]
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport, sim_extra=extra) as st:
        st.wait_for_log("head_hot")
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert result["spoiled"] == [], "cooling only holds back the next card"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", [
    {"action": "link-drop", "for_s": 1.0},
    {"action": "garbage", "count": 24},
    {"action": "slow", "for_s": 2.0, "delay_s": 0.3},
    {"action": "slow", "for_s": 1.0, "delay_s": 6.0},  # beyond the driver's query timeout
], ids=["link-drop", "garbage", "slow", "slower-than-the-timeout"])
def test_a_bad_link_never_loses_a_card(pcscd, tmp_path, transport, fault):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport, sim_extra=schedule(tmp_path, **fault)) as st:
        outcomes = st.wait_for_outcomes(timeout=90)
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert set(reasons(result)) <= {"interrupted"}, "only a card caught by the fault is spoiled"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_command_error_on_eject_rejects_the_card_with_the_reply_and_retries(pcscd, tmp_path, transport):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport, sim_extra=schedule(tmp_path, action="command-error", command="Se")) as st:
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert reasons(result) == ["printer-fault:ERR COMMAND FAILED"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("chip_fault", ["flipped-byte", "untrusted-sod"])
def test_a_bad_chip_rejects_the_card_with_the_chip_reason_and_the_job_retries(pcscd, tmp_path, transport, chip_fault):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport=transport,
                 sim_extra=schedule(tmp_path, action="chip-fault", fault=chip_fault, cards=1)) as st:
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    [reason] = reasons(result)
    assert not reason.startswith("printer-fault"), reason


@pytest.mark.parametrize("action", ["jam", "overheat"])
def test_a_printer_with_status_words_is_read_through_them_and_pauses_the_same_way(pcscd, tmp_path, action):
    """Newer firmware answers the vendor SDK's `Rpst`: the driver finds it at connect and reads the jam or the hot
    head from it instead of from refusals; the outcome is the same."""
    extra = schedule(tmp_path, action=action) + ["--status-words", "--head-cooling-per-s", "0.03"]
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport="serial", sim_extra=extra) as st:
        st.wait_for_log("status_words=Rpst")
        st.wait_for_log("printer-paused")
        if action == "jam":
            st.ctl("p1", action="clear")
        outcomes = st.wait_for_outcomes()
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
    assert reasons(result) == (["printer-fault:jam"] if action == "jam" else [])
