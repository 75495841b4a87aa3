"""Splits: the evalkit protocols reproduced exactly, determinism, and CV coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import Dataset
from fusionrec.data import splits as S
from fusionrec.errors import ConfigError, DataError
from tests.conftest import tiny_interactions


def _raw(ds: Dataset, part: Dataset) -> set[tuple[str, str]]:
    i = part.interactions
    return set(zip(ds.user_ids.raw(i.user), ds.item_ids.raw(i.item), strict=True))


def test_leave_last_out_matches_evalkit(evalkit) -> None:
    raw = tiny_interactions(seed=1)
    ds = Dataset.from_frames(raw)
    sp_ = S.leave_last_out(ds)
    ref = raw.assign(row=np.arange(len(raw)))
    tr, va, te = evalkit.split_loo(ref)
    assert _raw(ds, sp_.test) == set(zip(te.user, te.item, strict=False))
    assert _raw(ds, sp_.valid) == set(zip(va.user, va.item, strict=False))
    assert _raw(ds, sp_.train) == set(zip(tr.user, tr.item, strict=False))


def test_leave_last_out_ties_broken_by_file_order() -> None:
    raw = pd.DataFrame({"user": ["a"] * 4, "item": ["x", "y", "z", "w"], "timestamp": [1, 5, 5, 3]})
    sp_ = S.leave_last_out(Dataset.from_frames(raw))
    ds = sp_.train
    assert ds.item_ids.raw(sp_.test.interactions.item).tolist() == ["z"]
    assert ds.item_ids.raw(sp_.valid.interactions.item).tolist() == ["y"]


def test_users_with_few_events_stay_in_train() -> None:
    raw = pd.DataFrame({"user": ["a", "a", "b", "b", "b"], "item": list("xyxyz"), "timestamp": [1, 2, 1, 2, 3]})
    sp_ = S.leave_last_out(Dataset.from_frames(raw))
    assert sp_.train.n_interactions == 3 and sp_.test.n_interactions == 1


def test_cold_item_matches_evalkit(evalkit) -> None:
    raw = tiny_interactions(n_items=50, seed=2)
    ds = Dataset.from_frames(raw)
    sp_ = S.cold_item_split(ds, frac=0.2, seed=0)
    _, te, cold = evalkit.split_cold_item(raw.assign(row=np.arange(len(raw))), seed=0, frac=0.2)
    assert sorted(ds.item_ids.raw(sp_.cold_items)) == sorted(cold)
    assert _raw(ds, sp_.test) == set(zip(te.user, te.item, strict=False))
    assert not set(sp_.train.interactions.item) & set(sp_.cold_items)


def test_random_loo_is_deterministic_and_needs_no_timestamps() -> None:
    raw = tiny_interactions().drop(columns=["timestamp"])
    ds = Dataset.from_frames(raw)
    a, b = S.random_leave_one_out(ds, seed=0), S.random_leave_one_out(ds, seed=0)
    assert a.test.interactions.equals(b.test.interactions)
    assert not a.test.interactions.equals(S.random_leave_one_out(ds, seed=1).test.interactions)
    assert a.test.interactions.user.is_unique and a.test.n_interactions == ds.n_users
    with pytest.raises(DataError, match="no timestamps"):
        S.leave_last_out(ds)


def test_kfold_tests_every_event_once(tiny_dataset) -> None:
    seen = np.zeros(tiny_dataset.n_interactions, dtype=int)
    key = tiny_dataset.interactions.user * 1000 + tiny_dataset.interactions.item
    for part in S.kfold(tiny_dataset, folds=4, seed=0):
        k = part.test.interactions.user * 1000 + part.test.interactions.item
        seen += key.isin(k).to_numpy()
        assert part.train.n_interactions + part.test.n_interactions == tiny_dataset.n_interactions
        assert part.test.interactions.user.nunique() == tiny_dataset.n_users  # 8 events, 4 folds
    assert (seen == 1).all()
    with pytest.raises(ConfigError):
        next(S.kfold(tiny_dataset, folds=1))


def test_rolling_origin_trains_on_the_past(tiny_dataset) -> None:
    parts = list(S.rolling_origin(tiny_dataset, n_splits=3, test_frac=0.1))
    assert len(parts) == 3
    for p in parts:
        assert p.train.interactions.timestamp.max() <= p.test.interactions.timestamp.min()
    assert parts[0].train.n_interactions < parts[2].train.n_interactions


def test_temporal_and_random(tiny_dataset) -> None:
    t = S.temporal_split(tiny_dataset, test_frac=0.2, valid_frac=0.1)
    assert t.train.interactions.timestamp.max() <= t.test.interactions.timestamp.min()
    r = S.random_split(tiny_dataset, test_frac=0.25, seed=0)
    assert r.train.n_interactions + r.test.n_interactions == tiny_dataset.n_interactions
    with pytest.raises(ConfigError):
        S.random_split(tiny_dataset, test_frac=1.5)


def test_from_files_roundtrip(tmp_path, tiny_dataset) -> None:
    sp_ = S.leave_last_out(tiny_dataset)
    S.write_split(sp_, tmp_path)
    back = S.from_files(tiny_dataset, tmp_path / "train.tsv", tmp_path / "test.tsv", tmp_path / "valid.tsv")
    assert _raw(tiny_dataset, back.train) == _raw(tiny_dataset, sp_.train)
    assert _raw(tiny_dataset, back.test) == _raw(tiny_dataset, sp_.test)
    bad = tmp_path / "bad.tsv"
    bad.write_text("user\titem\ttimestamp\nu1\tnope\t3\n")
    with pytest.raises(DataError, match="nope"):
        S.from_files(tiny_dataset, bad)
