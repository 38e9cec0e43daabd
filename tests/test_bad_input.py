"""Each class of bad input gets a clear 4xx JSON error naming the field; serving goes on."""

import base64
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _png_header(width: int, height: int) -> str:
    """A PNG that declares ``width`` x ``height`` pixels in a few bytes: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


def _with(example: dict, **changes) -> bytes:
    return json.dumps({**example, **changes}).encode()


def _without(example: dict, field: str) -> bytes:
    return json.dumps({k: v for k, v in example.items() if k != field}).encode()


CASES = {
    # name: (body builder, status, error code, field named)
    "malformed json": (lambda ex: b'{"temperature_c": 7', 400, "malformed_json", "body"),
    "not an object": (lambda ex: b"[1, 2, 3]", 400, "malformed_json", "body"),
    "missing field": (lambda ex: _without(ex, "supplier"), 422, "invalid_record", "supplier"),
    "string for number": (
        lambda ex: _with(ex, temperature_c="hot"),
        422,
        "invalid_record",
        "temperature_c",
    ),
    "bool for number": (
        lambda ex: _with(ex, pressure_bar=True),
        422,
        "invalid_record",
        "pressure_bar",
    ),
    "number past its field's maximum": (
        lambda ex: _with(ex, temperature_c=1e6),
        422,
        "invalid_record",
        "temperature_c",
    ),
    "number past float32": (
        lambda ex: _with(ex, pressure_bar=3.5e38),
        422,
        "invalid_record",
        "pressure_bar",
    ),
    "unknown category": (
        lambda ex: _with(ex, shift="graveyard"),
        422,
        "invalid_record",
        "shift",
    ),
    "unexpected field": (lambda ex: _with(ex, colour="red"), 422, "invalid_record", "colour"),
    "image not base64": (lambda ex: _with(ex, image="not base64!"), 422, "invalid_record", "image"),
    "image undecodable": (
        lambda ex: _with(ex, image=base64.b64encode(b"\x89PNG garbage").decode()),
        422,
        "invalid_record",
        "image",
    ),
    "image wrongly sized": (
        lambda ex: _with(ex, image=_png(64, 48)),
        422,
        "invalid_record",
        "image",
    ),
    "image declares 10000x10000 px": (
        lambda ex: _with(ex, image=_png_header(10_000, 10_000)),
        422,
        "invalid_record",
        "image",
    ),
    "image declares 30000x30000 px": (
        lambda ex: _with(ex, image=_png_header(30_000, 30_000)),
        422,
        "invalid_record",
        "image",
    ),
    "image file too large": (
        lambda ex: _with(ex, image="A" * 400_000),
        422,
        "invalid_record",
        "image",
    ),
    "note over its characters": (
        lambda ex: _with(ex, note="rattle " * 100),
        422,
        "invalid_record",
        "note",
    ),
    "note over its tokens": (
        # Under 400 characters, but every letter a token of its own.
        lambda ex: _with(ex, note=" ".join("qzxj"[i % 4] for i in range(150))),
        422,
        "invalid_record",
        "note",
    ),
    "note empty": (lambda ex: _with(ex, note="   "), 422, "invalid_record", "note"),
    "note missing": (lambda ex: _without(ex, "note"), 422, "invalid_record", "note"),
    "note not a string": (lambda ex: _with(ex, note=42), 422, "invalid_record", "note"),
    "note not valid UTF-8 (a lone surrogate)": (
        # json.dumps escapes it as \\ud800: valid JSON, text no UTF-8 can carry.
        lambda ex: _with(ex, note="clunk \ud800"),
        422,
        "invalid_record",
        "note",
    ),
    "note not valid UTF-8 (raw bytes)": (
        lambda ex: _with(ex, note="clunk ~").replace(b"clunk ~", b"clunk \xff"),
        422,
        "invalid_record",
        "note",
    ),
    "nested 1,000 deep": (
        lambda ex: b'{"temperature_c": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        400,
        "malformed_json",
        "body",
    ),
    "oversized body": (
        lambda ex: _with(ex, padding="x" * (2 << 20)),
        413,
        "body_too_large",
        "body",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_a_named_4xx_and_serving_goes_on(http, example, case):
    build, status, code, field = CASES[case]
    response = http.post(
        "/v1/predict", content=build(example), headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert field in [problem["field"] for problem in body["errors"]]
    assert field in body["message"]

    good = http.post("/v1/predict", json=example)
    assert good.status_code == 200
    assert good.json()["stage_two"]["status"] == "pending"


def test_bad_query_parameter_is_422(http):
    response = http.get("/v1/predictions/whatever", params={"wait": "soon"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.wait"


def test_unknown_route_is_json_404(http):
    response = http.get("/v2/predict")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_declared_other_than_json_is_415_unread(http, example, content_type):
    response = http.post(
        "/v1/predict", content=json.dumps(example), headers={"content-type": content_type}
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert response.json()["errors"][0]["field"] == "content-type"


def test_a_json_body_with_parameters_or_no_declared_type_is_read(http, example):
    for headers in ({"content-type": "Application/JSON; charset=utf-8"}, {}):
        response = http.post("/v1/predict", content=json.dumps(example), headers=headers)
        assert response.status_code == 200, response.text


def test_a_batch_nested_past_the_limit_is_400_naming_it(http):
    body = b'{"records": [' + b"[" * 1000 + b"]" * 1000 + b"]}"
    response = http.post(
        "/v1/predict/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "nests deeper than" in response.json()["message"]


def test_a_method_a_path_does_not_take_is_405_naming_every_one_it_does(http):
    response = http.request("OPTIONS", "/v1/predictions/whatever")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert {"GET", "DELETE"} <= set(response.headers["allow"].split(", "))
