"""Why a card was spoiled or a batch ended, in plain words (id/en): no reason code on a screen.

Codes stay in `--json` and the logs; people read these. A printer fault is worded by its own
texts (drivers/faults.py); an unknown code is shown as it is rather than hidden.
"""

from __future__ import annotations

from agent.core.catalog import translate
from agent.core.messages import fault_message
from agent.journal.reasons import reason_code

_WORDS: dict[str, dict[str, str]] = {
    # the station's own reasons (agent/journal/reasons.py)
    "interrupted": {"id": "terputus oleh stasiun (crash, listrik, disk penuh)",
                    "en": "interrupted by the station (crash, power, full disk)"},
    "interrupted-before-feed": {"id": "terputus sebelum blangko diambil", "en": "interrupted before the feed"},
    "printer-fault": {"id": "gangguan printer", "en": "printer fault"},
    "feed-refused": {"id": "printer menolak mengambil blangko", "en": "the printer refused to feed"},
    "bad-card-image": {"id": "gambar kartu tidak bisa dicetak", "en": "the card image cannot be printed"},
    "station-error": {"id": "kesalahan stasiun", "en": "station error"},
    "too-many-spoiled-cards": {"id": "terlalu banyak kartu rusak", "en": "too many spoiled cards"},
    "too-many-interruptions": {"id": "terlalu sering terputus", "en": "too many interruptions"},
    # the chip's (agent/chip/profile.py ChipFailure)
    "chip-mute": {"id": "chip tidak menjawab", "en": "the chip does not answer"},
    "chip-slow": {"id": "chip terlalu lambat", "en": "the chip is too slow"},
    "chip-removed": {"id": "kartu bergeser dari pembaca chip", "en": "the card left the chip reader"},
    "chip-write-failed": {"id": "chip gagal ditulis", "en": "the chip could not be written"},
    "chip-unreadable-file": {"id": "isi chip tidak terbaca", "en": "a file on the chip cannot be read"},
    "chip-hash-mismatch": {"id": "isi chip tidak sesuai tanda tangannya", "en": "the chip's data does not match its signature"},
    "chip-bad-signature": {"id": "tanda tangan chip tidak sah", "en": "the chip's signature is not valid"},
    "chip-untrusted-signer": {"id": "penanda tangan chip tidak dipercaya", "en": "the chip's signer is not trusted"},
    "chip-expired-signer": {"id": "sertifikat penanda tangan chip kedaluwarsa", "en": "the chip signer's certificate expired"},
    "chip-wrong-subject": {"id": "chip berisi data orang lain", "en": "the chip holds someone else's data"},
    "chip-malformed-security-object": {"id": "objek keamanan chip rusak", "en": "the chip's security object is malformed"},
    # why a batch ended (agent/ops/batch.py)
    "target-reached": {"id": "target tercapai", "en": "the target was reached"},
    "queue-empty": {"id": "semua pekerjaan selesai", "en": "every job was done"},
    "deadline": {"id": "batas waktu tercapai", "en": "the time limit was reached"},
    "station-stopped": {"id": "layanan dihentikan", "en": "the service was stopped"},
    "unknown": {"id": "tidak diketahui", "en": "unknown"},
}


def reason_words(reason: str | None, lang: str) -> str:
    """A reason's text (code and detail) in plain words."""
    text = reason or "unknown"
    code = reason_code(text)
    lang = "en" if lang == "en" else "id"
    if code == "printer-fault" and ":" in text:
        fault = text.split(":", 1)[1].strip()
        message, _ = fault_message(fault, lang)
        words = translate(f"reason.{code}", lang, _WORDS[code][lang])
        return f"{words}: {message}" if message != fault else f"{words} ({fault})"
    if code in _WORDS:
        return translate(f"reason.{code}", lang, _WORDS[code][lang])
    message, _ = fault_message(code, lang)
    return message
