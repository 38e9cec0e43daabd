"""The docs' generated parts: tables of contents, made from their headings, and tables of
figures, made from the reference run (``tools/figures.py``).

``python -m tools.docs`` (``make docs``) rewrites each page's table of contents (the list
between ``<!-- toc -->`` and ``<!-- /toc -->``) and its figures blocks (``<!-- figures:NAME
-->`` ... ``<!-- /figures -->``); ``--check`` changes nothing and fails if one is out of
date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
GENERATED_IN = [ROOT / "README.md", *PAGES]
TOC_START, TOC_END = "<!-- toc -->", "<!-- /toc -->"
_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FIGURES = re.compile(r"(<!-- figures:(\S+) -->\n).*?(<!-- /figures -->)", re.S)


def prose_lines(markdown: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def headings(markdown: str) -> list[tuple[int, str, str]]:
    """Each heading's level, text and anchor, as GitHub names it (repeats get -1, -2...)."""
    seen: Counter[str] = Counter()
    found = []
    for line in prose_lines(markdown):
        if match := _HEADING.match(line):
            text = match.group(2)
            base = slug(text)
            anchor = f"{base}-{seen[base]}" if seen[base] else base
            seen[base] += 1
            found.append((len(match.group(1)), text, anchor))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", _plain(heading).lower())
    return text.replace(" ", "-")


def toc(markdown: str) -> str:
    """A nested list of the page's second- and third-level headings."""
    entries = []
    for level, text, anchor in headings(markdown):
        if level in (2, 3):
            entries.append(f"{'  ' * (level - 2)}- [{_plain(text)}](#{anchor})")
    return "\n".join(entries)


def made(markdown: str) -> str:
    """The page with its generated parts made again."""
    if TOC_START in markdown:
        markdown = with_toc(markdown)
    return with_figures(markdown)


def with_toc(markdown: str) -> str:
    """The page with its table of contents made again from its headings."""
    before, _, rest = markdown.partition(TOC_START)
    _, end, after = rest.partition(TOC_END)
    return f"{before}{TOC_START}\n{toc(markdown)}\n{end}{after}"


def with_figures(markdown: str) -> str:
    """The page with each figures block made again from the reference run."""
    if not _FIGURES.search(markdown):
        return markdown
    from tools import figures  # the benchmark's modules: only for pages that need them

    def fill(block: re.Match) -> str:
        return f"{block.group(1)}{figures.table(block.group(2))}\n{block.group(3)}"

    return _FIGURES.sub(fill, markdown)


def _plain(heading: str) -> str:
    """A heading as a link's text: links inside it become their text."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a page is out of date")
    args = parser.parse_args()
    stale = []
    for page in GENERATED_IN:
        text = page.read_text()
        updated = made(text)
        if updated != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(updated)
    if args.check and stale:
        names = ", ".join(map(str, stale))
        sys.exit(f"tables of contents or figures out of date (make docs): {names}")


if __name__ == "__main__":
    main()
