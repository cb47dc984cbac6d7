#!/usr/bin/env bash
# Runs a command with a pcscd of its own: private mount, network and process namespaces and its
# own ptys, so several test runs on one machine do not share vpcd ports, pcscd, loopback servers
# or pty numbers. /proc is the namespace's own (--mount-proc), so a PID read there is a PID that
# runs here (`printstation bench` reads the agent's /proc/PID).
# Needs root (unshare). Usage: scripts/private-pcscd.sh .venv/bin/pytest -q tests/...
set -euo pipefail
exec unshare --mount --net --pid --fork --mount-proc bash -c '
  set -e
  export PRINTSTATION_PRIVATE_NAMESPACES=1
  ip link set lo up
  # Ptys of our own: with the shared /dev/pts a number another run freed and took again would
  # make a stale device link reach that run'"'"'s virtual printer.
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
  mount --bind /dev/pts/ptmx /dev/ptmx
  mkdir -p /run/pcscd && mount -t tmpfs tmpfs /run/pcscd
  pcscd
  "$(dirname "$0")/start-pcscd.sh" "${PYTHON:-.venv/bin/python}" >/dev/null
  "$@"
' "$0" "$@"
