"""Top-K selection over full item catalogues: batched, vectorised, memory-bounded.

Ties are broken by a seeded random per-item priority, never by item id: low ids are often old,
popular items, so id order would inflate metrics for models that know nothing about an item.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

#: Bytes of one (batch, n_items) float32 score block, allocated once per ``recommend`` call and
#: reused: large enough for efficient matrix products, small enough to keep memory bounded.
BATCH_BYTES = 96 * 2**20


def tie_noise(n_items: int, seed: int) -> np.ndarray:
    """Per-item tie-break priorities in [0, 1), fixed by the seed. Shape (n_items,)."""
    return np.random.default_rng([seed, 0x7E5]).random(n_items)


def batch_size_for(n_items: int, max_batch: int = 2048) -> int:
    """Users per batch so that a float32 (batch, n_items) block stays within :data:`BATCH_BYTES`."""
    return int(max(1, min(max_batch, BATCH_BYTES // (4 * max(1, n_items)))))


def topk(
    scores: np.ndarray | torch.Tensor,
    k: int,
    *,
    exclude: sp.csr_matrix | None = None,
    candidates: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row, ordered by (score, tie-break priority), both descending.

    ``scores`` is overwritten (excluded items become ``-inf``) to avoid copying large blocks.

    Parameters
    ----------
    scores : (b, n_items) float32 array; higher is better.
    k : list length.
    exclude : (b, n_items) CSR; its non-zeros are never returned (training / history items).
    candidates : bool mask (n_items,); only these items may be returned.
    noise : (n_items,) tie-break priorities from :func:`tie_noise` (higher wins a tie).

    Returns
    -------
    items : (b, k) int64, best first; ``-1`` pads rows with fewer than ``k`` eligible items.
    values : (b, k) float32 scores (``-inf`` where padded).
    """
    s = torch.as_tensor(scores)
    if s.dtype != torch.float32:
        s = s.to(torch.float32)
    b, n = s.shape
    if candidates is not None and not bool(np.all(candidates)):
        s[:, torch.as_tensor(np.flatnonzero(~np.asarray(candidates, dtype=bool)))] = -torch.inf
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        s[torch.as_tensor(coo.row, dtype=torch.long), torch.as_tensor(coo.col, dtype=torch.long)] = -torch.inf
    kk = min(k + 1, n)  # one extra to see ties across the cut
    vals, idx = torch.topk(s, kk, dim=1, largest=True, sorted=True)
    items = idx.numpy().astype(np.int64)
    values = vals.numpy().copy()
    if noise is not None and kk > 1:
        tied = (values[:, 1:] == values[:, :-1]) & np.isfinite(values[:, 1:])
        for r in np.flatnonzero(tied.any(axis=1)):
            items[r, :k], values[r, :k] = _break_ties(s[r], values[r], items[r], k, noise)
    items, values = items[:, :k], values[:, :k]
    items[~np.isfinite(values)] = -1
    if items.shape[1] < k:
        pad = k - items.shape[1]
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
    return items, values


def _break_ties(row: torch.Tensor, vals: np.ndarray, idx: np.ndarray, k: int,
                noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact (score, priority) order of one row whose top-(k+1) holds ties."""
    kth = vals[min(k, len(vals)) - 1]
    if len(vals) > k and vals[k] == kth and np.isfinite(kth):
        # the cut falls inside a run of equal scores: every item with that score competes
        eq = torch.nonzero(row == float(kth)).squeeze(1).numpy()
        cand = np.concatenate([idx[vals > kth], eq])
    else:
        cand = idx[:k]
    cv = row[torch.as_tensor(cand)].numpy()
    order = np.lexsort((-noise[cand], -cv.astype(np.float64)))[:k]
    out_i = np.full(k, -1, dtype=np.int64)
    out_v = np.full(k, -np.inf, dtype=np.float32)
    out_i[: len(order)], out_v[: len(order)] = cand[order], cv[order]
    return out_i, out_v
