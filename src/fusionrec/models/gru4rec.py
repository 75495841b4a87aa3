"""GRU4Rec: session-based recommendations with recurrent neural networks (Hidasi et al., ICLR 2016).

A GRU reads the user's item sequence (embedded, with dropout) and its state after each item is
projected and dotted with the item embeddings (shared between input and output) to score the next
item. Sessions are users' whole time-ordered histories here.

Training follows the other sequence models (:mod:`fusionrec.models.next_item`), not the paper's
session-parallel mini-batches with a pairwise ranking loss (BPR, TOP1) over sampled negatives:
each window of up to ``max_len + 1`` events is read once, and every position is trained, with a
full-softmax cross-entropy over all items, to predict each of the next ``targets`` items, leaving the
items seen earlier in the window out of its softmax (``exclude_seen``). Windows are right-padded,
so the state at a real position never depends on padding.

Defaults, chosen on the ml-100k leave-one-out valid set (one seed): ``max_len=50``, ``targets=3``,
``dropout=0.2`` and ``lr=3e-3`` (valid NDCG@10 0.123 against 0.110 at ``lr=1e-3``); item
embeddings start at std ``hidden**-0.5`` (at 0.02 the GRU sat on a plateau for several epochs).
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
import torch
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.models.history import History
from fusionrec.models.next_item import (
    WindowBatches,
    right_align,
    sampled_softmax_ce,
    window_ce,
)
from fusionrec.models.torch_base import SequenceRecommender
from fusionrec.training.trainer import TrainConfig


@dataclass(frozen=True)
class GRU4RecConfig(TrainConfig):
    hidden: int = 64  # item embedding and GRU state size
    layers: int = 1
    max_len: int = 50  # newest events read per user; also the training window
    dropout: float = 0.2  # on the input embeddings and the GRU outputs
    loss: str = "ce"  # "ce" (full softmax) or "sampled" (in-batch + uniform negatives)
    negatives: int = 256  # uniform negatives per batch for loss="sampled"
    targets: int = 3  # loss="ce": each position is trained to predict each of the next `targets` items
    exclude_seen: bool = True  # loss="ce": leave the items seen earlier in the window out of the softmax
    epochs: int = 40
    batch_size: int = 32  # windows per step
    lr: float = 3e-3
    warmup_steps: int = 100
    patience: int = 0  # never stop early: the cosine schedule over `epochs` ends training; the best valid epoch is kept

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
    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        self.network_.eval()
        seq, n = right_align(history.last(self.config.max_len))  # (b, L), (b,)
        h = self.network_(seq)  # (b, L, H)
        last = h[torch.arange(len(n)), (n - 1).clamp(min=0)]  # (b, H): the state after the newest item
        return (last @ self.network_.item_matrix().T).numpy()  # (b, n_items)
