"""The daemon's threads carry their names to the kernel, where `top -H` and the benchmark read them."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.core.os_thread import daemon_thread


def test_a_daemon_thread_is_named_to_the_kernel_and_runs_its_target_with_its_arguments() -> None:
    seen: dict[str, object] = {}
    done = threading.Event()

    def target(answer: int) -> None:
        me = threading.current_thread()
        seen["comm"] = Path(f"/proc/self/task/{me.native_id}/comm").read_text().strip()
        seen["answer"] = answer
        done.set()

    thread = daemon_thread("printer-a-very-long-name", target, answer=42)
    assert thread.daemon
    thread.start()
    assert done.wait(10)
    thread.join(10)
    assert seen == {"comm": "printer-a-very-", "answer": 42}  # the kernel keeps 15 bytes
