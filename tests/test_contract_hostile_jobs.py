"""A real agent fed hostile and forged jobs by the reference upstream: it prints only the approved,
intact, current jobs, reports every refusal upstream with its reason, and keeps running.
The virtual printer's card log (cards.jsonl) is the witness of what was printed."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx

from agent.journal import Journal
from simulators.upstream.authority import Authority
from simulators.upstream.job_factory import JobFactory
from simulators.pki import TestPki
from simulators.upstream.server import UpstreamConfig, UpstreamServer
from tests.station_rig import station_toml

STATION = "st-hostile"
DEADLINE_S = 240.0


def _flip_one_byte(b64: str) -> str:
    """The same image with one byte of its pixel data changed (header intact, still valid base64)."""
    data = bytearray(base64.b64decode(b64))
    data[len(data) // 2] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def _png(width: int, height: int) -> str:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (width, height), "white").save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


LIMIT_IMAGE_KB, LIMIT_CHIP_KB = 6000, 64


def _padded_png(b64: str, size: int) -> str:
    """The same PNG grown to `size` bytes with a text chunk before its end (still a valid PNG)."""
    import struct
    import zlib

    data = base64.b64decode(b64)
    end = data.rindex(b"IEND") - 4
    filler = size - len(data) - 12
    chunk = b"tEXt" + b"pad\x00" + b"x" * (filler - 4)
    padded = data[:end] + struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[end:]
    assert len(padded) == size
    return base64.b64encode(padded).decode()


def hostile_jobs(upstream_dir: Path, tmp_path: Path) -> tuple[list, dict[str, str]]:
    """Raw jobs for the server to lease, and the reason the station must report for each job id."""
    authority = Authority.load_or_create(upstream_dir)
    stranger = Authority.load_or_create(tmp_path / "stranger", kid="authority-9")
    pki = TestPki.create(upstream_dir / "pki")
    factory = JobFactory(8, authority, pki.signer, seed=99)
    expired_factory = JobFactory(1, authority, pki.signer, seed=98, validity=timedelta(seconds=-60))

    def body(job_id: str, source: dict, document: str) -> dict:
        job = {k: copy.deepcopy(v) for k, v in source.items() if k != "signature"}
        job["job_id"] = job_id
        job["subject"]["document_number"] = document
        return job

    jobs: list = []
    expected: dict[str, str] = {}
    tampered = authority.sign_job(body("X-TAMPER", factory.job("J-000001"), "BAD000001"))
    tampered["card"]["front_png"] = _flip_one_byte(tampered["card"]["front_png"])
    jobs.append(tampered)
    expected["X-TAMPER"] = "bad-signature"
    jobs.append(stranger.sign_job(body("X-UNKNOWN-KEY", factory.job("J-000002"), "BAD000002")))
    expected["X-UNKNOWN-KEY"] = "unknown-signing-key"
    jobs.append(authority.sign_job(body("X-EXPIRED", expired_factory.job("J-000001"), "BAD000003")))
    expected["X-EXPIRED"] = "job-expired"
    unsigned = body("X-UNSIGNED", factory.job("J-000003"), "BAD000004")
    jobs.append(unsigned)
    expected["X-UNSIGNED"] = "unsigned-job"
    small = body("X-SMALL-FACE", factory.job("J-000004"), "BAD000005")
    small["card"]["front_png"] = _png(100, 60)
    jobs.append(authority.sign_job(small))
    expected["X-SMALL-FACE"] = "bad-card-image"
    hostile_name = body("X-HOSTILE-NAME", factory.job("J-000005"), "BAD000006")
    hostile_name["subject"]["name"] = "BUDI\u202e\x1b[2J SANTOSO"
    jobs.append(authority.sign_job(hostile_name))
    expected["X-HOSTILE-NAME"] = "malformed-job"
    extra = body("X-EXTRA-FIELD", factory.job("J-000006"), "BAD000007")
    extra["print_twice"] = True
    jobs.append(authority.sign_job(extra))
    expected["X-EXTRA-FIELD"] = "malformed-job"
    missing = body("X-MISSING-CHIP", factory.job("J-000007"), "BAD000008")
    del missing["chip"]
    jobs.append(authority.sign_job(missing))
    expected["X-MISSING-CHIP"] = "malformed-job"
    # Sizes at the configured limits ([limits] max_image_kb = 6000, above the 4,096 KB default,
    # max_chip_file_kb = 64): over them refused at the door; at them (5 MB, the poison job that
    # once crashed the printer thread) printed, the worker judging by the same limits.
    big = factory.job("J-000008")
    five_mb = {k: copy.deepcopy(v) for k, v in big.items() if k != "signature"}
    five_mb["job_id"] = "X-FIVE-MB"
    five_mb["card"]["front_png"] = _padded_png(five_mb["card"]["front_png"], 5 * 1024 * 1024)
    jobs.append(authority.sign_job(five_mb))
    for job_id, where, size in (("X-FRONT-OVER", "front_png", LIMIT_IMAGE_KB * 1024 + 1),
                                ("X-BACK-OVER", "back_png", LIMIT_IMAGE_KB * 1024 + 1)):
        over = body(job_id, factory.job("J-000001"), f"BAD{job_id[-4:]}")
        over["card"][where] = _padded_png(over["card"][where], size)
        jobs.append(authority.sign_job(over))
        expected[job_id] = "job-too-large"
    chip_over = body("X-CHIP-OVER", factory.job("J-000002"), "BAD000009")
    chip_over["chip"]["files"]["EF.DG2"] = base64.b64encode(b"\x75" + bytes(LIMIT_CHIP_KB * 1024 + 1)).decode()
    jobs.append(authority.sign_job(chip_over))
    expected["X-CHIP-OVER"] = "job-too-large"
    # Chip images the station could never pass on a card: judged at the door, no blank spent.
    uncovered = body("X-DG15-UNCOVERED", factory.job("J-000003"), factory.job("J-000003")["subject"]["document_number"])
    uncovered["chip"]["files"]["EF.DG15"] = base64.b64encode(bytes.fromhex("6f03010203")).decode()
    jobs.append(authority.sign_job(uncovered))
    expected["X-DG15-UNCOVERED"] = "bad-chip-image"
    profile = body("X-PROFILE", factory.job("J-000004"), factory.job("J-000004")["subject"]["document_number"])
    profile["chip"]["profile"] = "ektp-sam"
    jobs.append(authority.sign_job(profile))
    expected["X-PROFILE"] = "bad-chip-image"
    other = body("X-OTHER-CHIP", factory.job("J-000005"), factory.job("J-000005")["subject"]["document_number"])
    other["chip"] = copy.deepcopy(factory.job("J-000006")["chip"])
    jobs.append(authority.sign_job(other))
    expected["X-OTHER-CHIP"] = "bad-chip-image"
    # Garbage with no usable id: nothing to report it under, and nothing must break.
    jobs += ["not a job", None, 42, [1, 2], {"job_id": "../../v1/_sim/state"}, {"job_id": "\x00" * 3}]
    return jobs, expected


def write_config(root: Path, upstream: UpstreamServer, devices: dict) -> Path:
    info = json.loads(upstream.info_path.read_text())
    config = root / "station.toml"
    config.write_text(station_toml(root, STATION, info, devices, journal=root / "journal.db", tables={
        "upstream": {"wait_s": 1, "prefetch": 20},
        "stock": {"report_every_s": 1, "blanks_low": 9},
        "limits": {"max_image_kb": LIMIT_IMAGE_KB, "max_chip_file_kb": LIMIT_CHIP_KB},
    }))
    journal = Journal(root / "journal.db", STATION)
    journal.receive_blanks("LOT-HOSTILE", 10, who="test")
    journal.load_blanks("p1", 10, lot="LOT-HOSTILE", who="test")
    journal.close()
    return config


def _start(argv: list[str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen([sys.executable, "-m", "agent", *argv], stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -9


def _wait_until(check, what: str, procs: list[subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        for proc in procs:
            assert proc.poll() is None, f"a process stopped: {(logs / 'agent.log').read_text(errors='replace')[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"{what} within {DEADLINE_S} s; agent log: "
                         f"{(logs / 'agent.log').read_text(errors='replace')[-3000:]}")


def test_forged_expired_and_hostile_jobs_are_never_printed_and_upstream_hears_why(pcscd, tmp_path):
    upstream = UpstreamServer(UpstreamConfig(state_dir=tmp_path / "upstream", jobs=2, lease_s=600))
    upstream.start()
    procs: list[subprocess.Popen] = []
    http = httpx.Client(base_url=upstream.url, headers={"Authorization": f"Bearer {upstream.token}"}, timeout=10)
    try:
        jobs, expected = hostile_jobs(tmp_path / "upstream", tmp_path)
        assert http.post("/v1/_sim/jobs", json={"jobs": jobs}).status_code == 200
        simulator = _start(["simulate", "--state-dir", str(tmp_path / "sim"), "--printers", "1", "--cards", "10",
                            "--speed", "100"], tmp_path / "simulator.log")
        procs.append(simulator)
        _wait_until(lambda: (tmp_path / "sim" / "devices.json").exists(), "the simulator did not start", procs, tmp_path)
        config = write_config(tmp_path, upstream, json.loads((tmp_path / "sim" / "devices.json").read_text()))
        agent = _start(["run", "--config", str(config)], tmp_path / "agent.log")
        procs.append(agent)

        def outcomes() -> dict:
            return http.get("/v1/_sim/state").json()["outcomes"]

        _wait_until(lambda: set(outcomes()) >= {"J-000001", "J-000002", "X-FIVE-MB", *expected},
                    "not every job had its outcome", procs, tmp_path)
        # A lease for a job already printed: a copy of J-000001, still validly signed.
        assert http.post("/v1/_sim/jobs", json={"jobs": [upstream._desk._factory.job("J-000001")]}).status_code == 200
        _wait_until(lambda: b"job-already-known" in (tmp_path / "agent.log").read_bytes(),
                    "the repeated lease was not seen", procs, tmp_path)
        assert agent.poll() is None, "the agent keeps running"

        def blanks_reported() -> int | None:
            view = http.get("/v1/_sim/state").json()["stations"].get(STATION, {})
            printers = view.get("last_report", {}).get("printers", [])
            return printers[0]["blanks"]["remaining"] if printers else None

        _wait_until(lambda: blanks_reported() == 7, "telemetry did not show the three blanks used", procs, tmp_path)
        final = outcomes()
    finally:
        exit_codes = [_stop(p) for p in reversed(procs)]
        http.close()
        upstream.stop()
    assert exit_codes[0] == 0, (tmp_path / "agent.log").read_text(errors="replace")[-3000:]

    assert final["J-000001"]["status"] == "printed" and final["J-000002"]["status"] == "printed"
    assert final["X-FIVE-MB"]["status"] == "printed", final["X-FIVE-MB"]
    for job_id, reason in expected.items():
        assert final[job_id]["status"] == "rejected", job_id
        assert final[job_id]["reason"] == reason, (job_id, final[job_id])
    cards = [json.loads(line) for line in (tmp_path / "sim" / "cards.jsonl").read_text().splitlines()]
    printed = Counter(card["document_number"] for card in cards if card["bin"] == "output")
    assert printed == Counter({"KTP000001": 1, "KTP000002": 1, "KTP000008": 1}), "only the approved jobs, each once"
    assert not any(card["document_number"] and card["document_number"].startswith("BAD") for card in cards)
    assert [card for card in cards if card["bin"] == "reject"] == [], "no bad job cost a blank"
    report = subprocess.run([sys.executable, "-m", "agent", "upstream-sim", "report", "--state-dir",
                             str(tmp_path / "upstream"), "--json"], capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    view = json.loads(report.stdout)["stations"][STATION]
    assert view["outcomes"] == {"printed": 3, "rejected": len(expected)}
    assert view["rejections"]["malformed-job"] == 3 and view["rejections"]["bad-signature"] == 1
    assert view["printers"][0]["blanks"]["lots"][0]["lot"] == "LOT-HOSTILE"
    assert {"blanks-low"} <= {alert["kind"] for alert in view["alerts"]}
    log_text = (tmp_path / "agent.log").read_text(errors="replace")
    assert "Traceback" not in log_text and "\x1b[2J" not in log_text
    assert log_text.count("station-ready") == 1, "no restart"
