#!/usr/bin/env bash
# Makes sure pcscd runs with all four vpcd readers (drivers are read only at pcscd's start),
# and waits until they are visible. Usage: scripts/start-pcscd.sh PYTHON
set -euo pipefail
python=${1:-python3}
readers() { "$python" -c 'from smartcard.System import readers; print("\n".join(map(str, readers())))' 2>/dev/null || true; }
if readers | grep -q "^Virtual PCD B 00 01"; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "pcscd is not running with the vpcd readers. Start it with:  sudo sh -c 'pkill -x pcscd; pcscd'" >&2
  exit 1
fi
pkill -x pcscd 2>/dev/null && sleep 0.5 || true
pcscd
for _ in $(seq 1 50); do
  if readers | grep -q "^Virtual PCD B 00 01"; then echo "pcscd started with four vpcd readers"; exit 0; fi
  sleep 0.2
done
echo "pcscd started but does not show the four 'Virtual PCD' readers: run scripts/setup-vpcd-slots.sh as root" >&2
exit 1
