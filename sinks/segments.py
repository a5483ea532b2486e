"""How many SMS a text costs: GSM-7 or UCS-2 (3GPP TS 23.038), and the size of each part.

A text made only of the GSM-7 alphabet travels 160 characters to a message, or 153 per part
once it is split (the rest of each part holds the header that joins them); ``€[]{}\\^~|`` and
form feed come from the extension table and take two places each. One character outside the
alphabet (an emoji, ``ā``, Chinese) switches the whole text to UCS-2: 70 per message, 67 per
part, counted in UTF-16 units, so an emoji outside the Basic Multilingual Plane takes two.
Providers bill per part, which is why `sinks.sms` refuses a text over ``max_segments``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Segments", "count_segments"]

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_SINGLE = {"GSM-7": 160, "UCS-2": 70}
_PART = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class Segments:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int
    """Septets (GSM-7, extension characters count two) or UTF-16 code units (UCS-2)."""
    count: int
    """Messages the provider sends and bills: 0 for an empty text."""

    def __str__(self) -> str:
        return f"{self.count} SMS ({self.units} {self.encoding} characters)"


def count_segments(text: str) -> Segments:
    """The encoding `text` needs and how many SMS it takes."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
        units = sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
    else:
        encoding = "UCS-2"
        units = len(text.encode("utf-16-le")) // 2
    if units <= _SINGLE[encoding]:
        return Segments(encoding, units, 1 if units else 0)
    return Segments(encoding, units, -(-units // _PART[encoding]))
