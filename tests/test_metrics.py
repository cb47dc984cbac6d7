"""The Prometheus endpoint (`[metrics] listen`): the exposition format, the configuration, and the figures
of a real daemon against its witnesses (the virtual printer's cards.jsonl and saved state, upstream's outcomes)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from agent.core.config import check_config, load_config
from agent.core.listen import ListenAddress, parse_listen
from agent.core.printer_snapshot import PrinterSnapshot
from agent.ops.metrics import CONTENT_TYPE, Snapshot, render
from tests.station_rig import StationRig, wait_until

# One sample line of the text format: name, optional labels, value.
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition text, keyed by name and labels; fails on a line that is not the format."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("gauge", "counter") and name not in typed, line
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.fullmatch(line)
        assert m, f"not a sample line: {line!r}"
        assert m.group(1) in typed, f"{m.group(1)} has no TYPE line before it"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_the_text_format_escapes_labels_and_names_counters_total():
    snap = Snapshot(
        station='st "1"', printers=(PrinterSnapshot("p1", "stopped", ("cover-open-error", "paused"), paused=True, ribbon_left=42),
                                    PrinterSnapshot("p2", "starting")),
        balance=[{"printer": "p1", "lot": "LOT\\7\n", "remaining": 12}, {"printer": "p2", "lot": None, "remaining": 0}],
        attempts=[{"printer": "p1", "result": "printed", "reason": None},
                  {"printer": "p1", "result": "spoiled", "reason": "bad-card-image: front.png 0 bytes"},
                  {"printer": "p1", "result": "spoiled", "reason": "chip-hash-mismatch"},
                  {"printer": "p2", "result": None, "reason": None}],
        jobs_by_state={"leased": 3, "failed": 1, "held": 1}, outbox_backlog=4, upstream_online=False)
    samples = parse(render(snap))
    assert value(samples, "printstation_info", station='st \\"1\\"') == 1
    assert value(samples, "printstation_blanks_remaining", printer="p1", lot="LOT\\\\7\\n") == 12
    assert value(samples, "printstation_blanks_remaining", printer="p2", lot="") == 0
    assert value(samples, "printstation_printer_state", printer="p1", state="stopped") == 1
    assert value(samples, "printstation_printer_state", printer="p1", state="idle") == 0
    assert value(samples, "printstation_printer_reason", printer="p1", reason="cover-open-error") == 1
    assert value(samples, "printstation_printer_paused", printer="p1") == 1
    assert value(samples, "printstation_ribbon_cards_left", printer="p1") == 42
    assert not any(name == "printstation_ribbon_cards_left" and ("printer", "p2") in labels for name, labels in samples), \
        "a ribbon not read yet has no sample rather than a made-up 0"
    assert value(samples, "printstation_cards_printed_total", printer="p1") == 1
    assert value(samples, "printstation_cards_printed_total", printer="p2") == 0
    assert value(samples, "printstation_cards_spoiled_total", printer="p1", reason="bad-card-image") == 1, \
        "only the reason's code is a label, not its detail"
    assert value(samples, "printstation_cards_spoiled_total", printer="p1", reason="chip-hash-mismatch") == 1
    assert value(samples, "printstation_jobs_failed_total") == 1
    assert value(samples, "printstation_jobs", state="held") == 1
    assert value(samples, "printstation_outbox_backlog") == 4
    assert value(samples, "printstation_upstream_online") == 0


def test_listen_defaults_to_loopback_and_a_wrong_value_is_named_with_its_line(tmp_path):
    assert parse_listen("9464") == ListenAddress("127.0.0.1", 9464)
    assert parse_listen("0.0.0.0:9100") == ListenAddress("0.0.0.0", 9100)
    assert parse_listen("[::1]:9464") == ListenAddress("::1", 9464)
    for wrong in ("", "localhost", "127.0.0.1:99999", "127.0.0.1:"):
        with pytest.raises(ValueError):
            parse_listen(wrong)

    (tmp_path / "a.pem").write_text("x")
    base = ('[station]\nid = "st-1"\njournal = "journal.db"\n\n[upstream]\nurl = "https://up.example"\ntoken = "t"\n\n'
            '[upstream.authority_keys]\n"authority-1" = "a.pem"\n\n[[printers]]\nname = "p1"\nlink = "serial:///dev/ttyS0"\n'
            'reader = "Virtual PCD 00 00"\n')
    path = tmp_path / "station.toml"
    path.write_text(base)
    assert load_config(path).metrics is None, "off unless configured"
    path.write_text(base + '\n[metrics]\nlisten = "9464"\n')
    assert load_config(path).metrics == ListenAddress("127.0.0.1", 9464)
    path.write_text(base + '\n[metrics]\nlisten = "everywhere"\n')
    [problem] = check_config(path)
    assert problem.line == 18 and "metrics.listen" in str(problem) and 'listen = "127.0.0.1:9464"' in str(problem)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> dict:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"] == CONTENT_TYPE
    return parse(answer.text)


def test_the_daemon_serves_stock_states_outcomes_and_backlog_that_match_the_witnesses(pcscd, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with StationRig(tmp_path, jobs=3, blanks=6, prefetch=3) as rig:
        rig.start()
        rig.write_config(metrics={"listen": str(port)})
        # The first card's chip fails its read-back: one blank goes to the reject box with a reason.
        rig.simulate_ctl("p1", "chip-fault", "flipped-byte")
        rig.start_agent()
        outcomes = rig.wait_for_outcomes()
        samples = wait_until(lambda: (s := scrape(url)) and value(s, "printstation_outbox_backlog") == 0
                             and value(s, "printstation_printer_state", printer="p1", state="idle") == 1 and s,
                             60, "every report delivered and p1 idle")

        cards = rig.cards()
        sim = rig.printer_state("p1")
        spoiled = [a for o in outcomes.values() for a in o["attempts"] if a["result"] == "spoiled"]
        [reject] = [c for c in cards if c["bin"] == "reject"]
        [reason] = {a["reason"] for a in spoiled}
        assert value(samples, "printstation_cards_printed_total", printer="p1") == sum(c["bin"] == "output" for c in cards) == 3
        assert value(samples, "printstation_cards_spoiled_total", printer="p1", reason=reason) == len(spoiled) == 1
        assert value(samples, "printstation_blanks_remaining", printer="p1", lot="LOT-1") == sim["hopper_remaining"] == 2
        assert value(samples, "printstation_ribbon_cards_left", printer="p1") == sim["ribbon_remaining"]
        assert value(samples, "printstation_jobs", state="printed") == 3
        assert value(samples, "printstation_jobs_failed_total") == 0
        assert value(samples, "printstation_upstream_online") == 1
        assert value(samples, "printstation_info", station="crash-station") == 1
        text = httpx.get(url, timeout=10).text
        assert reject["document_number"] not in text and all(c["document_number"] not in text for c in cards), \
            "no personal data in the metrics"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 404

        rig.simulate_ctl("p1", "cover-open")
        wait_until(lambda: value(scrape(url), "printstation_printer_reason", printer="p1", reason="cover-open-error") == 1,
                   60, "the open cover in the metrics")
        assert value(scrape(url), "printstation_printer_state", printer="p1", state="stopped") == 1

        rig.stop_upstream()
        wait_until(lambda: value(scrape(url), "printstation_upstream_online") == 0, 60, "upstream offline in the metrics")

        assert rig.stop_agent() == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=5)


def test_a_taken_port_is_logged_and_the_station_prints_on(pcscd, tmp_path: Path):
    with socket.socket() as taken, StationRig(tmp_path, jobs=1, blanks=2, prefetch=1) as rig:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        rig.start()
        rig.write_config(metrics={"listen": f"127.0.0.1:{taken.getsockname()[1]}"})
        rig.start_agent()
        rig.wait_for_outcomes()
        [line] = [line for line in rig.agent_log().splitlines() if "metrics-unavailable" in line]
        assert "remedy" in line and "[metrics] listen" in line, line
