"""Categorical, multi-valued and numeric columns of a row (an item, or a user's profile) as one token.

A categorical column is an embedding of its code; a multi-valued column (genres, tags) is the mean
embedding of its codes, computed from its CSR layout by ``EmbeddingBag`` (no padded
``(rows, width, H)`` tensor, which a column of up to hundreds of tags per row made the most costly
step of training); numeric columns (standardised, with missing flags) enter through a linear layer.
The parts are summed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fusionrec.models.fusion.sources.base import ItemSource


class AttributeTokens(nn.Module):
    """One token per row of a :class:`~fusionrec.encoders.ContentFeatures`' attribute columns.

    ``forward(rows)`` -> ``(n, H)`` tokens and ``(n,)`` whether the row has any known attribute.
    ``empty`` is True when the content has no attribute column (then there is nothing to build).
    """

    def __init__(self, content: Any, hidden: int) -> None:
        super().__init__()
        self.cat_names = list(content.categorical)
        self.multi_names = list(content.multi)
        self.n_numeric = int(content.numeric.shape[1])
        self.empty = not (self.cat_names or self.multi_names or self.n_numeric)
        self.cat = nn.ModuleList()
        for j, c in enumerate(self.cat_names):  # buffers by position: column names may hold any character
            self.register_buffer(f"c{j}", torch.from_numpy(np.asarray(content.categorical[c], np.int64)), persistent=False)
            self.cat.append(nn.Embedding(content.cardinality(c), hidden, padding_idx=0))
        self.multi = nn.ModuleList()
        for j, c in enumerate(self.multi_names):
            indptr, codes = content.multi[c]
            self.register_buffer(f"mp{j}", torch.from_numpy(np.asarray(indptr, np.int64)), persistent=False)
            self.register_buffer(f"mc{j}", torch.from_numpy(np.asarray(codes, np.int64)), persistent=False)
            self.multi.append(nn.EmbeddingBag(content.cardinality(c), hidden, mode="mean", padding_idx=0))
        if self.n_numeric:
            num = np.concatenate([content.numeric, content.numeric_missing], axis=1).astype(np.float32)
            self.register_buffer("num", torch.from_numpy(num), persistent=False)
            self.numeric = nn.Linear(num.shape[1], hidden)
        for m in [*self.cat, *self.multi]:
            nn.init.normal_(m.weight, std=0.02)
            with torch.no_grad():
                m.weight[0].zero_()
        if self.n_numeric:
            nn.init.normal_(self.numeric.weight, std=0.02 * self.numeric.in_features ** -0.5)
            nn.init.zeros_(self.numeric.bias)

    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts: list[torch.Tensor] = []
        known: list[torch.Tensor] = []
        for j in range(len(self.cat_names)):
            codes = getattr(self, f"c{j}")[rows]
            parts.append(self.cat[j](codes))
            known.append(codes > 0)
        for j in range(len(self.multi_names)):
            indptr, codes = getattr(self, f"mp{j}"), getattr(self, f"mc{j}")
            start, count = indptr[rows], indptr[rows + 1] - indptr[rows]  # (n,)
            flat = torch.repeat_interleave(start - torch.cumsum(count, 0) + count, count) + torch.arange(
                int(count.sum()), device=rows.device)
            offsets = torch.cumsum(count, 0) - count
            parts.append(self.multi[j](codes[flat], offsets))  # (n, H): mean of each row's codes, 0 for none
            known.append(count > 0)
        if self.n_numeric:
            parts.append(self.numeric(self.num[rows]))
            known.append(torch.ones(len(rows), dtype=torch.bool, device=rows.device))
        return torch.stack(parts).sum(0), torch.stack(known).any(0)


class AttributeSource(ItemSource):
    """Item attribute columns as one token named ``attributes``.

    Examples
    --------
    >>> from fusionrec.data import synthetic
    >>> from fusionrec.encoders import item_content
    >>> ds = synthetic.generate(synthetic.SyntheticConfig(n_users=20, n_items=10, media=False))
    >>> s = AttributeSource(item_content(ds, modalities=["attributes"]), hidden=8)
    >>> tuple(s(torch.arange(10))[0].shape)
    (10, 1, 8)
    """

    names = ["attributes"]

    def __init__(self, content: Any, hidden: int) -> None:
        super().__init__()
        self.tokens = AttributeTokens(content, hidden)

    def forward(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok, present = self.tokens(items)
        return tok[:, None], present[:, None]
