"""Chip faults a test can arm on the card a virtual printer puts on its encoder reader.

Each fault is what a real blank can do wrong, played through the real vpcd and pcscd, so
the agent meets it exactly as it would meet a bad card: no answer to power-on, silence in
the middle of a command, wrong status words, a data group that changes after it was
written, a security object re-signed by a stranger, a slow chip, the card pulled away
while it is read. A fault lasts for one card: `VpcdCard.remove` clears it.
"""

from __future__ import annotations

import threading
import time
from enum import StrEnum

from simulators.chip.emulator import VirtualChip
from simulators.chip.image import TAG_SOD, security_object, tlv
from simulators.pki import untrusted_signer
from simulators.chip.vpcd import VpcdCard

SOD_FID = 0x011D
DG1_FID, DG2_FID = 0x0101, 0x0102
DATA_GROUP_FIDS = range(0x0101, 0x0111)

_READ_BINARY = 0xB0
_UPDATE_BINARY = 0xD6

# vpcd waits for a card's answer for ever; a real reader gives up after its own timeout.
# A mute card is taken off the reader after this long, which the agent sees as a transmit
# that failed after more than its APDU timeout (drivers/pcsc.py, 2 s by default).
MUTE_REMOVED_AFTER_S = 4.0
# Each answer of a slow chip waits this long: a card of some 60 APDUs then needs half a
# minute, more than the agent's budget for one card (agent/station/worker.py).
SLOW_ANSWER_S = 0.5
# The card leaves at this READ BINARY: after EF.SOD's first bytes, in the middle of the files.
REMOVED_AT_READ = 3
# Status word of a chip that answers reads wrongly: "no precise diagnosis" (ISO 7816-4).
WRONG_SW = b"\x6f\x00"


class ChipFault(StrEnum):
    """The faults `apply_chip_fault` knows, by the names the control channel uses."""

    NO_ATR = "no-atr"  # no answer to power-on: the reader never sees a card
    MUTE = "mute"  # silent from the first UPDATE or READ BINARY; removed after MUTE_REMOVED_AFTER_S
    WRONG_SW = "wrong-sw"  # every READ BINARY answered with SW 6F00
    FLIPPED_BYTE = "flipped-byte"  # one bit of a data group flips once the chip is read back
    UNTRUSTED_SOD = "untrusted-sod"  # EF.SOD re-signed by a signer no trust anchor knows, once read back
    SLOW = "slow"  # every APDU answered SLOW_ANSWER_S late
    REMOVED_MID_READ = "removed-mid-read"  # the card leaves at the REMOVED_AT_READ-th READ BINARY


def apply_chip_fault(card: VpcdCard, chip: VirtualChip, fault: str) -> None:
    """Arm `fault` on the card that is being put on the reader: call it just before `card.insert(chip)`.

    The fault lasts until the card is removed. Raises ValueError for an unknown fault name.
    """
    try:
        kind = ChipFault(fault)
    except ValueError:
        raise ValueError(f"unknown chip fault {fault!r}: use one of {', '.join(f.value for f in ChipFault)}") from None
    if kind is ChipFault.NO_ATR:
        card.atr = b""
        return
    card.set_apdu_hook(_HOOKS[kind](card, chip))


def _mute(card: VpcdCard, chip: VirtualChip):
    silent = threading.Event()

    def hook(apdu: bytes, chip: VirtualChip) -> bytes | None:
        if not silent.is_set() and apdu[1] in (_READ_BINARY, _UPDATE_BINARY):
            silent.set()
            timer = threading.Timer(MUTE_REMOVED_AFTER_S, card.remove_if, args=(chip,))
            timer.daemon = True  # ends by itself; removing a card already gone does nothing
            timer.start()
        return None if silent.is_set() else chip.process_apdu(apdu)

    return hook


def _wrong_sw(card: VpcdCard, chip: VirtualChip):
    def hook(apdu: bytes, chip: VirtualChip) -> bytes | None:
        return WRONG_SW if apdu[1] == _READ_BINARY else chip.process_apdu(apdu)

    return hook


def _on_first_read(damage):
    """A hook that does `damage(chip)` once, just before the first READ BINARY is answered:
    the chip was written (or came pre-encoded) and is now being read back."""

    def make(card: VpcdCard, chip: VirtualChip):
        done = threading.Event()

        def hook(apdu: bytes, chip: VirtualChip) -> bytes | None:
            if apdu[1] == _READ_BINARY and not done.is_set():
                done.set()
                damage(chip)
            return chip.process_apdu(apdu)

        return hook

    return make


def _flip_a_data_group_byte(chip: VirtualChip) -> None:
    files = chip.files()
    # DG2 (the face) if written, else the first data group with content; the middle byte
    # keeps the TLV header, so the file still reads whole and only its hash is wrong.
    fid = DG2_FID if files[DG2_FID] else next((f for f in DATA_GROUP_FIDS if files[f]), None)
    if fid is not None:
        chip.flip_bit(fid, len(files[fid]) // 2)


def _resign_the_security_object(chip: VirtualChip) -> None:
    files = chip.files()
    data_groups = {fid - 0x0100: files[fid] for fid in DATA_GROUP_FIDS if files[fid]}
    if data_groups:
        chip.replace_file(SOD_FID, tlv(TAG_SOD, security_object(data_groups, untrusted_signer())))


def _slow(card: VpcdCard, chip: VirtualChip):
    def hook(apdu: bytes, chip: VirtualChip) -> bytes | None:
        time.sleep(SLOW_ANSWER_S)
        return chip.process_apdu(apdu)

    return hook


def _removed_mid_read(card: VpcdCard, chip: VirtualChip):
    reads = 0

    def hook(apdu: bytes, chip: VirtualChip) -> bytes | None:
        nonlocal reads
        if apdu[1] == _READ_BINARY:
            reads += 1
            if reads == REMOVED_AT_READ:
                card.remove_if(chip)
                return None
        return chip.process_apdu(apdu)

    return hook


_HOOKS = {
    ChipFault.MUTE: _mute,
    ChipFault.WRONG_SW: _wrong_sw,
    ChipFault.FLIPPED_BYTE: _on_first_read(_flip_a_data_group_byte),
    ChipFault.UNTRUSTED_SOD: _on_first_read(_resign_the_security_object),
    ChipFault.SLOW: _slow,
    ChipFault.REMOVED_MID_READ: _removed_mid_read,
}
