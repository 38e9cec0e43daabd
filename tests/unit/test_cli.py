"""The command line without a service: its options, its input files, and the exit status and
one line it gives for each way a command can go wrong."""

import re
from pathlib import Path

import httpx
import pytest

from multistage_client.cli import main
from multistage_client.cli.exits import MEANINGS, BadInput, Exit, for_error, for_status
from multistage_client.cli.main import build_parser
from multistage_client.cli.records import read_record, read_records
from multistage_client.errors import ServiceError, StageTwoFailed, StreamRefused
from multistage_client.models import ErrorBody, FieldProblem

URL = "http://service"
INVALID = ErrorBody(
    error="invalid_record",
    message="1 field is invalid",
    errors=[FieldProblem(field="shift", message="Input should be 'day'")],
)
ERRORS = [
    (BadInput("record.json is not JSON"), Exit.BAD_INPUT, "record.json is not JSON"),
    (ServiceError(422, INVALID), Exit.REFUSED, "shift: Input should be 'day'"),
    (ServiceError(401, ErrorBody(error="unauthorized", message="no key")), Exit.KEY_REFUSED, "key"),
    (ServiceError(503, ErrorBody(error="overloaded", message="busy")), Exit.SERVICE_DOWN, "503"),
    (StageTwoFailed("t", "expired", None), Exit.NOT_COMPLETED, "ended expired"),
    (StageTwoFailed(None, "rejected", None), Exit.REFUSED, "rejected"),
    (StreamRefused(4401, "a valid API key is required"), Exit.KEY_REFUSED, "4401"),
    (TimeoutError("not ended after 1 s"), Exit.NOT_READY, "not ended"),
    (httpx.ConnectError("Connection refused"), Exit.SERVICE_DOWN, "cannot reach"),
    (ValueError("a bug"), Exit.UNEXPECTED, "unexpected ValueError: a bug"),
]


@pytest.mark.parametrize(("error", "status", "words"), ERRORS)
def test_each_error_has_its_exit_status_and_one_line(error, status, words):
    got, line = for_error(error, URL)
    assert got == status
    assert words in line and "\n" not in line


def test_a_ticket_status_decides_the_exit():
    expected = {"completed": 0, "stage2": 0, "failed": 1, "lost": 1, "rejected": 3, "pending": 4}
    assert {status: int(for_status(status)) for status in expected} == expected


def test_a_record_file_must_hold_one_json_object(tmp_path):
    path = tmp_path / "record.json"
    path.write_text('{"shift": "day"}')
    assert read_record(str(path)) == {"shift": "day"}
    for text, words in [("[1, 2]", "not one record"), ("{nope", "is not JSON")]:
        path.write_text(text)
        with pytest.raises(BadInput, match=words):
            read_record(str(path))
    with pytest.raises(BadInput, match="cannot read .*missing.json"):
        read_record(str(tmp_path / "missing.json"))


def test_a_json_lines_file_skips_blank_lines_and_names_a_bad_one(tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_records(str(path)) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(BadInput, match="line 2: not JSON"):
        read_records(str(path))
    path.write_text("\n")
    with pytest.raises(BadInput, match="no records"):
        read_records(str(path))


def test_options_come_from_the_environment_and_work_after_the_command(monkeypatch):
    monkeypatch.setenv("MULTISTAGE_URL", "http://from-env:8000")
    monkeypatch.setenv("MULTISTAGE_API_KEY", "env-key")
    args = build_parser().parse_args(["predict", "-"])
    assert (args.url, args.api_key, args.json) == ("http://from-env:8000", "env-key", False)
    args = build_parser().parse_args(["predict", "-", "--url", "http://given", "--json"])
    assert (args.url, args.api_key, args.json) == ("http://given", "env-key", True)


def test_help_names_every_command_and_exit_status(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for word in ["predict", "get", "follow", "cancel", "stream", "models", "example"]:
        assert word in text
    assert all(f"  {int(code)} " in text for code in Exit)


def test_a_service_that_is_down_is_one_line_and_exit_6(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["--url", "http://127.0.0.1:9", "models"])
    assert exited.value.code == Exit.SERVICE_DOWN
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("multistage: cannot reach the service")


def test_the_docs_exit_table_is_the_command_lines():
    api = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", api, flags=re.MULTILINE))
    assert rows == {str(int(code)): meaning for code, meaning in MEANINGS.items()}
