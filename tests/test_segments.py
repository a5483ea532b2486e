"""SMS segment counting: GSM-7 with its extension table, UCS-2 as soon as one character is not."""

from __future__ import annotations

import pytest

from sinks.segments import Segments, count_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Segments("GSM-7", 0, 0)),
        ("Paket kamu sudah diterima", Segments("GSM-7", 25, 1)),
        ("a" * 160, Segments("GSM-7", 160, 1)),
        ("a" * 161, Segments("GSM-7", 161, 2)),
        ("a" * 306, Segments("GSM-7", 306, 2)),
        ("a" * 307, Segments("GSM-7", 307, 3)),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà", Segments("GSM-7", 41, 1)),
        ("€", Segments("GSM-7", 2, 1)),
        ("€[]{}\\^~|", Segments("GSM-7", 18, 1)),
        ("a" * 158 + "€", Segments("GSM-7", 160, 1)),
        ("a" * 159 + "€", Segments("GSM-7", 161, 2)),
        ("{}" * 80, Segments("GSM-7", 320, 3)),
        ("Ongkir Rp10.000 [JNE|REG]", Segments("GSM-7", 28, 1)),
        ("Paket kamu 📦", Segments("UCS-2", 13, 1)),
        ("📦" * 35, Segments("UCS-2", 70, 1)),
        ("📦" * 35 + "a", Segments("UCS-2", 71, 2)),
        ("ā" * 70, Segments("UCS-2", 70, 1)),
        ("ā" * 134, Segments("UCS-2", 134, 2)),
        ("ā" * 135, Segments("UCS-2", 135, 3)),
        ("a" * 100 + "ç", Segments("UCS-2", 101, 2)),  # only Ç is GSM-7, not ç
        ("Terima kasih 🙏 " + "x" * 60, Segments("UCS-2", 76, 2)),
    ],
)
def test_segments(text: str, expected: Segments) -> None:
    assert count_segments(text) == expected


def test_segments_read_as_a_reason() -> None:
    assert str(count_segments("a" * 400)) == "3 SMS (400 GSM-7 characters)"
