"""The README's configuration examples are valid configurations, as `kabarin check` sees them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gateway.check import validate_file

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _example_value(variable: str) -> str:
    """A value of the right form for an environment variable an example names."""
    if "SECRET" in variable:
        return "whsec_" + "a" * 32
    if "SLACK" in variable:
        return "https://hooks.slack.com/services/T000/B000/example"
    return f"example-{variable}"


def whole_files() -> list[str]:
    """The examples that are a whole file (sinks and the routes that use them)."""
    found = []
    for block in BLOCKS:
        try:
            data = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and "sinks" in data and "routes" in data:
            found.append(block)
    return found


def test_the_readme_has_whole_file_examples() -> None:
    assert len(whole_files()) >= 1


@pytest.mark.parametrize("block", whole_files())
def test_a_readme_example_passes_check(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in set(re.findall(r"\$\{(\w+)", block)):
        monkeypatch.setenv(name, _example_value(name))
    for name in set(re.findall(r"\{file: ([\w./-]+)\}", block)):  # the template files it names
        (tmp_path / name).write_text("{{ event.status | status_label }}: {{ event.order_id }}")
    text = block if "receiver:" in block else "receiver: {token: t}\n" + block
    path = tmp_path / "config.yaml"
    path.write_text(f"store: {{url: 'sqlite:///{tmp_path}/k.db'}}\n" + text, encoding="utf-8")
    validate_file(str(path))  # raises ConfigError with every problem


def test_the_example_configuration_is_valid_with_every_commented_block_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`config.example.yaml` works as it is (`make run`), and so do the blocks it shows
    commented out, once uncommented: a user who copies them gets a valid file."""
    example = (README.parent / "config.example.yaml").read_text(encoding="utf-8")
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
