"""The social source: a user's friends' training items, averaged in the item space, as one token.

Row ``u`` of the friend-item matrix is the mean over u's friends of each friend's item distribution
(training events only, built at fit time); the token is a projection of that row times the item
vectors. Users without friends (or added after training) get a learned "no friends" token; the
friend graph also backs "N of your friends listen to X" explanations.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.models.fusion.sources.base import UserSource, csr_from_state, csr_state, sparse_rows


def friend_items(train: Dataset) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
    """``(friends (n_users, n_users), friend_items (n_users, n_items))`` of the training part, or None."""
    from fusionrec.graph.social import friend_matrix, normalize_rows

    if train.social is None or not len(train.social):
        return None
    friends = friend_matrix(train)
    rows = sp.csr_matrix(normalize_rows(friends) @ normalize_rows(train.csr("binary")), dtype=np.float32)
    return friends, rows


class SocialSource(UserSource):
    name = "social"

    def __init__(self, rows: sp.csr_matrix, hidden: int) -> None:
        super().__init__()
        self.rows = sp.csr_matrix(rows, dtype=np.float32)  # (n_users, n_items) friends' item distribution
        self.proj = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden))
        self.none = nn.Parameter(torch.zeros(hidden))
        nn.init.normal_(self.proj[1].weight, std=0.02)
        nn.init.zeros_(self.proj[1].bias)

    def forward(self, users: np.ndarray, vectors: torch.Tensor) -> torch.Tensor:
        """(B,) users, (n_items, H) item vectors -> (B, H)."""
        dist = sparse_rows(self.rows, users, vectors.shape[0])  # (B, n_items), rows sum to 1 or 0
        has = has_rows(self.rows, users)
        return torch.where(has[:, None], self.proj(torch.sparse.mm(dist, vectors)), self.none)

    def state(self) -> dict[str, np.ndarray]:
        return csr_state("rows.", self.rows)

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], hidden: int) -> SocialSource | None:
        rows = csr_from_state("rows.", state)
        return None if rows is None else cls(rows, hidden)


def has_rows(m: sp.csr_matrix, users: np.ndarray) -> torch.Tensor:
    """(B,) bool: the user has a non-empty row in ``m`` (users past it have none)."""
    u = np.asarray(users, dtype=np.int64)
    counts = np.diff(m.indptr)
    inside = u < m.shape[0]
    out = np.zeros(len(u), dtype=bool)
    out[inside] = counts[u[inside]] > 0
    return torch.from_numpy(out)

