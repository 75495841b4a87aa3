"""Caser: personalized top-N sequential recommendation via convolutional sequence embedding
(Tang & Wang, WSDM 2018).

The embeddings of the user's last ``window`` (the paper's L) items form an ``L x d`` "image".
Horizontal filters of every height ``1..L`` (``n_h`` each) slide over it and are max-pooled over
time (union-level patterns); vertical filters (``n_v``) take weighted sums of the L rows
(point-level patterns). Their concatenation goes through dropout and a fully connected layer to
``z`` (d); ``[z; p_u]`` with the user embedding ``p_u`` is dotted with a separate output item matrix
plus an item bias. Training predicts the next ``targets`` (the paper's T) items from every position
of every training sequence.

Deviations from the paper, each stated: the loss is a full-softmax cross-entropy over all items,
one term per target (:func:`fusionrec.models.next_item.full_softmax_ce`), instead of binary
cross-entropy with 3 sampled negatives; positions with fewer than L earlier items are kept,
left-padded, instead of only full windows. A user unknown to training (a new user) has a zero user
vector, so their score comes from the convolutions over their history alone; so that these stand
alone, a share ``user_dropout`` of training samples have their user vector zeroed too (without it, a
new user's list on a block-structured toy set was no better than popularity). Events given at
inference (``extra_history``) enter the window, newest last.

Examples
--------
>>> import pandas as pd
>>> from fusionrec.data.schema import Dataset
>>> df = pd.DataFrame({"user": [0, 0, 0, 1, 1, 1], "item": ["a", "b", "c", "a", "b", "c"],
...                    "timestamp": [1, 2, 3, 1, 2, 3]})
>>> m = Caser(CaserConfig(hidden=8, epochs=2)).fit(Dataset.from_frames(df))
>>> m.score([0]).shape
(1, 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.models.history import History
from fusionrec.models.next_item import full_softmax_ce, gather_windows
from fusionrec.models.torch_base import SequenceRecommender
from fusionrec.training.trainer import TrainConfig


@dataclass(frozen=True)
class CaserConfig(TrainConfig):
    hidden: int = 64  # d: item and user embedding size
    window: int = 5  # L: the newest items read
    targets: int = 3  # T: next items predicted from each position while training
    horizontal: int = 16  # n_h: horizontal filters per height 1..L
    vertical: int = 4  # n_v: vertical filters
    dropout: float = 0.5
    user_dropout: float = 0.2  # share of training samples whose user vector is zeroed (as a new user's is)
    epochs: int = 30
    batch_size: int = 512  # positions per step
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden", "window", "targets", "horizontal", "vertical"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "user_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be in [0, 1), got {getattr(self, name)}")


class CaserNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, cfg: CaserConfig) -> None:
        super().__init__()
        d, L = cfg.hidden, cfg.window
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)  # 0 = padding
        self.user = nn.Embedding(n_users, d)
        # a horizontal filter of height h is a 1-d convolution over time with d input channels
        self.horizontal = nn.ModuleList(nn.Conv1d(d, cfg.horizontal, h) for h in range(1, L + 1))
        self.vertical = nn.Linear(L, cfg.vertical)  # = Conv2d(1, n_v, (L, 1)): a weighted sum of the L rows
        self.fc = nn.Linear(cfg.vertical * d + cfg.horizontal * L, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Embedding(n_items, 2 * d)  # output item vectors, for [z; p_u]
        self.out_bias = nn.Parameter(torch.zeros(n_items))
        for emb in (self.item, self.user, self.out):
            nn.init.normal_(emb.weight, std=1.0 / d)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: torch.Tensor, users: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """seq (B, L) item indices + 1, left-padded; users (B,); keep (B,) 1 or 0 (a zero user vector)
        -> [z; p_u; 1] (B, 2d + 1)."""
        e = self.item(seq).transpose(1, 2)  # (B, d, L)
        h = [F.relu(conv(e)).amax(dim=2) for conv in self.horizontal]  # L x (B, n_h)
        v = self.vertical(e).flatten(1)  # (B, d * n_v)
        z = F.relu(self.fc(self.drop(torch.cat([v, *h], dim=1))))  # (B, d)
        p = self.user(users) * keep[:, None]  # (B, d)
        return torch.cat([z, p, torch.ones_like(z[:, :1])], dim=1)  # (B, 2d + 1)

    def item_matrix(self) -> torch.Tensor:
        return torch.cat([self.out.weight, self.out_bias[:, None]], dim=1)  # (n_items, 2d + 1)


class Caser(SequenceRecommender):
    """Horizontal + vertical convolutions over the last L items, plus a user embedding."""

    name = "caser"
    Config = CaserConfig

    def build_network(self) -> nn.Module:
        return CaserNet(self.n_users_, self.n_items_, self.config)

    def prepare(self, train: Dataset) -> None:
        n = np.diff(self.seq_indptr_)
        users = np.repeat(np.arange(len(n), dtype=np.int64), np.maximum(n - 1, 0))
        # every position t = 1 .. n - 1 of every sequence is a sample (its first target is item t)
        first = np.repeat(np.cumsum(np.maximum(n - 1, 0)) - np.maximum(n - 1, 0), np.maximum(n - 1, 0))
        self.positions_ = np.stack([users, np.arange(len(users)) - first + 1], axis=1)  # (n_samples, 2): user, t

    def steps_per_epoch(self, train: Dataset) -> int:
        return -(-len(self.positions_) // self.config.batch_size)

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        c = self.config
        n = np.diff(self.seq_indptr_)
        order = rng.permutation(len(self.positions_))
        for s in range(0, len(order), c.batch_size):
            users, t = np.ascontiguousarray(self.positions_[order[s:s + c.batch_size]].T)
            size = np.minimum(t, c.window)
            seq = gather_windows(self.seq_indptr_, self.seq_items_, users, t - size, size, c.window)  # (B, L)
            size = np.minimum(n[users] - t, c.targets)
            target = gather_windows(self.seq_indptr_, self.seq_items_, users, t, size, c.targets, "right") - 1
            yield torch.from_numpy(users), torch.from_numpy(seq), torch.from_numpy(target)  # (B,), (B, L), (B, T)

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, seq, target = batch
        net = self.network_
        # a share of zeroed user vectors trains the convolutions to stand alone (as for new users)
        keep = (torch.rand(len(users), device=users.device) >= self.config.user_dropout).to(torch.float32)  # (B,)
        h = net(seq, users, keep)  # (B, 2d + 1)
        return full_softmax_ce(h, net.item_matrix(), target)  # target (B, T), -1 = none

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        net = self.network_.eval()
        seq = history.last(self.config.window)  # (b, L)
        known = users < self.n_users_  # new users get a zero user vector
        h = net(seq, torch.from_numpy(np.where(known, users, 0)), torch.from_numpy(known.astype(np.float32)))
        return (h @ net.item_matrix().T).numpy()  # (b, n_items)
