"""The Grafana dashboard imports cleanly and charts every metric the service defines.

No Ray here: the dashboard is read as JSON and its PromQL as text. Whether each name it reads
is really exported is for a test against a live cluster.
"""

import ast
import itertools
import json
import re
from pathlib import Path

import pytest
from support import dashboard_metric_names, dashboard_panels

from multistage.metrics import exported as metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "configs" / "grafana" / "multistage-dashboard.json"
DATASOURCE = "${datasource}"
APPLICATION_FILTER = 'application=~"$application"'

# A quoted string (skipped) or a metric name with the label matchers that follow it.
_SELECTOR = re.compile(
    r'"(?:[^"\\]|\\.)*"'
    r'|(?<![\w:$])(ray_[\w:]*)\s*(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?'
)
# How Ray exports each kind of metric: the series a panel reads for it.
_EXPORTED_SUFFIX = {"Counter": "_total", "Gauge": "", "Histogram": "_bucket"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def charts() -> list[dict]:
    return [p for p in dashboard_panels(DASHBOARD) if p["type"] != "row"]


def _defined_metrics() -> dict[str, str]:
    """``multistage_*`` name constant -> the kind of metric exported.py builds with it."""
    names = {
        constant: value
        for constant, value in vars(metrics).items()
        if constant.isupper() and isinstance(value, str) and value.startswith("multistage_")
    }
    tree = ast.parse(Path(metrics.__file__).read_text())
    kinds = {
        call.args[0].id: call.func.id
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id in _EXPORTED_SUFFIX
        and call.args
        and isinstance(call.args[0], ast.Name)
    }
    assert set(names) <= set(kinds), (
        f"name constants no metric is made with: {set(names) - set(kinds)}"
    )
    return {names[constant]: kinds[constant] for constant in names}


def test_dashboard_has_its_header(dashboard):
    assert dashboard["uid"]
    assert dashboard["title"] == "Multistage prediction service"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["panels"]
    assert dashboard["time"]["from"] == "now-15m"
    assert dashboard["refresh"] == "10s"


def test_templating_picks_a_prometheus_datasource_and_applications(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    application = variables["application"]
    assert application["type"] == "query"
    assert application["datasource"]["uid"] == DATASOURCE
    query = application["query"]
    query = query["query"] if isinstance(query, dict) else query
    assert query == "label_values(ray_multistage_tickets_unfinished, application)"


def test_panel_ids_are_unique():
    ids = [p["id"] for p in dashboard_panels(DASHBOARD)]
    assert len(ids) == len(set(ids))


def test_every_chart_queries_the_chosen_datasource(charts):
    assert charts
    for panel in charts:
        assert panel["datasource"]["uid"] == DATASOURCE, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        targets = panel.get("targets", [])
        assert any(t.get("expr", "").strip() for t in targets), panel["title"]
        for target in targets:
            assert target.get("datasource", {"uid": DATASOURCE})["uid"] == DATASOURCE


def test_panels_do_not_overlap():
    boxes = [(p["title"], p["gridPos"]) for p in dashboard_panels(DASHBOARD)]
    for _, box in boxes:
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24
    for (a_title, a), (b_title, b) in itertools.combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{a_title!r} overlaps {b_title!r}"


def test_every_service_metric_is_charted():
    charted = dashboard_metric_names(DASHBOARD)
    defined = _defined_metrics()
    assert defined
    for name, kind in defined.items():
        series = f"ray_{name}{_EXPORTED_SUFFIX[kind]}"
        assert series in charted, f"{kind} {name} is not charted as {series}"


def test_every_query_filters_on_the_application(charts):
    """Every metric charted here carries Serve's ``application`` tag, so each selector uses it."""
    for panel in charts:
        for target in panel["targets"]:
            selectors = [m for m in _SELECTOR.finditer(target["expr"]) if m.group(1)]
            assert selectors, target["expr"]
            for selector in selectors:
                matchers = selector.group(2) or ""
                assert APPLICATION_FILTER in matchers, f"{panel['title']}: {selector.group(0)}"


def test_metric_names_skip_functions_labels_and_quoted_values(tmp_path):
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(ray_a_ms_bucket{route="ray_b"}[5m])))'
        " / sum(ray_c_total) + $ray_d"
    )
    path = tmp_path / "dashboard.json"
    path.write_text(
        json.dumps({"panels": [{"type": "row", "panels": [{"targets": [{"expr": expr}]}]}]})
    )
    assert dashboard_metric_names(path) == {"ray_a_ms_bucket", "ray_c_total"}
