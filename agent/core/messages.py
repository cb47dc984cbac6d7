"""What operators and technicians read, in Bahasa Indonesia and English.

Printer faults carry their own texts (drivers/faults.py); the station's alerts and the words
of the status screen live here. The CLI speaks the language of the person's locale (LANG)
when it is Indonesian or English, else the station's configured one; the daemon speaks the
configured one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum

from agent.core.catalog import translate
from drivers.faults import LANGUAGES, Fault


class Alert(Enum):
    """A station condition a person should know about (beside printer faults)."""

    BLANKS_LOW = "blanks-low"
    BLANKS_EMPTY = "blanks-empty"
    OFFICE_STOCK_LOW = "office-stock-low"
    LEDGER_DISCREPANCY = "ledger-discrepancy"
    RIBBON_LOW = "ribbon-low"
    RIBBON_EMPTY = "ribbon-empty"
    UPSTREAM_OFFLINE = "upstream-offline"
    REPORT_REFUSED = "report-refused"
    JOB_HELD = "job-held"
    READER_UNAVAILABLE = "reader-unavailable"
    OUTSIDE_PRINT_WINDOW = "outside-print-window"
    PRINTER_PAUSED = "paused"
    PRINTER_DRAINING = "draining"
    DAEMON_DOWN = "daemon-down"

    def message(self, lang: str) -> str:
        """What is going on, in `lang`. Raises ValueError for a language without texts."""
        return translate(f"alert.{self.value}.message", lang, _pick(_ALERTS[self], lang)[0])

    def remedy(self, lang: str) -> str:
        """What to do about it, in `lang`. Raises ValueError for a language without texts."""
        return translate(f"alert.{self.value}.remedy", lang, _pick(_ALERTS[self], lang)[1])


def choose_language(configured: str, environ: Mapping[str, str] | None = None) -> str:
    """The CLI's language: the locale's (LC_ALL, LC_MESSAGES, LANG) when id or en, else `configured`."""
    env = os.environ if environ is None else environ
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:
            lang = value.split("_")[0].split(".")[0].lower()
            if lang in LANGUAGES:
                return lang
            break  # the first locale variable set wins, as in gettext
    return configured if configured in LANGUAGES else "id"


def fault_message(code: str, lang: str) -> tuple[str, str]:
    """(message, remedy) for a fault or alert code as the status carries it (e.g. "jam", "paused")."""
    for fault in Fault:
        if fault.value == code:
            return (translate(f"fault.{code}.message", lang, fault.message(lang)),
                    translate(f"fault.{code}.remedy", lang, fault.remedy(lang)))
    for alert in Alert:
        if alert.value == code:
            return alert.message(lang), alert.remedy(lang)
    return code, ""


def word(key: str, lang: str) -> str:
    """A word of the status screen in `lang` (the key itself when there is none)."""
    entry = _WORDS.get(key)
    return translate(f"word.{key}", lang, _pick(entry, lang)) if entry else key


def _pick(entry: Mapping[str, object], lang: str):
    if lang not in LANGUAGES:
        raise ValueError(f"no texts in language {lang!r}; available: {', '.join(LANGUAGES)}")
    return entry[lang]


_ALERTS: dict[Alert, dict[str, tuple[str, str]]] = {
    Alert.BLANKS_LOW: {
        "id": ("Blangko KTP-el hampir habis.", "Minta kiriman blangko ke pusat sekarang, sebelum habis."),
        "en": ("Blank e-KTP cards are running low.", "Ask the centre for more blanks now, before they run out."),
    },
    Alert.BLANKS_EMPTY: {
        "id": ("Blangko KTP-el habis; pencetakan berhenti.", "Isi feeder dengan blangko baru dan catat jumlahnya (printstation hopper load)."),
        "en": ("Blank e-KTP cards are used up; printing has stopped.", "Load new blanks and record them (printstation hopper load)."),
    },
    Alert.OFFICE_STOCK_LOW: {
        "id": ("Persediaan blangko kantor (gudang dan printer) akan habis dalam kurang dari 14 hari cetak.",
               "Minta kiriman blangko ke pusat sekarang."),
        "en": ("The office's blanks (storeroom and printers) run out within 14 print days.",
               "Ask the centre for a delivery of blanks now."),
    },
    Alert.LEDGER_DISCREPANCY: {
        "id": ("Jumlah blangko di catatan tidak sesuai dengan printer.",
               "Hitung blangko di hopper, lalu catat dengan printstation hopper adjust."),
        "en": ("The blank count in the ledger does not match the printer.",
               "Count the blanks in the hopper, then printstation hopper adjust."),
    },
    Alert.RIBBON_LOW: {
        "id": ("Pita warna (ribbon) hampir habis.", "Siapkan pita warna pengganti di dekat printer."),
        "en": ("The ribbon is running low.", "Keep a new ribbon ready next to the printer."),
    },
    Alert.RIBBON_EMPTY: {
        "id": ("Pita warna (ribbon) habis.", "Buka penutup printer dan ganti pita warna."),
        "en": ("The ribbon is used up.", "Open the printer cover and put in a new ribbon."),
    },
    Alert.UPSTREAM_OFFLINE: {
        "id": ("Tidak terhubung ke server pusat. Pekerjaan yang sudah ada tetap dicetak; laporan dikirim nanti.",
               "Periksa jaringan kantor. Tidak perlu menghentikan printer."),
        "en": ("The central server cannot be reached. Jobs already here are still printed; reports are sent later.",
               "Check the office network. There is no need to stop the printers."),
    },
    Alert.REPORT_REFUSED: {
        "id": ("Server pusat menolak sebuah laporan; laporan itu disimpan.", "Kirim support bundle ke teknisi (printstation support-bundle)."),
        "en": ("The central server refused a report; it is kept.", "Send a support bundle to the technician (printstation support-bundle)."),
    },
    Alert.JOB_HELD: {
        "id": ("Satu pekerjaan ditahan: stasiun tidak bisa memastikan apakah kartunya sudah tercetak.",
               "Periksa tempat kartu jadi dan kotak reject, lalu putuskan bersama supervisor."),
        "en": ("A job is held: the station cannot prove whether its card was printed.",
               "Check the output hopper and the reject box, then decide with a supervisor."),
    },
    Alert.READER_UNAVAILABLE: {
        "id": ("Pembaca chip di printer tidak terdeteksi.", "Periksa kabel USB printer; jika tetap, mulai ulang layanan pcscd."),
        "en": ("The printer's chip reader cannot be found.", "Check the printer's USB cable; if it persists, restart the pcscd service."),
    },
    Alert.OUTSIDE_PRINT_WINDOW: {
        "id": ("Di luar jam cetak; pekerjaan menunggu.", "Tidak ada yang perlu dilakukan: pencetakan mulai lagi pada jam cetak berikutnya."),
        "en": ("Outside the print hours; jobs are waiting.", "Nothing to do: printing starts again when the next print window opens."),
    },
    Alert.PRINTER_PAUSED: {
        "id": ("Printer dihentikan sementara oleh petugas.", "Lanjutkan dengan: printstation resume NAMA-PRINTER"),
        "en": ("The printer was paused by staff.", "Resume it with: printstation resume PRINTER-NAME"),
    },
    Alert.PRINTER_DRAINING: {
        "id": ("Printer menyelesaikan kartu yang sedang dicetak, lalu berhenti.", "Tunggu sampai status menunjukkan berhenti sebelum membuka printer."),
        "en": ("The printer is finishing the card in progress, then stops.", "Wait until the status shows it stopped before opening the printer."),
    },
    Alert.DAEMON_DOWN: {
        "id": ("Layanan printstation tidak berjalan; yang tampil adalah isi jurnal terakhir.", "Jalankan: sudo systemctl start printstation"),
        "en": ("The printstation service is not running; this is the journal as last written.", "Run: sudo systemctl start printstation"),
    },
}

_WORDS: dict[str, dict[str, str]] = {
    "printer": {"id": "printer", "en": "printer"},
    "idle": {"id": "siap", "en": "idle"},
    "processing": {"id": "mencetak", "en": "printing"},
    "stopped": {"id": "berhenti", "en": "stopped"},
    "starting": {"id": "memulai", "en": "starting"},
    "unknown": {"id": "tidak diketahui", "en": "unknown"},
    "blanks": {"id": "blangko", "en": "blanks"},
    "ribbon": {"id": "ribbon", "en": "ribbon"},
    "queue": {"id": "antrean", "en": "queue"},
    "outbox": {"id": "laporan belum terkirim", "en": "reports to send"},
    "upstream": {"id": "server pusat", "en": "upstream"},
    "online": {"id": "terhubung", "en": "online"},
    "offline": {"id": "terputus", "en": "offline"},
    "printed": {"id": "tercetak", "en": "printed"},
    "spoiled": {"id": "rusak", "en": "spoiled"},
    "forecast": {"id": "perkiraan", "en": "forecast"},
    "window": {"id": "jam cetak", "en": "print window"},
    "open": {"id": "buka", "en": "open"},
    "closed": {"id": "tutup", "en": "closed"},
    "source-daemon": {"id": "dari layanan", "en": "from the service"},
    "source-journal": {"id": "dari jurnal (layanan mati)", "en": "from the journal (service down)"},
    "remedy": {"id": "yang harus dilakukan", "en": "what to do"},
    "storeroom": {"id": "gudang", "en": "storeroom"},
    "hoppers": {"id": "di printer", "en": "in the printers"},
    "office-runs-out": {"id": "persediaan kantor habis", "en": "office stock runs out"},
    "office-stock": {"id": "persediaan kantor", "en": "office stock"},
    "print-days": {"id": "hari cetak", "en": "print days"},
    "ledger-says": {"id": "catatan", "en": "the ledger says"},
    "printer-says": {"id": "printer", "en": "the printer says"},
    # the operators' page
    "page-title": {"id": "Stasiun cetak KTP-el", "en": "e-KTP print station"},
    "updated": {"id": "diperbarui", "en": "updated"},
    "offline-since": {"id": "terputus sejak", "en": "offline since"},
    "ribbon-left": {"id": "ribbon tersisa (kartu)", "en": "ribbon left (cards)"},
    "blanks-in-hopper": {"id": "blangko di printer", "en": "blanks in the printer"},
    "runs-out": {"id": "perkiraan habis", "en": "runs out"},
    "today": {"id": "hari ini", "en": "today"},
    "jobs": {"id": "pekerjaan", "en": "jobs"},
    "waiting": {"id": "menunggu", "en": "waiting"},
    "in-printer": {"id": "sedang dicetak", "en": "printing"},
    "held": {"id": "ditahan", "en": "held"},
    "failed": {"id": "gagal", "en": "failed"},
    "alerts": {"id": "Peringatan", "en": "Alerts"},
    "severity-error": {"id": "GANGGUAN", "en": "ERROR"},
    "severity-warning": {"id": "PERINGATAN", "en": "WARNING"},
    "station": {"id": "stasiun", "en": "station"},
    "count": {"id": "jumlah", "en": "count"},
    "no-alerts": {"id": "Tidak ada peringatan.", "en": "No alerts."},
    "acknowledge": {"id": "Sudah dilihat", "en": "Acknowledge"},
    "acknowledged": {"id": "sudah dilihat", "en": "acknowledged"},
    "pause": {"id": "Hentikan sementara", "en": "Pause"},
    "resume": {"id": "Lanjutkan", "en": "Resume"},
    "drain": {"id": "Selesaikan kartu lalu berhenti", "en": "Finish the card, then stop"},
    "paused": {"id": "dihentikan sementara", "en": "paused"},
    "safe-to-open": {"id": "Aman dibuka: tidak ada kartu di dalam printer.", "en": "Safe to open: no card inside the printer."},
    "not-safe-yet": {"id": "Jangan dibuka dulu: kartu masih dicetak.", "en": "Do not open yet: a card is still printing."},
    "login": {"id": "Masuk petugas", "en": "Operator login"},
    "pin": {"id": "PIN", "en": "PIN"},
    "sign-in": {"id": "Masuk", "en": "Sign in"},
    "sign-out": {"id": "Keluar", "en": "Sign out"},
    "read-only": {"id": "Hanya lihat: masuk dengan PIN untuk tindakan.", "en": "Read-only: sign in with the PIN to act."},
    "no-pin": {"id": "Hanya lihat: PIN petugas belum diatur ([web] operator_pin_hash).",
               "en": "Read-only: no operator PIN is configured ([web] operator_pin_hash)."},
    "wrong-pin": {"id": "PIN salah.", "en": "Wrong PIN."},
    "since": {"id": "sejak", "en": "since"},
    "language": {"id": "English", "en": "Bahasa Indonesia"},
    "none": {"id": "tidak ada", "en": "none"},
    "held-remedy": {"id": "Periksa tempat kartu jadi dan kotak reject. Kartu ada di tempat kartu jadi: 'Sudah tercetak'. "
                          "Tidak ada di keduanya: 'Cetak ulang'. Ragu: 'Batalkan' dan hubungi supervisor.",
                    "en": "Check the output tray and the reject box. The card is in the output tray: 'It was printed'. "
                          "In neither: 'Print again'. In doubt: 'Cancel' and call a supervisor."},
    "was-printed": {"id": "Sudah tercetak", "en": "It was printed"},
    "print-again": {"id": "Cetak ulang", "en": "Print again"},
    "cancel-job": {"id": "Batalkan", "en": "Cancel"},
    "morning-report": {"id": "Laporan pagi terakhir", "en": "Latest morning report"},
    "no-report": {"id": "Belum ada laporan pagi.", "en": "No morning report yet."},
}
