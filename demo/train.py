"""Train both demo models from scratch and write them, with their schema, to one folder.

    python -m demo.train --out artifacts [--no-ablation]

Writes ``tokenizer.json`` (the note's tokenizer, fitted on the training notes),
``tabular.ubj`` (XGBoost), ``heavy.pt`` (PyTorch weights: photo, note and tabular
fields), ``schema.json`` and ``metrics.json`` (held-out accuracy and AUC of each stage,
per-item inference cost). The ablation also trains stage two on the photo only and on
the note only (both with the tabular fields), scores them on the same held-out records,
and writes each with its schema (``heavy_image.pt`` + ``schema_image.json``,
``heavy_note.pt`` + ``schema_note.json``): image-only and text-only deployments.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import xgboost as xgb
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from tqdm import tqdm

from demo.data import NOTE_FIELD, Dataset, generate, record_schema, without
from demo.net import build_model
from multistage.models.io import heavy_inputs, load_booster, xgboost_probabilities
from multistage.models.schema import RecordSchema

CPU = torch.device("cpu")
VOCAB_SIZE = 512
# Id 0 pads: the model reads it as "no token here".
SPECIAL_TOKENS = ["[PAD]", "[UNK]"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts"))
    parser.add_argument("--train-size", type=int, default=12_000)
    parser.add_argument("--test-size", type=int, default=3_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-ablation", dest="ablation", action="store_false", help="Skip the variants."
    )
    args = parser.parse_args()
    metrics = train_all(
        args.out, args.train_size, args.test_size, args.epochs, args.seed, args.ablation
    )
    print(json.dumps(metrics, indent=2))


def train_all(
    out: Path, train_size: int, test_size: int, epochs: int, seed: int, ablation: bool = True
) -> dict:
    """Fit both models, write every artifact to ``out``, return the held-out metrics."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    train, test = generate(train_size, seed), generate(test_size, seed + 1)
    tokenizer = fit_tokenizer(train.notes)
    tokenizer.save(str(out / "tokenizer.json"))
    schema = record_schema(vocab_size=tokenizer.get_vocab_size())
    (out / "schema.json").write_text(schema.model_dump_json(indent=2))
    schema = RecordSchema.load(out / "schema.json")  # as served: the tokenizer's path resolved
    train_x, test_x = feature_matrix(train, schema), feature_matrix(test, schema)

    booster = train_tabular(train_x, train.labels, schema)
    booster.save_model(str(out / "tabular.ubj"))
    net = train_heavy(train_x, train, schema, epochs)
    torch.save(net.state_dict(), out / "heavy.pt")

    booster = load_booster(out / "tabular.ubj")
    tabular_scores = xgboost_probabilities(booster, test_x)[:, 1]
    heavy_scores = heavy_probabilities(net, test_x, test, schema)[:, 1]
    metrics = {
        "train_records": train_size,
        "test_records": test_size,
        "stage_one": evaluate(tabular_scores, test.labels),
        "stage_two": evaluate(heavy_scores, test.labels),
    }
    if ablation:
        metrics["ablation"] = {"stage_one (tabular)": metrics["stage_one"]}
        for name, variant in [
            ("image", without(schema, NOTE_FIELD)),
            ("note", without(schema, "image")),
        ]:
            variant_net = train_heavy(train_x, train, variant, epochs)
            torch.save(variant_net.state_dict(), out / f"heavy_{name}.pt")
            (out / f"schema_{name}.json").write_text(_portable(variant).model_dump_json(indent=2))
            scores = heavy_probabilities(variant_net, test_x, test, variant)[:, 1]
            metrics["ablation"][f"stage two: tabular + {name}"] = evaluate(scores, test.labels)
        metrics["ablation"]["stage two: tabular + image + note"] = metrics["stage_two"]
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    metrics["per_item_ms"] = inference_cost(booster, net, test_x, test, schema)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def fit_tokenizer(notes: list[str], vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """A byte-pair tokenizer fitted on the notes: a typo splits into known pieces, not one
    unknown word."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(notes, trainer)
    return tokenizer


def _portable(schema: RecordSchema) -> RecordSchema:
    """``schema`` as written beside the models: tokenizer paths relative to its folder."""
    texts = [t.model_copy(update={"tokenizer": Path(t.tokenizer).name}) for t in schema.texts]
    return schema.model_copy(update={"texts": texts})


def feature_matrix(data: Dataset, schema: RecordSchema) -> np.ndarray:
    # Row by row through the schema: the very encoding the service applies to a request.
    return np.stack([schema.feature_row(row) for row in data.tabular.to_dict("records")])


def train_tabular(x: np.ndarray, labels: np.ndarray, schema: RecordSchema) -> xgb.Booster:
    matrix = xgb.DMatrix(
        x,
        label=labels,
        feature_names=[f.name for f in schema.fields],
        feature_types=schema.xgboost_feature_types,
        enable_categorical=True,
    )
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "max_depth": 4,
        "eta": 0.1,
        "tree_method": "hist",
        "nthread": 2,
    }
    rounds = 300
    with tqdm(total=rounds, desc="stage one (xgboost)", unit="round") as bar:
        return xgb.train(params, matrix, rounds, callbacks=[_ProgressBar(bar)])


class _ProgressBar(xgb.callback.TrainingCallback):
    def __init__(self, bar: tqdm) -> None:
        super().__init__()
        self._bar = bar

    def after_iteration(self, model, epoch, evals_log) -> bool:
        self._bar.update(1)
        return False


def train_heavy(
    x: np.ndarray, data: Dataset, schema: RecordSchema, epochs: int, batch_size: int = 128
) -> torch.nn.Module:
    net = build_model(schema)
    notes = _Rows(note_ids(data, schema))
    numeric = torch.from_numpy(x[:, schema.numeric_positions]).float()
    net.numeric_mean.copy_(numeric.mean(dim=0))
    net.numeric_std.copy_(numeric.std(dim=0).clamp_min(1e-6))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    labels = torch.from_numpy(data.labels)
    steps = (len(labels) + batch_size - 1) // batch_size
    net.train()
    what = "+".join(schema.modalities)
    with tqdm(total=epochs * steps, desc=f"stage two ({what})", unit="batch", mininterval=1) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(labels)).numpy()
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                inputs = heavy_inputs(x[batch], data.images[batch], notes[batch], schema, CPU)
                loss = torch.nn.functional.cross_entropy(net(**inputs), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return net.eval()


def note_ids(data: Dataset, schema: RecordSchema) -> dict[str, np.ndarray]:
    """Each text field's token ids ``[N, max_tokens]``, as the service makes them."""
    ids = {}
    for spec in schema.texts:
        tokenizer = Tokenizer.from_file(spec.tokenizer)
        rows = np.zeros((len(data), spec.max_tokens), dtype=np.int64)
        for i, encoding in enumerate(tokenizer.encode_batch(data.notes)):
            tokens = encoding.ids[: spec.max_tokens]
            rows[i, : len(tokens)] = tokens
        ids[spec.field] = rows
    return ids


class _Rows:
    """Rows of every text field's ids, indexed like an array (for batches)."""

    def __init__(self, ids: dict[str, np.ndarray]) -> None:
        self._ids = ids

    def __getitem__(self, rows) -> dict[str, np.ndarray]:
        return {field: ids[rows] for field, ids in self._ids.items()}


@torch.inference_mode()
def heavy_probabilities(
    net: torch.nn.Module, x: np.ndarray, data: Dataset, schema: RecordSchema
) -> np.ndarray:
    inputs = heavy_inputs(x, data.images, note_ids(data, schema), schema, CPU)
    return torch.softmax(net(**inputs), dim=1).numpy()


def evaluate(scores: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "accuracy": round(float(((scores > 0.5) == labels).mean()), 4),
        "auc": round(auc(scores, labels), 4),
    }


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the probability that a positive outranks a negative (Mann-Whitney U)."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores)] = np.arange(1, len(scores) + 1)
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def inference_cost(booster, net, x, data: Dataset, schema, repeats: int = 200) -> dict:
    """Milliseconds per item, in process: one record at a time, and in a batch of 64."""
    notes = _Rows(note_ids(data, schema))

    def per_item(predict, batch: int) -> float:
        started = time.perf_counter()
        for i in range(repeats):
            predict(slice(i % 32, i % 32 + batch))
        return round((time.perf_counter() - started) * 1000 / (repeats * batch), 4)

    def stage_one(rows):
        return xgboost_probabilities(booster, x[rows])

    @torch.inference_mode()
    def stage_two(rows):
        inputs = heavy_inputs(x[rows], data.images[rows], notes[rows], schema, CPU)
        return torch.softmax(net(**inputs), dim=1)

    one = {"stage_one": per_item(stage_one, 1), "stage_two": per_item(stage_two, 1)}
    batched = {"stage_one": per_item(stage_one, 64), "stage_two": per_item(stage_two, 64)}
    return {"single": one, "batch_of_64": batched}


if __name__ == "__main__":
    main()
