"""The README stays a short way in: what Kabarin is, two commands, a tour and links into the
docs, each link leading somewhere and its benchmark line taken from the docs' latest figures.
Its YAML blocks and commands (and those of every docs page) are checked by
`tests/test_docs_blocks.py`; the example configuration it starts with is checked here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.check import validate_file

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = README.parent


def _example_value(variable: str) -> str:
    """A value of the right form for an environment variable an example names."""
    if "SECRET" in variable:
        return "whsec_" + "a" * 32
    if "SLACK" in variable:
        return "https://hooks.slack.com/services/T000/B000/example"
    return f"example-{variable}"


def test_the_readme_is_short_and_links_into_the_docs() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    links = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", text)
    assert len([link for link in links if link.startswith("docs/")]) >= 15
    assert not [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    guides = {p.name for p in (ROOT / "docs" / "guides").glob("*.md")}
    assert not [g for g in guides if f"docs/guides/{g}" not in text]  # every guide is offered


def test_the_readme_benchmark_line_is_the_latest_run_in_the_docs() -> None:
    text = README.read_text(encoding="utf-8")
    line = text.split("## Performance\n", 1)[1]
    performance = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    latest = performance.split("**The latest full `make bench`**", 1)[1].split("What stands", 1)[0]
    figures = re.findall(r"\d[\d,.]*\d", line.split("[", 1)[0])
    assert len(figures) >= 6
    assert not [f for f in figures if f not in latest]


def test_the_example_configuration_is_valid_with_every_commented_block_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`config.example.yaml` works as it is (`make run`), and so do the blocks it shows
    commented out, once uncommented: a user who copies them gets a valid file."""
    example = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    yaml_line = re.compile(r"^(\s*)# (\s*(?:[\w-]+:|- )(?:\s.*)?)$")
    uncommented = "\n".join(yaml_line.sub(r"\1\2", line) for line in example.splitlines()).replace(
        "sqlite:///./data/kabarin.db", f"sqlite:///{tmp_path}/kabarin.db"
    )
    assert uncommented.count("type: ") >= 9
    for name in set(re.findall(r"\$\{(\w+)", uncommented)):
        monkeypatch.setenv(name, _example_value(name))
    path = tmp_path / "config.yaml"
    path.write_text(uncommented, encoding="utf-8")
    config = validate_file(str(path))
    assert set(config.sinks) == {
        "console",
        "erp",
        "ops-slack",
        "gudang",
        "wa",
        "sms",
        "wa-cloud",
        "sms-twilio",
        "sms-http",
    }
    providers = {
        (type(c).__struct_config__.tag, getattr(c, "provider", None)) for c in config.sinks.values()
    }
    for channel, provider in [("whatsapp", "cloud"), ("whatsapp", "fonnte")] + [
        ("sms", p) for p in ("twilio", "zenziva", "http")
    ]:
        assert (channel, provider) in providers  # every provider is shown
    assert config.pull.enabled
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        example.replace("sqlite:///./data/kabarin.db", f"sqlite:///{tmp_path}/p.db"),
        encoding="utf-8",
    )
    assert set(validate_file(str(plain)).sinks) == {"console"}
