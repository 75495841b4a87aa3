"""Graph evidence: the GraphExplainer mixin, graph_evidence over the graph models, evidence_coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.graph.explain import GraphExplainer, evidence_coverage, graph_evidence
from fusionrec.graph.social import friend_matrix
from fusionrec.graph.triples import attribute_triples
from fusionrec.models.kg import KGConfig, KGRecommender
from fusionrec.models.popularity import Popularity
from fusionrec.models.social import SocialConfig, SocialRecommender

TAGS = {"a": "rock|indie", "b": "rock", "c": "jazz", "d": "jazz|blues", "e": "pop", "f": ""}
HISTORY = {"u0": "ac", "u1": "ab", "u2": "be", "u3": "cd", "u4": "def", "u5": "ae"}
FRIENDS = [("u0", "u1"), ("u0", "u2"), ("u3", "u0")]


def world() -> Dataset:
    inter = pd.DataFrame([(u, i) for u, items in HISTORY.items() for i in items], columns=["user", "item"])
    items = pd.DataFrame({"item": list(TAGS), "tags": list(TAGS.values())})
    social = pd.DataFrame(FRIENDS, columns=["user", "friend"])
    return Dataset.from_frames(inter, items=items, social=social, item_schema={"tags": "multi"})


class GraphPop(GraphExplainer, Popularity):
    """Popularity with graph evidence: what a model gets by inheriting the mixin."""


@pytest.fixture(scope="module")
def data() -> Dataset:
    return world()


def fitted(data: Dataset, graph: bool = True) -> GraphPop:
    m = GraphPop().fit(data)
    if graph:
        m.triples_ = attribute_triples(data)
        m.friends_ = friend_matrix(data)
    return m


def it(data: Dataset, *raw: str) -> list[int]:
    return data.item_ids.index(list(raw), what="item", source="test").tolist()


def us(data: Dataset, *raw: str) -> list[int]:
    return data.user_ids.index(list(raw), what="user", source="test").tolist()


def test_a_path_joins_a_history_item_sharing_a_tag(data: Dataset) -> None:
    m = fitted(data)
    (u0,) = us(data, "u0")
    b, d, e, f = it(data, "b", "d", "e", "f")
    paths = m.explain_paths(u0, [b, d, e, f])
    assert [len(p) for p in paths] == [1, 1, 0, 0]  # e (pop) and f (no tags) share nothing with a, c
    assert str(paths[0][0]) == "item:a -[tags]-> tags:rock <-[tags]- item:b"
    assert paths[0][0].history_item == it(data, "a")[0] and paths[0][0].item == b
    assert paths[0][0].score == pytest.approx(1 / math.log(2 + 2))  # weight 1 x rock's degree 2
    assert str(paths[1][0]) == "item:c -[tags]-> tags:jazz <-[tags]- item:d"
    # the history given replaces the training history: with only e seen, b has no path
    h = sp.csr_matrix(([1.0], ([0], it(data, "e"))), shape=(1, data.n_items))
    assert m.explain_paths(u0, [b], history=h) == [[]]
    with pytest.raises(ConfigError, match="top"):
        m.explain_paths(u0, [b], top=0)


def test_friend_evidence_counts_are_exact(data: Dataset) -> None:
    m = fitted(data)
    u0, u1, u2, u3 = us(data, "u0", "u1", "u2", "u3")
    b, d, e, f = it(data, "b", "d", "e", "f")
    rows = m.explain_friends(u0, [b, d, e, f], top=3)
    assert [r["item"] for r in rows] == [b, d, e]  # strongest first; f: no friend has it
    assert [r["friends"] for r in rows] == [2, 1, 1]
    assert sorted(rows[0]["top_friends"]) == sorted([u1, u2])
    assert rows[1]["top_friends"] == [u3] and rows[2]["top_friends"] == [u2]
    assert rows[0]["contribution"] == pytest.approx(2 / 3) and rows[1]["contribution"] == pytest.approx(1 / 3)
    assert rows[0]["message"].startswith("2 of your friends listen to")
    assert len(m.explain_friends(u0, [b], top=1)[0]["top_friends"]) == 1


def test_a_model_without_graph_data_gets_no_evidence_and_no_error(data: Dataset) -> None:
    m = fitted(data, graph=False)
    (u0,) = us(data, "u0")
    items = it(data, "b", "d")
    assert m.explain_paths(u0, items) == [[], []]
    assert m.explain_friends(u0, items) == []
    assert graph_evidence(m, u0, items) == [{"paths": [], "friends": None}] * 2
    plain = Popularity().fit(data)  # neither method: empty evidence too
    assert graph_evidence(plain, u0, items) == [{"paths": [], "friends": None}] * 2


def test_items_and_users_outside_the_graphs_get_no_evidence(data: Dataset) -> None:
    m = fitted(data)
    (u0,) = us(data, "u0")
    new_item, new_user = data.n_items, data.n_users  # added after training (fusion's add_items / new users)
    assert m.explain_paths(u0, [new_item]) == [[]]
    assert m.explain_friends(u0, [new_item]) == []
    assert m.explain_friends(new_user, it(data, "b")) == []


def test_graph_evidence_rows_use_the_models_own_methods(data: Dataset) -> None:
    (u0,) = us(data, "u0")
    b, d, e = it(data, "b", "d", "e")
    ev = graph_evidence(fitted(data), u0, [e, b, d], top=2)
    assert [len(x["paths"]) for x in ev] == [0, 1, 1]  # the order of the items asked for
    assert ev[1]["paths"][0] == {"history_item": it(data, "a")[0],
                                 "path": "item:a -[tags]-> tags:rock <-[tags]- item:b",
                                 "nodes": ["item:a", "tags:rock", "item:b"], "relations": ["tags", "tags"],
                                 "score": pytest.approx(1 / math.log(4))}
    assert [x["friends"]["count"] for x in ev] == [1, 2, 1]
    social = SocialRecommender(SocialConfig(l2=1.0)).fit(data)
    sev = graph_evidence(social, u0, [e, b, d])
    assert [x["friends"]["count"] for x in sev] == [1, 2, 1] and all(x["paths"] == [] for x in sev)
    kg = KGRecommender(KGConfig(factors=4, epochs=1, threads=1)).fit(data)  # attributes only: no kg table
    assert len(kg.triples_) == 7  # a: rock, indie; b: rock; c: jazz; d: jazz, blues; e: pop
    kev = graph_evidence(kg, u0, [e, b, d])
    assert [len(x["paths"]) for x in kev] == [0, 1, 1] and all(x["friends"] is None for x in kev)
    assert kev[1]["paths"][0]["path"] == "item:a -[tags]-> tags:rock <-[tags]- item:b"
    rows = kg.explain(u0, np.array([e, b]))
    assert [r["item"] for r in rows] == [e, b] and rows[0]["attended"] == [] and rows[0]["paths"] == []
    assert rows[1]["paths"] == kev[1]["paths"]


def test_evidence_coverage_counts_every_recommended_item(data: Dataset) -> None:
    m = fitted(data)
    users = np.arange(data.n_users)
    recs, _ = m.recommend(users, 2)
    tags = {int(i): set(filter(None, TAGS[r].split("|"))) for i, r in zip(range(data.n_items),
                                                                       data.item_ids.raw(np.arange(data.n_items)),
                                                                       strict=True)}
    x = data.csr()
    f = friend_matrix(data)
    kg = social = either = 0
    for u in users:
        seen = set(x[u].indices.tolist())
        for i in recs[u][recs[u] >= 0].tolist():
            k = any(tags[j] & tags[i] for j in seen)
            s = bool(x[f[u].indices][:, i].nnz)
            kg, social, either = kg + k, social + s, either + (k or s)
    n = int((recs >= 0).sum())
    res = evidence_coverage(m, users, k=2)
    assert res["items"] == n and res["users"] == data.n_users
    assert (res["kg"], res["social"], res["coverage"]) == pytest.approx((kg / n, social / n, either / n))
    assert 0 < res["kg"] < res["coverage"] < 1  # the world has items of each kind
    none = evidence_coverage(fitted(data, graph=False), users, k=2)
    assert none["coverage"] == none["kg"] == none["social"] == 0.0
