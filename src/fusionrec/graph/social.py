"""The social graph: user-user friend edges as a sparse matrix, and friend evidence for explanations.

A Dataset's ``social`` table holds ``user, friend, [weight]`` rows in dense user indices (lastfm-2k:
12,717 directed rows of ``user_friends.dat``). :func:`friend_matrix` turns it into a symmetric
(n_users, n_users) CSR; :func:`friends_evidence` answers "which of my friends have item X?" for a
list of recommended items ("3 of your friends listen to X").

Example
-------
>>> import pandas as pd
>>> from fusionrec.data.schema import Dataset
>>> df = pd.DataFrame({"user": ["a", "b", "c"], "item": ["x", "x", "y"]})
>>> data = Dataset.from_frames(df, social=pd.DataFrame({"user": ["a", "a"], "friend": ["b", "c"]}))
>>> f = friend_matrix(data)
>>> f.toarray().astype(int).tolist()
[[0, 1, 1], [1, 0, 0], [1, 0, 0]]
>>> [(e.item, e.count) for e in friends_evidence(f, data.csr(), 0, [0, 1])]
[(0, 1), (1, 1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError, DataError


def friend_matrix(data: Dataset, *, weighted: bool = False, n_users: int | None = None) -> sp.csr_matrix:
    """Symmetric friend matrix (n_users, n_users), float32, zero diagonal.

    An edge listed in one direction counts in both (lastfm-2k lists most edges twice); a pair listed
    twice keeps the larger weight. Self-loops are dropped.

    Parameters
    ----------
    data : a Dataset with a ``social`` table (user, friend, weight in dense user indices).
    weighted : use the table's ``weight`` column; otherwise every edge is 1.
    n_users : matrix size (default ``data.n_users``); must cover every user in the table.
    """
    if data.social is None:
        raise DataError(f"{data.name} has no social table (user, friend); load a dataset with friends "
                        f"(e.g. lastfm-2k) or pass social=... to Dataset.from_frames")
    n = data.n_users if n_users is None else int(n_users)
    return edges_to_matrix(data.social["user"].to_numpy(), data.social["friend"].to_numpy(),
                           data.social["weight"].to_numpy() if weighted and "weight" in data.social.columns else None,
                           n)


def edges_to_matrix(users: np.ndarray, friends: np.ndarray, weights: np.ndarray | None, n_users: int) -> sp.csr_matrix:
    """Symmetric (n_users, n_users) CSR from edge lists (dense indices); see :func:`friend_matrix`."""
    u = np.asarray(users, dtype=np.int64)
    f = np.asarray(friends, dtype=np.int64)
    if len(u) != len(f):
        raise DataError(f"social edges: {len(u)} users but {len(f)} friends; give one friend per row")
    if len(u) and (min(u.min(), f.min()) < 0 or max(u.max(), f.max()) >= n_users):
        raise DataError(f"social edges name user index {int(max(u.max(), f.max()))} (or a negative one) "
                        f"outside 0..{n_users - 1}; extend the user map first")
    w = np.ones(len(u), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    if len(w) and (not np.all(np.isfinite(w)) or w.min() < 0):
        raise DataError("social edge weights must be finite and >= 0")
    keep = u != f
    u, f, w = u[keep], f[keep], w[keep]
    a = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([u, f]), np.concatenate([f, u]))),
                      shape=(n_users, n_users))
    # duplicates (an edge listed both ways) keep the larger weight, not the sum
    key = a.row.astype(np.int64) * n_users + a.col
    order = np.lexsort((-a.data, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    pick = order[first]
    m = sp.csr_matrix((a.data[pick].astype(np.float32), (a.row[pick], a.col[pick])), shape=(n_users, n_users))
    m.eliminate_zeros()
    m.sort_indices()
    return m


def normalize_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its sum (rows that sum to 0 stay 0): the mean over a user's friends."""
    m = sp.csr_matrix(m, dtype=np.float32)
    s = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inv) @ m)


@dataclass(frozen=True)
class FriendEvidence:
    """Friends of one user who have one item, strongest contribution first."""

    item: int
    count: int  # how many friends have the item
    friends: np.ndarray  # (count,) dense friend indices, strongest first
    contributions: np.ndarray  # (count,) edge weight x the friend's interaction value, same order

    @property
    def contribution(self) -> float:
        return float(self.contributions.sum())

    def message(self, item_name: str | None = None) -> str:
        """E.g. ``"3 of your friends listen to X"``."""
        name = item_name if item_name is not None else f"item {self.item}"
        return f"{self.count} of your friends {'listens' if self.count == 1 else 'listen'} to {name}"


def friends_evidence(friends: sp.csr_matrix, train_matrix: sp.csr_matrix, user: int,
                     items: Sequence[int] | np.ndarray) -> list[FriendEvidence]:
    """Per item with social evidence: the friends of ``user`` who have it, ranked.

    Parameters
    ----------
    friends : (n_users, n_users) friend matrix (:func:`friend_matrix`); edge weights scale contributions.
    train_matrix : (n_users, n_items) interactions; its values (binary, counts, log-counts) are the
        friends' strengths.
    user : dense user index (a user outside ``friends`` has no friends: empty result).
    items : item indices to explain (e.g. a top-K list).

    Returns
    -------
    One :class:`FriendEvidence` per item that at least one friend has, ordered by total contribution
    (ties: more friends, then the order of ``items``). Within an item, friends are ordered by
    contribution, then by index.
    """
    items = np.asarray(items, dtype=np.int64).ravel()
    if items.size and (items.min() < 0 or items.max() >= train_matrix.shape[1]):
        raise ConfigError(f"items must be item indices in 0..{train_matrix.shape[1] - 1}, got {items.tolist()}")
    user = int(user)
    if user < 0:
        raise ConfigError(f"user must be a dense user index >= 0, got {user}")
    if user >= friends.shape[0] or not len(items):
        return []
    row = friends.getrow(user)
    fr, w = row.indices.astype(np.int64), row.data.astype(np.float64)
    fr_in = fr < train_matrix.shape[0]
    fr, w = fr[fr_in], w[fr_in]
    if not len(fr):
        return []
    sub = sp.csr_matrix(train_matrix[fr][:, items], dtype=np.float64).toarray() * w[:, None]  # (n_friends, n_items)
    out = []
    for j, item in enumerate(items.tolist()):
        col = sub[:, j]
        have = np.flatnonzero(col > 0)
        if not len(have):
            continue
        order = np.lexsort((fr[have], -col[have]))
        out.append((j, FriendEvidence(int(item), len(have), fr[have][order], col[have][order])))
    out.sort(key=lambda t: (-t[1].contribution, -t[1].count, t[0]))
    return [e for _, e in out]


__all__ = ["FriendEvidence", "edges_to_matrix", "friend_matrix", "friends_evidence", "normalize_rows"]
