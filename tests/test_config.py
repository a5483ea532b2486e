"""YAML → typed configuration: defaults, interpolation, durations, errors with path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import DEFAULT_RETRY_SCHEDULE, InvalidConfig, Target, load_config, parse_config
from gateway.errors import ConfigError
from gateway.units import RateLimit, parse_duration, parse_rate_limit

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
receiver:
  token: t0ken
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return info.value.problems


def test_minimal_file_takes_the_documented_defaults() -> None:
    config = parse_config(MINIMAL, env={})
    assert config.receiver.path == "/kiriminaja/push"
    assert config.receiver.max_body_bytes == 2 * 1024 * 1024
    assert config.receiver.timezone == "Asia/Jakarta"
    assert config.store.url == "sqlite:///./kabarin.db"
    assert config.admin.token is None
    assert list(config.retry.schedule) == list(DEFAULT_RETRY_SCHEDULE)
    assert [float(s) for s in config.retry.schedule] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert config.sinks == {} and config.routes == []


def test_the_example_config_is_valid_without_any_environment() -> None:
    config = load_config(ROOT / "config.example.yaml", env={})
    assert config.receiver.token == "dev-kiriminaja-token"
    assert "console" in config.sinks
    assert config.routes[0].sinks == ["console"]


def test_env_interpolation_with_and_without_default() -> None:
    text = """
receiver:
  token: ${PUSH_TOKEN}
  path: ${PUSH_PATH:-/hooks/kj}
store:
  url: sqlite:///${DATA_DIR:-/tmp}/k.db
"""
    config = parse_config(text, env={"PUSH_TOKEN": "s3cret", "DATA_DIR": "/var/lib/k"})
    assert config.receiver.token == "s3cret"
    assert config.receiver.path == "/hooks/kj"
    assert config.store.url == "sqlite:////var/lib/k/k.db"
    assert "s3cret" in config.secrets


def test_unset_variable_names_the_variable_path_and_line() -> None:
    assert problems("receiver:\n  token: ${PUSH_TOKEN}\n") == [
        "receiver.token (line 2): environment variable PUSH_TOKEN is not set"
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("5s", 5), ("5m", 300), ("2h", 7200), ("7d", 604800), (30, 30), ("1.5s", 1.5)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["5 minutes", "-1s", "", True, "s", None])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    "value",
    [
        float("inf"),
        float("nan"),
        "99999999d",
        "36501d",
        pytest.param(10**400, id="10**400"),
        4 * 10**9,
    ],
)
def test_a_duration_is_finite_and_at_most_100_years(value: object) -> None:
    with pytest.raises(ValueError, match=r"at most 100 years|expected a duration"):
        parse_duration(value)
    assert float(parse_duration("36500d")) == 36500 * 86400


def test_rate_limits() -> None:
    assert parse_rate_limit("1/s") == RateLimit(1, 1)
    assert parse_rate_limit("30/m").interval == pytest.approx(2)
    assert parse_rate_limit("100/h").interval == pytest.approx(36)
    with pytest.raises(ValueError):
        parse_rate_limit("fast")
    with pytest.raises(ValueError, match="at least one call every 100 years"):
        parse_rate_limit("1/36501d")
    with pytest.raises(ValueError):
        parse_rate_limit("1" * 400 + "/s")  # a count no float holds


def test_infinite_nan_and_huge_durations_and_rates_are_errors_at_their_key_and_line() -> None:
    text = (
        MINIMAL
        + """dispatcher:
  lease: .inf
  poll_interval: .nan
  shutdown_timeout: 99999999d
retention:
  events: .inf
  interval: 1000000000000
retry:
  schedule: [5s, .inf]
pull:
  rate: .inf
  alert_after:
    shipped: 1d
    in_transit: 99999999d
contacts:
  lookup: {url: "https://erp.example/{order_id}", ttl: .inf}
sinks:
  ops:
    type: console
    rate_limit: 1/36501d
    max_age: .nan
    circuit_breaker: {cooldown: 99999999d, max_cooldown: .inf}
"""
    )
    found = problems(text)
    expected = [
        "dispatcher.lease (line 5): a duration must be at most 100 years (36500d), got inf",
        "dispatcher.poll_interval (line 6): expected a duration like `5s`, got nan",
        "dispatcher.shutdown_timeout (line 7): a duration must be at most 100 years",
        "retention.events (line 9): a duration must be at most 100 years",
        "retention.interval (line 10): a duration must be at most 100 years",
        "retry.schedule[1] (line 12): a duration must be at most 100 years",
        "pull.rate (line 14): expected a number above 0 or a rate like `5/s`, got inf",
        "pull.alert_after.in_transit (line 17): a duration must be at most 100 years",
        "contacts.lookup.ttl (line 19): a duration must be at most 100 years",
        "sinks.ops.rate_limit (line 23): a rate must allow at least one call every 100 years",
        "sinks.ops.max_age (line 24): expected a duration like `5s`, got nan",
        "sinks.ops.circuit_breaker.cooldown (line 25): a duration must be at most 100 years",
        "sinks.ops.circuit_breaker.max_cooldown (line 25): a duration must be at most 100 years",
    ]
    for start in expected:
        assert sum(line.startswith(start) for line in found) == 1, (start, found)
    assert len(found) == len(expected), found


def test_a_rate_as_a_number_is_finite_and_allows_a_call_every_100_years() -> None:
    (line,) = problems(MINIMAL + "pull:\n  rate: .nan\n")
    assert line.startswith("pull.rate (line 5): expected a number above 0")
    (line,) = problems(MINIMAL + "pull:\n  rate: 1.0e-10\n")
    assert (
        line == "pull.rate (line 5): a rate must allow at least one call every 100 years, got 1e-10"
    )
    assert parse_config(MINIMAL + "pull:\n  rate: 0.5\n", env={}).pull.calls_per_second == 0.5


def test_a_bad_status_or_duration_of_alert_after_is_named_at_its_own_key() -> None:
    text = MINIMAL + "pull:\n  alert_after:\n    shiped: 2d\n"
    assert problems(text) == ["pull.alert_after.shiped (line 6): Invalid enum value 'shiped'"]


def test_bad_duration_in_yaml_names_path_and_line() -> None:
    text = MINIMAL + "retry:\n  schedule: [5s, 10 minutes]\n"
    (line,) = problems(text)
    assert line.startswith("retry.schedule[1] (line 5): expected a duration")


def test_unknown_key_is_an_error_with_its_line() -> None:
    text = MINIMAL + "  tokn: oops\n"
    assert problems(text) == [
        "receiver.tokn (line 4): unknown key (check its spelling and indentation)"
    ]


def test_wrong_type_names_path() -> None:
    text = "receiver:\n  token: t\n  max_body_bytes: lots\n"
    (line,) = problems(text)
    assert line.startswith("receiver.max_body_bytes (line 3): Expected `int`")


def test_missing_token() -> None:
    (line,) = problems("receiver:\n  path: /x\n")
    assert "token" in line and line.startswith("receiver (line 1)")


def test_unknown_timezone() -> None:
    (line,) = problems(MINIMAL + "  timezone: Mars/Olympus\n")
    assert "unknown time zone `Mars/Olympus`" in line


def test_invalid_yaml_names_the_line() -> None:
    (line,) = problems("receiver:\n  token: [unclosed\n")
    assert line.startswith("invalid YAML (line")


def test_unknown_sink_type_and_undefined_sink_in_route() -> None:
    text = (
        MINIMAL
        + """
sinks:
  pager:
    type: carrier-pigeon
routes:
  - name: all
    sinks: [pager, nowhere]
"""
    )
    found = problems(text)
    assert found[0].startswith("sinks.pager.type (line 7): unknown sink type 'carrier-pigeon'")
    assert "routes[0].sinks[1] (line 10): undefined sink 'nowhere'" in found


def test_every_problem_is_reported_at_once() -> None:
    text = (
        MINIMAL
        + """
sinks:
  a:
    type: console
    concurrency: 0
  b:
    type: console
    colour: red
routes:
  - name: r
    sinks: [a, c]
  - name: r
    sinks: [a]
"""
    )
    found = problems(text)
    assert len(found) == 4, found
    assert any(p.startswith("sinks.a") and "concurrency" in p for p in found)
    assert any(p.startswith("sinks.b.colour (line 11)") for p in found)
    assert any("undefined sink 'c'" in p for p in found)
    assert any(p.startswith("routes[1].name") and "duplicate" in p for p in found)


def test_template_for_a_sink_the_route_does_not_use() -> None:
    text = (
        MINIMAL
        + """
sinks:
  a: {type: console}
routes:
  - name: r
    sinks: [a]
    template: {b: "hi"}
"""
    )
    (line,) = problems(text)
    assert line.startswith("routes[0].template.b (line 10)")


def test_unreadable_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/kabarin.yaml")
    assert "cannot read" in info.value.problems[0]


def test_a_file_that_is_not_utf8_text_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xff\xfereceiver: {token: t}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: cannot read: not UTF-8 text"]


def test_every_bad_key_of_a_section_is_reported_at_its_own_line() -> None:
    text = "receiver:\n  token: t\n  max_body_bytes: lots\n  tokn: x\n  path: no-slash\n"
    assert problems(text) == [
        "receiver.max_body_bytes (line 3): Expected `int`, got `str`",
        "receiver.tokn (line 4): unknown key (check its spelling and indentation)",
        "receiver.path (line 5): must start with `/`",
    ]


def test_a_blocks_own_checks_name_the_key_not_the_block() -> None:
    text = (
        MINIMAL
        + """
sinks:
  erp:
    type: webhook
    url: erp.example.com/hooks
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    circuit_breaker: {failures: -1}
"""
    )
    assert problems(text) == [
        "sinks.erp.circuit_breaker.failures (line 10): must be 0 (off) or more",
        "sinks.erp.url (line 8): must be an absolute http:// or https:// URL",
    ]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://db/k", "unsupported store 'mysql'"),
        ("sqlite://", "name the SQLite file"),
        ("./k.db", "not a store URL"),
    ],
)
def test_store_url_must_name_a_sqlite_file(url: str, problem: str) -> None:
    (line,) = problems(MINIMAL + f"store:\n  url: '{url}'\n")
    assert line.startswith(f"store.url (line 5): {problem}")


def test_store_cache_mb_is_a_size_in_mib_per_connection() -> None:
    assert parse_config(MINIMAL, env={}).store.cache_mb == 64
    assert parse_config(MINIMAL + "store:\n  cache_mb: 8\n", env={}).store.cache_mb == 8
    for value in ("0", "-1", "100000"):
        (line,) = problems(MINIMAL + f"store:\n  cache_mb: {value}\n")
        assert line == "store.cache_mb (line 5): must be between 1 and 65536 (MiB per connection)"
    (line,) = problems(MINIMAL + "store:\n  cache_mb: lots\n")
    assert line.startswith("store.cache_mb (line 5): Expected `int`")


@pytest.mark.parametrize("url", ["postgresql://kabarin@db:5432/k", "postgres://db/k"])
def test_store_url_may_name_a_postgresql_database(url: str) -> None:
    config = parse_config(MINIMAL + f"store:\n  url: '{url}'\n", env={})
    assert config.store.is_postgres and config.store.url == url


def test_load_config_refuses_a_store_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "c.yaml"
    path.write_text(MINIMAL + f"store:\n  url: sqlite:///{tmp_path}/file/sub/k.db\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [
        f"store.url (line 5): {tmp_path / 'file'} is not a folder, so the SQLite file's "
        f"folder {tmp_path / 'file' / 'sub'} cannot be created"
    ]
    parse_config(path.read_text(), env={})  # text alone is not checked against this machine


def test_every_missing_key_of_a_block_and_an_unset_variable_once() -> None:
    text = "receiver:\n  token: ${PUSH_TOKEN}\nsinks:\n  erp: {type: webhook}\n"
    assert problems(text) == [
        "receiver.token (line 2): environment variable PUSH_TOKEN is not set",
        "sinks.erp (line 4): missing required key `url`",
        "sinks.erp (line 4): missing required key `secret`",
    ]


ENV = {"SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
TARGETS = (
    MINIMAL
    + """
sinks:
  console: {type: console}
  erp: {type: webhook, url: "https://erp.example.com/h", secret: "${SECRET}"}
  ops: {type: slack, webhook_url: "https://hooks.slack.com/services/T0/B0/x", ordering: all}
  log: {type: console, ordering: all}
routes:
  - name: r
    sinks: [console, erp, ops, console]
    fallback: {ops: log}
    template:
      console: {file: templates/c.j2}
      log: {text: "{{ event.order_id }}", subject: {file: subject.j2}}
  - name: quiet
    sinks: [erp]
"""
)


def test_the_load_resolves_each_targets_ordering_and_template_files(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "c.j2").write_text("Pesanan {{ event.order_id }}\n")
    (tmp_path / "subject.j2").write_text("Status")
    path = tmp_path / "kabarin.yaml"
    path.write_text(TARGETS)
    config = load_config(path, env=ENV)
    assert config.targets == [
        {
            # the kind's default, unless the block gives one
            "console": Target(ordering="latest", parts={"text": "Pesanan {{ event.order_id }}\n"}),
            "erp": Target(ordering="all"),
            "ops": Target(ordering="all"),
            "log": Target(
                ordering="all", parts={"text": "{{ event.order_id }}", "subject": "Status"}
            ),
        },
        {"erp": Target(ordering="all")},
    ]


def test_an_unreadable_template_file_is_one_more_problem_of_the_load(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "c.j2").write_bytes(b"\xff\xfe not text")
    text = TARGETS.replace("token: t0ken", "token: t0ken\n  tokn: x")
    with pytest.raises(InvalidConfig) as info:
        parse_config(text, base_dir=tmp_path, env=ENV)
    assert info.value.problems == [
        "receiver.tokn (line 4): unknown key (check its spelling and indentation)",
        f"routes[0].template.console (line 16): cannot read template file "
        f"'{tmp_path / 'templates' / 'c.j2'}': not UTF-8 text",
        f"routes[0].template.log.subject (line 17): cannot read template file "
        f"'{tmp_path / 'subject.j2'}': No such file or directory",
    ]
    # what could be read is kept, for the router and the template check
    assert info.value.partial.targets[0]["log"].parts == {"text": "{{ event.order_id }}"}
    assert info.value.partial.targets[0]["console"].parts == {}


@pytest.mark.parametrize("value", ["1.5s", "1500ms", "0.5"])
def test_keep_alive_must_be_whole_seconds(value: str) -> None:
    text = f"receiver:\n  token: t0ken\n  keep_alive: {value}\n"
    (problem,) = problems(text)
    assert problem.startswith("receiver.keep_alive (line 3): must be a whole number of seconds")
    assert parse_config("receiver:\n  token: t0ken\n  keep_alive: 2s\n", env={})


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("kabarin.toko.example", "must be an absolute http:// or https:// URL"),
        ("ftp://kabarin.toko.example", "must be an absolute http:// or https:// URL"),
        ("https://", "must be an absolute http:// or https:// URL"),
        ("https://kabarin.toko.example/?a=1", "must not have a query or a fragment"),
    ],
)
def test_admin_public_url_must_be_an_absolute_web_address(value: str, why: str) -> None:
    (problem,) = problems(f"{MINIMAL}admin:\n  public_url: {value!r}\n")
    assert problem == f"admin.public_url (line 5): {why}"


def test_admin_public_url_is_optional_and_kept() -> None:
    assert parse_config(MINIMAL, env={}).admin.public_url is None
    text = f"{MINIMAL}admin:\n  public_url: https://kabarin.toko.example/ops\n"
    assert parse_config(text, env={}).admin.public_url == "https://kabarin.toko.example/ops"
