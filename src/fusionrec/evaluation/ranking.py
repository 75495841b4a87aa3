"""Top-K selection over full item catalogues: batched, vectorised, memory-bounded.

Ties are broken by a seeded random per-item priority, never by item id: low ids are often old,
popular items, so id order would inflate metrics for models that know nothing about an item.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

# float32 scores are separated by at least 2**-24 relative; a 2**-30 relative nudge never reorders
# two distinct float32 scores, it only orders exact ties.
_REL_NUDGE = 2.0**-30
_ABS_NUDGE = 2.0**-60

#: Memory for one batch of float64 ranking keys (bytes). Keeps a 100k-item catalogue bounded.
BATCH_BYTES = 256 * 2**20


def tie_noise(n_items: int, seed: int) -> np.ndarray:
    """Per-item tie-break priorities in [0, 1), fixed by the seed. Shape (n_items,)."""
    return np.random.default_rng([seed, 0x7E5]).random(n_items)


def batch_size_for(n_items: int, max_batch: int = 2048) -> int:
    """Users per batch so that a float64 (batch, n_items) block stays within :data:`BATCH_BYTES`."""
    return int(max(1, min(max_batch, BATCH_BYTES // (8 * max(1, n_items)))))


def topk(
    scores: np.ndarray | torch.Tensor,
    k: int,
    *,
    exclude: sp.csr_matrix | None = None,
    candidates: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per row.

    Parameters
    ----------
    scores : (b, n_items) float array; higher is better.
    k : list length.
    exclude : (b, n_items) CSR; its non-zeros are never returned (training / history items).
    candidates : bool mask (n_items,); only these items may be returned.
    noise : (n_items,) tie-break priorities from :func:`tie_noise`.

    Returns
    -------
    items : (b, k) int64, best first; ``-1`` pads rows with fewer than ``k`` eligible items.
    values : (b, k) float64 ranking keys (``-inf`` where padded).
    """
    s = torch.as_tensor(scores).to(torch.float64)  # (b, n)
    if noise is not None:
        nz = torch.as_tensor(noise, dtype=torch.float64)
        s = s + (s.abs() * _REL_NUDGE + _ABS_NUDGE) * nz
    if candidates is not None and not bool(np.all(candidates)):
        s[:, torch.as_tensor(~np.asarray(candidates, dtype=bool))] = -torch.inf
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        s[torch.as_tensor(coo.row, dtype=torch.long), torch.as_tensor(coo.col, dtype=torch.long)] = -torch.inf
    kk = min(k, s.shape[1])
    vals, idx = torch.topk(s, kk, dim=1, largest=True, sorted=True)
    items = idx.numpy().astype(np.int64)
    values = vals.numpy()
    items[~np.isfinite(values)] = -1
    if kk < k:
        pad = k - kk
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, pad)), constant_values=-np.inf)
    return items, values
