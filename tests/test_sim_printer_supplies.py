"""The virtual printer's supplies and duty cycle: head heat, bin capacities, blanks in and out."""

from __future__ import annotations

from pathlib import Path

from simulators.printer.machine import Capacities, DutyCycle, Equipment
from tests.sim_printer_rig import PANEL_K, Rig, running_printer

PANEL = b"\x00" * PANEL_K
# These tests read the simulator's own status words (a newer-firmware capability, off by default).
STATUS_WORDS = Equipment(status_words=True)


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def one_card(rig: Rig, panels: str = "ymcko") -> None:
    assert [rig.cmd("Ss"), rig.cmd("Sic"), rig.cmd("Sr")] == ["OK", "OK", "OK"]
    for panel in panels:
        assert rig.cmd(f"Db;{panel};2", PANEL) == "OK"
    assert rig.cmd("Se") == "OK"


def cooling_bit(rig: Rig) -> bool:
    return bool(int(rig.cmd("Rst").split(";")[1], 16) & 0x40)


def test_a_long_run_heats_the_head_until_the_printer_refuses_new_cards_to_cool(tmp_path: Path) -> None:
    clock = ManualClock()
    duty = DutyCycle(heat_per_panel=1.0, cooling_per_s=0.5, stop_at=10.0, resume_at=4.0)
    with running_printer(tmp_path, equipment=STATUS_WORDS, blanks=5, duty_cycle=duty, clock=clock) as rig:
        one_card(rig)  # 5 panels: heat 5
        assert not cooling_bit(rig)
        one_card(rig)  # heat 10: at the threshold
        assert cooling_bit(rig)
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "ERROR HEAD"
        assert rig.cmd("Rco;c") == "2", "no blank left the feeder"
        clock.now += 10.0 / 1000  # 10 printer seconds at speed 1000: heat 5, still above resume_at
        assert cooling_bit(rig), "hysteresis: it waits until the head is down to resume_at"
        clock.now += 4.0 / 1000  # heat 3
        assert not cooling_bit(rig)
        assert rig.cmd("Sic") == "OK"


def test_the_default_duty_cycle_pauses_a_long_batch_at_speed_10_but_not_a_short_one() -> None:
    duty = DutyCycle()
    card_panels, card_printer_s = 6, 30.0  # front YMCKO, back K, about 30 s a card with the chip work
    heat, cards = 0.0, 0
    while heat < duty.stop_at and cards < 1000:
        heat = max(0.0, heat + card_panels * duty.heat_per_panel - duty.cooling_per_s * card_printer_s)
        cards += 1
    assert 15 <= cards <= 40, f"pauses after {cards} cards"
    pause_at_speed_10 = (duty.stop_at - duty.resume_at) / duty.cooling_per_s / 10
    assert 10 <= pause_at_speed_10 <= 60, f"a pause of {pause_at_speed_10:.0f} s at speed 10"


def test_a_full_output_hopper_refuses_the_next_card_until_emptied(tmp_path: Path) -> None:
    with running_printer(tmp_path, equipment=STATUS_WORDS, capacities=Capacities(output=1)) as rig:
        one_card(rig, "k")
        assert int(rig.cmd("Rst").split(";")[1], 16) & 0x02
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "HOPPER FULL"
        rig.printer.call(rig.printer.empty_bins)
        assert rig.cmd("Sic") == "OK"
        assert rig.saved_state()["output_count"] == 1, "the lifetime count stays"


def test_a_full_reject_box_refuses_a_reject_and_the_next_card(tmp_path: Path) -> None:
    with running_printer(tmp_path, equipment=STATUS_WORDS, capacities=Capacities(reject=1)) as rig:
        rig.cmd("Ss")
        rig.cmd("Sic")
        assert rig.cmd("Ser") == "OK"
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "ERR REJECT BOX FULL"
        rig.printer.call(rig.printer.empty_bins)
        assert rig.cmd("Sic") == "OK"
        rig.printer.call(lambda: rig.printer.load_blanks(1))
        assert int(rig.cmd("Rst").split(";")[1], 16) & 0x04 == 0


def test_blanks_loaded_and_taken_out_balance_with_the_bins_and_the_feeder(tmp_path: Path) -> None:
    with running_printer(tmp_path, equipment=STATUS_WORDS, blanks=3, capacities=Capacities(hopper=5)) as rig:
        one_card(rig, "k")
        assert rig.printer.call(rig.printer.unload_blanks) == 2
        rig.cmd("Ss")
        assert rig.cmd("Sic") == "FEEDER EMPTY"
        rig.printer.call(lambda: rig.printer.load_blanks(4))
        assert rig.cmd("Sic") == "OK"
        assert rig.cmd("Ser") == "OK"
        s = rig.saved_state()
        assert (s["blanks_loaded"], s["blanks_unloaded"], s["hopper_remaining"]) == (7, 2, 3)
        assert s["blanks_loaded"] - s["blanks_unloaded"] == len(rig.cards()) + s["hopper_remaining"]


def test_the_feeder_takes_no_more_blanks_than_it_holds(tmp_path: Path) -> None:
    from simulators.printer.machine import SupplyRefused

    with running_printer(tmp_path, equipment=STATUS_WORDS, blanks=4, capacities=Capacities(hopper=5)) as rig:
        try:
            rig.printer.call(lambda: rig.printer.load_blanks(2))
        except SupplyRefused as e:
            assert "at most 1 more" in str(e)
        else:
            raise AssertionError("a feeder of 5 took a sixth blank")
        assert rig.printer.call(rig.printer.snapshot)["hopper_remaining"] == 4
