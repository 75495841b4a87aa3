"""GRU4Rec: session-based recommendations with recurrent neural networks (Hidasi et al., ICLR 2016).

A GRU reads the user's item sequence (embedded, with dropout) and its state after each item is
projected and dotted with the item embeddings (shared between input and output) to score the next
item. Sessions are users' whole time-ordered histories here. Training follows the other sequence
models (:mod:`fusionrec.models.next_item`): each window of up to ``max_len + 1`` events is read once
and the next item is predicted at every position with a full-softmax cross-entropy, the loss that
Hidasi & Karatzoglou (CIKM 2018) found to work as well as their BPR-max on small catalogues; the
paper's session-parallel mini-batches become batches of whole windows.

Windows are right-padded for the GRU, so the state at a real position never depends on padding.
Events given at inference (``extra_history``) are appended to the sequence, newest last.

Examples
--------
>>> import pandas as pd
>>> from fusionrec.data.schema import Dataset
>>> df = pd.DataFrame({"user": [0, 0, 0, 1, 1, 1], "item": ["a", "b", "c", "a", "b", "c"],
...                    "timestamp": [1, 2, 3, 1, 2, 3]})
>>> m = GRU4Rec(GRU4RecConfig(hidden=8, max_len=4, epochs=2)).fit(Dataset.from_frames(df))
>>> m.score([0]).shape
(1, 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.models.next_item import (
    WindowBatches,
    right_align,
    sampled_softmax_ce,
    scoring_sequences,
    window_ce,
)
from fusionrec.models.torch_base import SequenceRecommender
from fusionrec.training.trainer import TrainConfig


@dataclass(frozen=True)
class GRU4RecConfig(TrainConfig):
    hidden: int = 64  # item embedding and GRU state size
    layers: int = 1
    max_len: int = 200  # newest events read per user
    dropout: float = 0.3  # on the input embeddings and the GRU outputs
    loss: str = "ce"  # "ce" (full softmax) or "sampled" (in-batch + uniform negatives)
    negatives: int = 256  # uniform negatives per batch for loss="sampled"
    targets: int = 1  # loss="ce": the next `targets` items are each a target of a position
    exclude_seen: bool = True  # loss="ce": leave the items seen earlier in the window out of the softmax
    epochs: int = 200
    batch_size: int = 128  # windows per step
    lr: float = 1e-3
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden", "layers", "max_len", "negatives", "targets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{type(self).__name__}.dropout must be in [0, 1), got {self.dropout}")
        if self.loss not in ("ce", "sampled"):
            raise ValueError(f"{type(self).__name__}.loss must be 'ce' or 'sampled', got {self.loss!r}")


class GRU4RecNet(nn.Module):
    def __init__(self, n_items: int, cfg: GRU4RecConfig) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # 0 = padding
        self.gru = nn.GRU(cfg.hidden, cfg.hidden, cfg.layers, batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)
        nn.init.normal_(self.item.weight, std=cfg.hidden**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, L) item indices + 1, RIGHT-padded -> states (B, L, H); a real position's state
        depends only on the items up to it."""
        x = self.drop(self.item(seq))  # (B, L, H)
        h, _ = self.gru(x)  # (B, L, H)
        return self.out(self.drop(h))

    def item_matrix(self) -> torch.Tensor:
        return self.item.weight[1:]  # (n_items, H)


class GRU4Rec(SequenceRecommender):
    """A GRU over the user's item sequence; score = projected last state . item embedding."""

    name = "gru4rec"
    Config = GRU4RecConfig

    def build_network(self) -> nn.Module:
        return GRU4RecNet(self.n_items_, self.config)

    def prepare(self, train: Dataset) -> None:
        self.windows_ = WindowBatches(self.seq_indptr_, self.seq_items_, self.config.max_len)

    def steps_per_epoch(self, train: Dataset) -> int:
        return self.windows_.steps(self.config.batch_size)

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[torch.Tensor]:
        return self.windows_.batches(self.config.batch_size, rng, align="right")  # (B, W)

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        c = self.config
        h = self.network_(batch[:, :-1])  # (B, W - 1, H): predict what follows every position
        items = self.network_.item_matrix()  # (n_items, H)
        if c.loss == "ce":
            return window_ce(h, batch, items, targets=c.targets, exclude_seen=c.exclude_seen)
        target = batch[:, 1:]
        keep = target > 0  # right padding: a real target always follows a real input
        return sampled_softmax_ce(h[keep], items, target[keep] - 1, c.negatives, self.n_items_)

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        self.network_.eval()
        seq, n = right_align(scoring_sequences(self, users, history, self.config.max_len))  # (b, L), (b,)
        h = self.network_(seq)  # (b, L, H)
        last = h[torch.arange(len(n)), (n - 1).clamp(min=0)]  # (b, H): the state after the newest item
        return (last @ self.network_.item_matrix().T).numpy()  # (b, n_items)
