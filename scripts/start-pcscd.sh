#!/usr/bin/env bash
# Makes sure pcscd runs with the vpcd driver loaded (the driver is read only at pcscd's start),
# and waits until the virtual readers are visible. Usage: scripts/start-pcscd.sh PYTHON
set -euo pipefail
python=${1:-python3}
readers() { "$python" -c 'from smartcard.System import readers; print("\n".join(map(str, readers())))' 2>/dev/null || true; }
if readers | grep -q "^Virtual PCD"; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "pcscd is not running with the vpcd driver. Start it with:  sudo sh -c 'pkill -x pcscd; pcscd'" >&2
  exit 1
fi
pkill -x pcscd 2>/dev/null && sleep 0.5 || true
pcscd
for _ in $(seq 1 50); do
  if readers | grep -q "^Virtual PCD"; then echo "pcscd started with the vpcd readers"; exit 0; fi
  sleep 0.2
done
echo "pcscd started but shows no 'Virtual PCD' reader: is vsmartcard-vpcd installed?" >&2
exit 1
