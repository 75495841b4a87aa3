"""User histories, the per-call input of scoring: each user's events, oldest first.

A model holds only learned state. Everything a scoring call needs about its users arrives as a
:class:`History`: the users' training events (in the order the model learned them: time order for
sequence models) followed by the events given at inference time (``recommend(extra_history=...)``,
``fusionrec recommend --history``, the service's live events), each with an order key. One loaded
model can therefore score many users from many threads at once: nothing about a call is kept on
the model.

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> extra = sp.csr_matrix(([2.0, 1.0], ([0, 0], [3, 1])), shape=(1, 5))  # values order the events
>>> h = History.build(np.array([0, 1]), np.array([0, 2, 3]), np.array([4, 0, 2]), 2, 5, extra)
>>> h.row(0).tolist(), h.row(1).tolist()
([4, 0, 1, 3], [2])
>>> h.binary.toarray().astype(int).tolist()
[[1, 1, 0, 1, 1], [0, 0, 1, 0, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import torch


@dataclass(frozen=True)
class History:
    """Ragged rows of events: row ``r`` (user ``users[r]``) holds ``items[indptr[r]:indptr[r + 1]]``.

    ``times`` are order keys, non-decreasing within a row (training events: their position in the
    user's training sequence; added events follow them in their own order). ``weights`` are the
    events' weights (listening counts) where known, else None.
    """

    users: np.ndarray  # (b,) int64 dense user indices (>= the training range: new users)
    indptr: np.ndarray  # (b + 1,) int64
    items: np.ndarray  # (nnz,) int64
    times: np.ndarray  # (nnz,) float64
    n_items: int
    weights: np.ndarray | None = None  # (nnz,) float32

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        """(b,) events per row."""
        return np.diff(self.indptr)

    def row(self, r: int) -> np.ndarray:
        """Row ``r``'s items, oldest first."""
        return self.items[self.indptr[r]:self.indptr[r + 1]]

    @cached_property
    def binary(self) -> sp.csr_matrix:
        """(b, n_items) float32 CSR, 1 where the user has the item (repeats merged)."""
        rows = np.repeat(np.arange(len(self.users)), self.lengths)
        m = sp.csr_matrix((np.ones(len(self.items), np.float32), (rows, self.items)),
                          shape=(len(self.users), self.n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def take(self, rows: np.ndarray | slice) -> History:
        """The sub-history of ``rows`` (positions in this history)."""
        idx = np.arange(len(self.users))[rows]
        lens = self.lengths[idx]
        starts = np.repeat(self.indptr[idx], lens)
        pos = starts + np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return History(self.users[idx], indptr, self.items[pos], self.times[pos], self.n_items,
                       None if self.weights is None else self.weights[pos])

    def last(self, length: int) -> torch.Tensor:
        """(b, length) item indices + 1 (0 = padding) of each row's newest ``length`` events, left-padded
        (the newest event in the last column)."""
        lens = self.lengths
        keep = np.minimum(lens, length)
        out = np.zeros((len(self.users), length), dtype=np.int64)
        rows = np.repeat(np.arange(len(self.users)), keep)
        offset = np.arange(int(keep.sum())) - np.repeat(np.cumsum(keep) - keep, keep)  # 0 .. keep - 1
        src = np.repeat(self.indptr[1:] - keep, keep) + offset
        out[rows, length - np.repeat(keep, keep) + offset] = self.items[src] + 1
        return torch.from_numpy(out)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, users: np.ndarray, train_indptr: np.ndarray, train_items: np.ndarray, n_train_users: int,
              n_items: int, extra: sp.csr_matrix | None = None) -> History:
        """Training events of ``users`` (rows ``train_indptr``/``train_items``, in their stored order; users
        at or past ``n_train_users`` have none), then ``extra``'s events (a CSR indexed by dense user whose
        values order the events, e.g. ``Dataset.csr("order")``; equal values keep item order)."""
        users = np.asarray(users, dtype=np.int64)
        b = len(users)
        inside = users < n_train_users
        u = np.where(inside, users, 0)
        ip = np.asarray(train_indptr, dtype=np.int64)
        lens_t = np.where(inside, ip[u + 1] - ip[u], 0) if len(ip) > 1 else np.zeros(b, np.int64)
        rows_t = np.repeat(np.arange(b), lens_t)
        pos_t = np.arange(int(lens_t.sum())) - np.repeat(np.cumsum(lens_t) - lens_t, lens_t)
        items_t = np.asarray(train_items, dtype=np.int64)[np.repeat(ip[u], lens_t) + pos_t]
        rows, items, times = [rows_t], [items_t], [pos_t.astype(np.float64)]
        if extra is not None and extra.shape[0] and extra.nnz:
            known = users < extra.shape[0]
            e = sp.csr_matrix(extra)[np.where(known, users, 0)]
            keep = np.repeat(known, np.diff(e.indptr))
            rows_e = np.repeat(np.arange(b), np.diff(e.indptr))[keep]
            rows.append(rows_e)
            items.append(e.indices.astype(np.int64)[keep])
            times.append(lens_t[rows_e] + np.asarray(e.data, np.float64)[keep])
        r, it, t = np.concatenate(rows), np.concatenate(items), np.concatenate(times)
        order = np.lexsort((t, r))  # stable: equal keys keep their input (item) order
        indptr = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=b), out=indptr[1:])
        return cls(users, indptr, it[order], t[order], int(n_items))

    @classmethod
    def from_binary(cls, users: np.ndarray, history: sp.csr_matrix, train_indptr: np.ndarray,
                    train_items: np.ndarray, n_train_users: int) -> History:
        """A binary (b, n_items) history (the whole current history of each user, as older callers of
        ``score`` pass it): its training events in their stored order, then its other items in index order.
        Training events missing from ``history`` are left out (it replaces the training history)."""
        users = np.asarray(users, dtype=np.int64)
        h = sp.csr_matrix(history, dtype=np.float32)
        h.eliminate_zeros()
        n_items = h.shape[1]
        train = cls.build(users, train_indptr, train_items, n_train_users, n_items)
        rows_t = np.repeat(np.arange(len(users)), train.lengths)
        inside = train.items < n_items
        keep = np.zeros(len(train.items), dtype=bool)
        if inside.any():
            keep[inside] = np.asarray(h[rows_t[inside], train.items[inside]]).ravel() > 0
        have = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows_t[keep], train.items[keep])),
                             shape=h.shape)
        have.sum_duplicates()
        added = sp.csr_matrix(h - h.multiply(have > 0))
        added.eliminate_zeros()
        rows_a = np.repeat(np.arange(len(users)), np.diff(added.indptr))
        r = np.concatenate([rows_t[keep], rows_a])
        it = np.concatenate([train.items[keep], added.indices.astype(np.int64)])
        t = np.concatenate([train.times[keep], train.lengths[rows_a] + 1.0])
        order = np.lexsort((t, r))
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=len(users)), out=indptr[1:])
        return cls(users, indptr, it[order], t[order], n_items)
