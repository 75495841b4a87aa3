"""Side events as history: a baseline fit and scored on interactions ∪ side-event pairs, judged on interactions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import Dataset
from fusionrec.jobs import build_model
from fusionrec.models.base import Recommender
from fusionrec.models.side_history import WithSideEvents


@pytest.fixture(scope="module")
def data() -> Dataset:
    """Users listen to items of their block; each also tagged two more items of the block it never listened to."""
    rows, side = [], []
    for u in range(30):
        block = (u % 3) * 10
        for i in range(6):
            rows.append((f"u{u}", f"i{block + (u + i) % 10}"))
        for i in (6, 7):
            side.append((f"u{u}", f"i{block + (u + i) % 10}", "tag", "rock"))
    return Dataset.from_frames(pd.DataFrame(rows, columns=["user", "item"]),
                               side_events=pd.DataFrame(side, columns=["user", "item", "kind", "value"]))


def test_fits_on_the_union_but_excludes_only_interactions(data: Dataset) -> None:
    model = build_model("ease", {"side_events": True, "l2": 10.0})
    assert isinstance(model, WithSideEvents)
    model.fit(data)
    assert model.added_pairs_ == 60 and model.inner.train_matrix_.nnz == data.n_interactions + 60
    assert model.train_matrix_.nnz == data.n_interactions  # what a list excludes: interactions only
    items, _ = model.recommend(np.arange(30), k=5)
    tagged = data.side_matrix().toarray() > 0
    listened = data.csr().toarray() > 0
    for u in range(30):
        assert not listened[u, items[u]].any()
    assert sum(tagged[u, items[u]].any() for u in range(30)) > 20  # tagged items may (and here do) rank high


def test_scores_read_the_users_side_events(data: Dataset) -> None:
    plain = build_model("ease", {"l2": 10.0}).fit(data)
    with_side = build_model("ease", {"side_events": True, "l2": 10.0}).fit(data)
    assert not np.allclose(plain.score(np.arange(3)), with_side.score(np.arange(3)))


def test_save_and_load(data: Dataset, tmp_path: Path) -> None:
    model = build_model("ease", {"side_events": True, "l2": 10.0}).fit(data)
    model.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    assert isinstance(again, WithSideEvents) and again.name == "ease"
    np.testing.assert_allclose(again.score(np.arange(30)), model.score(np.arange(30)), rtol=1e-6)
    a, _ = again.recommend(np.arange(30), k=5)
    b, _ = model.recommend(np.arange(30), k=5)
    np.testing.assert_array_equal(a, b)
