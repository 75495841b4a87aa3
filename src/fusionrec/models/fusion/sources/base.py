"""What every source of the fusion model provides."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class ItemSource(nn.Module):
    """Tokens of items: ``forward(items)`` -> ``(n, T, H)`` tokens and ``(n, T)`` presence (False = the
    item has no such input; its token is then never weighed). ``names`` are the T tokens' names."""

    names: list[str]

    def forward(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Non-learned arrays this source owns (saved with the model); learned weights are in the network."""
        return {}


class UserSource(nn.Module):
    """One token per user in front of the history: ``forward(users, vectors)`` -> ``(B, H)``, where
    ``vectors`` (n_items, H) are the current item vectors (social and side tokens average them)."""

    name: str

    def forward(self, users: np.ndarray, vectors: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}


def csr_state(prefix: str, m: Any) -> dict[str, np.ndarray]:
    """A scipy CSR as safetensors arrays under ``prefix``."""
    return {prefix + "indptr": m.indptr.astype(np.int64), prefix + "indices": m.indices.astype(np.int64),
            prefix + "data": m.data.astype(np.float32), prefix + "shape": np.asarray(m.shape, np.int64)}


def csr_from_state(prefix: str, state: dict[str, np.ndarray]) -> Any:
    """The CSR :func:`csr_state` wrote, or None when ``state`` has none under ``prefix``."""
    import scipy.sparse as sp

    if prefix + "shape" not in state:
        return None
    return sp.csr_matrix((state[prefix + "data"], state[prefix + "indices"], state[prefix + "indptr"]),
                         shape=tuple(int(x) for x in state[prefix + "shape"]))


def sparse_rows(m: Any, rows: np.ndarray, n_cols: int) -> torch.Tensor:
    """Rows ``rows`` of scipy CSR ``m`` as a torch sparse COO (len(rows), n_cols); rows past ``m`` (new users)
    and columns past it (new items) are empty."""
    import scipy.sparse as sp

    from fusionrec.models.base import take_rows

    r = sp.csr_matrix(take_rows(m, np.asarray(rows, dtype=np.int64)))
    coo = r.tocoo()
    keep = coo.col < n_cols
    idx = torch.from_numpy(np.stack([coo.row[keep], coo.col[keep]]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(coo.data[keep].astype(np.float32)), (len(rows), n_cols),
                                   check_invariants=True)


def pad_rows(indptr: np.ndarray, values: np.ndarray, fill: int = -1) -> np.ndarray:
    """CSR rows of int ``values`` as a (n, width) int64 matrix, right-padded with ``fill`` (width >= 1)."""
    counts = np.diff(indptr)
    width = max(1, int(counts.max(initial=0)))
    out = np.full((len(counts), width), fill, dtype=np.int64)
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(len(values)) - np.repeat(np.asarray(indptr)[:-1], counts)
    out[rows, cols] = values
    return out
