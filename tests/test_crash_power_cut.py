"""A power cut: the agent and the virtual printer die together (SIGKILL both). The printer comes
back from its saved state (counters, the card inside, what its chip holds) and the agent
resolves the interrupted card from that evidence."""

from __future__ import annotations

import pytest

from tests.station_rig import StationRig


@pytest.mark.parametrize("point", ["after-fed", "mid-panels", "after-eject-before-journal"])
def test_power_cut_mid_card_leaves_every_job_printed_once_and_every_blank_counted(pcscd, tmp_path, point):
    with StationRig(tmp_path, jobs=2, blanks=6, prefetch=2) as rig:
        rig.start()
        rig.agent_killed_at(f"{point}:1")
        inside_before = rig.printer_state()["card"]
        rig.power_cut_simulator()
        rig.start_simulator()
        assert rig.printer_state()["card"] == inside_before, "the printer remembers the card inside across the cut"
        rig.write_config()  # the printer's serial device has a new name after its restart
        rig.start_agent()
        rig.wait_for_outcomes()
        rig.stop_agent()
        figures = rig.figures()
    assert figures.clean, figures
    assert figures.printed == 2
