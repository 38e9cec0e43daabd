"""The demo stage-two network: a small CNN on the photo plus an MLP on the tabular fields.

Any stage-two model follows the same contract (see README, "Serve your own models"):
a factory ``(schema, **kwargs) -> torch.nn.Module`` whose module maps
``(image [B,C,H,W] float in 0..1, numeric [B,N] float, categorical [B,K] long)``
to class logits ``[B, len(schema.classes)]``.
"""

from __future__ import annotations

import torch
from torch import nn

from multistage.schema import RecordSchema


class DefectNet(nn.Module):
    def __init__(
        self,
        channels: int,
        num_numeric: int,
        category_sizes: list[int],
        num_classes: int,
        width: int = 32,
    ) -> None:
        super().__init__()
        self.photo = nn.Sequential(
            nn.Conv2d(channels, width // 2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width // 2, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            # A crack is small: max-pooling keeps a local finding that averaging would wash out.
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.embeddings = nn.ModuleList(nn.Embedding(size, 4) for size in category_sizes)
        # Set by training from the training data; saved with the weights.
        self.register_buffer("numeric_mean", torch.zeros(num_numeric))
        self.register_buffer("numeric_std", torch.ones(num_numeric))
        tabular_width = num_numeric + 4 * len(category_sizes)
        self.tabular = nn.Sequential(nn.Linear(tabular_width, width), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(3 * width, width), nn.ReLU(), nn.Linear(width, num_classes)
        )

    def forward(
        self, image: torch.Tensor, numeric: torch.Tensor, categorical: torch.Tensor
    ) -> torch.Tensor:
        numeric = (numeric - self.numeric_mean) / self.numeric_std
        embedded = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        tabular = self.tabular(torch.cat([numeric, *embedded], dim=1))
        return self.head(torch.cat([self.photo(image), tabular], dim=1))


def build_model(schema: RecordSchema, width: int = 48) -> DefectNet:
    """The factory named in the app config: sizes the network from the schema."""
    return DefectNet(
        channels=schema.image.channels,
        num_numeric=len(schema.numeric_fields),
        category_sizes=[len(f.categories) for f in schema.categorical_fields],
        num_classes=len(schema.classes),
        width=width,
    )
