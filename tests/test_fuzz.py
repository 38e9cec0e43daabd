"""The contract tested from outside: Schemathesis, from the live OpenAPI document, sends
schema-valid and malformed requests to every operation (and undeclared methods, and
requests without the key where one is needed) with a fixed seed, and checks every answer
against the document: no 5xx, documented statuses, content types, headers and bodies."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import API_KEY

SCHEMATHESIS = Path(sys.executable).with_name("st")
# Not applicable here, by design: a JSON Schema cannot say "a 32x32 PNG" or "at most 64
# tokens", and a schema-valid ticket may have expired (410), so schema-valid requests are
# refused for reasons the document states only in words (positive_data_acceptance); and a
# batch answers 200 with each malformed record's own error, so that one bad record fails
# alone (negative_data_rejection).
NOT_APPLICABLE = "positive_data_acceptance,negative_data_rejection"


@pytest.mark.parametrize(
    "prefix, headers",
    [("", []), ("/guarded", ["-H", f"Authorization: Bearer {API_KEY}"])],
    ids=["open", "with a key"],
)
def test_the_service_does_what_its_openapi_document_says(serve_url, tmp_path, prefix, headers):
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{serve_url}{prefix}/openapi.json",
        "--checks=all",
        f"--exclude-checks={NOT_APPLICABLE}",
        "--max-examples=5",
        "--seed=20261207",
        "--generation-database=none",
        "--continue-on-failure",
        f"--report-dir={tmp_path}",
        *headers,
    ]
    # Its crash cache (.schemathesis/) goes in the test's own folder, not the project's.
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_service_answers_correctly_after_fuzzing(http, example):
    posted = http.post("/v1/predict", json=example)
    assert posted.status_code == 200
    view = http.get(posted.json()["stage_two"]["url"], params={"wait": 20}).json()
    assert view["status"] == "completed"
