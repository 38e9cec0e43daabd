"""Seeded generator of synthetic part-inspection records.

Each record is a machined part: process readings (numeric), supplier and shift
(categorical), a 32x32 grayscale photo and an inspector's free-text note. The label
("defect" or "ok") mixes three kinds of evidence, each in one modality only: a process
risk the tabular fields reveal, a crack only the photo shows, and a noise the operator
heard that only the note tells (in varied words, word orders and typos, among remarks
that mean nothing). A model must see all three to beat one that sees fewer.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from multistage.models.schema import (
    CategoricalField,
    ImageSpec,
    NumericField,
    RecordSchema,
    TextSpec,
)

CLASSES = ["ok", "defect"]
# Each reading with what its sensor can report: a value outside is refused, not scored.
NUMERIC_FIELDS = {
    "temperature_c": (-50.0, 250.0),
    "pressure_bar": (0.0, 20.0),
    "line_speed_mps": (0.0, 10.0),
}
SUPPLIERS = ["acme", "globex", "initech", "umbrella"]
SHIFTS = ["day", "night", "weekend"]
CATEGORICAL_FIELDS = {"supplier": SUPPLIERS, "shift": SHIFTS}
IMAGE_SIZE = 32
NOTE_FIELD = "note"
NOTE_MAX_CHARS = 400
NOTE_MAX_TOKENS = 64

# Scale of each part of the label's logit. The process risk is spread wider than
# the crack's effect, so the tabular fields alone settle about half the records
# and the photo settles most of the rest.
_CRACK_EFFECT = 1.6
_NOISE_EFFECT = 1.6  # a noise heard on the line: as telling as a crack
_LABEL_NOISE = 0.25
_SUPPLIER_RISK = {"acme": -1.0, "globex": 0.0, "initech": 0.6, "umbrella": 1.3}
_SHIFT_RISK = {"day": -0.5, "night": 0.6, "weekend": 0.2}


@dataclass(frozen=True)
class Dataset:
    """Records as columns: tabular fields, photos (N, H, W, 1) uint8, labels (N,)."""

    tabular: pd.DataFrame
    images: np.ndarray
    notes: list[str]
    labels: np.ndarray
    has_crack: np.ndarray
    heard_noise: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def record(self, i: int) -> dict:
        """Record ``i`` as an HTTP request body (image as base64 PNG)."""
        row = self.tabular.iloc[i]
        body: dict = {name: round(float(row[name]), 4) for name in NUMERIC_FIELDS}
        body.update({name: str(row[name]) for name in CATEGORICAL_FIELDS})
        body["image"] = encode_png(self.images[i])
        body[NOTE_FIELD] = self.notes[i]
        return body


def generate(n: int, seed: int) -> Dataset:
    """``n`` records, identical for the same ``seed``."""
    rng = np.random.default_rng(seed)
    tabular = _tabular_fields(n, rng)
    has_crack = rng.random(n) < 0.5
    images = np.stack([_photo(crack, rng) for crack in has_crack])
    heard_noise = rng.random(n) < 0.5
    notes = [_note(noise, rng) for noise in heard_noise]
    logit = (
        _process_risk(tabular)
        + np.where(has_crack, _CRACK_EFFECT, -_CRACK_EFFECT)
        + np.where(heard_noise, _NOISE_EFFECT, -_NOISE_EFFECT)
        + rng.logistic(scale=_LABEL_NOISE, size=n)
    )
    labels = (logit > 0).astype(np.int64)
    return Dataset(
        tabular=tabular,
        images=images,
        notes=notes,
        labels=labels,
        has_crack=has_crack,
        heard_noise=heard_noise,
    )


def encode_png(image: np.ndarray) -> str:
    """A (H, W, 1) uint8 photo as a base64 PNG string."""
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 0], mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _tabular_fields(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "temperature_c": rng.normal(70.0, 8.0, n),
            "pressure_bar": rng.normal(1.5, 0.3, n),
            "line_speed_mps": rng.uniform(0.5, 2.0, n),
            "supplier": rng.choice(SUPPLIERS, n, p=[0.35, 0.3, 0.2, 0.15]),
            "shift": rng.choice(SHIFTS, n, p=[0.5, 0.35, 0.15]),
        }
    )


def _process_risk(tabular: pd.DataFrame) -> np.ndarray:
    temperature = (tabular["temperature_c"].to_numpy() - 70.0) / 8.0
    pressure = (tabular["pressure_bar"].to_numpy() - 1.5) / 0.3
    speed = tabular["line_speed_mps"].to_numpy()
    return (
        1.1 * temperature
        + 0.9 * pressure * (speed > 1.2)  # pressure only hurts on a fast line
        - 0.6 * pressure * (speed <= 1.2)
        + 0.8 * (speed - 1.25)
        + tabular["supplier"].map(_SUPPLIER_RISK).to_numpy()
        + tabular["shift"].map(_SHIFT_RISK).to_numpy()
    )


_NOISES = [
    "rattle", "rattling", "grinding", "grinding noise", "squeal", "squealing", "knocking",
    "a clunk", "whine", "high whine", "screech", "scraping sound", "metallic ping", "buzzing",
]  # fmt: skip
_HEARD = [
    "heard {noise}", "{noise} during the run", "operator reports {noise}",
    "{noise} from the spindle", "some {noise} at startup", "noticed {noise} near the press",
    "{noise} on the second pass", "{noise}, intermittent",
]  # fmt: skip
_QUIET = [
    "ran quiet", "no unusual sounds", "sounded normal", "smooth run", "nothing odd heard",
    "quiet cycle", "all sounds normal", "machine ran smoothly", "no complaints from operator",
]  # fmt: skip
_REMARKS = [
    "coffee machine broken again", "handover at 14:00", "gauge recalibrated last week",
    "label printer low on ink", "new operator on this line", "batch tagged for audit",
    "checked per checklist", "hot in the hall today", "forklift blocking aisle 3",
    "lunch break overran", "photo taken under new lamp", "tray 4 refilled", "see previous lot",
]  # fmt: skip


def _note(heard_noise: bool, rng: np.random.Generator) -> str:
    """An inspector's note: what was heard (or that nothing was), among other remarks."""
    if heard_noise:
        sound = str(rng.choice(_HEARD)).format(noise=rng.choice(_NOISES))
    else:
        sound = str(rng.choice(_QUIET))
    clauses = [sound, *rng.choice(_REMARKS, size=rng.integers(0, 3), replace=False)]
    rng.shuffle(clauses)
    note = str(rng.choice([". ", "; ", ", "])).join(clauses)
    return " ".join(_typo(word, rng) if rng.random() < 0.07 else word for word in note.split())


def _typo(word: str, rng: np.random.Generator) -> str:
    """A slip of the keyboard: two letters swapped, one dropped, or one doubled."""
    if len(word) < 3:
        return word
    i = int(rng.integers(0, len(word) - 1))
    kind = rng.integers(0, 3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _photo(has_crack: bool, rng: np.random.Generator) -> np.ndarray:
    """A washer on a brushed-metal background; a crack is a thin dark segment."""
    size = IMAGE_SIZE
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    image = rng.uniform(60, 100) + rng.uniform(-15, 15) * (xs / size)
    cy, cx = rng.uniform(12, 20, 2)
    radius = rng.uniform(9, 13)
    distance = np.hypot(ys - cy, xs - cx)
    washer = (distance < radius) & (distance > radius * rng.uniform(0.25, 0.4))
    image = np.where(washer, rng.uniform(150, 200), image)
    if has_crack:
        image = _draw_segment(image, cy, cx, radius, washer, rng)
    image = image + rng.normal(0, 12, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)[:, :, None]


def _draw_segment(image, cy, cx, radius, washer, rng):
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(0.6, 1.0) * radius
    start = np.array([cy, cx]) + rng.uniform(-0.5, 0.5, 2) * radius
    for t in np.linspace(0.0, length, int(length * 3)):
        y = int(round(start[0] + t * np.sin(angle)))
        x = int(round(start[1] + t * np.cos(angle)))
        if 0 <= y < image.shape[0] and 0 <= x < image.shape[1] and washer[y, x]:
            image[y, x] = rng.uniform(20, 50)
    return image


def record_schema(vocab_size: int, tokenizer: str = "tokenizer.json") -> RecordSchema:
    """The schema of these records, with one of them as the example request; the note is
    tokenized by ``tokenizer`` (relative to the schema's folder) of ``vocab_size`` ids."""
    numeric = [
        NumericField(name=name, minimum=low, maximum=high)
        for name, (low, high) in NUMERIC_FIELDS.items()
    ]
    categorical = [
        CategoricalField(name=name, categories=values)
        for name, values in CATEGORICAL_FIELDS.items()
    ]
    return RecordSchema(
        classes=CLASSES,
        fields=[*numeric, *categorical],
        image=ImageSpec(width=IMAGE_SIZE, height=IMAGE_SIZE, channels=1),
        texts=[
            TextSpec(
                field=NOTE_FIELD,
                max_chars=NOTE_MAX_CHARS,
                max_tokens=NOTE_MAX_TOKENS,
                tokenizer=tokenizer,
                vocab_size=vocab_size,
                description="The inspector's free-text note.",
            )
        ],
        example=generate(1, seed=2024).record(0),
    )


def without(schema: RecordSchema, *heavy_fields: str) -> RecordSchema:
    """``schema`` with some heavy modalities left out (the ablation's variants; an image-only
    or text-only deployment is the same schema with the other removed)."""
    changes: dict[str, Any] = {
        "texts": [t for t in schema.texts if t.field not in heavy_fields],
        "example": {k: v for k, v in schema.example.items() if k not in heavy_fields},
    }
    if schema.image is not None and schema.image.field in heavy_fields:
        changes["image"] = None
    return RecordSchema.model_validate(schema.model_dump() | changes)
