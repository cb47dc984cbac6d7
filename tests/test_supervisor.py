"""Supervised loops: one that dies is started again, with a growing pause; one that keeps dying
is given up, so the daemon can stop with its own exit code instead of looping."""

from __future__ import annotations

import threading

from agent.station.supervisor import MAX_CRASHES, Supervised


def test_a_loop_that_dies_is_started_again_and_the_crash_is_told():
    stop, runs, told = threading.Event(), [], []

    def target(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("a bug")
        stop.wait()  # the third run lives until the daemon stops

    loop = Supervised("outbox", target, stop, on_crash=lambda name, exc, n: told.append((name, n)), first_pause_s=0.01)
    loop.start()
    for _ in range(500):
        if len(runs) == 3:
            break
        stop.wait(0.01)
    assert len(runs) == 3 and told == [("outbox", 1), ("outbox", 2)] and loop.alive() and not loop.gave_up
    stop.set()
    loop.join(5)
    assert not loop.alive()


def test_a_loop_that_keeps_dying_is_given_up():
    stop = threading.Event()

    def target(stop: threading.Event) -> None:
        raise ValueError("always")

    loop = Supervised("intake", target, stop, first_pause_s=0.001)
    loop.start()
    loop.join(10)
    assert loop.gave_up and len(loop.crashes) == MAX_CRASHES + 1
