"""Personal data never leaves the process unmasked in a log line."""

from __future__ import annotations

import json

import structlog

from agent.core import logs


def render(**event):
    return logs.mask_personal_data(None, "info", {"event": "x", **event})


def test_nik_is_masked_in_any_field():
    out = render(detail="job for 3174015505900001 failed")
    assert "3174015505900001" not in json.dumps(out)
    assert "3174************" in out["detail"]


def test_name_and_images_are_masked():
    out = render(name="SITI AMINAH", front_png="iVBOR...", subject={"nik": "3174015505900001", "name": "SITI"})
    text = json.dumps(out)
    for secret in ("SITI AMINAH", "iVBOR", "3174015505900001"):
        assert secret not in text
    assert out["name"] == "S*** A*****"


def test_configured_logger_masks_in_json_output(capsys):
    logs.configure(json_output=True)
    try:
        structlog.get_logger("t").warning("card-spoiled", nik="3174015505900001", reason="chip-wrong-subject")
    finally:
        structlog.reset_defaults()  # the configuration holds capsys's stream, closed after this test
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "3174015505900001" not in line
    assert json.loads(line)["reason"] == "chip-wrong-subject"
