"""A frozen modality vector per item (text, image, audio), projected to one token.

The vectors come from :mod:`fusionrec.encoders` (MiniLM sentence vectors of the item's text columns;
CNNs aligned to behaviour for images and audio), are encoded once and cached by content hash, and
never change while the model trains. Their LayerNorm statistics are therefore computed once, here:
a training step only applies the learned scale and shift and the projection, to the items it needs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fusionrec.models.fusion.sources.base import ItemSource

EPS = 1e-5


def normalised(x: np.ndarray) -> torch.Tensor:
    """Rows of ``x`` minus their mean over their standard deviation (LayerNorm without its affine part)."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float32))
    return (t - t.mean(1, keepdim=True)) / torch.sqrt(t.var(1, unbiased=False, keepdim=True) + EPS)


class VectorSource(ItemSource):
    """``LayerNorm(x_i) W + b`` for items with a vector, a learned "missing" token for the others.

    Parameters
    ----------
    name : the token's name (``text``, ``image``, ``image:<column>``, ...)
    vectors : (n_items, d) float32 frozen vectors; present : (n_items,) bool
    hidden : H

    Examples
    --------
    >>> s = VectorSource("text", np.eye(3, 4, dtype=np.float32), np.array([True, True, False]), hidden=8)
    >>> tok, present = s(torch.tensor([0, 2]))
    >>> tuple(tok.shape), present[:, 0].tolist()
    ((2, 1, 8), [True, False])
    """

    def __init__(self, name: str, vectors: np.ndarray, present: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.names = [name]
        d = int(vectors.shape[1])
        self.register_buffer("x", normalised(vectors), persistent=False)  # (n_items, d), rebuilt from content
        self.register_buffer("present", torch.from_numpy(np.asarray(present, dtype=bool)), persistent=False)
        self.scale = nn.Parameter(torch.ones(d))
        self.shift = nn.Parameter(torch.zeros(d))
        self.proj = nn.Linear(d, hidden)
        self.missing = nn.Parameter(torch.zeros(hidden))
        nn.init.normal_(self.proj.weight, std=0.02 * d ** -0.5)  # a token at the ID embeddings' scale
        nn.init.zeros_(self.proj.bias)

    def forward(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """items (n,) -> tokens (n, 1, H), presence (n, 1)."""
        p = self.present[items]
        tok = self.proj(self.x[items] * self.scale + self.shift)  # (n, H)
        return torch.where(p[:, None], tok, self.missing)[:, None], p[:, None]


def vector_sources(content: object, kinds: tuple[str, ...], hidden: int) -> list[VectorSource]:
    """One source per frozen modality of ``content`` (:class:`~fusionrec.encoders.ContentFeatures`) whose
    kind (``text``, ``image``, ``audio``; ``image:<column>`` counts as image) is in ``kinds``."""
    vectors: dict[str, np.ndarray] = content.vectors  # type: ignore[attr-defined]
    present: dict[str, np.ndarray] = content.present  # type: ignore[attr-defined]
    return [VectorSource(m, vectors[m], present[m], hidden) for m in vectors if m.split(":")[0] in kinds]
