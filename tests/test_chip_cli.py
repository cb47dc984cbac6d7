"""`printstation chip verify DIR` and `printstation chip dump --printer NAME DIR`, run as a technician runs them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import serial
from PIL import Image

from agent.chip.registry import load_profile
from drivers.pcsc import PcscReader
from simulators.chip.image import ChipSubject, build_chip_files
from simulators.pki import TestPki
from tests.station_rig import as_the_demo, running_station

BSI = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "icao-bsi-tr03105-5"
SUBJECT = ChipSubject("KTP000042", "3174011505900042", "AGUS SALIM", date(1988, 2, 9), "L", None)


def chip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "chip", *args], capture_output=True, text=True, timeout=60)


def verdicts(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in json.loads(run.stdout)["checks"]}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestPki, dict[str, bytes]]:
    pki = TestPki.create(tmp_path_factory.mktemp("pki"), "rsa-pss")
    buf = io.BytesIO()
    Image.new("RGB", (200, 260), (90, 120, 160)).save(buf, "JPEG", quality=70)
    return pki, build_chip_files(SUBJECT, buf.getvalue(), pki.signer)


def write_image(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir()
    for ef, content in files.items():
        (folder / (ef.replace(".", "_") + ".bin")).write_bytes(content)
    return folder


def test_verify_gives_the_bsi_readme_verdicts(tmp_path: Path) -> None:
    run = chip("verify", str(BSI), "--json")
    assert run.returncode == 1, run.stderr
    assert verdicts(run) == {
        "security-object": "good", "dg1": "good", "dg2": "absent", "dg3": "absent", "dg14": "good", "dg4": "absent",
        "content-type": "good", "message-digest": "good", "signature": "good", "signer-validity": "bad",
        "chain": "unknown",
    }
    assert json.loads(run.stdout)["failure"] == "chip-expired-signer"


def test_verify_for_people_gives_one_line_a_check_and_the_verdict() -> None:
    run = chip("verify", str(BSI))
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    checks = json.loads(chip("verify", str(BSI), "--json").stdout)["checks"]
    assert [line.split()[:2] for line in lines[:-1]] == [[c["name"], c["verdict"]] for c in checks]
    assert "pass --trust with the CSCA certificate" in lines[-2]
    assert lines[-1] == "verdict: bad (chip-expired-signer)"


def test_verify_at_a_time_inside_the_bsi_signer_validity_finds_it_valid() -> None:
    assert verdicts(chip("verify", str(BSI), "--at", "2014-06-01", "--json"))["signer-validity"] == "good"


def test_verify_trusts_an_image_signed_under_the_given_csca(tmp_path: Path, image) -> None:
    pki, files = image
    run = chip("verify", str(write_image(tmp_path / "card", files)), "--trust", str(pki.csca_pem_path), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["verdict"] == "good" and set(verdicts(run).values()) == {"good"}
    assert {"dg1", "dg2", "dg11", "message-digest", "signature", "signer-validity", "chain"} <= set(verdicts(run))


def test_verify_names_the_tampered_data_group(tmp_path: Path, image) -> None:
    pki, files = image
    dg11 = bytearray(files["EF.DG11"])
    dg11[-1] ^= 0x01
    run = chip("verify", str(write_image(tmp_path / "card", files | {"EF.DG11": bytes(dg11)})),
               "--trust", str(pki.csca_pem_path), "--json")
    assert run.returncode == 1
    assert verdicts(run)["dg11"] == "bad" and json.loads(run.stdout)["failure"] == "chip-hash-mismatch"


def test_verify_without_a_security_object_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "EF_DG1.bin").write_bytes(b"\x61\x00")
    run = chip("verify", str(tmp_path))
    assert run.returncode == 2 and "EF_SOD.bin" in run.stderr


def test_dump_writes_the_card_at_the_encoder_station_to_files_that_verify(pcscd: list[str], tmp_path: Path, image) -> None:
    pki, files = image
    with running_station(tmp_path / "station", jobs=1, blanks=2, speed=100, start_agent=False, **as_the_demo()) as rig:
        devices = json.loads((rig.sim_dir / "devices.json").read_text())["printers"][0]
        with serial.Serial(devices["serial"], timeout=10) as host:
            for command in ("Ss", "Sic"):  # the technician has the printer hold a blank at the station
                host.write(b"\x1b" + command.encode() + b"\r")
                assert host.read_until(b"\r") == b"OK\r"
            reader = PcscReader(devices["reader"])
            try:
                reader.wait_for_card(5)
                with reader.connect() as session:
                    load_profile("icao9303", [pki.csca_pem_path]).encode(session, files)
            finally:
                reader.close()
            run = chip("dump", "--printer", "p1", str(tmp_path / "dump"), "--config", str(rig.config_path))
            as_json = chip("dump", "--printer", "p1", str(tmp_path / "dump3"), "--config", str(rig.config_path), "--json")
            wrong = chip("dump", "--printer", "p9", str(tmp_path / "dump2"), "--config", str(rig.config_path))
    assert run.returncode == 0, run.stderr
    assert f"{len(files)} files from p1 in {tmp_path / 'dump'}" in run.stdout
    dumped = json.loads(as_json.stdout)
    assert (dumped["printer"], dumped["dir"]) == ("p1", str(tmp_path / "dump3"))
    assert sorted(dumped["files"]) == sorted(ef.replace(".", "_") + ".bin" for ef in files)
    assert {p.name: p.read_bytes() for p in (tmp_path / "dump").iterdir()} == {
        ef.replace(".", "_") + ".bin": content for ef, content in files.items()
    }
    assert all((p.stat().st_mode & 0o077) == 0 for p in (tmp_path / "dump").iterdir())  # personal data: owner only
    assert wrong.returncode == 2 and "p1" in wrong.stderr
    assert chip("verify", str(tmp_path / "dump"), "--trust", str(pki.csca_pem_path)).returncode == 0
