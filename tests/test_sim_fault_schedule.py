"""Fault schedules for `simulate --faults FILE`, in JSON and TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.printer.control import Action, ActionName
from simulators.printer.fault_schedule import ScheduleError, by_printer, load_schedule


def test_json_and_toml_schedules_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text('{"faults": [{"printer": "p1", "at_card": 3, "action": "jam"},'
                                     ' {"printer": "p1", "at_card": 3, "action": "cover-open", "for_s": 2}]}')
    (tmp_path / "f.toml").write_text('[[faults]]\nprinter = "p1"\nat_card = 3\naction = "jam"\n\n'
                                     '[[faults]]\nprinter = "p1"\nat_card = 3\naction = "cover-open"\nfor_s = 2\n')
    expected = {"p1": {3: [Action(ActionName.JAM), Action(ActionName.COVER_OPEN, for_s=2.0)]}}
    assert by_printer(load_schedule(tmp_path / "f.json")) == expected
    assert by_printer(load_schedule(tmp_path / "f.toml")) == expected


@pytest.mark.parametrize("text, says", [
    ('{"faults": [{"printer": "p1", "at_card": 0, "action": "jam"}]}', "fault 1: 'at_card'"),
    ('{"faults": [{"at_card": 1, "action": "jam"}]}', "'printer'"),
    ('{"faults": [{"printer": "p1", "at_card": 1, "action": "explode"}]}', "unknown action 'explode'"),
    ('{"faults": [{"printer": "p1", "at_card": 1, "action": "slow", "for_s": 1}]}', "slow needs delay_s"),
    ('{"jam": 1}', "one list named 'faults'"),
    ('{"faults": [', "cannot read the fault schedule"),
])
def test_a_wrong_schedule_names_the_file_and_the_entry(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "f.json"
    path.write_text(text)
    with pytest.raises(ScheduleError) as e:
        load_schedule(path)
    assert says in str(e.value) and str(path) in str(e.value)
