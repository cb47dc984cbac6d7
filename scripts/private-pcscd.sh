#!/usr/bin/env bash
# Runs a command with a pcscd of its own: private mount, network and process namespaces, so
# several test runs on one machine do not share vpcd ports, pcscd or loopback servers.
# Needs root (unshare). Usage: scripts/private-pcscd.sh .venv/bin/pytest -q tests/...
set -euo pipefail
exec unshare --mount --net --pid --fork bash -c '
  set -e
  ip link set lo up
  mkdir -p /run/pcscd && mount -t tmpfs tmpfs /run/pcscd
  pcscd
  "$(dirname "$0")/start-pcscd.sh" "${PYTHON:-.venv/bin/python}" >/dev/null
  "$@"
' "$0" "$@"
