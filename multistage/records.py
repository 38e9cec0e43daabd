"""From request bytes to a validated record, or to errors that name the bad field.

Clients send JSON with the tabular fields and a base64 PNG/JPEG photo. Nothing is
ever unpickled; the photo's size is checked from its header before any pixel is
decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pydantic
from PIL import Image, UnidentifiedImageError

from multistage.schema import CategoricalField, ImageSpec, RecordSchema


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidRecord(Exception):
    """The body is not a valid record. ``malformed`` means it was not even JSON."""

    def __init__(self, errors: list[FieldError], malformed: bool = False) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors
        self.malformed = malformed


@dataclass(frozen=True)
class Record:
    """What both models need: the feature row (schema order) and the decoded photo."""

    features: np.ndarray  # float32 [F]; a categorical value is its code
    image: np.ndarray  # uint8 [H, W, C]


def request_model(schema: RecordSchema) -> type[pydantic.BaseModel]:
    """A pydantic model of the request body: validates it and documents it (OpenAPI)."""
    fields: dict[str, Any] = {}
    for field in schema.fields:
        if isinstance(field, CategoricalField):
            annotation: Any = Literal[tuple(field.categories)]
        else:
            annotation = pydantic.StrictFloat  # a JSON number: not "12", not true
        fields[field.name] = (annotation, pydantic.Field(description=field.description))
    spec = schema.image
    # base64 grows a file by 4/3: bounding the string bounds the decoded file.
    max_chars = 4 * ((spec.max_file_bytes + 2) // 3)
    fields[spec.field] = (
        str,
        pydantic.Field(
            max_length=max_chars,
            description=(
                f"Base64 {' or '.join(spec.formats)} file, exactly {spec.width}x{spec.height} px."
            ),
        ),
    )
    config = pydantic.ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [schema.example]},
    )
    return pydantic.create_model("PredictRequest", __config__=config, **fields)


class RecordParser:
    """Parses request bodies for one schema."""

    def __init__(self, schema: RecordSchema) -> None:
        self.schema = schema
        self.model = request_model(schema)
        self.json_schema = self.model.model_json_schema()

    def parse(self, body: bytes) -> Record:
        """A record from a JSON request body."""
        return self._record(self.model.model_validate_json, body)

    def parse_values(self, values: Any) -> Record:
        """A record from already-decoded JSON (one item of a batch)."""
        return self._record(self.model.model_validate, values)

    def _record(self, validate: Callable[[Any], pydantic.BaseModel], source: Any) -> Record:
        try:
            values = validate(source).model_dump()
        except pydantic.ValidationError as error:
            raise invalid_record(error) from None
        image = decode_image(values[self.schema.image.field], self.schema.image)
        return Record(features=self.schema.feature_row(values), image=image)


def decode_image(encoded: str, spec: ImageSpec) -> np.ndarray:
    """Base64 PNG/JPEG -> uint8 [H, W, C], refusing wrong formats and sizes before decoding."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _image_error(spec, "is not valid base64") from None
    if len(data) > spec.max_file_bytes:
        raise _image_error(spec, f"file is {len(data)} bytes, the limit is {spec.max_file_bytes}")
    try:
        with warnings.catch_warnings():
            # Pillow only warns up to twice its pixel limit: refuse a bomb at any size.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=spec.formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        size = f"{spec.width}x{spec.height} px"
        raise _image_error(spec, f"declares an enormous size; it must be {size}") from None
    except (UnidentifiedImageError, OSError):
        raise _image_error(spec, f"is not a readable {' or '.join(spec.formats)} file") from None
    if image.size != (spec.width, spec.height):
        width, height = image.size
        raise _image_error(spec, f"must be {spec.width}x{spec.height} px, got {width}x{height} px")
    try:
        pixels = np.asarray(image.convert(spec.pil_mode), dtype=np.uint8)
    except (OSError, ValueError):
        raise _image_error(spec, "is truncated or corrupt") from None
    return pixels.reshape(spec.height, spec.width, spec.channels)


def _image_error(spec: ImageSpec, message: str) -> InvalidRecord:
    return InvalidRecord([FieldError(spec.field, message)])


def invalid_record(error: pydantic.ValidationError) -> InvalidRecord:
    """Pydantic's errors as field errors; not JSON, or not an object, is ``malformed``."""
    problems = error.errors(include_url=False, include_input=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return InvalidRecord([FieldError("body", "is not valid JSON")], malformed=True)
    if any(p["type"] == "model_type" and not p["loc"] for p in problems):
        return InvalidRecord([FieldError("body", "must be a JSON object")], malformed=True)
    return InvalidRecord(
        [FieldError(".".join(map(str, p["loc"])) or "body", p["msg"]) for p in problems]
    )
