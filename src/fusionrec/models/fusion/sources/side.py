"""Side events (behaviours other than the interactions, e.g. the artists a lastfm-2k user tagged).

Two uses, both learned: a **token** in front of the history (the mean vector of the user's side-event
items, projected), and a **boost** of those items' scores, ``w_u = softplus(a . log1p([side events,
history length]) / 5 + b)`` per user, added where the user has a side event (a sparse source next
to the dot product; retrieval re-scores the user's own side items). Only the training view of the
side events is read: a split removes those on held-out pairs and after the split time
(:mod:`fusionrec.data.views`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.graph.social import normalize_rows
from fusionrec.models.base import take_rows
from fusionrec.models.fusion.sources.base import UserSource, csr_from_state, csr_state, sparse_rows
from fusionrec.models.fusion.sources.social import has_rows


def side_items(train: Dataset) -> sp.csr_matrix | None:
    """(n_users, n_items) binary matrix of the training view's side events, or None without any."""
    if train.side_events is None or not len(train.side_events):
        return None
    m = sp.csr_matrix(train.side_matrix(), dtype=np.float32)
    m.data[:] = 1.0
    return m


class SideSource(UserSource):
    name = "side"

    def __init__(self, items: sp.csr_matrix, train_lengths: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.items = sp.csr_matrix(items, dtype=np.float32)  # (n_users, n_items) binary
        self.dist = sp.csr_matrix(normalize_rows(self.items), dtype=np.float32)  # rows sum to 1
        self.train_lengths = np.asarray(train_lengths, dtype=np.float32)  # (n_users,) training events
        self.proj = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden))
        self.none = nn.Parameter(torch.zeros(hidden))
        nn.init.normal_(self.proj[1].weight, std=0.02)
        nn.init.zeros_(self.proj[1].bias)
        self.weight = nn.Linear(2, 1)
        with torch.no_grad():  # start at w_u = 1 for every user
            self.weight.weight.zero_()
            self.weight.bias.fill_(float(np.log(np.expm1(1.0))))

    def forward(self, users: np.ndarray, vectors: torch.Tensor) -> torch.Tensor:
        """(B,) users, (n_items, H) item vectors -> (B, H)."""
        dist = sparse_rows(self.dist, users, vectors.shape[0])
        return torch.where(has_rows(self.items, users)[:, None], self.proj(torch.sparse.mm(dist, vectors)), self.none)

    def rows(self, users: np.ndarray, n_items: int) -> sp.csr_matrix:
        """(B, n_items) binary side events of ``users`` (users past the table, items past it: none)."""
        r = sp.csr_matrix(take_rows(self.items, np.asarray(users, dtype=np.int64)))
        if r.shape[1] < n_items:
            r = sp.hstack([r, sp.csr_matrix((r.shape[0], n_items - r.shape[1]))]).tocsr()
        return sp.csr_matrix(r[:, :n_items], dtype=np.float32)

    def boost_weight(self, users: np.ndarray) -> torch.Tensor:
        """(B,) the per-user weight ``w_u`` of the boost."""
        u = np.asarray(users, dtype=np.int64)
        side = np.zeros(len(u), np.float32)
        hist = np.zeros(len(u), np.float32)
        inside = u < self.items.shape[0]
        side[inside] = np.diff(self.items.indptr)[u[inside]]
        known = u < len(self.train_lengths)
        hist[known] = self.train_lengths[u[known]]
        ctx = torch.from_numpy(np.stack([side, hist], 1))
        return F.softplus(self.weight(torch.log1p(ctx) / 5.0)).squeeze(1)

    def state(self) -> dict[str, np.ndarray]:
        return {**csr_state("items.", self.items), "train_lengths": self.train_lengths}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], hidden: int) -> SideSource | None:
        items = csr_from_state("items.", state)
        return None if items is None else cls(items, state["train_lengths"], hidden)
