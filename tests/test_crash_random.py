"""SIGKILL the agent at random moments over a batch, restarting it each time, with now and then a
power cut of the printer too. Bounded for CI; `make soak` runs it longer (CRASH_CARDS, CRASH_KILLS)."""

from __future__ import annotations

import os
import random
import time

from tests.station_rig import StationRig

CARDS = int(os.environ.get("CRASH_CARDS", "12"))
KILLS = int(os.environ.get("CRASH_KILLS", "5"))
POWER_CUT_EVERY = int(os.environ.get("CRASH_POWER_CUT_EVERY", "3"))  # every Nth kill cuts the printer's power too


def test_random_kills_over_a_batch_leave_no_duplicate_no_lost_result_and_a_balanced_ledger(pcscd, tmp_path):
    seed = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    with StationRig(tmp_path, jobs=CARDS, blanks=CARDS * 2 + KILLS, prefetch=4) as rig:
        rig.start()
        for n in range(1, KILLS + 1):
            rig.start_agent()
            time.sleep(rng.uniform(0.8, 3.0))  # start-up, recovery, and somewhere in a card
            if len(rig.outcomes()) >= CARDS:
                break
            rig.kill_agent()
            if POWER_CUT_EVERY and n % POWER_CUT_EVERY == 0:
                rig.power_cut_simulator()
                rig.start_simulator()
                rig.write_config()
        rig.start_agent()
        rig.wait_for_outcomes(timeout=60 + CARDS * 10)
        rig.stop_agent()
        figures = rig.figures()
        outcomes = rig.outcomes()
    print(f"seed {seed}: {figures}")
    assert figures.clean, f"seed {seed}: {figures}"
    # The station's crashes are the station's: an interrupted card does not use up a citizen's
    # attempts, so every job prints (a separate cap, far above these kills, ends a real loop).
    failed = [o for o in outcomes.values() if o["status"] != "printed"]
    assert failed == [] and figures.printed == CARDS, failed
