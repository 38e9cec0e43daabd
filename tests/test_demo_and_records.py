"""The parts without Ray: demo data, schema encoding, request parsing, API examples."""

import json

import numpy as np
import pytest

from demo.data import generate, without
from demo.train import auc
from multistage.models.records import (
    MAX_JSON_DEPTH,
    UNENCODABLE_TEXT,
    InvalidRecord,
    RecordParser,
    read_json,
)
from multistage_client.models import (
    BatchResponse,
    ErrorBody,
    ModelsResponse,
    PredictResponse,
    TicketView,
)


def test_generator_is_deterministic_per_seed():
    a, b, c = generate(50, seed=3), generate(50, seed=3), generate(50, seed=4)
    assert a.tabular.equals(b.tabular) and a.notes == b.notes
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images) and a.notes != c.notes


def test_label_depends_on_what_only_the_photo_and_only_the_note_show():
    data = generate(4000, seed=0)
    for evidence in (data.has_crack, data.heard_noise):
        assert data.labels[evidence].mean() - data.labels[~evidence].mean() > 0.3
    # The note says it in many ways: varied wording, order, typos, idle remarks.
    assert len(set(data.notes)) > 0.6 * len(data.notes)


def test_schema_example_parses_to_the_generator_record(schema):
    record = RecordParser(schema).parse(json.dumps(schema.example).encode())
    expected = generate(1, seed=2024)
    assert np.array_equal(record.image, expected.images[0])
    ids = record.texts["note"]
    assert ids.shape == (schema.texts[0].max_tokens,) and np.count_nonzero(ids) > 0
    assert record.features[0] == pytest.approx(expected.tabular["temperature_c"][0], abs=1e-3)
    supplier = schema.fields[3]
    assert record.features[3] == supplier.categories.index(expected.tabular["supplier"][0])


def test_parser_reports_every_bad_field(schema):
    body = {**schema.example, "temperature_c": "hot", "shift": "graveyard"}
    del body["supplier"]
    with pytest.raises(InvalidRecord) as error:
        RecordParser(schema).parse(json.dumps(body).encode())
    assert {e.field for e in error.value.errors} == {"temperature_c", "shift", "supplier"}
    assert not error.value.malformed


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_is_read_to_its_depth_limit_and_refused_past_it():
    assert read_json(_nested(MAX_JSON_DEPTH), "message")
    with pytest.raises(InvalidRecord) as refused:
        read_json(_nested(MAX_JSON_DEPTH + 1), "message")
    assert refused.value.malformed
    assert (
        refused.value.errors[0].message == f"nests deeper than {MAX_JSON_DEPTH} levels, the limit"
    )


@pytest.mark.parametrize(
    "text", ['{"seq": "a \\ud800"}', b'{"seq": "a \xff"}'], ids=["escape", "byte"]
)
def test_text_no_utf8_can_carry_is_refused_with_its_reason(text):
    with pytest.raises(InvalidRecord) as refused:
        read_json(text, "message")
    assert refused.value.errors[0].message == UNENCODABLE_TEXT


@pytest.mark.parametrize(
    "body",
    [
        '{"temperature_c": ' + _nested(5000) + "}",
        # Unencodable text first sends the parser down its lenient path: still bounded.
        '{"note": "a \\ud800", "temperature_c": ' + _nested(5000) + "}",
    ],
    ids=["deep", "unencodable then deep"],
)
def test_a_body_nested_past_the_limit_is_refused_not_a_crash(schema, body):
    with pytest.raises(InvalidRecord) as refused:
        RecordParser(schema).parse(body.encode())
    assert refused.value.errors[0].field == "body"


def test_a_schema_declares_at_least_one_heavy_modality(schema):
    text_only = without(schema, "image")
    assert text_only.modalities == ["tabular", "note"] and "image" not in text_only.example
    with pytest.raises(ValueError, match="at least one heavy modality"):
        without(text_only, "note")


def test_auc_matches_its_definition():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    assert auc(scores, labels) == pytest.approx(0.75)


@pytest.mark.parametrize(
    "model", [PredictResponse, TicketView, ErrorBody, BatchResponse, ModelsResponse]
)
def test_documented_response_examples_are_valid(model):
    for example in model.model_json_schema()["examples"]:
        model.model_validate(example)
