"""Running the benchmark's parts against one cluster, and the report made of what they saved.

A part's figures are written the moment it ends, one file per cluster and part
(``SavedResults``), so a part that fails, or a run stopped midway, loses no other part's
figures; the report is made from those files alone, and can be made again without
running anything (``make bench-report``).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from benchmarks import machine
from benchmarks.part import Part, Row, Service


class SavedResults:
    """Each part's figures, or why it failed, as ``FOLDER/<cluster>/<part>.json``.

    A run replaces the files of the parts it runs and keeps the others; each file says
    when its part ended and on what machine.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, cluster: str, part: str, figures: dict, seconds: float) -> None:
        self._write(cluster, part, {"figures": figures, "seconds": round(seconds, 1)})

    def save_failure(self, cluster: str, part: str, error: str, seconds: float) -> None:
        self._write(cluster, part, {"error": error, "seconds": round(seconds, 1)})

    def runs(self) -> dict[str, dict[str, dict]]:
        """Every saved file's content, by cluster, then part."""
        runs: dict[str, dict[str, dict]] = {}
        for path in sorted(self.folder.glob("*/*.json")):
            runs.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
        return runs

    def figures(self) -> dict[str, dict[str, dict]]:
        """The figures of every part that ended well, by cluster, then part."""
        return {
            cluster: {part: run["figures"] for part, run in parts.items() if "figures" in run}
            for cluster, parts in self.runs().items()
        }

    def failures(self) -> dict[tuple[str, str], str]:
        """Why each part that failed did, by (cluster, part)."""
        return {
            (cluster, part): run["error"]
            for cluster, parts in self.runs().items()
            for part, run in parts.items()
            if "error" in run
        }

    def _write(self, cluster: str, part: str, content: dict) -> None:
        path = self.folder / cluster / f"{part}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        content = {"part": part, "cluster": cluster, "machine": machine.describe()} | content
        temporary = path.with_suffix(".partial")
        temporary.write_text(json.dumps(content, indent=2))
        temporary.replace(path)  # a file is whole or absent, even if the run is killed


def run_parts(
    parts: Sequence[Part], service: Service, cluster: str, saved: SavedResults
) -> list[str]:
    """Run each part against ``service``, saving its figures the moment it ends. A part
    that raises is saved as failed (its traceback printed) and the next one runs.
    Returns the names of the parts that failed."""
    failed = []
    for part in parts:
        print(f"== {part.name} ({cluster})", flush=True)
        started = time.monotonic()
        try:
            figures = part.measure(service)
        except Exception as error:  # noqa: BLE001 - any failure of a part is reported, not fatal
            traceback.print_exc()
            saved.save_failure(cluster, part.name, _one_line(error), time.monotonic() - started)
            failed.append(part.name)
            continue
        saved.save(cluster, part.name, figures, time.monotonic() - started)
        print(json.dumps({part.name: headline(figures)}), flush=True)
    return failed


def report(parts: Sequence[Part], saved: SavedResults) -> str:
    """The report, as Markdown: every saved part's rows, then the parts that failed."""
    figures = saved.figures()
    rows: list[Row] = []
    for part in parts:
        by_cluster = {c: f[part.name] for c, f in figures.items() if part.name in f}
        if by_cluster:
            rows += part.rows(by_cluster)
    lines = ["| Measure | Result | Target |", "|---|---|---|"]
    lines += [f"| {measure} | {result} | {target} |" for measure, result, target in rows]
    if failures := saved.failures():
        lines += ["", "Parts that failed:", ""]
        lines += [f"- {part} ({cluster}): {why}" for (cluster, part), why in failures.items()]
    return "\n".join(lines)


def headline(figures: dict) -> dict:
    """A part's figures without their long lists, for progress output."""
    skip = ("timeline", "held", "series")
    return {k: v for k, v in figures.items() if k not in skip} | (
        {"held": {k: v["requests_per_s"] for k, v in figures["held"].items()}}
        if "held" in figures
        else {}
    )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
