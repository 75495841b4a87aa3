"""ItemKNN: item-based top-N recommendation (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004).

Item-item cosine similarity on the binary user x item matrix, shrunk towards zero for items with
little support, ``S_ij = x_i . x_j / (|x_i| |x_j| + shrink)``, with a zero diagonal. Each item keeps
only its ``neighbors`` most similar items (a sparse row of ``S``), and a user's scores are
``history @ S``: every item in the history votes for its neighbours (Deshpande & Karypis's
model). ``S`` is built in blocks of items, so a 50k-item catalogue never needs a dense
n_items^2 matrix. History given at inference time counts without retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.schema import Dataset
from fusionrec.models.base import BaseConfig, Recommender

#: Similarity entries held densely at once while building ``S`` (float32: 128 MiB).
BLOCK_ELEMENTS = 2**25


@dataclass(frozen=True)
class ItemKNNConfig(BaseConfig):
    neighbors: int = 100  # similar items kept per item
    shrink: float = 10.0  # added to the cosine denominator; damps similarities with little support

    def __post_init__(self) -> None:
        if self.neighbors < 1:
            raise ValueError(f"ItemKNNConfig.neighbors must be >= 1, got {self.neighbors}")
        if self.shrink < 0:
            raise ValueError(f"ItemKNNConfig.shrink must be >= 0, got {self.shrink}")


def cosine_topk(x: sp.csr_matrix, neighbors: int, shrink: float = 0.0,
                block_size: int | None = None) -> sp.csr_matrix:
    """Shrunk cosine similarity between the columns of ``x``, top ``neighbors`` per row.

    Parameters
    ----------
    x : (n_users, n_items) sparse matrix (binary for ItemKNN).
    neighbors : entries kept per row (the most similar items; zeros are never kept).
    shrink : added to ``|x_i| |x_j|`` in the denominator.
    block_size : items per dense block; default keeps a block within :data:`BLOCK_ELEMENTS`.

    Returns
    -------
    (n_items, n_items) float32 CSR with a zero diagonal; row ``i`` holds item ``i``'s neighbours.

    Examples
    --------
    >>> x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=np.float32))
    >>> np.round(cosine_topk(x, neighbors=1).toarray(), 3)
    array([[0.   , 0.816, 0.   ],
           [0.816, 0.   , 0.   ],
           [0.   , 0.707, 0.   ]], dtype=float32)
    """
    xc = sp.csc_matrix(x, dtype=np.float32)
    n = xc.shape[1]
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel()).astype(np.float32)  # (n,)
    bs = block_size or max(1, BLOCK_ELEMENTS // max(1, n))
    kk = min(neighbors, max(n - 1, 0))
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for start in range(0, n, bs):
        stop = min(n, start + bs)
        rows = np.arange(start, stop)
        sim = np.asarray((xc[:, start:stop].T @ xc).toarray(), dtype=np.float32)  # (b, n) co-occurrence
        sim /= norms[rows, None] * norms[None, :] + shrink + np.float32(1e-12)
        sim[np.arange(len(rows)), rows] = 0.0
        vals_t, top_t = torch.topk(torch.from_numpy(sim), kk, dim=1, sorted=False)  # (b, kk) each
        vals, top = vals_t.numpy(), top_t.numpy()
        keep = vals > 0
        order = np.argsort(np.where(keep, top, n), axis=1, kind="stable")  # sorted column indices
        top, vals, keep = (np.take_along_axis(a, order, axis=1) for a in (top, vals, keep))
        indptr[start + 1:stop + 1] = keep.sum(axis=1)
        indices.append(top[keep])
        data.append(vals[keep])
    np.cumsum(indptr, out=indptr)
    values = np.concatenate([np.empty(0, dtype=np.float32), *data])
    columns = np.concatenate([np.empty(0, dtype=np.int64), *indices])
    return sp.csr_matrix((values, columns, indptr), shape=(n, n))


class ItemKNN(Recommender):
    """Item-item nearest neighbours (scores = history @ S, S sparse with ``neighbors`` per row).

    Examples
    --------
    >>> import pandas as pd
    >>> from fusionrec.data.schema import Dataset
    >>> df = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": ["a", "b", "a", "b", "a"]})
    >>> m = ItemKNN(ItemKNNConfig(neighbors=5, shrink=0.0)).fit(Dataset.from_frames(df))
    >>> m.recommend([2], k=1)[0].tolist()  # user 2 has "a"; "b" co-occurs with it
    [[1]]
    """

    name = "itemknn"
    Config = ItemKNNConfig
    search_space = {"neighbors": [20, 50, 100, 200], "shrink": [0.0, 10.0, 100.0]}

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.similarity_ = cosine_topk(self.train_matrix_, self.config.neighbors, self.config.shrink)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return (history @ self.similarity_).toarray()  # (b, n_items)

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity_
        return {"similarity.indptr": s.indptr.astype(np.int64), "similarity.indices": s.indices.astype(np.int64),
                "similarity.data": s.data.astype(np.float32)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        n = self.n_items_
        self.similarity_ = sp.csr_matrix(
            (state["similarity.data"], state["similarity.indices"], state["similarity.indptr"]), shape=(n, n))
