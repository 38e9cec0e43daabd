"""Loading the two models and feeding them, shared by training, serving and tests.

Keeping these in one place is what makes served predictions equal offline ones.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xgboost as xgb

from multistage.models.schema import RecordSchema
from multistage_client.models import ModelInfo, Prediction


def file_version(path: str | Path) -> str:
    """A short content hash: the version of a model file, whatever it is named."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def load_booster(path: str | Path, threads: int = 1) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(str(path))
    booster.set_param({"nthread": threads})
    return booster


def xgboost_probabilities(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    """Class probabilities ``[B, classes]`` from a binary or multi-class booster."""
    raw = booster.inplace_predict(features)
    if raw.ndim == 1:  # binary:logistic gives P(class 1) only
        return np.stack([1.0 - raw, raw], axis=1)
    return raw


def import_object(path: str) -> Any:
    """``"package.module:name"`` -> the object it names."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"expected 'module:name', got {path!r}")
    return getattr(importlib.import_module(module_name), attribute)


def load_heavy_module(
    factory: str, weights: str | Path, schema: RecordSchema, kwargs: dict[str, Any]
) -> torch.nn.Module:
    module = import_object(factory)(schema, **kwargs)
    # weights_only: a weights file is data, never code to unpickle.
    state = torch.load(weights, map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    return module.eval()


def heavy_inputs(
    features: np.ndarray,
    images: np.ndarray | None,
    texts: dict[str, np.ndarray],
    schema: RecordSchema,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """The stage-two module's keyword inputs, each modality by name: ``numeric`` ``[B,N]``
    float and ``categorical`` ``[B,K]`` long from feature rows ``[B,F]``; the image field
    ``[B,C,H,W]`` float in 0..1 from photos ``[B,H,W,C]`` uint8; each text field's token
    ids ``[B,T]`` long (0 pads)."""
    inputs = {
        "numeric": torch.from_numpy(features[:, schema.numeric_positions]).float().to(device),
        "categorical": torch.from_numpy(features[:, schema.categorical_positions])
        .long()
        .to(device),
    }
    if schema.image is not None:
        image = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        inputs[schema.image.field] = image.permute(0, 3, 1, 2).float().div_(255.0)
    for text in schema.texts:
        inputs[text.field] = torch.from_numpy(np.ascontiguousarray(texts[text.field])).to(device)
    return inputs


def prediction_from_probabilities(
    probabilities: np.ndarray,
    classes: list[str],
    model: ModelInfo,
    latency_ms: float,
    batch_size: int | None = None,
    modalities: list[str] | None = None,
) -> Prediction:
    """A model's class probabilities for one record, as the API answers them."""
    return Prediction(
        label=classes[int(np.argmax(probabilities))],
        scores={c: round(float(p), 6) for c, p in zip(classes, probabilities, strict=True)},
        model=model,
        latency_ms=round(latency_ms, 3),
        batch_size=batch_size,
        modalities=modalities,
    )
