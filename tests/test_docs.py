"""The README and docs/ name only what exists: every link (file and anchor), every
repository path, ``make`` target and app arg in their code; each page's table of contents
is current, and the README stays a front door."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from graphs.multistage import AppArgs
from tools.docs import PAGES, ROOT, headings, prose_lines

DOCS = [ROOT / "README.md", *PAGES]
# Written by the service or its commands, not kept in the repository.
GENERATED = ("artifacts/", "results/", "state/", "/tmp/")
# The repository's folders, hidden ones without their dot (.ci/ is "ci").
TOP_FOLDERS = {p.name.lstrip(".") for p in ROOT.iterdir() if p.is_dir()}
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`([^`]+)`")
_PATH = re.compile(r"(?<![\w/.-])(\.?[\w-]+/[\w./-]*[\w/])")
_MAKE = re.compile(r"\bmake ([a-z][\w-]*)")
_ARG = re.compile(r"(?<![\w/.-])([a-z_]+)\.([a-z_]+)(?![\w/-])")
FILE_SUFFIXES = {"py", "pt", "ubj", "json", "sqlite", "yaml", "md", "png", "txt", "env", "sh"}


def _code(page: Path) -> str:
    """The page's code: fenced blocks and inline code spans."""
    text = page.read_text()
    spans = [m.group(1) for line in prose_lines(text) for m in _CODE_SPAN.finditer(line)]
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    return "\n".join(spans + fenced)


def test_the_readme_is_a_front_door() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_pages_exist_and_their_contents_and_figures_are_current() -> None:
    names = {p.name for p in PAGES}
    expected = {"api.md", "streams.md", "configuration.md", "operations.md", "benchmarks.md"}
    assert expected | {"design.md"} <= names
    check = [sys.executable, "-m", "tools.docs", "--check"]
    result = subprocess.run(check, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_link_finds_its_file_and_heading(page: Path) -> None:
    broken = []
    for line in prose_lines(page.read_text()):
        for target in _LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # another site's
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (anchor and anchor not in _anchors(linked)):
                broken.append(target)
    assert not broken


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_path_target_and_arg_named_exists(page: Path) -> None:
    code = _code(page)
    paths = {p for p in _PATH.findall(code) if p.split("/")[0].lstrip(".") in TOP_FOLDERS}
    missing = [p for p in paths if not p.startswith(GENERATED) and not (ROOT / p).exists()]
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    missing += [f"make {t}" for t in _MAKE.findall(code) if t not in targets]
    missing += [f"{a}.{b}" for a, b in _ARG.findall(code) if not _is_arg(a, b)]
    assert not missing


def _anchors(page: Path) -> set[str]:
    return {a for _, _, a in headings(page.read_text())} if page.suffix == ".md" else set()


def _is_arg(group: str, key: str) -> bool:
    """True unless ``group`` names an app arg group that lacks ``key``."""
    field = AppArgs.model_fields.get(group)
    if key in FILE_SUFFIXES or field is None or not isinstance(field.default, BaseModel):
        return True
    return key in type(field.default).model_fields
