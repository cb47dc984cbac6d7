"""Printer faults: one name per condition whatever the printer, in the operator's words.

Every fault here stops the printer from taking the next card until someone (or time, for a
hot print head) clears it. The texts are written for the person at the counter of a civil
registry office, not for a technician: what happened, and what to do with their hands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

LANGUAGES = ("id", "en")


class Fault(Enum):
    """A printer-level condition that stops printing."""

    JAM = "jam"
    COVER_OPEN = "cover_open"
    FEEDER_EMPTY = "feeder_empty"
    FEEDER_ERROR = "feeder_error"
    HOPPER_FULL = "hopper_full"
    REJECT_FULL = "reject_full"
    RIBBON_ENDED = "ribbon_ended"
    RIBBON_MISSING = "ribbon_missing"
    RIBBON_WRONG = "ribbon_wrong"
    HEAD_HOT = "head_hot"
    CLEANING_REQUIRED = "cleaning_required"
    LINK_LOST = "link_lost"
    NOT_RESPONDING = "not_responding"

    def message(self, lang: str) -> str:
        """What is wrong, in `lang` ("id" or "en"). Raises ValueError for another language."""
        return _text(self, lang).message

    def remedy(self, lang: str) -> str:
        """What the operator should do, in `lang` ("id" or "en"). Raises ValueError for another language."""
        return _text(self, lang).remedy

    @property
    def ipp_reason(self) -> str:
        """The IPP printer-state-reasons keyword (with severity suffix) for telemetry."""
        return _IPP_REASONS[self]


@dataclass(frozen=True)
class _Text:
    message: str
    remedy: str


def _text(fault: Fault, lang: str) -> _Text:
    if lang not in LANGUAGES:
        raise ValueError(f"no operator texts in language {lang!r}; available: {', '.join(LANGUAGES)}")
    return _TEXTS[fault][lang]


# RFC 8011 / PWG 5100.9 keywords where one fits. Where none does, "other-error": the fault's
# own name travels beside it in telemetry, so nothing is lost.
_IPP_REASONS: dict[Fault, str] = {
    Fault.JAM: "media-jam-error",
    Fault.COVER_OPEN: "cover-open-error",
    Fault.FEEDER_EMPTY: "media-empty-error",
    # A blank the feeder fails to pick is a misfeed, which IPP counts as a media jam.
    Fault.FEEDER_ERROR: "media-jam-error",
    Fault.HOPPER_FULL: "output-area-full-error",
    # The reject box is an output area too; the fault name tells the two apart.
    Fault.REJECT_FULL: "output-area-full-error",
    Fault.RIBBON_ENDED: "marker-supply-empty-error",
    Fault.RIBBON_MISSING: "marker-supply-missing-error",
    Fault.RIBBON_WRONG: "other-error",
    Fault.HEAD_HOT: "other-error",
    Fault.CLEANING_REQUIRED: "other-error",
    # CUPS backends report an unreachable device as offline.
    Fault.LINK_LOST: "offline-report",
    # IPP's timed-out: the printer took a command and has not answered within twice its time.
    Fault.NOT_RESPONDING: "timed-out-error",
}

_TEXTS: dict[Fault, dict[str, _Text]] = {
    Fault.JAM: {
        "id": _Text(
            "Kartu macet di dalam printer.",
            "Buka penutup printer, keluarkan kartu yang macet, tutup kembali. "
            "Serahkan kartu itu ke petugas pencatat blangko rusak.",
        ),
        "en": _Text(
            "A card is jammed inside the printer.",
            "Open the printer cover, take out the jammed card and close the cover again. "
            "Hand the card to the person who records spoiled blanks.",
        ),
    },
    Fault.COVER_OPEN: {
        "id": _Text(
            "Penutup printer terbuka.",
            "Tutup penutup printer sampai terkunci (terdengar bunyi klik).",
        ),
        "en": _Text(
            "The printer cover is open.",
            "Close the printer cover until it clicks shut.",
        ),
    },
    Fault.FEEDER_EMPTY: {
        "id": _Text(
            "Blangko kartu di tempat pengisian (feeder) habis.",
            "Isi feeder dengan blangko KTP-el baru, lalu catat jumlah blangko yang dimasukkan.",
        ),
        "en": _Text(
            "The card feeder has run out of blank cards.",
            "Load new blank e-KTP cards into the feeder and record how many you loaded.",
        ),
    },
    Fault.FEEDER_ERROR: {
        "id": _Text(
            "Printer tidak bisa mengambil kartu dari feeder.",
            "Keluarkan tumpukan blangko, pastikan kartu tidak saling menempel atau bengkok, "
            "lalu masukkan kembali dengan rapi.",
        ),
        "en": _Text(
            "The printer cannot pick a card from the feeder.",
            "Take the stack of blanks out, make sure the cards are not stuck together or bent, "
            "and put them back neatly.",
        ),
    },
    Fault.HOPPER_FULL: {
        "id": _Text(
            "Tempat kartu jadi sudah penuh.",
            "Ambil kartu yang sudah tercetak dari tempat kartu jadi.",
        ),
        "en": _Text(
            "The output hopper is full of printed cards.",
            "Take the printed cards out of the output hopper.",
        ),
    },
    Fault.REJECT_FULL: {
        "id": _Text(
            "Kotak kartu rusak (reject) sudah penuh.",
            "Kosongkan kotak kartu rusak dan serahkan kartunya ke petugas pencatat blangko rusak.",
        ),
        "en": _Text(
            "The reject box is full.",
            "Empty the reject box and hand the cards to the person who records spoiled blanks.",
        ),
    },
    Fault.RIBBON_ENDED: {
        "id": _Text(
            "Pita warna (ribbon) habis.",
            "Buka penutup printer, ganti pita warna dengan yang baru, lalu tutup kembali.",
        ),
        "en": _Text(
            "The ribbon is used up.",
            "Open the printer cover, put in a new ribbon and close the cover again.",
        ),
    },
    Fault.RIBBON_MISSING: {
        "id": _Text(
            "Tidak ada pita warna (ribbon) di printer.",
            "Buka penutup printer, pasang pita warna, lalu tutup kembali.",
        ),
        "en": _Text(
            "There is no ribbon in the printer.",
            "Open the printer cover, fit a ribbon and close the cover again.",
        ),
    },
    Fault.RIBBON_WRONG: {
        "id": _Text(
            "Ada masalah dengan pita warna: putus, salah jenis, atau tidak terbaca.",
            "Buka penutup printer dan periksa pita warna. Jika putus atau salah jenis, "
            "pasang pita warna YMCKO yang sesuai untuk printer ini, lalu tutup kembali.",
        ),
        "en": _Text(
            "Something is wrong with the ribbon: it is torn, the wrong type, or cannot be read.",
            "Open the printer cover and check the ribbon. If it is torn or the wrong type, "
            "fit the right YMCKO ribbon for this printer and close the cover again.",
        ),
    },
    Fault.HEAD_HOT: {
        "id": _Text(
            "Kepala cetak terlalu panas; printer sedang mendingin.",
            "Tunggu beberapa menit, printer akan mencetak lagi dengan sendirinya. Jangan matikan "
            "printer, dan pastikan lubang udaranya tidak tertutup.",
        ),
        "en": _Text(
            "The print head is too hot; the printer is cooling down.",
            "Wait a few minutes: printing starts again by itself. Do not switch the printer off, "
            "and keep its air vents clear.",
        ),
    },
    Fault.CLEANING_REQUIRED: {
        "id": _Text(
            "Printer harus dibersihkan sebelum bisa mencetak lagi.",
            "Masukkan kartu pembersih ke feeder dan jalankan pembersihan printer.",
        ),
        "en": _Text(
            "The printer must be cleaned before it can print again.",
            "Put a cleaning card in the feeder and run the printer's cleaning cycle.",
        ),
    },
    Fault.LINK_LOST: {
        "id": _Text(
            "Komputer tidak bisa berhubungan dengan printer.",
            "Pastikan printer menyala, dan kabel USB atau serial terpasang kuat "
            "di printer dan di komputer.",
        ),
        "en": _Text(
            "The computer cannot reach the printer.",
            "Check that the printer is switched on and that its USB or serial cable "
            "is firmly plugged in at both ends.",
        ),
    },
    Fault.NOT_RESPONDING: {
        "id": _Text(
            "Printer tidak menjawab lagi di tengah pencetakan kartu.",
            "Tunggu sebentar; jika layar printer menunjukkan kesalahan atau tidak berubah selama dua menit, "
            "matikan printer, tunggu sepuluh detik, lalu nyalakan lagi. Kartu yang sedang dicetak diperiksa sendiri.",
        ),
        "en": _Text(
            "The printer stopped answering in the middle of a card.",
            "Wait a moment; if the printer's display shows an error or stays unchanged for two minutes, switch it "
            "off, wait ten seconds and switch it on. The card in progress is checked by the station itself.",
        ),
    },
}
