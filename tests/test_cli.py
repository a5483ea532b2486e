"""The `kabarin` command, run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KABARIN = Path(sys.executable).with_name("kabarin")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KABARIN), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_check_accepts_the_example_config() -> None:
    r = run("check", "--config", "config.example.yaml")
    assert r.returncode == 0, r.stderr
    assert "config.example.yaml: OK" in r.stdout
    assert "POST /kiriminaja/push" in r.stdout
    assert "dev-kiriminaja-token" not in r.stdout  # secrets are never printed


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("receiver:\n  token: t\n  max_body_bytes: lots\nsinks:\n  a: {type: nope}\n")
    r = run("check", "--config", str(bad))
    assert r.returncode == 1
    lines = [line.strip() for line in r.stderr.splitlines() if line.startswith("  ")]
    assert lines and lines[0].startswith("receiver.max_body_bytes (line 3)")


def test_serve_refuses_an_invalid_config_with_the_same_messages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("receiver:\n  token: t\n  tokn: x\n")
    check = run("check", "--config", str(bad))
    serve = run("serve", "--config", str(bad), "--port", "1")
    assert serve.returncode == 1 == check.returncode
    assert "receiver.tokn (line 3): unknown key" in serve.stderr
    assert serve.stderr == check.stderr


def test_missing_config_file() -> None:
    r = run("check", "--config", "/nonexistent.yaml")
    assert r.returncode == 1
    assert "cannot read" in r.stderr
