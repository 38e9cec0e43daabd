"""Stage one: the XGBoost model on the tabular fields, on CPU, answered at once."""

from __future__ import annotations

import asyncio
import time

import numpy as np
from ray import serve

from multistage.api import ModelInfo, Prediction
from multistage.model_io import load_booster, xgboost_probabilities


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32)
class TabularModel:
    def __init__(self, model_path: str, info: ModelInfo, classes: list[str]) -> None:
        # One thread per booster: a single row gains nothing from more, and on a
        # small machine extra OpenMP threads only fight the other replicas.
        self._booster = load_booster(model_path, threads=1)
        self._info = info
        self._classes = classes
        # Warm up before serving, so the first request is not the slow one.
        blank = np.zeros((1, self._booster.num_features()), dtype=np.float32)
        xgboost_probabilities(self._booster, blank)

    async def predict(self, features: np.ndarray) -> Prediction:
        """Stage one for one feature row ``[F]``."""
        (prediction,) = await self.predict_many(features[None, :])
        return prediction

    async def predict_many(self, features: np.ndarray) -> list[Prediction]:
        """Stage one for feature rows ``[B, F]``, in one vectorised XGBoost call."""
        started = time.perf_counter()
        # Off the event loop, so a large model never stalls the replica's other requests.
        probabilities = await asyncio.to_thread(xgboost_probabilities, self._booster, features)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return [
            Prediction.from_probabilities(p, self._classes, self._info, elapsed_ms)
            for p in probabilities
        ]
