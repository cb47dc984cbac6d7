"""Shared fixtures: the real pcscd with the vpcd driver, started when it is not running."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest


def _vpcd_readers() -> list[str]:
    from smartcard.System import readers

    try:
        return [str(r) for r in readers() if str(r).startswith("Virtual PCD")]
    except Exception:  # pcscd not up yet: the service error is the answer
        return []


@pytest.fixture(scope="session")
def pcscd() -> list[str]:
    """Make sure pcscd runs and shows the vpcd readers; return their names."""
    names = _vpcd_readers()
    if names:
        return names
    if shutil.which("pcscd") is None:
        pytest.fail("pcscd is not installed: run `make test`, which installs pcscd and vsmartcard-vpcd")
    if subprocess.run(["pidof", "pcscd"], capture_output=True).returncode != 0:
        subprocess.run(["pcscd"], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        names = _vpcd_readers()
        if names:
            return names
        time.sleep(0.2)
    pytest.fail("pcscd runs but shows no 'Virtual PCD' reader: is vsmartcard-vpcd installed?")
