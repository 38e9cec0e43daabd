"""The demo stage-two network: an MLP on the tabular fields, fused with a small CNN on the
photo and a small text encoder on each text field, whichever the schema declares.

Any stage-two model follows the same contract (see docs/configuration.md, "Serve your own models"):
a factory ``(schema, **kwargs) -> torch.nn.Module`` whose module takes its inputs by
name, as keywords: ``numeric`` ``[B,N]`` float, ``categorical`` ``[B,K]`` long, the
schema's image field ``[B,C,H,W]`` float in 0..1, and each text field's token ids
``[B,T]`` long (0 pads); it returns class logits ``[B, len(schema.classes)]``.
"""

from __future__ import annotations

import torch
from torch import nn

from multistage.models.schema import RecordSchema

TOKEN_WIDTH = 32


class PhotoEncoder(nn.Sequential):
    def __init__(self, channels: int, width: int) -> None:
        super().__init__(
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


class TextEncoder(nn.Module):
    """Token embeddings, a convolution over neighbouring tokens (a phrase, a typo's
    pieces), and the strongest finding anywhere in the text."""

    def __init__(self, vocab_size: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, TOKEN_WIDTH, padding_idx=0)
        self.phrases = nn.Conv1d(TOKEN_WIDTH, width, 3, padding=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        found = torch.relu(self.phrases(self.embed(ids).transpose(1, 2)))
        # Padding finds nothing; a text of padding only (none given) encodes as zeros.
        return found.masked_fill((ids == 0).unsqueeze(1), 0.0).amax(dim=2)


class DefectNet(nn.Module):
    def __init__(
        self,
        num_numeric: int,
        category_sizes: list[int],
        num_classes: int,
        image: tuple[str, int] | None = None,
        texts: dict[str, int] | None = None,
        width: int = 32,
    ) -> None:
        """``image``: (field, channels) or None; ``texts``: field -> vocabulary size."""
        super().__init__()
        self.image_field = image[0] if image else None
        self.photo = PhotoEncoder(image[1], width) if image else None
        self.texts = nn.ModuleDict(
            {field: TextEncoder(vocab, width) for field, vocab in (texts or {}).items()}
        )
        self.embeddings = nn.ModuleList(nn.Embedding(size, 4) for size in category_sizes)
        # Set by training from the training data; saved with the weights.
        self.register_buffer("numeric_mean", torch.zeros(num_numeric))
        self.register_buffer("numeric_std", torch.ones(num_numeric))
        tabular_width = num_numeric + 4 * len(category_sizes)
        self.tabular = nn.Sequential(nn.Linear(tabular_width, width), nn.ReLU())
        fused = width + (2 * width if image else 0) + width * len(self.texts)
        self.head = nn.Sequential(nn.Linear(fused, width), nn.ReLU(), nn.Linear(width, num_classes))

    def forward(
        self, numeric: torch.Tensor, categorical: torch.Tensor, **heavy: torch.Tensor
    ) -> torch.Tensor:
        numeric = (numeric - self.numeric_mean) / self.numeric_std
        embedded = [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        parts = [self.tabular(torch.cat([numeric, *embedded], dim=1))]
        if self.photo is not None:
            parts.append(self.photo(heavy[self.image_field]))
        parts += [encoder(heavy[field]) for field, encoder in self.texts.items()]
        return self.head(torch.cat(parts, dim=1))


def build_model(schema: RecordSchema, width: int = 48) -> DefectNet:
    """The factory named in the app config: sized from the schema, and seeing the heavy
    modalities it declares (an image, text fields, or both)."""
    image = (schema.image.field, schema.image.channels) if schema.image else None
    return DefectNet(
        num_numeric=len(schema.numeric_fields),
        category_sizes=[len(f.categories) for f in schema.categorical_fields],
        num_classes=len(schema.classes),
        image=image,
        texts={t.field: t.vocab_size for t in schema.texts},
        width=width,
    )
