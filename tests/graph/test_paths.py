"""KG paths: structure, direction, ranking by contribution and inverse degree, speed."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from fusionrec.errors import ConfigError
from fusionrec.graph.paths import kg_paths
from fusionrec.graph.triples import Triples


def graph(heads: list[str], rels: list[str], tails: list[str], items: list[str]) -> Triples:
    t = Triples.from_labels(heads, rels, tails, entities=items)
    return dataclasses.replace(t, item_entity=t.entity_index.get_indexer(items).astype(np.int64))


ITEMS = ["radiohead", "coldplay", "muse", "abba", "blur"]
#: radiohead and coldplay share the UK (a hub) and a rare label; muse is linked to radiohead directly
KG = graph(
    ["radiohead", "coldplay", "muse", "blur", "radiohead", "coldplay", "muse", "abba", "x1", "x2", "x3"],
    ["origin", "origin", "origin", "origin", "label", "label", "influenced_by", "origin", "origin", "origin", "origin"],
    ["uk", "uk", "uk", "uk", "parlophone", "parlophone", "radiohead", "sweden", "uk", "uk", "uk"],
    ITEMS,
)


def test_two_hop_paths_ranked_rare_entity_first() -> None:
    paths = kg_paths(KG, [0], 1, max_paths=5)  # radiohead -> coldplay
    assert [str(p) for p in paths] == [
        "radiohead -[label]-> parlophone <-[label]- coldplay",
        "radiohead -[origin]-> uk <-[origin]- coldplay",
    ]
    assert paths[0].score > paths[1].score > 0
    assert all(p.history_item == 0 and p.item == 1 for p in paths)


def test_direct_relation_beats_shared_hub_and_keeps_its_direction() -> None:
    paths = kg_paths(KG, [0], 2, max_paths=5)  # radiohead -> muse
    assert str(paths[0]) == "radiohead <-[influenced_by]- muse" and paths[0].forward == (False,)
    assert str(paths[1]) == "radiohead -[origin]-> uk <-[origin]- muse"


def test_weights_rank_history_items_and_max_paths_cuts() -> None:
    plain = kg_paths(KG, [0, 4], 1, max_paths=1)  # radiohead (rare label) wins without weights
    assert plain[0].history_item == 0
    weighted = kg_paths(KG, [0, 4], 1, max_paths=3, item_weights={0: 0.01, 4: 1.0})
    assert weighted[0].history_item == 4 and len(weighted) == 3
    assert [p.score for p in weighted] == sorted((p.score for p in weighted), reverse=True)


def test_no_path_gives_empty_list_and_item_itself_is_skipped() -> None:
    assert kg_paths(KG, [0, 1], 3) == []  # abba is only linked to sweden
    assert kg_paths(KG, [1], 1) == []


def test_errors() -> None:
    with pytest.raises(ConfigError, match="item_entity"):
        kg_paths(Triples.from_labels(["a"], ["r"], ["b"]), [0], 1)
    with pytest.raises(ConfigError, match="max_paths must be >= 1"):
        kg_paths(KG, [0], 1, max_paths=0)
    with pytest.raises(ConfigError, match="outside the 5 items"):
        kg_paths(KG, [0], 9)


def test_fast_enough_for_many_users() -> None:
    rng = np.random.default_rng(0)
    n_items, n_attr = 3000, 500
    heads = [f"i{i}" for i in rng.integers(0, n_items, 12000)]
    tails = [f"a{a}" if k % 4 else f"i{a % n_items}" for k, a in enumerate(rng.zipf(1.5, 12000) % n_attr)]
    t = graph(heads, [f"r{k % 30}" for k in range(12000)], tails, [f"i{i}" for i in range(n_items)])
    start = time.perf_counter()
    n = 0
    for _ in range(300):  # 300 users x 20 items here; the benchmark times 1,800 x 20 on kg-lastfm
        hist = rng.integers(0, n_items, 10)
        for item in rng.integers(0, n_items, 20):
            n += len(kg_paths(t, hist, int(item), 3))
    assert n > 0
    assert time.perf_counter() - start < 3.0
