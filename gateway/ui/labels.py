"""The dashboard's words in English and Bahasa Indonesia.

Pages are written in English; `translate` looks each label up here for ``id``. A label missing
from the table shows in English, so a new page never breaks, it only waits for its translation.
The words of the data are labels too: a delivery's or a push's state (``dead``), an attempt's
outcome and an event's status (``delivered``, from `gateway.templating.STATUS_LABELS`). A label
counting ``{n}`` things is written in the plural; English says one thing in the singular
(`_EN_ONE`), Indonesian has one form for both.
"""

from __future__ import annotations

from typing import Literal

from gateway.templating import STATUS_LABELS

__all__ = ["LANGUAGES", "Language", "translate"]

Language = Literal["en", "id"]
LANGUAGES: tuple[Language, ...] = ("en", "id")

_ID: dict[str, str] = {
    "Overview": "Ringkasan",
    "Orders": "Pesanan",
    "Deliveries": "Pengiriman pesan",
    "Pushes": "Push",
    "Configuration": "Konfigurasi",
    "Try a push": "Coba push",
    "Sign in": "Masuk",
    "Sign out": "Keluar",
    "Admin token": "Token admin",
    "Wrong admin token.": "Token admin salah.",
    "Too many wrong tokens from this address: try again later.": (
        "Terlalu banyak token salah dari alamat ini: coba lagi nanti."
    ),
    "The dashboard is off: set admin.token in the configuration.": (
        "Dasbor nonaktif: isi admin.token di konfigurasi."
    ),
    "This form has expired or did not come from this dashboard. Nothing was changed.": (
        "Formulir ini kedaluwarsa atau bukan dari dasbor ini. Tidak ada yang diubah."
    ),
    "Refused": "Ditolak",
    "Not found": "Tidak ditemukan",
    "Pushes and events per hour, last 24 hours": "Push dan event per jam, 24 jam terakhir",
    "pushes": "push",
    "events": "event",
    "Deliveries by state": "Pengiriman menurut status",
    "Intake backlog": "Antrean intake",
    "pushes waiting for the intake": "push menunggu intake",
    "rejected bodies kept": "body ditolak yang disimpan",
    "Sinks": "Sink",
    "Sink": "Sink",
    "Type": "Jenis",
    "Pending": "Menunggu",
    "Dead": "Gagal",
    "Circuit": "Sirkuit",
    "Switched off": "Dimatikan",
    "Enable": "Aktifkan",
    "Search by order id or AWB": "Cari dengan ID pesanan atau AWB",
    "Search": "Cari",
    "No order or AWB matches": "Tidak ada pesanan atau AWB yang cocok",
    "Recent orders": "Pesanan terbaru",
    "Order": "Pesanan",
    "Shop": "Toko",
    "Every shop": "Semua toko",
    "Timeline": "Linimasa",
    "Time": "Waktu",
    "Status": "Status",
    "Source": "Sumber",
    "Method": "Metode",
    "Reason": "Alasan",
    "Contact": "Kontak",
    "Tracking page": "Halaman lacak",
    "Route": "Rute",
    "State": "Status",
    "Attempts": "Percobaan",
    "Outcome": "Hasil",
    "Duration": "Durasi",
    "Error": "Galat",
    "Waiting": "Menunggu karena",
    "Last error": "Galat terakhir",
    "Next attempt": "Percobaan berikutnya",
    "Created": "Dibuat",
    "Event": "Event",
    "any": "semua",
    "Since": "Sejak",
    "Filter": "Saring",
    "Replay": "Kirim ulang",
    "Replay all dead ones matching the filter": "Kirim ulang semua yang gagal sesuai saringan",
    "Replay {n} dead deliveries?": "Kirim ulang {n} pengiriman yang gagal?",
    "No dead delivery matches the filter.": "Tidak ada pengiriman gagal yang cocok.",
    "Cancel": "Batal",
    "No such sink": "Sink tidak ada",
    "No sink named {sink} is configured (configured sinks: {known}).": (
        "Tidak ada sink bernama {sink} di konfigurasi (sink yang ada: {known})."
    ),
    "{n} deliveries replayed.": "{n} pengiriman dikirim ulang.",
    "Delivery replayed.": "Pengiriman dikirim ulang.",
    "This delivery cannot be replayed now.": "Pengiriman ini tidak bisa dikirim ulang sekarang.",
    "Rendered message": "Pesan yang dirender",
    "The sink is no longer in the configuration.": "Sink ini sudah tidak ada di konfigurasi.",
    "No deliveries.": "Tidak ada pengiriman.",
    "Push log": "Log push",
    "Received": "Diterima",
    "Items": "Item",
    "New events": "Event baru",
    "Repeated": "Berulang",
    "Reprocess": "Proses ulang",
    "Reprocess every failed push": "Proses ulang semua push yang gagal",
    "{n} pushes put back to the intake.": "{n} push dikembalikan ke intake.",
    "Body": "Body",
    "Items {first}-{last} of {total}": "Item {first}-{last} dari {total}",
    "First page": "Halaman pertama",
    "Next page": "Halaman berikutnya",
    "{n} bytes, too large to show whole: these are its items, a page at a time.": (
        "{n} byte, terlalu besar untuk ditampilkan utuh: ini item-itemnya, per halaman."
    ),
    "Rejected bodies": "Body yang ditolak",
    "Replay through the push endpoint": "Proses lewat endpoint push",
    "Accepted: it is a push now.": "Diterima: sekarang sudah berupa push.",
    "Still not a push: {reason}": "Masih bukan push: {reason}",
    "The store is unavailable; try again.": "Store tidak tersedia; coba lagi.",
    "File": "Berkas",
    "Loaded": "Dimuat",
    "Reload the file": "Muat ulang berkas",
    "Reloaded": "Dimuat ulang",
    "Reload refused": "Muat ulang ditolak",
    "Last reload": "Muat ulang terakhir",
    "Needs a restart": "Perlu dijalankan ulang",
    "Check of the file on disk now": "Pemeriksaan berkas di disk sekarang",
    "OK": "OK",
    "Secrets are masked.": "Rahasia disamarkan.",
    "The file cannot be read.": "Berkas tidak bisa dibaca.",
    "Paste a push body: nothing is sent or stored.": (
        "Tempel body push: tidak ada yang dikirim atau disimpan."
    ),
    "Show": "Tampilkan",
    "Not a push (Kabarin would answer 400)": "Bukan push (Kabarin akan menjawab 400)",
    "matches no route: stored and counted, sent nowhere": (
        "tidak cocok dengan rute mana pun: disimpan dan dihitung, tidak dikirim"
    ),
    "Template error": "Galat template",
    "Nothing yet.": "Belum ada.",
    "Language": "Bahasa",
    "Menu": "Menu",
    "Enabled": "Aktif",
    "Fallback of": "Pengganti dari",
    "Fallback": "Pengganti",
    "{n} attempts": "{n} percobaan",
    # states of a delivery and of a push, outcomes of an attempt
    "pending": "menunggu",
    "in_flight": "sedang dikirim",
    "dead": "gagal",
    "skipped": "dilewati",
    "superseded": "digantikan",
    "failed": "gagal diproses",
    "retry": "dicoba lagi",
    "permanent": "ditolak tetap",
    "error": "galat",
    # a sink's circuit breaker
    "closed": "tertutup",
    "half-open": "setengah terbuka",
    "open": "terbuka",
    # the statuses of an event, as messages to customers name them
    **{status.value: label.lower() for status, label in STATUS_LABELS["id"].items()},
}

_ID.update(
    {
        "Couriers": "Kurir",
        "Courier": "Kurir",
        "Product": "Layanan",
        "Destination": "Tujuan",
        "Expected": "Perkiraan tiba",
        "KiriminAja's estimate": "Perkiraan KiriminAja",
        "{n} days": "{n} hari",
        "from this shop's last {n} deliveries of this courier and product": (
            "dari {n} pengiriman toko ini dengan kurir dan layanan ini"
        ),
        "to {city}": "ke {city}",
        "Courier scorecards": "Rapor kurir",
        "Shipped in the last {n} days": "Dikirim dalam {n} hari terakhir",
        "Shipments": "Kiriman",
        "Delivered": "Terkirim",
        "Returned": "Diretur",
        "Problems": "Masalah",
        "Stuck": "Macet",
        "Transit p50": "Transit p50",
        "Transit p90": "Transit p90",
        "Pickup p50": "Pickup p50",
        "Return rate": "Tingkat retur",
        "Problem rate": "Tingkat masalah",
        "On time": "Tepat waktu",
        "Transit time, hours (p50 to p90)": "Waktu transit, jam (p50 sampai p90)",
        "Return and problem rates": "Tingkat retur dan masalah",
        "returns": "retur",
        "problems": "masalah",
        "No shipments in this period.": "Tidak ada kiriman pada periode ini.",
        "Orders of {courier}": "Pesanan {courier}",
        "Shipped": "Dikirim",
        "Period": "Periode",
        "By destination": "Per kota tujuan",
        "the newest {n}": "{n} terbaru",
    }
)

_EN_ONE: dict[str, str] = {
    "{n} attempts": "{n} attempt",
    "{n} deliveries replayed.": "{n} delivery replayed.",
    "{n} pushes put back to the intake.": "{n} push put back to the intake.",
    "Replay {n} dead deliveries?": "Replay {n} dead delivery?",
}
"""English labels counting ``{n}``, as they read when ``n`` is 1."""


def translate(label: str, language: Language, **values: object) -> str:
    """`label` in `language`, with `values` filled in (``n=1`` picks the singular)."""
    if language == "id":
        text = _ID.get(label, label)
    else:
        text = _EN_ONE.get(label, label) if values.get("n") == 1 else label
    return text.format(**values) if values else text
