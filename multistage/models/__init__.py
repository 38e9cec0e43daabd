"""The records a request carries and the models that answer them.

- ``schema``: which fields a record has and how each model sees them (one JSON file,
  written by training next to the models);
- ``records``: from request bytes to a validated ``Record``, or errors naming the field;
- ``io``: loading both models and feeding them, the same offline and served;
- ``stage_one``: the XGBoost model, run inside the ingress.
"""

from multistage.models.records import InvalidRecord, Record, RecordParser
from multistage.models.schema import RecordSchema
from multistage.models.stage_one import StageOneModel

__all__ = ["InvalidRecord", "Record", "RecordParser", "RecordSchema", "StageOneModel"]
