"""The README's five-minute tour, run as written against the real server: the push its curl
sends, the console lines it says appear, the admin API call, the dead webhook delivery its
configuration makes, and the `kabarin` commands that list and replay it. Only the port
changes (the tour's 8080 is whatever port is free here)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import httpx
import yaml

from tests.e2e.conftest import KABARIN, KabarinProcess

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR = README.split("## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", TOUR, re.S)


def curl(command: str, port: int) -> httpx.Response:
    """A curl command of the tour, sent with httpx: its URL (on `port`), headers and body."""
    words = shlex.split(command.replace("\\\n", " ").split("|")[0])
    assert words[0] == "curl"
    headers: dict[str, str] = {}
    body: str | None = None
    url = ""
    rest = iter(words[1:])
    for word in rest:
        if word == "-H":
            name, value = next(rest).split(": ", 1)
            headers[name] = value
        elif word == "-d":
            body = next(rest)
        elif word.startswith("http"):
            url = word.replace(":8080", f":{port}")
    method = "POST" if body is not None else "GET"
    return httpx.request(method, url, headers=headers, content=body, timeout=10)


def kabarin(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[0] == "kabarin"
    return subprocess.run(
        [str(KABARIN), *words[1:]], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    # The configuration of step 4: the example, with the tour's sinks and routes in place.
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    (fragment,) = [yaml.safe_load(b) for b in blocks("yaml")]
    server = KabarinProcess(tmp_path / "config.yaml", tmp_path)
    text = yaml.safe_dump({**example, **fragment}, sort_keys=False)
    server.config_path.write_text(text.replace(":8080/", f":{server.port}/"), encoding="utf-8")
    server.start()
    try:
        push, events = [b for b in blocks("sh") if b.startswith("curl")]

        # 1. Send a push: answered at once with its id.
        answer = curl(push, server.port)
        assert answer.status_code == 200, answer.text
        assert answer.json()["items"] == 1
        said = re.search(r"It answers at once, .*?`(\{.*?\})`", TOUR, re.S)
        assert said is not None and set(answer.json()) == set(yaml.safe_load(said[1]))

        # 2. The console sink's lines, as the README shows them.
        (console,) = blocks("text")
        server.wait_for(lambda: all(line in server.output() for line in console.splitlines()))
        listed = curl(events, server.port)  # the event is stored before it is sent
        assert listed.status_code == 200
        assert [e["order_id"] for e in listed.json()["items"]] == ["OID-1001"]

        # 3. The dashboard answers where the tour says.
        assert httpx.get(f"{server.url}/ui", timeout=10).status_code in (200, 303)

        # 4. The webhook to nowhere (the first push already went to it here): its delivery is
        # dead, listed, and replayed.
        def dead() -> bool:
            r = listed_with("/admin/v1/deliveries?state=dead&sink=erp")
            return r.status_code == 200 and len(r.json()["items"]) == 1

        def listed_with(path: str) -> httpx.Response:
            auth = {"Authorization": "Bearer dev-admin-token-local"}
            return server.client.get(path, headers=auth)

        server.wait_for(dead)
        (commands,) = [b for b in blocks("sh") if "kabarin replay" in b]
        outputs = []
        for line in commands.splitlines():
            if line.startswith("kabarin"):
                ran = kabarin(line, tmp_path)
                assert ran.returncode == 0, (line, ran.stderr)
                outputs.append(ran.stdout)
        assert "dead" in outputs[1] and "erp" in outputs[1]
        assert "replayed 1 dead delivery" in outputs[2]
    finally:
        server.stop()
