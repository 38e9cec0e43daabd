"""Schema-driven fuzzing: requests generated from the live OpenAPI document, both
schema-valid and malformed, against every endpoint. None may get a 5xx, every answer
must match the documented responses, and the service goes on answering correctly."""

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

EXAMPLES = 15  # per endpoint and mode
# Not applicable: a JSON Schema cannot say "a 32x32 PNG", so a schema-valid body is still
# refused for its photo (422); a malformed one may be refused as too large (413), and
# unknown query parameters are ignored, as HTTP services do.
OWN_STATUS_CHECKS = [positive_data_acceptance, negative_data_rejection]


def _fuzz(operation, mode: GenerationMode, statuses: Counter) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case) -> None:
        response = case.call()
        statuses[mode.value, response.status_code] += 1
        assert response.status_code < 500, case.as_curl_command()[:500]
        case.validate_response(response, excluded_checks=OWN_STATUS_CHECKS)

    try:
        call()
    except Unsatisfiable:
        # Nothing to malform: an endpoint without parameters or body (GET /healthz).
        assert mode is GenerationMode.NEGATIVE


def test_generated_requests_get_no_server_error(serve_url):
    schema = schemathesis.openapi.from_url(f"{serve_url}/openapi.json")
    statuses: Counter[tuple[str, int]] = Counter()
    for result in schema.get_all_operations():
        for mode in GenerationMode:
            _fuzz(result.ok(), mode, statuses)
    print(sorted(statuses.items()))
    sent = Counter()
    for (mode, _), count in statuses.items():
        sent[mode] += count
    assert sent["positive"] > 50 and sent["negative"] > 50, statuses


def test_service_answers_correctly_after_fuzzing(http, example):
    posted = http.post("/v1/predict", json=example)
    assert posted.status_code == 200
    view = http.get(posted.json()["stage_two"]["url"], params={"wait": 20}).json()
    assert view["status"] == "completed"
