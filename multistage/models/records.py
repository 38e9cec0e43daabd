"""From request bytes to a validated record, or to errors that name the bad field.

Clients send JSON with the tabular fields and the heavy modalities the schema declares:
a base64 PNG/JPEG photo, free-text fields, or both. Nothing is ever unpickled; the
photo's size is checked from its header before any pixel is decoded, and a text's
length in characters before it is tokenized (then in tokens).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pydantic
import pydantic_core
from PIL import Image, UnidentifiedImageError
from tokenizers import Tokenizer

from multistage.models.schema import CategoricalField, ImageSpec, RecordSchema, TextSpec
from multistage_client.errors import MultistageError

# A client's JSON is read only by pydantic-core's parser, which refuses text nested deeper
# than this without recursing in Python (Python's own parser raised RecursionError).
MAX_JSON_DEPTH = 201
UNENCODABLE_TEXT = "holds text no UTF-8 can carry (a lone surrogate or an invalid code point)"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidRecord(MultistageError):
    """The body is not a valid record. ``malformed`` means it was not even JSON."""

    def __init__(self, errors: list[FieldError], malformed: bool = False) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors
        self.malformed = malformed


@dataclass(frozen=True)
class Record:
    """What both models need: the feature row (schema order), and stage two's modalities."""

    features: np.ndarray  # float32 [F]; a categorical value is its code
    image: np.ndarray | None = None  # uint8 [H, W, C]; None when the schema has no image
    # Token ids of each text field, int64 [max_tokens], padded with 0 (all 0: no text).
    texts: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def request_model(schema: RecordSchema) -> type[pydantic.BaseModel]:
    """A pydantic model of the request body: validates it and documents it (OpenAPI)."""
    fields: dict[str, Any] = {}
    for field in schema.fields:
        if isinstance(field, CategoricalField):
            annotation: Any = Literal[tuple(field.categories)]
            bounds = {}
        else:
            annotation = pydantic.StrictFloat  # a JSON number: not "12", not true
            bounds = {"ge": field.minimum, "le": field.maximum}
        fields[field.name] = (annotation, pydantic.Field(description=field.description, **bounds))
    if (spec := schema.image) is not None:
        # base64 grows a file by 4/3: bounding the string bounds the decoded file.
        max_chars = 4 * ((spec.max_file_bytes + 2) // 3)
        description = (
            f"Base64 {' or '.join(spec.formats)} file, exactly {spec.width}x{spec.height} px."
        )
        fields[spec.field] = (str, pydantic.Field(max_length=max_chars, description=description))
    for text in schema.texts:
        description = (
            f"{text.description} At most {text.max_chars} characters and {text.max_tokens} "
            "tokens.".strip()
        )
        length = pydantic.Field(max_length=text.max_chars, description=description)
        if text.required:
            fields[text.field] = (pydantic.StrictStr, length)
        else:
            optional = pydantic.Field(None, max_length=text.max_chars, description=description)
            fields[text.field] = (pydantic.StrictStr | None, optional)
    config = pydantic.ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [schema.example]},
    )
    return pydantic.create_model("PredictRequest", __config__=config, **fields)


class BatchRequest(pydantic.BaseModel):
    # Items stay raw JSON here: each is validated on its own, so one bad record fails alone.
    records: list[object] = pydantic.Field(min_length=1)


class RecordParser:
    """Parses request bodies for one schema."""

    def __init__(self, schema: RecordSchema) -> None:
        self.schema = schema
        self.model = request_model(schema)
        self.json_schema = self.model.model_json_schema()
        self._tokenizers = {t.field: Tokenizer.from_file(t.tokenizer) for t in schema.texts}

    def parse(self, body: bytes) -> Record:
        """A record from a JSON request body."""
        try:
            return self._record(self.model.model_validate_json, body)
        except InvalidRecord as invalid:
            if invalid.errors[0].message != UNENCODABLE_TEXT:
                raise
            # Strict JSON parsing refuses text no UTF-8 can carry (bytes that are not UTF-8,
            # escaped lone surrogates) as "not JSON". Read leniently, the JSON is sound and
            # the error names the field that holds such text.
            try:
                values = json.loads(body.decode("utf-8", "surrogateescape"))
            except (ValueError, RecursionError):
                raise invalid from None
            return self.parse_values(values)

    def parse_values(self, values: Any) -> Record:
        """A record from already-decoded JSON (one item of a batch)."""
        return self._record(self.model.model_validate, values)

    def parse_batch(self, body: bytes, max_records: int) -> list[Record | InvalidRecord]:
        """The records of a batch request body, each parsed on its own: one bad record
        fails alone (its ``InvalidRecord`` in its place)."""
        try:
            records = BatchRequest.model_validate_json(body).records
        except pydantic.ValidationError as error:
            raise invalid_record(error) from None
        if len(records) > max_records:
            limit = f"at most {max_records} records per request"
            raise InvalidRecord([FieldError("records", limit)])
        items: list[Record | InvalidRecord] = []
        for values in records:
            try:
                items.append(self.parse_values(values))
            except InvalidRecord as error:
                items.append(error)
        return items

    def _record(self, validate: Callable[[Any], pydantic.BaseModel], source: Any) -> Record:
        try:
            values = validate(source).model_dump()
        except pydantic.ValidationError as error:
            raise invalid_record(error) from None
        spec = self.schema.image
        image = decode_image(values[spec.field], spec) if spec is not None else None
        texts, errors = {}, []
        for text in self.schema.texts:
            try:
                texts[text.field] = self._token_ids(text, values[text.field])
            except InvalidRecord as invalid:
                errors += invalid.errors
        if errors:
            raise InvalidRecord(errors)
        return Record(features=self.schema.feature_row(values), image=image, texts=texts)

    def _token_ids(self, spec: TextSpec, text: str | None) -> np.ndarray:
        """The text's token ids, padded to ``max_tokens``; its length in characters was
        checked by the request model, before this."""
        ids = np.zeros(spec.max_tokens, dtype=np.int64)
        if text is None or not text.strip():
            if spec.required:
                raise InvalidRecord([FieldError(spec.field, "must not be empty")])
            return ids  # an optional field left out or blank: the model sees no text
        tokens = self._tokenizers[spec.field].encode(text).ids
        if len(tokens) > spec.max_tokens:
            problem = f"has {len(tokens)} tokens, the limit is {spec.max_tokens}"
            raise InvalidRecord([FieldError(spec.field, problem)])
        ids[: len(tokens)] = tokens
        return ids


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


def read_json(text: str | bytes, field: str) -> Any:
    """A client's JSON text as Python values, or ``InvalidRecord`` (malformed) naming
    ``field`` and why: not JSON, nested past ``MAX_JSON_DEPTH``, or unencodable text."""
    try:
        return pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as error:
        problem = FieldError(field, _json_problem(str(error)))
        raise InvalidRecord([problem], malformed=True) from None


def _json_problem(parser_error: str) -> str:
    """What the JSON parser's complaint means, for a person."""
    if parser_error.startswith("recursion limit exceeded"):
        return f"nests deeper than {MAX_JSON_DEPTH} levels, the limit"
    if "hex escape" in parser_error or "unicode code point" in parser_error:
        return UNENCODABLE_TEXT
    return f"is not valid JSON ({parser_error})"


def invalid_record(error: pydantic.ValidationError) -> InvalidRecord:
    """Pydantic's errors as field errors; not JSON, or not an object, is ``malformed``."""
    problems = error.errors(include_url=False, include_input=False)
    for problem in problems:
        if problem["type"] == "json_invalid":
            reason = _json_problem(problem["ctx"]["error"])
            return InvalidRecord([FieldError("body", reason)], malformed=True)
    if any(p["type"] == "model_type" and not p["loc"] for p in problems):
        return InvalidRecord([FieldError("body", "must be a JSON object")], malformed=True)
    return InvalidRecord(
        [FieldError(".".join(map(str, p["loc"])) or "body", p["msg"]) for p in problems]
    )
