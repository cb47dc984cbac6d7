#!/usr/bin/env bash
# Gives pcscd four vpcd slots instead of two, one per virtual printer.
# Debian's vpcd driver keeps per-slot state in one static array indexed by slot number, so a
# second reader.conf entry on the same library shares state with the first. A second copy of the
# library under another file name is loaded separately, with state of its own: slots 2 and 3,
# seen as readers "Virtual PCD B 00 00" (TCP 35965) and "Virtual PCD B 00 01" (TCP 35966).
# pcscd reads this only when it starts (scripts/start-pcscd.sh restarts it when needed).
set -euo pipefail
lib=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
copy=/usr/local/lib/printstation/libifdvpcd-b.so
conf=/etc/reader.conf.d/printstation-vpcd-b
[[ -f $conf && -f $copy ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "The second pair of vpcd slots is not set up. As root, run:  sudo $0" >&2
  exit 1
fi
install -D -m 0644 "$(readlink -f "$lib")" "$copy"
cat > "$conf" <<CONF
# printstation: vpcd slots 2 and 3 (a separate copy of the driver, see $0)
FRIENDLYNAME "Virtual PCD B"
DEVICENAME   /dev/null:0x8C7D
LIBPATH      $copy
CHANNELID    0x8C7D
CONF
echo "vpcd slots 2 and 3 configured ($conf)"
