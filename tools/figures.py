"""The docs' figures, made from the reference run in ``benchmarks/reference/``.

A page asks for figures with a ``<!-- figures:NAME -->`` ... ``<!-- /figures -->`` block;
``make docs`` fills it, so no figure in the docs is typed by hand. The names:

- ``machine``: the reference run's date, machine and versions;
- ``headline``: the README's one line of figures;
- ``bench``: every ``make bench`` part's rows; ``bench:PART``: one part's;
- ``cpu_by_process``: the ``cpu`` part's CPU per request, process by process;
- ``profile``: ``make profile``, where the ingress replica's samples fall;
- ``latency``, ``stream_latency``: ``make bench-latency`` and ``make bench-stream``;
- ``faults``: ``make bench-faults``, how every ticket ended under each fault;
- ``soak``: ``make soak``, the same under a kill every 30 s;
- ``ablation``: the demo models' held-out accuracy, each modality left out in turn.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.load_search import BOUND
from benchmarks.parts import PARTS, cpu
from benchmarks.parts.streams import STREAM_RATE
from benchmarks.runner import SavedResults, report

REFERENCE = Path(__file__).resolve().parent.parent / "benchmarks" / "reference"
BENCH = SavedResults(REFERENCE / "bench")
TARGETS = {"stage_one": "stage one", "noop_serve": "no-op app"}
OUTCOMES = ("submitted", "completed", "failed", "lost", "unresolved", "retried")


def table(name: str) -> str:
    """What a ``figures:NAME`` block holds, as Markdown."""
    kind, _, part = name.partition(":")
    if kind == "bench":
        return report([PARTS[part]] if part else list(PARTS.values()), BENCH)
    return FIGURES[kind]()


def machine() -> str:
    described = _machine()
    return (
        f"Reference run of {described['date'][:10]}: {described['cpus']} cores "
        f"({described['cpu_model']}), {described['memory_gib']} GiB, no GPU; Python "
        f"{described['python']}, Ray {described['ray']}, torch {described['torch']}, "
        f"xgboost {described['xgboost']}. The load generator, Ray and every replica share "
        "those cores, and each request also runs a stage-two inference on them."
    )


def headline() -> str:
    figures = BENCH.figures()["haproxy"]
    held = figures["throughput"]["held"]["stage_one"]["requests_per_s"]
    streams = figures["streams"]["held"]
    described = _machine()
    return (
        f"**Figures** (reference run of {described['date'][:10]}: {described['cpus']} cores, "
        f"no GPU, stage two's CNN on the same cores): {held:g} "
        f"requests/s held with stage one's p99 under {BOUND.p99_ms:g} ms and every "
        f"ticket followed to its end; {streams['sessions']['users']} camera feeds at "
        f"{STREAM_RATE:g} records/s on stream sessions ({streams['http']['users']} over "
        "HTTP). Every figure, and the command that makes it: "
        "[docs/benchmarks.md](docs/benchmarks.md)."
    )


# The cpu part's processes, grouped as a reader thinks of them (first match wins).
PROCESS_GROUPS = (
    ("Serve's Python proxy", ("ProxyActor",)),
    ("HAProxy", ("haproxy", "HAProxyManager")),
    ("ingress replica (stage one in it) / no-op replica", (":Ingress", ":NoOp")),
    ("ticket store", (":TicketStore",)),
    ("stage two (`HeavyModel`, the CNN's inference included)", (":HeavyModel",)),
    ("client (the benchmark's httpx)", ("client",)),
    ("Serve controller, Ray (GCS, raylet, agents), other", ("",)),
)


def cpu_by_process() -> str:
    columns = {
        f"{TARGETS[target]}, {cpu.CLUSTER_LABELS[cluster][0]}": _grouped(split)
        for cluster, parts in BENCH.figures().items()
        if "cpu" in parts
        for target, split in parts["cpu"].items()
    }
    lines = [_row(["ms CPU per sequential request", *columns]), _rule(len(columns) + 1)]
    for group, _ in PROCESS_GROUPS:
        lines.append(_row([group, *(_ms(split.get(group)) for split in columns.values())]))
    for name in ("total", "wall time"):
        lines.append(_row([f"**{name}**", *(_ms(split[name]) for split in columns.values())]))
    return "\n".join(lines)


def _grouped(split: dict[str, float]) -> dict[str, float]:
    grouped: dict[str, float] = {"total": split["total"], "wall time": split["wall_ms"]}
    for process, ms in split.items():
        if process in ("total", "wall_ms"):
            continue
        group = next(g for g, marks in PROCESS_GROUPS if any(m in process for m in marks))
        grouped[group] = round(grouped.get(group, 0.0) + ms, 2)
    return grouped


def profile() -> str:
    figures = _reference("ingress_profile.json")
    lines = [
        _row([f"part ({figures['requests']} sequential requests)", "share of samples"]),
        _rule(2),
    ]
    lines += [_row([part, f"{share}%"]) for part, share in figures["share_percent"].items()]
    return "\n".join(lines)


def latency() -> str:
    figures = _reference("stage_one_latency.json")
    return _percentiles(
        f"stage one, {figures['requests']} sequential requests",
        {
            "client-measured (HTTP round trip)": figures["stage_one_client_ms"],
            "server-measured (`latency_ms`)": figures["stage_one_server_ms"],
        },
    )


def stream_latency() -> str:
    figures = _reference("stream_latency.json")
    return _percentiles(
        f"event, {figures['requests']} sequential streams",
        {"`stage1`": figures["stage1_event_ms"], "`stage2`": figures["stage2_event_ms"]},
    )


def faults() -> str:
    results = _reference("fault_injection.json")["faults"]
    header = [
        "fault",
        *OUTCOMES,
        "changed on reread",
        "first completion after it",
        "POST p99 / max",
    ]
    lines = [_row(header), _rule(len(header))]
    for name, row in results.items():
        first = row["first_completion_after_fault_s"]
        lines.append(
            _row(
                [
                    name,
                    *(str(row[key]) for key in OUTCOMES),
                    str(row["changed_on_reread"]),
                    "-" if first is None else f"{first} s",
                    f"{row['post_ms']['p99']:.0f} / {row['post_ms']['max']:.0f} ms",
                ]
            )
        )
    return "\n".join(lines)


def soak() -> str:
    results = _reference("chaos_soak.json")
    tickets, post, load = results["tickets"], results["post_ms"], results["load"]
    header = ["soak", *OUTCOMES, "changed on reread", "kills", "POST p50 / p99 / max"]
    cells = [
        f"{load['minutes']:g} min",
        *(str(tickets[key]) for key in OUTCOMES),
        str(tickets["changed_on_reread"]),
        str(len(results["kills"])),
        f"{post['p50']} / {post['p99']} / {post['max']} ms",
    ]
    return "\n".join([_row(header), _rule(len(header)), _row(cells)])


def ablation() -> str:
    metrics = _reference("demo_models.json")
    lines = [_row([f"model ({metrics['test_records']} held-out records)", "accuracy", "AUC"])]
    lines.append(_rule(3))
    for name, scores in metrics["ablation"].items():
        lines.append(_row([name, f"{scores['accuracy']:.1%}", f"{scores['auc']:.3f}"]))
    cost = metrics["per_item_ms"]
    lines += ["", _row(["ms per record, in process", "stage one", "stage two"]), _rule(3)]
    for batch, label in (("single", "one record a call"), ("batch_of_64", "in batches of 64")):
        lines.append(_row([label, str(cost[batch]["stage_one"]), str(cost[batch]["stage_two"])]))
    lines += [
        "",
        f"Training on {metrics['train_records']} records took {metrics['train_seconds']:g} s.",
    ]
    return "\n".join(lines)


FIGURES = {
    "machine": machine,
    "headline": headline,
    "cpu_by_process": cpu_by_process,
    "profile": profile,
    "latency": latency,
    "stream_latency": stream_latency,
    "faults": faults,
    "soak": soak,
    "ablation": ablation,
}


def _machine() -> dict:
    """The machine and versions the reference run's bench saved with its figures."""
    return _reference("bench/haproxy/sequential.json")["machine"]


def _reference(name: str) -> dict:
    return json.loads((REFERENCE / name).read_text())


def _percentiles(title: str, series: dict[str, dict]) -> str:
    lines = [_row([title, "p50", "p90", "p99"]), _rule(4)]
    for name, p in series.items():
        lines.append(_row([name, *(f"{p[k]} ms" for k in ("p50", "p90", "p99"))]))
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _rule(columns: int) -> str:
    return "|---" * columns + "|"
