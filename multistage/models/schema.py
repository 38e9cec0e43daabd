"""The record schema: which fields a request carries and how models see them.

One JSON file describes the input of both stages. Training writes it next to the
models; serving reads it at start-up. Its field order is the XGBoost feature
order; a categorical value's code is its index in ``categories``. Stage one sees only
those tabular fields; stage two also sees the heavy modalities the schema declares: a
photo (``image``), free-text fields (``texts``), or both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr, model_validator

# The largest finite float32: the feature row holds float32, so no field may exceed it.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class NumericField(BaseModel):
    name: str
    kind: Literal["numeric"] = "numeric"
    description: str = ""
    minimum: float = Field(-FLOAT32_MAX, ge=-FLOAT32_MAX, description="Smallest value taken.")
    maximum: float = Field(FLOAT32_MAX, le=FLOAT32_MAX, description="Largest value taken.")

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> NumericField:
        if self.minimum > self.maximum:
            raise ValueError(f"{self.name}: minimum {self.minimum} exceeds maximum {self.maximum}")
        return self


class CategoricalField(BaseModel):
    name: str
    kind: Literal["categorical"] = "categorical"
    categories: list[str] = Field(min_length=1)
    description: str = ""
    _codes: dict[str, int] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        self._codes = {value: code for code, value in enumerate(self.categories)}

    def code(self, value: str) -> int:
        return self._codes[value]


TabularField = Annotated[NumericField | CategoricalField, Field(discriminator="kind")]


class ImageSpec(BaseModel):
    """The photo every record carries: exact size, channels, size limit of its file."""

    field: str = "image"
    width: int = Field(gt=0, le=4096)
    height: int = Field(gt=0, le=4096)
    channels: Literal[1, 3] = 1
    formats: list[Literal["PNG", "JPEG"]] = ["PNG", "JPEG"]
    max_file_bytes: int = Field(default=256 * 1024, gt=0)

    @property
    def pil_mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"


class TextSpec(BaseModel):
    """A free-text field: its length is checked in characters before it is tokenized, and in
    tokens after; stage two sees its token ids, padded with 0 to ``max_tokens``."""

    field: str
    max_chars: int = Field(1000, gt=0)
    max_tokens: int = Field(64, gt=0)
    required: bool = True
    tokenizer: str = Field(
        "tokenizer.json",
        description="A `tokenizers` JSON file (id 0 pads), relative to the schema's folder.",
    )
    vocab_size: int = Field(gt=1, description="The tokenizer's vocabulary: the model's rows.")
    description: str = ""


class RecordSchema(BaseModel):
    classes: list[str] = Field(min_length=2)
    fields: list[TabularField] = Field(min_length=1)
    image: ImageSpec | None = None
    texts: list[TextSpec] = []
    example: dict[str, Any] = Field(description="A valid request body.")

    @model_validator(mode="after")
    def _names_are_unique(self) -> RecordSchema:
        names = [f.name for f in self.fields] + self.heavy_fields
        if len(set(names)) != len(names):
            raise ValueError(f"field names must be unique, got {names}")
        if not self.heavy_fields:
            raise ValueError("declare at least one heavy modality: an image or a text field")
        if reserved := set(self.heavy_fields) & {"numeric", "categorical"}:
            raise ValueError(f"{sorted(reserved)}: names of the stage-two model's tabular inputs")
        return self

    @classmethod
    def load(cls, path: str | Path) -> RecordSchema:
        """The schema in ``path``, its tokenizer files found from the schema's folder."""
        schema = cls.model_validate_json(Path(path).read_text())
        for spec in schema.texts:
            spec.tokenizer = str((Path(path).parent / spec.tokenizer).resolve())
        return schema

    @property
    def heavy_fields(self) -> list[str]:
        """The request fields of the heavy modalities, stage two's own inputs."""
        return ([self.image.field] if self.image else []) + [t.field for t in self.texts]

    @property
    def modalities(self) -> list[str]:
        """What stage two sees, as its answer reports it: the tabular fields, then the rest."""
        return ["tabular", *self.heavy_fields]

    @property
    def numeric_fields(self) -> list[NumericField]:
        return [f for f in self.fields if isinstance(f, NumericField)]

    @property
    def categorical_fields(self) -> list[CategoricalField]:
        return [f for f in self.fields if isinstance(f, CategoricalField)]

    @property
    def xgboost_feature_types(self) -> list[str]:
        return ["q" if isinstance(f, NumericField) else "c" for f in self.fields]

    @property
    def numeric_positions(self) -> list[int]:
        """Where the numeric fields sit in a feature row."""
        return [i for i, f in enumerate(self.fields) if isinstance(f, NumericField)]

    @property
    def categorical_positions(self) -> list[int]:
        return [i for i, f in enumerate(self.fields) if isinstance(f, CategoricalField)]

    def feature_row(self, values: dict[str, Any]) -> np.ndarray:
        """The XGBoost feature vector for already-validated field values."""
        return np.array([_code(f, values[f.name]) for f in self.fields], dtype=np.float32)


def _code(field: NumericField | CategoricalField, value: Any) -> float:
    if isinstance(field, CategoricalField):
        return float(field.code(value))
    return float(value)
