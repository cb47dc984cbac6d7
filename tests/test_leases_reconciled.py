"""No stranded leases: jobs upstream leased to the station but the station never recorded (it
died between the lease answer and its journal, or the journal could not take them) go back to
upstream as soon as the station starts, and are printed, once."""

from __future__ import annotations

import httpx

from tests.station_rig import StationRig


def test_jobs_leased_but_never_recorded_are_released_on_start_and_printed_once(pcscd, tmp_path):
    with StationRig(tmp_path, jobs=3, blanks=6, prefetch=3) as rig:
        rig.start()
        # The station's own credentials take a lease whose answer never reaches its journal,
        # as when the agent is killed while reading it.
        with httpx.Client(base_url=rig.upstream_info["url"], timeout=10,
                          headers={"Authorization": f"Bearer {rig.upstream_info['token']}"}) as http:
            leased = http.post("/v1/stations/crash-station/leases", json={"max": 2}).json()
            held = http.get("/v1/stations/crash-station/leases").json()
        stranded = sorted(job["job_id"] for job in leased["jobs"])
        assert len(stranded) == 2 and sorted(j["job_id"] for j in held["jobs"]) == stranded
        rig.start_agent()
        outcomes = rig.wait_for_outcomes(timeout=120)
        rig.stop_agent()
        figures = rig.figures()
        releases = rig.upstream_state()["releases"]
    assert figures.clean, figures
    assert {o["status"] for o in outcomes.values()} == {"printed"} and len(outcomes) == 3
    assert sorted(r["job_id"] for r in releases if "not recorded" in r["reason"]) == stranded
