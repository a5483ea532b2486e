"""The `kabarin` command, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

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


TYPOS = """\
receiver:
  token: t
  max_body_bytes: lots
  tokn: x
store:
  url: sqlite:///./k.db
dispatcher:
  lease: soon
  batch: 10
sinks:
  erp:
    type: webhook
    url: https://erp.example.com/h
    secret: not-a-secret
  ops:
    type: console
    concurrency: 0
    colour: red
routes:
  - name: cancels
    match: {status: cancelled}
    sinks: [ops, pager]
    template:
      ops: "{{ event.detail.awb }}"
  - name: costly
    when: "event.status =="
    sinks: [ops]
  - name: costly
    sinks: [ops]
"""


def test_check_lists_every_typo_of_the_file_in_one_run_with_path_and_line(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "typos.yaml"
    bad.write_text(TYPOS)
    r = run("check", "--config", str(bad))
    assert r.returncode == 1
    found = [line.strip() for line in r.stderr.splitlines() if line.startswith("  ")]
    expected = [
        "receiver.max_body_bytes (line 3): Expected `int`, got `str`",
        "receiver.tokn (line 4): unknown key",
        "dispatcher.lease (line 8): expected a duration",
        "sinks.erp.secret (line 14): a webhook secret must start with `whsec_`",
        "sinks.ops.concurrency (line 17): must be at least 1",
        "sinks.ops.colour (line 18): unknown key",
        "routes[0].sinks[1] (line 22): undefined sink 'pager'",
        "routes[2].name (line 28): duplicate route name",
        "routes[0].match.status (line 21): 'cancelled' is never a value",
        "routes[1].when (line 26): syntax error",
        "routes[0].template.ops (line 24): line 1: 'Event object' has no attribute 'detail'",
    ]
    for start in expected:
        assert sum(line.startswith(start) for line in found) == 1, (start, found)
    assert len(found) == len(expected), found


def test_check_and_serve_refuse_a_store_they_do_not_know(tmp_path: Path) -> None:
    bad = tmp_path / "mysql.yaml"
    bad.write_text("receiver:\n  token: t\nstore:\n  url: mysql://x\n")
    check = run("check", "--config", str(bad))
    serve = run("serve", "--config", str(bad), "--port", "1")
    assert check.returncode == 1 == serve.returncode
    assert "store.url (line 4): unsupported store 'mysql'" in check.stderr
    assert "sqlite:///" in check.stderr and "postgresql://" in check.stderr
    assert serve.stderr == check.stderr
    assert "Traceback" not in serve.stderr


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:relative.db"])
def test_check_refuses_a_sqlite_url_without_a_path(tmp_path: Path, url: str) -> None:
    bad = tmp_path / "nopath.yaml"
    bad.write_text(f"receiver:\n  token: t\nstore:\n  url: '{url}'\n")
    r = run("check", "--config", str(bad))
    assert r.returncode == 1
    assert "store.url (line 4): " in r.stderr and "sqlite:///" in r.stderr


def test_check_and_serve_refuse_a_store_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    bad = tmp_path / "folder.yaml"
    bad.write_text(f"receiver:\n  token: t\nstore:\n  url: sqlite:///{blocker}/data/k.db\n")
    check = run("check", "--config", str(bad))
    serve = run("serve", "--config", str(bad), "--port", "1")
    assert check.returncode == 1 == serve.returncode
    assert "store.url (line 4): " in check.stderr
    assert f"{blocker} is not a folder" in check.stderr
    assert serve.stderr == check.stderr
    assert "Traceback" not in serve.stderr


def test_check_into_a_closed_pipe_exits_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` that has already gone: every write fails
    try:
        r = subprocess.run(
            [str(KABARIN), "check", "--config", "config.example.yaml"],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert r.returncode == 141
    assert r.stderr == ""


def test_check_and_serve_refuse_infinite_nan_and_huge_durations(tmp_path: Path) -> None:
    bad = tmp_path / "durations.yaml"
    bad.write_text(
        f"receiver: {{token: t}}\nstore: {{url: 'sqlite:///{tmp_path}/k.db'}}\n"
        "dispatcher:\n  lease: .inf\n  poll_interval: .nan\n"
        "retention:\n  events: 99999999d\n"
    )
    check = run("check", "--config", str(bad))
    serve = run("serve", "--config", str(bad), "--port", "1")
    assert check.returncode == 1 == serve.returncode
    assert check.stderr.splitlines() == [
        f"{bad}: invalid configuration",
        "  dispatcher.lease (line 4): a duration must be at most 100 years (36500d), got inf",
        "  dispatcher.poll_interval (line 5): expected a duration like `5s`, got nan",
        "  retention.events (line 7): a duration must be at most 100 years (36500d),"
        " got '99999999d'",
    ]
    assert serve.stderr == check.stderr


def test_a_config_file_that_is_not_utf8_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_bytes(b"\xff\xfe")
    for command in ("check", "serve", "worker", "deliveries"):
        r = run(command, "--config", str(bad))
        assert r.returncode == 1, (command, r.stderr)
        assert r.stderr.splitlines() == [
            f"{bad}: invalid configuration",
            f"  {bad}: cannot read: not UTF-8 text",
        ], command


@pytest.mark.parametrize(
    "args",
    [
        ["deliveries"],
        ["replay", "--dead"],
        ["reprocess"],
        ["routes", "test", "--config", "config.example.yaml"],
    ],
)
def test_a_huge_since_is_a_usage_error_naming_the_option(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    last = refused(capsys, *args, "--since", "99999999d").splitlines()[-1]
    assert last.endswith(
        "error: argument --since: a duration must be at most 100 years (36500d), got '99999999d'"
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["serve", "--port", "99999"], "argument --port: expected a port from 0 to 65535"),
        (["serve", "--port", "-1"], "argument --port: expected a port from 0 to 65535"),
        (["deliveries", "--limit", "-1"], "argument --limit: expected a whole number of at least"),
        (["rejected", "list", "--limit", "0"], "argument --limit: expected a whole number"),
        (["register-callback", "--url", "push.example"], "argument --url: expected an http://"),
        (["reprocess", "--wait", "forever"], "argument --wait: expected a duration"),
    ],
)
def test_bad_option_values_are_usage_errors(
    tmp_path: Path, args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"  # KiriminAja on a closed local port: nothing goes out
    config.write_text(
        f"receiver: {{token: t}}\nstore: {{url: 'sqlite:///{tmp_path}/k.db'}}\n"
        "kiriminaja: {base_url: 'http://127.0.0.1:9'}\n"
    )
    assert error in refused(capsys, *args, "--config", str(config)).splitlines()[-1]


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What `kabarin` writes to stderr when it refuses these arguments as a usage error (exit
    2, before any command runs). In this process: the parser is all that runs, and an error
    other than a usage error would fail the test with its traceback. The real command's exit
    is `test_a_usage_error_is_exit_2_and_one_line_from_the_real_command`."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_a_usage_error_is_exit_2_and_one_line_from_the_real_command() -> None:
    r = run("deliveries", "--since", "99999999d")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].endswith(
        "error: argument --since: a duration must be at most 100 years (36500d), got '99999999d'"
    )


def test_simulate_names_a_push_file_it_cannot_read(tmp_path: Path) -> None:
    for path in ("/nonexistent.json", str(tmp_path)):
        r = run("simulate", "--config", "config.example.yaml", path)
        assert r.returncode == 1
        assert r.stderr.splitlines() == [
            f"{path}: cannot read: "
            + ("No such file or directory" if path.startswith("/non") else "Is a directory")
        ]


def test_simulate_counts_its_events_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    push = ROOT / "tests/fixtures/push/shipped_packages.json"
    assert main(["simulate", "--config", str(ROOT / "config.example.yaml"), str(push)]) == 0
    assert "push shipped_packages: 1 event\n" in capsys.readouterr().out


@pytest.mark.parametrize("enabled", [False, True])
def test_track_add_warns_when_no_tracker_will_poll(
    enabled: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"receiver: {{token: t}}\nstore: {{url: 'sqlite:///{tmp_path}/k.db'}}\n"
        f"pull: {{enabled: {str(enabled).lower()}}}\n"
    )
    assert main(["track", "add", "--config", str(config), "INV-1", "INV-2"]) == 0
    out, err = capsys.readouterr()
    assert out == "2 orders added, 0 already followed\n"  # added either way
    warned = "warning: the pull tracker is off in this configuration" in err
    assert warned is not enabled, err


def test_reprocess_needs_no_failed_flag_and_says_it_is_the_default(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"receiver: {{token: t}}\nstore: {{url: 'sqlite:///{tmp_path}/k.db'}}\n")
    r = run("reprocess", "--config", str(config), "--id", "psh_x")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "no failed pushes match\n"
    assert "(the default" in run("reprocess", "--help").stdout


def test_worker_help_names_every_stage_it_runs() -> None:
    text = " ".join(run("worker", "--help").stdout.split())
    assert "only the dispatcher" not in text
    for stage in ("the intake", "the dispatcher", "retention", "the pull tracker"):
        assert stage in text


@pytest.mark.parametrize(
    ("given", "listens"),
    [
        ((), "--host 127.0.0.1 --port 8080"),
        (("PORT=9001", "HOST=0.0.0.0"), "--host 0.0.0.0 --port 9001"),
    ],
)
def test_make_run_listens_where_port_and_host_say(given: tuple[str, ...], listens: str) -> None:
    # Under `make test` this make is a sub-make: it would print the directories it enters.
    r = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", *given],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    (serve,) = [line for line in r.stdout.splitlines() if "kabarin serve" in line]
    assert serve.endswith(f"serve --config config.example.yaml {listens}")


def test_the_docs_dead_letter_commands_work_on_the_example_as_written(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "delivery.md").read_text(encoding="utf-8")
    block = page.split("## Dead letters and replay\n\n```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].split() for line in block.splitlines()]
    example = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    (tmp_path / "config.example.yaml").write_text(example)  # its store is ./data/, under tmp
    ran = 0
    for words in commands:
        assert words[0] == "kabarin"
        if "dlv_..." in words:  # names a delivery of the reader's own
            continue
        r = run(*words[1:], cwd=tmp_path)
        assert r.returncode == 0, (words, r.stderr)
        ran += 1
    assert ran == 2
