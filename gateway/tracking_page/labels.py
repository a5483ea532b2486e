"""The tracking page's words, in Bahasa Indonesia (the default) and English.

Each label is keyed by its English text; `words` gives a page the table of its language.
Statuses are `gateway.templating.STATUS_LABELS`' words, as in the customer's messages.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["LANGUAGES", "Language", "pick_language", "words"]

Language = Literal["id", "en"]
LANGUAGES: tuple[Language, ...] = ("id", "en")

_ID: dict[str, str] = {
    "Track your parcel": "Lacak paket",
    "Hi": "Halo",
    "Order": "Pesanan",
    "AWB": "Nomor resi",
    "Copy": "Salin",
    "Copied": "Tersalin",
    "Courier": "Kurir",
    "Status": "Status",
    "History": "Riwayat",
    "Estimated arrival": "Perkiraan tiba",
    "Proof of delivery": "Bukti penerimaan",
    "Photo": "Foto",
    "Signature": "Tanda tangan",
    "Chat with the shop": "Chat dengan toko",
    "Note": "Keterangan",
    "There is a delivery problem; contact the shop.": "Ada kendala pengiriman; hubungi toko.",
    "No news yet: the shop has not sent the parcel.": (
        "Belum ada kabar: paket belum dikirim oleh toko."
    ),
    "Find a parcel": "Cari paket",
    "Enter the AWB (tracking number) and the last four digits of the phone number on the order.": (
        "Masukkan nomor resi dan empat digit terakhir nomor HP pada pesanan."
    ),
    "Last four digits of the phone": "Empat digit terakhir nomor HP",
    "Find": "Cari",
    "No parcel matches.": "Tidak ada paket yang cocok.",
    "Too many tries from this address: try again later.": (
        "Terlalu banyak percobaan dari alamat ini: coba lagi nanti."
    ),
    "Page not found": "Halaman tidak ditemukan",
    "This link is not valid. Check that it was copied whole, or find the parcel by its AWB.": (
        "Tautan ini tidak valid. Pastikan tautan tersalin utuh, atau cari paket dengan nomor resi."
    ),
    "This link has expired": "Tautan ini sudah kedaluwarsa",
    "Links in our messages work for a while only. Find the parcel by its AWB, or ask the shop.": (
        "Tautan dalam pesan kami hanya berlaku sementara. Cari paket dengan nomor resi, atau"
        " tanya toko."
    ),
    "Try again later": "Coba lagi nanti",
    "Times are in": "Waktu dalam",
}

Words = dict[str, str]


def words(language: Language) -> Words:
    """Label → text in `language` (English labels are their own text)."""
    if language == "id":
        return _ID
    return {label: label for label in _ID}


def pick_language(asked: str | None, registered: str | None) -> Language:
    """``?lang=`` when it names a language, else the contact's registered one, else ``id``."""
    for choice in (asked, registered):
        for language in LANGUAGES:
            if choice == language:
                return language
    return "id"
