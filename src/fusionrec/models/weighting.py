"""Interaction weights for the linear item-item models (``social``, the sequence models' item-item prior).

Listening counts are confidence weights: ``x_ui = log1p(count_ui) / mean_j log1p(count_uj)`` (1 on
average per user). With ``log1p-idf`` each item's weight is also scaled by its rarity,
``(1 + idf_i) / mean(1 + idf)`` with ``idf_i = log(n_users / (1 + users_i))`` from training, as BM25 does
for ALS. Events given at scoring time (their count unknown) weigh their item's rarity factor.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.models.base import take_rows

WEIGHTINGS = ("binary", "log1p", "log1p-idf")


def log1p_weights(counts: sp.csr_matrix) -> sp.csr_matrix:
    """``log1p(count)`` divided by each user's mean over their items (mean 1 per non-empty row)."""
    w = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    w.data = np.log1p(np.maximum(w.data, 0.0))
    lengths = np.diff(w.indptr)
    sums = np.add.reduceat(w.data, w.indptr[:-1][lengths > 0]) if w.nnz else np.zeros(0)
    mean = np.ones(w.shape[0])
    mean[lengths > 0] = sums / lengths[lengths > 0]
    mean[mean <= 0] = 1.0
    w.data /= np.repeat(mean, lengths)
    w.data[w.data <= 0] = 1e-3  # a zero count is still an event
    return sp.csr_matrix(w, dtype=np.float32)


def item_factors(binary: sp.csr_matrix, weighting: str) -> np.ndarray:
    """(n_items,) each item's rarity factor (mean 1 over the training events); ones unless ``log1p-idf``."""
    if weighting != "log1p-idf" or binary.nnz == 0:
        return np.ones(binary.shape[1], dtype=np.float32)
    users_per_item = np.asarray(binary.sum(axis=0)).ravel()
    g = 1.0 + np.log(max(1, binary.shape[0]) / (1.0 + users_per_item)).clip(min=0.0)
    return (g / g[binary.indices].mean()).astype(np.float32)


def interaction_weights(binary: sp.csr_matrix, counts: sp.csr_matrix | None, weighting: str,
                        factors: np.ndarray) -> sp.csr_matrix:
    """The training matrix with each event's weight: its count's log1p share (unless ``binary`` or
    ``counts`` is None) times its item's factor; exactly ``binary``'s sparsity pattern."""
    out = sp.csr_matrix(binary, dtype=np.float32, copy=True)
    out.data[:] = 1.0
    if weighting != "binary" and counts is not None:
        w = log1p_weights(counts)
        rows = np.repeat(np.arange(binary.shape[0]), np.diff(binary.indptr))
        vals = np.asarray(w[rows, out.indices]).ravel()
        out.data = np.where(vals > 0, vals, 1.0).astype(np.float32)
    out.data *= factors[out.indices]
    return out


def padded_factors(factors: np.ndarray, n_items: int) -> np.ndarray:
    """``factors`` for ``n_items`` items: items added after training weigh 1."""
    return np.concatenate([factors, np.ones(max(0, n_items - len(factors)), np.float32)])


def weighted_history(history: sp.csr_matrix, users: np.ndarray, weights: sp.csr_matrix,
                     factors: np.ndarray) -> sp.csr_matrix:
    """History rows with the training weight of each training event (``weights``, rows by user);
    events added at scoring time, and users past the training range, weigh their item's factor."""
    h = sp.csr_matrix(history, dtype=np.float32)
    h.data[:] = 1.0
    w = take_rows(weights, np.asarray(users, dtype=np.int64))[:, : h.shape[1]]
    if w.shape[1] < h.shape[1]:  # items added after training: no training events
        w = sp.hstack([w, sp.csr_matrix((w.shape[0], h.shape[1] - w.shape[1]), dtype=np.float32)]).tocsr()
    b = sp.csr_matrix(w, copy=True)
    b.data[:] = 1.0
    new = sp.csr_matrix(h - h.multiply(b))
    new.eliminate_zeros()
    new.data = padded_factors(factors, h.shape[1])[new.indices].astype(np.float32)
    return sp.csr_matrix(h.multiply(w) + new)
