"""The Prometheus alerting rules and the Grafana dashboard in ``deploy/`` name only metrics
Kabarin exports, and the metrics they need for the failures that matter are set where those
failures happen."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client import generate_latest

from gateway import metrics
from gateway.app import create_app
from gateway.config import PullConfig, parse_config
from gateway.errors import StoreError
from gateway.events import EventKind
from gateway.sources.kiriminaja.pull import PullTracker
from gateway.sources.kiriminaja.tracking import NotFound, TrackingResult
from gateway.store import Store, open_store
from gateway.units import Duration
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "kabarin-rules.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "kabarin.json"

# PromQL's own words: what an identifier in an expression may be besides a metric name.
FUNCTIONS = frozenset(
    re.findall(
        r"\w+",
        """abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min
        count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp
        floor histogram_avg histogram_count histogram_fraction histogram_quantile
        histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase irate
        label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time
        min_over_time minute month predict_linear present_over_time quantile_over_time rate
        resets round scalar sgn sort sort_by_label sort_by_label_desc sort_desc sqrt
        stddev_over_time stdvar_over_time sum_over_time time timestamp vector year""",
    )
)
AGGREGATIONS = frozenset(
    re.findall(
        r"\w+",
        """sum min max avg group stddev stdvar count count_values bottomk topk quantile
        limitk""",
    )
)
KEYWORDS = frozenset(
    re.findall(
        r"\w+",
        """by without on ignoring group_left group_right and or unless offset bool atan2 inf
        nan""",
    )
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.I)
_VARIABLES = re.compile(r"\$\{?\w+\}?")  # Grafana's ($job, $__rate_interval, ${datasource})
_IDENTIFIERS = re.compile(r"(?<![\w.])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: its identifiers once strings, label matchers,
    ranges, label lists (``by (sink)``) and Grafana variables are gone, less PromQL's words."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _VARIABLES.sub(" ", text)
    words = set(_IDENTIFIERS.findall(text))
    return {w for w in words if w.lower() not in FUNCTIONS | AGGREGATIONS | KEYWORDS}


def exported_names() -> set[str]:
    """Every sample name Kabarin's registry exposes, from each family's type (a family with no
    labelled child yet has no samples, but its names are fixed): a counter ``x`` is
    ``x_total``, a histogram ``x_bucket``, ``x_sum`` and ``x_count``."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


EXPORTED = exported_names()


def unknown(expr: str) -> set[str]:
    return metric_names(expr) - EXPORTED


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    rules: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert group["name"] and group["rules"], group
        rules.extend(group["rules"])
    return rules


def dashboard_exprs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


# -- the checker itself ----------------------------------------------------------------------


def test_the_checker_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'sum by (le, sink) (rate(kabarin_x_bucket{job=~"$job",sink="kabarin_not_a_metric"}'
        "[$__rate_interval])) / on (sink) group_left () max without (instance)"
        " (kabarin_y offset 5m) > 1e3 and time() - kabarin_z > 0.5"
    )
    assert metric_names(expr) == {"kabarin_x_bucket", "kabarin_y", "kabarin_z"}


def test_the_checker_refuses_a_name_kabarin_does_not_export() -> None:
    assert unknown("rate(kabarin_deliveries_total[5m])") == set()
    assert unknown("rate(kabarin_deliveries[5m])") == {"kabarin_deliveries"}  # a counter's family
    assert unknown("kabarin_deliveries_dead_total") == {"kabarin_deliveries_dead_total"}
    assert unknown("kabarin_delivery_latency_seconds_bucket") == set()


def test_the_names_derived_from_types_are_the_ones_exposed() -> None:
    exposed = {
        line.split("{")[0].split(" ")[0]
        for line in generate_latest(metrics.REGISTRY).decode().splitlines()
        if line and not line.startswith("#")
    }
    assert exposed <= EXPORTED
    assert {"kabarin_pushes_total", "kabarin_store_ready"} <= EXPORTED


# -- the rules file -------------------------------------------------------------------------


def test_every_rule_is_complete() -> None:
    rules = load_rules()
    assert rules
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"Kabarin[A-Z]\w+", rule["alert"]), rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"(\d+[smhd])+", str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        for key in ("summary", "description"):
            assert str(rule["annotations"][key]).strip(), (rule["alert"], key)


def test_rules_name_only_metrics_kabarin_exports() -> None:
    for rule in load_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]  # reads something: the checker did not strip it all
        assert names <= EXPORTED, (rule["alert"], names - EXPORTED)


def test_the_failures_that_matter_each_have_a_rule() -> None:
    read = set().union(*(metric_names(rule["expr"]) for rule in load_rules()))
    assert {
        "kabarin_deliveries_dead",  # dead deliveries rising
        "kabarin_sink_circuit_state",  # a circuit open
        "kabarin_sink_disabled",  # a sink switched off
        "kabarin_intake_backlog",  # the intake's backlog growing
        "kabarin_store_ready",  # the store not ready
        "kabarin_pull_failures_total",  # the pull tracker failing
        "kabarin_pull_last_pass_timestamp_seconds",
        "kabarin_config_last_reload_successful",  # a reload refused
    } <= read


def test_every_alert_is_documented() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    text = "\n".join(path.read_text() for path in docs if path.exists())
    missing = [rule["alert"] for rule in load_rules() if f"`{rule['alert']}`" not in text]
    assert not missing, f"alerts not explained in README.md or docs/: {missing}"


def test_the_docs_load_the_rules_file_they_ship() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "metrics.md").read_text(), re.S)
    (config,) = [yaml.safe_load(b) for b in blocks if "rule_files:" in b]
    assert [Path(f).name for f in config["rule_files"]] == [RULES.name]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"]


# -- the dashboard --------------------------------------------------------------------------


def test_the_dashboard_panels_name_only_metrics_kabarin_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    exprs = list(dashboard_exprs(dashboard))
    assert len(exprs) >= 20
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= EXPORTED, (expr, names - EXPORTED)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"])
            assert match and match[1] in EXPORTED, variable["definition"]


def test_every_dashboard_panel_queries_the_chosen_data_source() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


# -- the metrics the rules need ---------------------------------------------------------------


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/kabarin.db")
    await opened.open(now=datetime.now(UTC))
    yield opened
    await opened.close()


async def test_a_sink_switched_off_shows_on_scrape_until_it_is_enabled(store: Store) -> None:
    now = datetime.now(UTC)
    await store.disable_sink("alerting-erp", reason="410 Gone", now=now)
    await metrics.refresh_store_gauges(store)
    assert sample("kabarin_sink_disabled", sink="alerting-erp") == 1
    assert await store.enable_sink("alerting-erp")
    await metrics.refresh_store_gauges(store)
    assert sample("kabarin_sink_disabled", sink="alerting-erp") == 0


async def test_store_readiness_follows_the_ping(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await metrics.refresh_store_ready(store, now=datetime.now(UTC)) is None
    assert sample("kabarin_store_ready") == 1

    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("database or disk is full")

    monkeypatch.setattr(store, "ping", broken)
    problem = await metrics.refresh_store_ready(store, now=datetime.now(UTC))
    assert str(problem) == "database or disk is full"
    assert sample("kabarin_store_ready") == 0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
dispatcher: {{enabled: false}}
"""
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


def test_a_scrape_says_whether_the_store_can_commit_without_a_readyz_probe(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    def scraped() -> str:
        return next(
            line
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("kabarin_store_ready ")
        )

    assert scraped() == "kabarin_store_ready 1.0"

    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("the SQLite writer is not running")

    monkeypatch.setattr(client.app.state.runtime.store, "ping", broken)
    assert scraped() == "kabarin_store_ready 0.0"
    assert client.get("/readyz").status_code == 503


class _Unknown:
    async def track(self, kind: EventKind, order_id: str) -> TrackingResult:
        return NotFound(kind=kind, order_id=order_id, reason="not found")


async def test_a_failing_turn_of_the_pull_tracker_is_counted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> int:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(store, "count_pending_pushes", broken)
    before = sample("kabarin_pull_failures_total") or 0.0
    tracker = PullTracker(
        store=store,
        client=_Unknown(),
        config=PullConfig(enabled=True, interval=Duration(0.05)),
        timezone=UTC,
    )
    await tracker.start()
    try:
        await eventually(lambda: (sample("kabarin_pull_failures_total") or 0.0) >= before + 2)
    finally:
        await tracker.stop()
