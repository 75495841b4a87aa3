"""ItemKNN's similarity against a dense cosine reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.models.itemknn import ItemKNN, ItemKNNConfig, cosine_topk


def dense_reference(x: np.ndarray, shrink: float) -> np.ndarray:
    n = np.sqrt(x.sum(axis=0))
    s = (x.T @ x) / (np.outer(n, n) + shrink + 1e-12)
    np.fill_diagonal(s, 0.0)
    return s


@pytest.fixture
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    m = (rng.random((30, 12)) < 0.3).astype(np.float32)
    m[:, 11] = 0.0  # an item nobody has
    return m


@pytest.mark.parametrize("shrink", [0.0, 10.0])
@pytest.mark.parametrize("block_size", [None, 1, 5])
def test_full_neighbourhood_equals_dense_cosine(x: np.ndarray, shrink: float, block_size: int | None) -> None:
    s = cosine_topk(sp.csr_matrix(x), neighbors=100, shrink=shrink, block_size=block_size)
    np.testing.assert_allclose(s.toarray(), dense_reference(x, shrink), rtol=1e-5, atol=1e-7)
    assert s.getnnz(axis=1)[11] == 0 and s.diagonal().sum() == 0


def test_top_neighbours_are_the_most_similar(x: np.ndarray) -> None:
    ref = dense_reference(x, 2.0)
    s = cosine_topk(sp.csr_matrix(x), neighbors=3, shrink=2.0, block_size=4).toarray()
    assert (np.count_nonzero(s, axis=1) <= 3).all()
    for i in range(x.shape[1]):
        np.testing.assert_allclose(np.sort(s[i])[-3:], np.sort(ref[i])[-3:], rtol=1e-5)
        kept = np.flatnonzero(s[i])
        np.testing.assert_allclose(s[i, kept], ref[i, kept], rtol=1e-5)


def test_model_scores_are_history_times_similarity(x: np.ndarray) -> None:
    users, items = np.nonzero(x)
    data = Dataset.from_frames(pd.DataFrame({"user": [f"u{u}" for u in users], "item": items}),
                               items=pd.DataFrame({"item": [str(i) for i in range(x.shape[1])]}))
    m = ItemKNN(ItemKNNConfig(neighbors=100, shrink=10.0)).fit(data)
    xd = data.csr().toarray()  # rows in the dataset's user order
    ref = dense_reference(xd, 10.0)
    np.testing.assert_allclose(m.similarity_.toarray(), ref, rtol=1e-5, atol=1e-7)
    s = m.score(np.arange(3))
    np.testing.assert_allclose(s[:, :11], (xd[:3] @ ref)[:, :11], rtol=1e-5, atol=1e-6)


def test_bad_neighbors_message() -> None:
    with pytest.raises(ValueError, match="neighbors must be >= 1, got 0"):
        ItemKNNConfig(neighbors=0)
