#!/usr/bin/env bash
# Installs the Debian packages the station and its tests need, when missing:
#   pcscd + vsmartcard-vpcd  the real PC/SC daemon and the virtual-card driver behind it
#   libpcsclite-dev + swig   to build pyscard from source (PyPI has no Linux wheel)
#   systemd                  systemd-analyze, which the tests run on the unit
#   opensc + pcsc-tools      opensc-tool and pcsc_scan: clients nobody here wrote, to see the chip
#   socat                    a technician's raw console on the printer's serial device
#   chromium + chromium-driver  a real browser for the operators' page test (Selenium)
# As root it installs them; otherwise it prints the exact command and stops.
set -euo pipefail
packages=(pcscd vsmartcard-vpcd libpcsclite-dev swig systemd opensc pcsc-tools socat chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "Missing Debian packages: ${missing[*]}. Install them with:" >&2
  echo "  sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
sh -c "$cmd" >/dev/null
