"""Memory the station frees goes back to the system (agent/core/freed_memory.py).

The witness is the kernel's count of the process's resident pages (/proc/self/status), in a
fresh interpreter so that the allocator starts as the daemon's does: a run of card-sized buffers
(0.6 MB, as a colour panel) freed between small live objects stays resident until trimmed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from agent.core import freed_memory

_CARDS_THEN_TRIM = textwrap.dedent("""
    import json
    from agent.core import freed_memory

    def resident_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

    start = resident_mb()
    warm = bytearray(700 * 1024); del warm  # glibc raises its mmap threshold past a freed block
    panels, small = [], []
    for _ in range(300):
        panels.append(bytearray(600 * 1024))
        small.append(bytearray(200))  # live objects between the panels pin the heap's top
    full = resident_mb()
    del panels
    freed = resident_mb()
    freed_memory.give_back()
    print(json.dumps({"start": start, "full": full, "freed": freed, "trimmed": resident_mb()}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_freed_card_buffers_leave_the_resident_size_once_given_back() -> None:
    run = subprocess.run([sys.executable, "-c", _CARDS_THEN_TRIM], capture_output=True, text=True, timeout=60, check=True)
    mb = json.loads(run.stdout)
    assert mb["full"] - mb["start"] > 150, mb  # 300 x 0.6 MB were resident
    assert mb["freed"] - mb["start"] > 100, mb  # freed, yet held by the allocator: what the station grew by
    assert mb["trimmed"] - mb["start"] < 20, mb  # given back


def test_sharing_arenas_is_accepted_by_the_c_library() -> None:
    assert freed_memory.share_arenas(2) is True
