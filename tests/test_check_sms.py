"""`kabarin check` prints the worst-case SMS count of every SMS text against the sample events."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main

CONFIG = """
receiver: {token: t0ken}
store: {url: "sqlite:///kabarin.db"}
sinks:
  wa: {type: whatsapp, provider: fonnte, token: fonnte-t0ken}
  sms: {type: sms, provider: zenziva, userkey: u, passkey: p}
  sms-panjang:
    type: sms
    provider: zenziva
    userkey: u
    passkey: p
    max_segments: 1
    template: "{{ event.order_id }}: {{ event.status | status_label }}{{ ' — ' * 30 }}"
routes:
  - name: tell
    match: {status: [shipped, delivered]}
    sinks: [wa]
    fallback: {wa: sms}
    template: {sms: "{{ 'Paket ' * 30 }}{{ event.order_id }}"}
"""


def test_check_prints_the_worst_sms_count_of_each_sms_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith("sms ")]
    assert len(lines) == 2, out
    # 'Paket ' * 30 is 180 GSM-7 characters before the order id: two parts of 153.
    assert lines[0].startswith("sms       sms (route tell): up to 2 SMS (")
    assert "GSM-7 characters), for a " in lines[0]
    assert "OVER" not in lines[0]
    # "—" is not GSM-7: the whole text is UCS-2, 70 characters in one SMS, 67 per part.
    assert lines[1].startswith("sms       sms-panjang (no route): up to 2 SMS (")
    assert "UCS-2 characters" in lines[1]
    assert lines[1].endswith("OVER max_segments 1: refused")


PAGE = """
receiver: {token: t0ken}
store: {url: "sqlite:///kabarin.db"}
sinks:
  sms: {type: sms, provider: zenziva, userkey: u, passkey: p, max_segments: 1}
routes:
  - {name: tell, match: {status: [shipped]}, sinks: [sms]}
"""
TRACKING = """tracking_page:
  enabled: true
  secret: 0123456789abcdef0123456789abcdef
  public_url: https://lacak.toko-sari-yang-namanya-panjang.example
"""


def test_check_counts_the_tracking_link_in_the_sms_default_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(PAGE)
    assert main(["check", "--config", str(config)]) == 0
    (without,) = [x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("sms ")]
    assert "up to 1 SMS" in without and "OVER" not in without
    config.write_text(PAGE + TRACKING)
    assert main(["check", "--config", str(config)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("sms ")]
    # The link (a long public_url and a signed token) takes the text past one SMS.
    assert "up to 2 SMS" in line and line.endswith("OVER max_segments 1: refused"), line
