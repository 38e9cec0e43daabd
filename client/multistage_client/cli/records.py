"""Reading the records a command sends: one JSON object (a file, or ``-`` for standard
input), or JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from multistage_client.cli.exits import BadInput


def read_record(source: str) -> dict:
    """The one record in ``source``: a file's path, or ``-`` for standard input."""
    text = _read(source)
    try:
        record = json.loads(text)
    except ValueError as error:
        raise BadInput(f"{_name(source)} is not JSON: {error}") from None
    if not isinstance(record, dict):
        raise BadInput(
            f"{_name(source)} holds a JSON {type(record).__name__}, not one record (an object);"
            " to send many, put one per line and use: multistage stream FILE.jsonl"
        )
    return record


def read_records(source: str) -> list[dict]:
    """Every record in a JSON lines file (blank lines skipped), all read before any is
    sent, so a bad line stops the command before it starts."""
    records = []
    for number, line in enumerate(_read(source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise BadInput(f"{_name(source)}, line {number}: not JSON: {error}") from None
        if not isinstance(record, dict):
            raise BadInput(f"{_name(source)}, line {number}: not a record (a JSON object)")
        records.append(record)
    if not records:
        raise BadInput(f"{_name(source)} holds no records")
    return records


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(
            f"cannot read {source}: {getattr(error, 'strerror', None) or error}"
        ) from None


def _name(source: str) -> str:
    return "standard input" if source == "-" else source
