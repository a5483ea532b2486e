"""The `console` sink: one readable block per delivery on stdout (or stderr)."""

from __future__ import annotations

import io
import sys

import pytest

from sinks.base import Delivered, Retry
from tests.test_sinks_shared import build_sink, make_event, make_message


async def test_prints_a_header_line_then_the_text_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = build_sink({"type": "console"}, None, name="console")
    message = make_message(route="everything", text="Dikirim: pesanan OID-1001\nbaris kedua")
    assert await sink.send(message) == Delivered()
    out, err = capsys.readouterr()
    assert out == (
        "== console | route everything | shipped | order OID-1001 | AWB JP1234567890\n"
        "Dikirim: pesanan OID-1001\nbaris kedua\n"
    )
    assert err == ""


async def test_without_an_awb_the_header_leaves_it_out(capsys: pytest.CaptureFixture[str]) -> None:
    sink = build_sink({"type": "console"}, None, name="c")
    await sink.send(make_message(event=make_event(awb=None), text="t"))
    assert (
        capsys.readouterr().out.splitlines()[0]
        == "== c | route all-to-erp | shipped | order OID-1001"
    )


async def test_stream_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    sink = build_sink({"type": "console", "stream": "stderr"}, None)
    await sink.send(make_message(text="ke stderr"))
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("ke stderr\n")


async def test_a_closed_stream_is_a_retry_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    result = await build_sink({"type": "console"}, None).send(make_message())
    assert isinstance(result, Retry) and "stdout" in result.reason


async def test_a_stream_that_cannot_encode_the_text_still_gets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii"))
    result = await build_sink({"type": "console"}, None).send(make_message(text="Terkirim 📦"))
    sys.stdout.flush()
    assert result == Delivered()
    assert raw.getvalue().decode().endswith("Terkirim \\U0001f4e6\n")


def test_defaults() -> None:
    sink = build_sink({"type": "console"}, None)
    assert sink.default_ordering == "latest" and sink.secrets() == []
    assert sink.parts == ("text",)
    assert "{{ event.order_id }}" in sink.default_templates["text"]["id"]


async def test_phone_numbers_in_the_text_are_masked_like_in_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = build_sink({"type": "console"}, None)
    await sink.send(make_message(text="Batal. hubungi 081298765432 atau +62 812-9876-5432"))
    out = capsys.readouterr().out
    assert "081298765432" not in out and "9876-5432" not in out
    assert "hubungi 0812*****432 atau +62 812-****-*432" in out


def test_preview_is_the_printed_block() -> None:
    sink = build_sink({"type": "console"}, None, name="console")
    assert sink.preview(make_message(route="r", text="hubungi 081298765432")) == (
        "== console | route r | shipped | order OID-1001 | AWB JP1234567890\nhubungi 0812*****432"
    )
