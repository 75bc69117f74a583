"""Dashboards: what the CloudWatch dashboard (modules/floe_service,
dashboard.tf) and the Grafana dashboard (infra/grafana/floe.json) plot is
what Floe sends.

The CloudWatch dashboard's body is `jsonencode(local.dashboard)`; the local is
resolved per environment with the evaluator of infra_hcl.py (names, region,
thresholds filled in as a plan would) and every metric it plots is held
against the EMF lines of src/telemetry/emf.rs (read by floe_code.py):
Floe's namespace, the metric's name and the exact set of dimension names it
is sent with. Kinesis metrics must be real ones, the per-shard one enabled on
the stream.

The Grafana dashboard's PromQL is held against the real /metrics of the Floe
binary (FLOE_BIN): a `floe run --input -` on a temporary warehouse, fed a few
events, scraped once its commits landed. The same run prints its EMF lines,
which check the code reader above against the binary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from floe_code import emf_metrics, metadata_warn_bytes, reject_reasons, render_labels, restartable_stages
from infra_hcl import ENVS, INFRA, MODULES, PLANNED, REPO, STACK, Scope, load

GRAFANA = INFRA / "grafana" / "floe.json"
GRID_COLUMNS = 24  # both CloudWatch's and Grafana's grid

service = load(MODULES / "floe_service")
EMF = emf_metrics()
# (metric, dimension names) of every EMF metric Floe sends.
EMF_SETS = {(name, dims) for name, dim_sets in EMF.items() for dims in dim_sets}

# AWS/Kinesis metrics of a stream (dimension StreamName), free, and the
# enhanced shard-level ones (dimensions StreamName and ShardId), which cost
# extra and exist only when enabled on the stream (shard_level_metrics):
# https://docs.aws.amazon.com/streams/latest/dev/monitoring-with-cloudwatch.html
KINESIS_STREAM_METRICS = {
    "GetRecords.Bytes", "GetRecords.IteratorAgeMilliseconds", "GetRecords.Latency", "GetRecords.Records",
    "GetRecords.Success", "IncomingBytes", "IncomingRecords", "PutRecord.Bytes", "PutRecord.Latency",
    "PutRecord.Success", "PutRecords.Bytes", "PutRecords.FailedRecords", "PutRecords.Latency",
    "PutRecords.SuccessfulRecords", "PutRecords.Success", "PutRecords.ThrottledRecords", "PutRecords.TotalRecords",
    "ReadProvisionedThroughputExceeded", "SubscribeToShard.RateExceeded", "SubscribeToShard.Success",
    "SubscribeToShardEvent.Bytes", "SubscribeToShardEvent.MillisBehindLatest", "SubscribeToShardEvent.Records",
    "SubscribeToShardEvent.Success", "WriteProvisionedThroughputExceeded",
}
KINESIS_SHARD_METRICS = {
    "IncomingBytes", "IncomingRecords", "IteratorAgeMilliseconds", "OutgoingBytes", "OutgoingRecords",
    "ReadProvisionedThroughputExceeded", "WriteProvisionedThroughputExceeded",
}
STATISTIC = re.compile(r"SampleCount|Average|Sum|Minimum|Maximum|p(?:\d{1,2}(?:\.\d+)?|100)")
# SEARCH('{Namespace,Dim,...} Name="value" ...', 'Statistic', period)
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}((?:\s*\w+=\"[^\"]*\")+)\s*',\s*'([^']+)',\s*(\d+)\)")
# Metric math functions the dashboard may use on its metrics' ids.
MATH_FUNCTIONS = {"FILL", "SUM", "MAX", "MIN", "AVG", "RATE", "DIFF", "IF", "METRICS"}
GLUE_METADATA_LIMIT = 20_000_000


# --- The CloudWatch dashboard ---------------------------------------------------------


@dataclass(frozen=True)
class Plotted:
    """One metric a widget draws (a SEARCH: all metrics of its schema that
    match its terms; a dimension it searches over has the value None)."""

    widget: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str | None], ...]
    stat: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(name for name, _ in self.dimensions))

    def value(self, dimension: str) -> str | None:
        return dict(self.dimensions)[dimension]


def dashboard(env: str) -> dict:
    return Scope.stack(env).module("floe_service").local("dashboard")


def widgets(env: str) -> list[dict]:
    return dashboard(env)["widgets"]


def plotted(widget: dict) -> list[Plotted]:
    """What a metric widget draws; fails on a row it cannot read."""
    props = widget["properties"]
    title = props["title"]
    out, ids, math = [], set(), []
    for row in props["metrics"]:
        if isinstance(row[0], dict):
            assert len(row) == 1, f"{title}: an expression row holds one object: {row}"
            expression = row[0]["expression"]
            ids.add(row[0]["id"])
            search = SEARCH.fullmatch(expression)
            if search is None:
                math.append(expression)
                continue
            namespace, *dimensions = [part.strip() for part in search[1].split(",")]
            terms = dict(re.findall(r'(\w+)="([^"]*)"', search[2]))
            metric = terms.pop("MetricName")
            assert set(terms) <= set(dimensions), f"{title}: SEARCH filters on {set(terms) - set(dimensions)}, outside its schema"
            assert STATISTIC.fullmatch(search[3]), f"{title}: {search[3]} is not a statistic"
            out.append(Plotted(title, namespace, metric, tuple((d, terms.get(d)) for d in dimensions), search[3]))
        else:
            namespace, metric, *rest = row
            options = rest.pop() if rest and isinstance(rest[-1], dict) else {}
            assert "." not in (namespace, metric, *rest), f"{title}: write rows out, no `.` shorthand: {row}"
            assert len(rest) % 2 == 0, f"{title}: dimensions come in name, value pairs: {row}"
            stat = options.get("stat", props.get("stat"))
            assert stat and STATISTIC.fullmatch(stat), f"{title}: {metric} has no valid statistic ({stat})"
            if "id" in options:
                ids.add(options["id"])
            out.append(Plotted(title, namespace, metric, tuple(zip(rest[::2], rest[1::2])), stat))
    for expression in math:
        words = set(re.findall(r"[A-Za-z_]\w*", expression))
        unknown = {w for w in words if w not in ids and w not in MATH_FUNCTIONS}
        assert not unknown, f"{title}: {expression} uses {unknown}, neither an id of the widget nor a known function"
    assert out, f"{title}: plots nothing"
    return out


def all_plotted(env: str) -> list[Plotted]:
    return [p for w in widgets(env) for p in plotted(w)]


def test_dashboard_is_the_modules_local_jsonencoded_and_an_output():
    body = service.resource("aws_cloudwatch_dashboard", "floe")
    assert body == {"dashboard_name": "${local.dashboard_name}", "dashboard_body": "${jsonencode(local.dashboard)}"}
    assert service.locals["dashboard_name"] == "${var.name}"
    stack = load(STACK)
    for output in ("dashboard_name", "dashboard_url"):
        assert stack.outputs[output]["value"] == f"${{module.floe_service.{output}}}", output
    for env in ENVS:
        scope = Scope.stack(env)
        name = scope.reference("module.floe_service.dashboard_name")
        assert name == f"floe-{env}"
        region = PLANNED[("aws_region", "region")]
        assert scope.reference("module.floe_service.dashboard_url") == (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"
        )


@pytest.mark.parametrize("env", ENVS)
def test_every_widget_has_a_title_a_region_and_a_place_of_its_own(env):
    taken: dict[tuple[int, int], str] = {}
    titles = []
    for widget in widgets(env):
        props = widget["properties"]
        title = props.get("title", "")
        assert title.strip(), f"a widget without a title: {widget}"
        titles.append(title)
        assert widget["type"] == "metric", title
        assert props["region"] == PLANNED[("aws_region", "region")], title
        x, y, w, h = (widget[k] for k in ("x", "y", "width", "height"))
        assert 0 <= x and 1 <= w and x + w <= GRID_COLUMNS and y >= 0 and h >= 1, (title, x, y, w, h)
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            assert cell not in taken, f"{title} overlaps {taken[cell]}"
            taken[cell] = title
    assert len(titles) == len(set(titles)), titles


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_plots_only_what_floe_sends(env):
    environment = Scope.stack(env).module("floe_service").local("floe_environment")
    namespace, table = environment["FLOE_EMF_NAMESPACE"], environment["FLOE_TABLE"]
    mine = [p for p in all_plotted(env) if p.namespace == namespace]
    assert mine, f"nothing in Floe's namespace {namespace}"
    for p in mine:
        assert (p.metric, p.names) in EMF_SETS, (
            f"{p.widget}: {p.metric} by {p.names}; Floe sends {sorted(EMF.get(p.metric, []))}"
        )
        if "Table" in p.names:
            assert p.value("Table") == table, (p.widget, p.value("Table"))
        if "Stage" in p.names:
            assert p.value("Stage") in restartable_stages(), (p.widget, p.value("Stage"))
        if "Reason" in p.names:
            # One line per reason seen, or one of Floe's reason codes.
            assert p.value("Reason") in {None, *reject_reasons()}, (p.widget, p.value("Reason"))
    others = {p.namespace for p in all_plotted(env)} - {namespace, "AWS/Kinesis"}
    assert not others, f"namespaces Floe's dashboard has no business with: {others}"


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_plots_everything_floe_sends(env):
    namespace = Scope.stack(env).module("floe_service").var("metrics_namespace")
    shown = {(p.metric, p.names) for p in all_plotted(env) if p.namespace == namespace}
    assert EMF_SETS - shown == set(), f"Floe sends these and the dashboard does not show them: {sorted(EMF_SETS - shown)}"
    # Every stage Floe restarts has its line.
    stages = {p.value("Stage") for p in all_plotted(env) if p.metric == "StageRestarts"}
    assert stages == restartable_stages(), stages


@pytest.mark.parametrize("env", ENVS)
def test_kinesis_metrics_are_real_and_the_per_shard_one_is_enabled(env):
    stream = Scope.stack(env).module("stream")
    stream_name = stream.var("name")
    assert stream_name == Scope.stack(env).module("floe_service").local("floe_environment")["FLOE_STREAM"]
    kinesis = [p for p in all_plotted(env) if p.namespace == "AWS/Kinesis"]
    per_shard = set()
    for p in kinesis:
        assert p.value("StreamName") == stream_name, p
        if p.names == ("StreamName",):
            assert p.metric in KINESIS_STREAM_METRICS, f"{p.widget}: {p.metric} is not a Kinesis stream metric"
        else:
            assert p.names == ("ShardId", "StreamName"), p
            assert p.metric in KINESIS_SHARD_METRICS, f"{p.widget}: {p.metric} is not a Kinesis shard-level metric"
            assert p.value("ShardId") is None, f"{p.widget}: search over the shards, whatever they are"
            per_shard.add(p.metric)
    assert per_shard, "no per-shard iterator age"
    # The stream sends exactly the shard-level metrics the dashboard shows:
    # each costs a custom metric per shard.
    assert set(stream.var("shard_level_metrics")) == per_shard
    assert load(MODULES / "stream").resource("aws_kinesis_stream", "this")["shard_level_metrics"] == "${var.shard_level_metrics}"


@pytest.mark.parametrize("env", ENVS)
def test_alarm_thresholds_are_drawn_on_their_metrics(env):
    scope = Scope.stack(env).module("floe_service")
    drawn = {}
    for widget in widgets(env):
        lines = {a["value"] for a in widget["properties"].get("annotations", {}).get("horizontal", [])}
        for p in plotted(widget):
            drawn.setdefault((p.namespace, p.metric, p.dimensions), set()).update(lines)
    alarms = 0
    for name, alarm in service.resources["aws_cloudwatch_metric_alarm"].items():
        if "metric_name" not in alarm or scope.evaluate(alarm["threshold"]) == 0:
            continue  # metric math, or "any at all"
        key = (
            scope.evaluate(alarm["namespace"]), scope.evaluate(alarm["metric_name"]),
            tuple(scope.evaluate(alarm["dimensions"]).items()),
        )
        assert key in drawn, f"alarm {name}: its metric {key} is not on the dashboard"
        assert scope.evaluate(alarm["threshold"]) in drawn[key], f"alarm {name}: no line at its threshold"
        alarms += 1
    assert alarms == 3, "iterator age, freshness and metadata size each have a line"
    (metadata,) = [lines for (_, metric, _), lines in drawn.items() if metric == "MetadataBytes"]
    assert GLUE_METADATA_LIMIT in metadata, "draw Glue's limit next to the alarm's"


# --- The Grafana dashboard --------------------------------------------------------------

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Labels Prometheus adds to every series it scrapes (not Floe's).
TARGET_LABELS = {"job", "instance"}
PROMQL_FUNCTIONS = {
    "rate", "irate", "increase", "delta", "deriv", "histogram_quantile", "abs", "clamp_min", "clamp_max",
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "label_values", "vector", "time",
}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
# What an operator must find there (the issue's list).
GRAFANA_REQUIRED = {
    "floe_freshness_seconds", "floe_iterator_age_seconds", "floe_commit_duration_seconds_bucket",
    "floe_commit_conflicts_total", "floe_commit_failures_total", "floe_rows_written_total", "floe_records_read_total",
    "floe_duplicates_total", "floe_rejected_total", "floe_manifests", "floe_metadata_bytes",
    "floe_stage_restarts_total", "floe_buffered_bytes", "floe_ready", "floe_leases_owned",
}
# Metrics the live run (stdin, no Kinesis, no lease table) has no sample
# of, and why; they are checked against the code of `fn render` instead.
NOT_IN_A_STDIN_RUN = {
    "floe_iterator_age_seconds": "a Kinesis shard's lag: only when reading a stream",
    "floe_leases_owned": "only with a lease table (--lease-table, which needs a stream)",
    "floe_lease_workers": "only with a lease table",
    "floe_lease_changes_total": "only with a lease table",
}


def grafana() -> dict:
    return json.loads(GRAFANA.read_text())


def promql(expr: str) -> dict[str, set[str]]:
    """The metrics of a PromQL expression -> the labels it uses on them
    (matchers, and the by/without/on/ignoring lists of the expression,
    which are given to every metric in it). Fails on an unknown function."""
    text = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors: [5m]
    grouping = set()
    for match in re.finditer(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)", text):
        grouping |= {label.strip() for label in match[2].split(",") if label.strip()}
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    metrics: dict[str, set[str]] = {}
    pattern = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{[^}]*\})|([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?|"[^"]*"')
    for match in pattern.finditer(text):
        if match[2] is not None:
            assert match[1], f"a selector without a metric name: {expr}"
            matchers = set(re.findall(r'([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*"', match[2]))
            metrics.setdefault(match[1], set()).update(matchers)
        elif match[3] is not None:
            word = match[3]
            if match[4]:
                assert word in PROMQL_FUNCTIONS, f"unknown PromQL function {word} in {expr}"
            elif word not in PROMQL_KEYWORDS:
                metrics.setdefault(word, set())
    for labels in metrics.values():
        labels |= grouping
    return metrics


def panels() -> list[dict]:
    return grafana()["panels"]


def panel_metrics() -> dict[str, set[str]]:
    """Every metric of every panel's targets and of the variables' queries -> labels used."""
    out: dict[str, set[str]] = {}
    queries = [t["expr"] for p in panels() for t in p["targets"]]
    queries += [v["definition"] for v in grafana()["templating"]["list"] if v["type"] == "query"]
    for query in queries:
        label_values = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        found = {label_values[1]: {label_values[2]}} if label_values else promql(query)
        assert found, f"a query without a metric: {query}"
        for metric, labels in found.items():
            out.setdefault(metric, set()).update(labels)
    return out


def test_grafana_dashboard_is_importable_with_titled_panels_and_targets():
    board = grafana()  # valid JSON, or this fails
    assert board["title"] == "Floe" and board["uid"] == "floe" and board["id"] is None
    assert 36 <= board["schemaVersion"] <= 41, board["schemaVersion"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert variables["job"]["datasource"] == DATASOURCE
    ids, taken = set(), {}
    for panel in board["panels"]:
        title = panel.get("title", "")
        assert title.strip(), f"panel {panel.get('id')} has no title"
        assert panel["id"] not in ids, f"panel id {panel['id']} twice"
        ids.add(panel["id"])
        assert panel["datasource"] == DATASOURCE, title
        targets = panel.get("targets", [])
        assert targets, f"{title}: no target"
        assert len({t["refId"] for t in targets}) == len(targets), f"{title}: refIds repeat"
        for target in targets:
            assert target["expr"].strip() and target["datasource"] == DATASOURCE, (title, target)
            # Every series of the job the variable picks, nothing else.
            for metric, labels in promql(target["expr"]).items():
                assert "job" in labels, f"{title}: {metric} without {{job=~\"$job\"}}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] >= 1 and grid["x"] + grid["w"] <= GRID_COLUMNS, (title, grid)
        for cell in ((x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])):
            assert cell not in taken, f"{title} overlaps {taken[cell]}"
            taken[cell] = title


def test_grafana_shows_what_operators_look_for():
    shown = set(panel_metrics())
    assert GRAFANA_REQUIRED <= shown, f"missing: {sorted(GRAFANA_REQUIRED - shown)}"


def test_grafana_metadata_line_is_floes_warning_and_the_alarms_default():
    (panel,) = [p for p in panels() if any("floe_metadata_bytes" in promql(t["expr"]) for t in p["targets"])]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "bytes"
    lines = [s["value"] for s in defaults["thresholds"]["steps"] if s["value"] is not None]
    assert lines == [metadata_warn_bytes()], lines
    assert defaults["custom"]["thresholdsStyle"]["mode"].startswith("line")
    for folder in (MODULES / "floe_service", STACK):
        assert load(folder).variables["metadata_bytes_alarm"]["default"] == metadata_warn_bytes(), folder


# --- Floe's real /metrics and EMF lines -----------------------------------------------


def floe_bin() -> Path:
    path = Path(os.environ.get("FLOE_BIN") or REPO / "target" / "debug" / "floe")
    if not path.is_file():
        pytest.fail(f"no Floe binary at {path}: build it or set FLOE_BIN")
    return path


@dataclass
class Live:
    """What one `floe run --input -` showed."""

    families: dict[str, str]  # `# TYPE` lines: name -> type
    labels: dict[str, set[str]]  # sample name -> label names seen on it
    emf: list[dict]  # the EMF lines on stdout
    table: str  # the events table


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def _wait(condition, deadline: float, what, proc: subprocess.Popen, log: list[str]) -> None:
    """Polls `condition` (every 50 ms) until it holds; fails at the deadline,
    or at once when Floe exits, with the log so far."""
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"floe exited {proc.returncode} while waiting for {what}:\n" + "\n".join(log[-30:]))
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(log[-30:]))
        time.sleep(0.05)


def _pump(stream, into: list[str]) -> threading.Thread:
    def run():
        for raw in stream:
            into.append(raw.decode(errors="replace").rstrip("\n"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _events() -> list[bytes]:
    now = int(time.time())
    good = [
        {"event_uuid": str(uuid.uuid4()), "event_name": f"order:{kind}", "created_at": now - i}
        for i, kind in enumerate(["created", "paid", "shipped"] * 4)
    ]
    lines = [json.dumps(e).encode() for e in good]
    lines.append(lines[0])  # an identical duplicate
    lines += [b"not json", b"[1, 2]", json.dumps({"event_uuid": "", "event_name": "a:b", "created_at": now}).encode()]
    return [line + b"\n" for line in lines]


@pytest.fixture(scope="module")
def live() -> Live:
    """`floe run --input -` on a temporary warehouse (SQLite catalog), the
    operations port on 127.0.0.1 with a port the system picks (read back
    from the log), EMF lines on: ready, fed a few events (good, a duplicate,
    three rejects), scraped once they are all committed, then stdin closed
    and exit 0 awaited."""
    binary = floe_bin()
    events = _events()
    deadline = time.monotonic() + 180  # a debug build on a busy machine
    with tempfile.TemporaryDirectory(prefix="floe-infra-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
        env.update(FLOE_LOG="info", FLOE_PROGRESS="never")
        proc = subprocess.Popen(
            [
                str(binary), "run", "--input", "-", "--warehouse", str(Path(tmp) / "warehouse"),
                "--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--flush-interval", "200ms",
                "--emf-namespace", "Floe",
            ],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp,
        )
        log: list[str] = []
        out: list[str] = []
        pumps = [_pump(proc.stderr, log), _pump(proc.stdout, out)]
        try:
            addr: dict[str, str] = {}

            def serving() -> bool:
                for line in list(log):
                    try:
                        fields = json.loads(line).get("fields", {})
                    except ValueError:
                        continue
                    if "addr" in fields:
                        addr["value"] = fields["addr"]
                        return True
                return False

            _wait(serving, deadline, "the operations port's log line", proc, log)
            base = f"http://{addr['value']}"
            _wait(lambda: _get(f"{base}/health/ready")[0] == 200, deadline, "/health/ready to answer 200", proc, log)

            proc.stdin.write(b"".join(events))
            proc.stdin.flush()
            scraped: dict[str, str] = {}

            def committed() -> bool:
                status, body = _get(f"{base}/metrics")
                scraped["body"] = body
                match = re.search(r"^floe_records_committed_total (\S+)$", body, re.M)
                return status == 200 and match is not None and float(match[1]) == len(events)

            _wait(committed, deadline, f"{len(events)} records committed", proc, log)
            body = scraped["body"]
            proc.stdin.close()
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert code == 0, f"floe exited {code}:\n" + "\n".join(log[-30:])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pump in pumps:
                pump.join(timeout=10)

    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    labels: dict[str, set[str]] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            sample = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+", line)
            assert sample, f"not a Prometheus sample: {line!r}"
            labels.setdefault(sample[1], set()).update(re.findall(r'([a-zA-Z_]\w*)="', sample[2] or ""))
    emf = []
    for line in out:
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "_aws" in parsed:
            emf.append(parsed)
    tables = {m[1] for m in re.finditer(r'^floe_snapshots_total\{table="([^"]+)"\}', body, re.M)}
    (table,) = [t for t in tables if not t.endswith("_rejected")]
    return Live(families, labels, emf, table)


def _family(name: str, live: Live) -> str | None:
    """The family of a sample name in the live /metrics (a histogram's
    _bucket, _sum and _count belong to the histogram)."""
    if name in live.families:
        return name
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base if live.families.get(base) == "histogram" else None


def test_every_grafana_metric_is_in_floes_real_metrics(live):
    missing = {}
    for metric, labels in panel_metrics().items():
        floes = labels - TARGET_LABELS - ({"le"} if metric.endswith("_bucket") else set())
        if metric in NOT_IN_A_STDIN_RUN:
            # The exception must be needed, and the code must render it with those labels.
            assert metric not in live.labels, f"{metric} has samples now: drop it from NOT_IN_A_STDIN_RUN"
            source = render_labels()
            assert metric in source, f"{metric}: not rendered by fn render"
            assert floes <= source[metric], f"{metric}: labels {floes - source[metric]} are not rendered"
            continue
        if _family(metric, live) is None:
            missing[metric] = "not in /metrics"
        elif metric not in live.labels:
            missing[metric] = "declared, but no sample"
        elif not floes <= live.labels[metric]:
            missing[metric] = f"no label {sorted(floes - live.labels[metric])} (it has {sorted(live.labels[metric])})"
    assert not missing, missing


def test_live_emf_lines_are_what_the_code_reader_found(live):
    sent = set()
    for line in live.emf:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Floe"
        (dimensions,) = directive["Dimensions"]
        assert line["Table"] == live.table
        for metric in directive["Metrics"]:
            sent.add((metric["Name"], tuple(sorted(dimensions))))
            assert isinstance(line[metric["Name"]], (int, float)), metric
    assert sent <= EMF_SETS, f"the binary sends what the code reader missed: {sorted(sent - EMF_SETS)}"
    # All but what only a failed commit or a restarted stage sends.
    assert EMF_SETS - sent == {("CommitFailures", ("Table",)), ("StageRestarts", ("Stage",))}, sorted(EMF_SETS - sent)
    reasons = {line["Reason"] for line in live.emf if "Reason" in line}
    assert reasons == {"invalid_json", "not_object", "bad_event_uuid"} and reasons <= reject_reasons(), reasons
