"""The README's configuration examples are valid configurations, as `kabarin check` sees them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gateway.check import validate_file

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


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
        monkeypatch.setenv(name, "whsec_" + "a" * 32 if "SECRET" in name else f"example-{name}")
    for name in set(re.findall(r"\{file: ([\w./-]+)\}", block)):  # the template files it names
        (tmp_path / name).write_text("{{ event.status | status_label }}: {{ event.order_id }}")
    text = block if "receiver:" in block else "receiver: {token: t}\n" + block
    path = tmp_path / "config.yaml"
    path.write_text(f"store: {{url: 'sqlite:///{tmp_path}/k.db'}}\n" + text, encoding="utf-8")
    validate_file(str(path))  # raises ConfigError with every problem
