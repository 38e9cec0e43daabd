"""Seeded generator of synthetic part-inspection records.

Each record is a machined part: process readings (numeric), supplier and shift
(categorical) and a 32x32 grayscale photo. The label ("defect" or "ok") mixes a
process risk that the tabular fields reveal with a crack that only the photo
shows, so a model that sees the photo must beat one that does not.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from multistage.schema import CategoricalField, ImageSpec, NumericField, RecordSchema

CLASSES = ["ok", "defect"]
NUMERIC_FIELDS = ["temperature_c", "pressure_bar", "line_speed_mps"]
SUPPLIERS = ["acme", "globex", "initech", "umbrella"]
SHIFTS = ["day", "night", "weekend"]
CATEGORICAL_FIELDS = {"supplier": SUPPLIERS, "shift": SHIFTS}
IMAGE_SIZE = 32

# Scale of each part of the label's logit. The process risk is spread wider than
# the crack's effect, so the tabular fields alone settle about half the records
# and the photo settles most of the rest.
_CRACK_EFFECT = 1.6
_LABEL_NOISE = 0.25
_SUPPLIER_RISK = {"acme": -1.0, "globex": 0.0, "initech": 0.6, "umbrella": 1.3}
_SHIFT_RISK = {"day": -0.5, "night": 0.6, "weekend": 0.2}


@dataclass(frozen=True)
class Dataset:
    """Records as columns: tabular fields, photos (N, H, W, 1) uint8, labels (N,)."""

    tabular: pd.DataFrame
    images: np.ndarray
    labels: np.ndarray
    has_crack: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def record(self, i: int) -> dict:
        """Record ``i`` as an HTTP request body (image as base64 PNG)."""
        row = self.tabular.iloc[i]
        body: dict = {name: round(float(row[name]), 4) for name in NUMERIC_FIELDS}
        body.update({name: str(row[name]) for name in CATEGORICAL_FIELDS})
        body["image"] = encode_png(self.images[i])
        return body


def generate(n: int, seed: int) -> Dataset:
    """``n`` records, identical for the same ``seed``."""
    rng = np.random.default_rng(seed)
    tabular = _tabular_fields(n, rng)
    has_crack = rng.random(n) < 0.5
    images = np.stack([_photo(crack, rng) for crack in has_crack])
    logit = (
        _process_risk(tabular)
        + np.where(has_crack, _CRACK_EFFECT, -_CRACK_EFFECT)
        + rng.logistic(scale=_LABEL_NOISE, size=n)
    )
    labels = (logit > 0).astype(np.int64)
    return Dataset(tabular=tabular, images=images, labels=labels, has_crack=has_crack)


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


def record_schema() -> RecordSchema:
    """The schema of these records, with one of them as the example request."""
    numeric = [NumericField(name=name) for name in NUMERIC_FIELDS]
    categorical = [
        CategoricalField(name=name, categories=values)
        for name, values in CATEGORICAL_FIELDS.items()
    ]
    return RecordSchema(
        classes=CLASSES,
        fields=[*numeric, *categorical],
        image=ImageSpec(width=IMAGE_SIZE, height=IMAGE_SIZE, channels=1),
        example=generate(1, seed=2024).record(0),
    )
