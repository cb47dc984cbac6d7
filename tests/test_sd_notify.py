"""The daemon speaks systemd's notify protocol over a real datagram socket."""

from __future__ import annotations

import socket

from agent.core.sd_notify import Notifier


def test_notifier_sends_ready_status_and_watchdog(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "20000000")
        notifier = Notifier()
        notifier.ready("printing: 0 jobs")
        notifier.watchdog()
        assert server.recv(100) == b"READY=1\nSTATUS=printing: 0 jobs"
        assert server.recv(100) == b"WATCHDOG=1"
    assert notifier.watchdog_interval_s == 10.0


def test_notifier_is_silent_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    Notifier().ready("x")  # must not raise
