"""What `printstation hopper` says, in Indonesian and English (also in the gettext catalogs under
`hopper.KEY`, where a translator edits them): results, what a printer says, and each kind of
disagreement between the ledger and a printer with what to do about it."""

from __future__ import annotations

from typing import Any

from agent.core.catalog import translate

_TEXTS: dict[str, dict[str, str]] = {
    "loaded": {"id": "{printer}: {quantity} blangko lot {lot} dimasukkan ke hopper; {remaining} di hopper, "
                     "{storeroom} lot ini di gudang",
               "en": "{printer}: {quantity} blanks of lot {lot} loaded; {remaining} in the hopper, "
                     "{storeroom} of this lot in the storeroom"},
    "adjusted": {"id": "{printer}: dikoreksi {quantity:+d} ({reason}); {remaining} di hopper menurut catatan",
                 "en": "{printer}: adjusted by {quantity:+d} ({reason}); {remaining} in the hopper by the ledger"},
    "short": {"id": "gudang hanya menyimpan {held} blangko lot {lot}, kurang dari {wanted} yang akan dimasukkan; "
                    "catat dulu kirimannya: printstation stock receive --lot {lot} --count N",
              "en": "the storeroom holds {held} blanks of lot {lot}, fewer than the {wanted} to load; "
                    "record the delivery first: printstation stock receive --lot {lot} --count N"},
    "agree": {"id": "catatan dan semua printer cocok", "en": "the ledger and every printer agree"},
    "not-asked": {"id": "{printer}: tidak dapat ditanya ({why}); tidak bisa dinyatakan cocok",
                  "en": "{printer}: could not be asked ({why}); it cannot be called in agreement"},
    "disagrees": {"id": "TIDAK COCOK {where}: {what}. Lakukan: {remedy}",
                  "en": "DISAGREES {where}: {what}. Do: {remedy}"},
    "says": {"id": "{printer}: penghitung kartu {counter}, feeder {feeder}, {inside}; catatan {remaining}",
             "en": "{printer}: card counter {counter}, feeder {feeder}, {inside}; ledger {remaining}"},
    "lot-line": {"id": "{printer} lot {lot}: dimasukkan {loaded}, dikoreksi {adjusted:+d}, tercetak {printed}, "
                       "rusak {spoiled}, di dalam printer {in_printer}, sisa {remaining}",
                 "en": "{printer} lot {lot}: loaded {loaded}, adjusted {adjusted:+d}, printed {printed}, "
                       "spoiled {spoiled}, in the printer {in_printer}, remaining {remaining}"},
    "feeder-empty": {"id": "kosong", "en": "empty"},
    "feeder-has-blanks": {"id": "berisi blangko", "en": "has blanks"},
    "card-inside": {"id": "ada kartu di dalam", "en": "a card inside"},
    "no-card-inside": {"id": "tidak ada kartu di dalam", "en": "no card inside"},
    # what disagrees
    "lot-sums": {"id": "dimasukkan {loaded} + dikoreksi {adjusted} != tercetak {printed} + rusak {spoiled} + "
                       "di dalam printer {in_printer} + sisa {remaining} ({accounted})",
                 "en": "loaded {loaded} + adjusted {adjusted} != printed {printed} + spoiled {spoiled} + "
                       "in the printer {in_printer} + remaining {remaining} ({accounted})"},
    "fed-more-than-loaded": {"id": "{count} blangko lebih banyak diumpankan daripada yang dimasukkan",
                             "en": "{count} more blanks fed than loaded"},
    "feeder-empty-ledger-not": {"id": "feeder kosong, tetapi catatan menghitung {remaining} blangko",
                                "en": "the feeder is empty but the ledger counts {remaining} blanks"},
    "feeder-has-blanks-ledger-empty": {"id": "feeder berisi blangko yang tidak ada di catatan",
                                       "en": "the feeder holds blanks the ledger does not count"},
    "card-inside-unexpected": {"id": "ada kartu di dalam printer; jurnal mengharapkan {in_printer}",
                               "en": "the printer holds card; the journal expects {in_printer}"},
    "card-missing": {"id": "tidak ada kartu di dalam printer; jurnal mengharapkan {in_printer}",
                     "en": "the printer holds no card; the journal expects {in_printer}"},
    "counter-above": {"id": "printer menghitung {count} kartu yang tidak diumpankan jurnal (kartu uji, program lain)",
                      "en": "the printer counted {count} card(s) the journal did not feed (test cards, another program)"},
    "counter-below": {"id": "penghitung kartu printer {count} di bawah jurnal (printer direset atau diganti?)",
                      "en": "the printer's card counter is {count} below the journal's (printer reset or replaced?)"},
    # what to do
    "do-call-support": {"id": "jurnal tidak konsisten: simpan berkas jurnal dan hubungi dukungan",
                        "en": "the journal is inconsistent: keep the journal file and call support"},
    "do-count-and-adjust": {"id": "hitung blangko di hopper, lalu printstation hopper adjust",
                            "en": "count the blanks in the hopper, then printstation hopper adjust"},
    "do-start-service": {"id": "jalankan layanan: ia menyelesaikan kartu itu dari bukti printer",
                         "en": "start the service: it resolves the card from the printer's evidence"},
    "do-check-history": {"id": "periksa riwayat printer dan catat koreksi",
                         "en": "check the printer's history and record an adjustment"},
}


def text(key: str, lang: str, **values: Any) -> str:
    """The text `key` in `lang` (Indonesian unless English), its fields filled in."""
    own = _TEXTS[key]["en" if lang == "en" else "id"]
    return translate(f"hopper.{key}", lang, own).format(**values)
