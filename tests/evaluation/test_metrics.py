"""Metrics: hand-computed cases and agreement with the reference scorer evalkit.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import Dataset, IdMap
from fusionrec.errors import UnknownNameError
from fusionrec.evaluation import score_recommendations
from fusionrec.evaluation.metrics import hit_matrix, parse_metric, ranking_metrics


def test_hand_computed_single_target() -> None:
    hits = np.array([[False, False, True, False], [True, False, False, False], [False] * 4])
    m = ranking_metrics(hits, np.array([1, 1, 1]), [2, 4])
    assert m["HR@2"].tolist() == [0, 1, 0]
    assert m["NDCG@4"][0] == pytest.approx(1 / math.log2(4))
    assert m["MRR@4"].tolist() == pytest.approx([1 / 3, 1, 0])
    assert m["Precision@4"].tolist() == pytest.approx([0.25, 0.25, 0])
    assert m["MAP@4"].tolist() == pytest.approx([1 / 3, 1, 0])


def test_multi_target_ndcg_uses_min_k_relevant() -> None:
    hits = np.array([[True, False, True]])
    m = ranking_metrics(hits, np.array([5]), [3])
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["NDCG@3"][0] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert m["Recall@3"][0] == pytest.approx(2 / 5)


def test_duplicates_and_padding_never_hit() -> None:
    recs = np.array([[3, 3, -1]])
    hits = hit_matrix(recs, np.array([3]), np.array([0]), n_items=5)
    assert hits.tolist() == [[True, False, False]]


def test_parse_metric() -> None:
    assert parse_metric("ndcg@10") == ("NDCG", 10)
    with pytest.raises(UnknownNameError, match="unknown metric"):
        parse_metric("auc@10")


def _random_case(seed: int, multi: bool):
    """A split with train/test files and messy recommendations (train items, dups, short, missing)."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 60
    users = [f"{u}" for u in range(1, n_users + 1)]
    items = [f"{i}" for i in range(1, n_items + 1)]
    train = [(u, i) for u in users for i in rng.choice(items, size=8, replace=False)]
    seen = {(u, i) for u, i in train}
    test = []
    for u in users:
        pool = [i for i in items if (u, i) not in seen]
        for i in rng.choice(pool, size=3 if multi else 1, replace=False):
            test.append((u, i))
    recs = {}
    for u in users[:-3]:  # three users have no list
        lst = list(rng.choice(items, size=int(rng.integers(5, 25)), replace=True))
        recs[u] = lst
    return users, items, train, test, recs


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_evalkit(tmp_path, evalkit, seed: int, multi: bool) -> None:
    users, items, train, test, recs = _random_case(seed, multi)
    d = tmp_path / "split"
    d.mkdir()
    pd.DataFrame(train, columns=["user", "item"]).assign(timestamp=0).to_csv(d / "train.tsv", sep="\t", index=False)
    pd.DataFrame(test, columns=["user", "item"]).assign(timestamp=1).to_csv(d / "test.tsv", sep="\t", index=False)
    if multi:  # evalkit's multi-target protocol is keyed on cold_items.txt
        (d / "cold_items.txt").write_text("\n".join(items) + "\n")
    ref = evalkit.score(str(d), recs, ks=(5, 10, 20))

    uid, iid = IdMap(users), IdMap(items)
    tdf = pd.DataFrame(test, columns=["user", "item"])
    testds = Dataset(pd.DataFrame({"user": uid.index(tdf.user), "item": iid.index(tdf.item), "timestamp": 1}), uid, iid)
    trdf = pd.DataFrame(train, columns=["user", "item"])
    trainds = Dataset(pd.DataFrame({"user": uid.index(trdf.user), "item": iid.index(trdf.item), "timestamp": 0}), uid, iid)
    ru = np.array(uid.index(list(recs)))
    mat = np.full((len(ru), 20), -1, dtype=np.int64)
    for r, lst in enumerate(recs.values()):
        mat[r, : min(20, len(lst))] = iid.index(lst[:20])
    res = score_recommendations(mat, ru, testds, (5, 10, 20), seen=trainds.csr())
    names = [n for n in ref if "@" in n]
    assert names
    for n in names:
        assert res.metrics[n] == pytest.approx(ref[n], abs=1e-6), n
