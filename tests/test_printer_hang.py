"""A printer that stops answering (a firmware hang; `kill -STOP` of the printer's process) is
`not-responding` (IPP `timed-out-error`) within twice the step's time (at least 10 s), shown in
`status` and reported upstream; when it answers again the card goes on, or, after the step's
timeout, is settled from the printer's evidence as after a crash. The card log is the witness."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.station_rig import as_the_demo, running_station
from tests.test_printer_faults import schedule
from tests.station_rig import wait_until


@pytest.mark.parametrize("hang_s, settled", [(20.0, "answers again"), (45.0, "after the step's timeout")])
def test_a_hung_printer_is_not_responding_within_the_bound_and_every_card_is_settled(pcscd, tmp_path, hang_s, settled):
    with running_station(tmp_path, jobs=3, **as_the_demo(), transport="serial", sim_extra=schedule(tmp_path, action="hang", for_s=hang_s)) as st:
        st.wait_for_log("printer-not-responding", timeout=60)
        config = tmp_path / "station.toml"

        def p1() -> dict:
            done = subprocess.run([sys.executable, "-m", "agent", "status", "--json", "--config", str(config)],
                                  capture_output=True, text=True, timeout=30)
            return json.loads(done.stdout)["printers"][0]

        shown = p1()
        assert shown["state"] == "stopped" and "timed-out-error" in shown["reasons"], shown
        assert "not_responding" in shown["faults"]

        def reported() -> bool:
            with httpx.Client(base_url=st.upstream_info["url"], timeout=5,
                              headers={"Authorization": f"Bearer {st.upstream_info['token']}"}) as http:
                body = http.get("/v1/_sim/state").json()["telemetry"].get(st.station_id, {})
            return any("timed-out-error" in p.get("reasons", []) for p in body.get("printers", []))

        wait_until(reported, 30, "upstream told of the silent printer")
        outcomes = st.wait_for_outcomes(timeout=180)
        st.stop_agent_and_printers()
        result = st.assert_every_job_printed_once(outcomes)
        agent_log = (tmp_path / "agent.log").read_text(errors="replace")
    line = next(x for x in agent_log.splitlines() if "printer-not-responding" in x)
    waited = float(line.split("waited_s=")[1].split()[0])
    assert 10.0 <= waited <= 12.0, line
    if hang_s < 30:
        assert "printer-responding-again" in agent_log and result["spoiled"] == []
    else:
        assert [a["reason"] for a in result["spoiled"]] == ["interrupted"], result["spoiled"]
