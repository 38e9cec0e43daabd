"""The benchmark's runner: each part's figures saved as it ends, a failing part losing no
other's, and the report made again from the saved files alone."""

from pathlib import Path

from benchmarks.part import Part, Row, Service
from benchmarks.runner import SavedResults, report, run_parts

SERVICE = Service(
    url="http://127.0.0.1:1", config={}, example={}, requests=1, trial_seconds=1, secret=b""
)


def _rows(by_cluster: dict[str, dict]) -> list[Row]:
    return [(f"{name} ({cluster})", str(value), "") for cluster, figures in by_cluster.items()
            for name, value in figures.items()]  # fmt: skip


def test_a_failing_part_loses_no_other_parts_figures(tmp_path: Path):
    def broken(service: Service) -> dict:
        # The part before it is on disk already: a crash here would not lose it.
        assert (tmp_path / "haproxy" / "first.json").exists()
        raise RuntimeError("the load generator\nfell over")

    parts = [
        Part("first", lambda service: {"users": 42}, _rows),
        Part("broken", broken, _rows),
        Part("last", lambda service: {"p99_ms": 7.5}, _rows),
    ]
    failed = run_parts(parts, SERVICE, "haproxy", SavedResults(tmp_path))

    assert failed == ["broken"]
    again = SavedResults(tmp_path)  # what make bench-report reads: the files alone
    assert again.figures() == {"haproxy": {"first": {"users": 42}, "last": {"p99_ms": 7.5}}}
    assert again.failures() == {("haproxy", "broken"): "RuntimeError: the load generator fell over"}
    table = report(parts, again)
    assert "| users (haproxy) | 42 |  |" in table
    assert "| p99_ms (haproxy) | 7.5 |  |" in table
    assert "- broken (haproxy): RuntimeError: the load generator fell over" in table


def test_a_run_replaces_only_the_parts_it_runs(tmp_path: Path):
    saved = SavedResults(tmp_path)
    run_parts([Part("first", lambda s: {"n": 1}, _rows)], SERVICE, "haproxy", saved)
    run_parts([Part("second", lambda s: {"n": 2}, _rows)], SERVICE, "haproxy", saved)
    run_parts([Part("first", lambda s: {"n": 3}, _rows)], SERVICE, "haproxy", saved)

    assert saved.figures() == {"haproxy": {"first": {"n": 3}, "second": {"n": 2}}}
    run = saved.runs()["haproxy"]["first"]
    assert {"date", "cpus", "memory_gib", "cpu_model", "python", "ray"} <= run["machine"].keys()
