"""A text-only stage two, served by config and schema alone: no code changes.

Training writes the note-only variant of stage two beside the main one
(``heavy_note.pt`` and ``schema_note.json``, the schema without the image); the session's
``textonly`` app serves it (see conftest), and its records carry no photo.
"""

import pytest
from support import wait_until_ended

PREFIX = "/textonly"


@pytest.fixture(scope="module")
def text_only(example) -> dict:
    """The session's example record without its photo."""
    return {k: v for k, v in example.items() if k != "image"}


def test_a_text_only_model_serves_records_without_a_photo(text_only, http):
    answer = http.post(f"{PREFIX}/v1/predict", json=text_only)
    assert answer.status_code == 200, answer.text
    view = wait_until_ended(http, answer.json()["stage_two"]["url"]).json()
    assert view["status"] == "completed", view
    assert view["result"]["modalities"] == ["tabular", "note"]

    with_photo = http.post(f"{PREFIX}/v1/predict", json={**text_only, "image": "AAAA"})
    assert with_photo.status_code == 422
    assert [e["field"] for e in with_photo.json()["errors"]] == ["image"]
    models = http.get(f"{PREFIX}/v1/models").json()
    assert "image" not in models["input_schema"]["properties"]
    assert "note" in models["input_schema"]["properties"]
