"""The item ID embedding: what a warm item's behaviour taught the model (SASRec's item vector)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fusionrec.models.fusion.sources.base import ItemSource


class IdSource(ItemSource):
    """A learned vector per item seen in training; unseen items (and items hidden by ID dropout) have none.

    Its token is not fused with the content tokens by attention: the item tower mixes it with their
    fused content vector (see :mod:`fusionrec.models.fusion.item_tower`), so with the content's share
    at 0 an item vector is exactly this embedding, as in SASRec.

    Examples
    --------
    >>> s = IdSource(np.array([True, False, True]), hidden=4)
    >>> s(torch.tensor([0, 1]))[1][:, 0].tolist()
    [True, False]
    """

    names = ["id"]

    def __init__(self, seen: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(len(seen), hidden)
        nn.init.normal_(self.emb.weight, std=0.02)
        self.register_buffer("seen", torch.from_numpy(np.asarray(seen, dtype=bool)), persistent=False)

    def forward(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """items (n,) -> the embeddings (n, 1, H), and whether each item has a trained one (n, 1)."""
        return self.emb(items)[:, None], self.seen[items][:, None]
