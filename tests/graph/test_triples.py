"""Triples: loading user files (and their errors), dataset KGs, attribute triples, the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError, DataError
from fusionrec.graph.triples import (
    ITEM_PREFIX,
    Triples,
    attribute_triples,
    load_triples,
    split_triples,
    triples_from_dataset,
)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kg.tsv"
    p.write_text(text)
    return p


def test_load_triples_codes_names_and_skips_header_blank_and_comments(tmp_path: Path) -> None:
    p = write(tmp_path, "head\trelation\ttail\n# a comment\nalien\tdirected_by\tscott\n\n"
                        "blade runner\tdirected_by\tscott\nalien\tgenre\tsci-fi\n")
    t = load_triples(p)
    assert len(t) == 3 and t.n_relations == 2 and t.n_entities == 4
    assert [t.labels(i) for i in range(3)] == [("alien", "directed_by", "scott"),
                                               ("blade runner", "directed_by", "scott"), ("alien", "genre", "sci-fi")]
    assert t.heads[0] == t.heads[2] and t.tails[0] == t.tails[1]
    pd.testing.assert_frame_equal(t.to_frame(), pd.DataFrame({
        "head": ["alien", "blade runner", "alien"], "relation": ["directed_by", "directed_by", "genre"],
        "tail": ["scott", "scott", "sci-fi"]}), check_dtype=False)


@pytest.mark.parametrize(("text", "message"), [
    ("a\tr\tb\na\tr\n", "line 2: expected 3 tab-separated fields"),
    ("a r b\n", "line 1: expected 3 .* got 1 \\(the file must be tab-separated\\)"),
    ("a\tr\tb\tc\n", "line 1: expected 3 .* got 4"),
    ("a\t\tb\n", "line 1: empty relation"),
    ("head\trelation\ttail\n", "holds no triples"),
])
def test_bad_triple_files_give_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_triples(write(tmp_path, text))


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_triples(tmp_path / "nope.tsv")
    p = tmp_path / "latin.tsv"
    p.write_bytes("caf\xe9\tr\tb\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_triples(p)


def kg_dataset() -> Dataset:
    inter = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": ["a", "b", "c"]})
    items = pd.DataFrame({"item": ["a", "b", "c"], "genres": ["rock|pop", "rock", ""], "label": ["x", "y", "x"]})
    kg = pd.DataFrame({"head": ["e_a", "e_b"], "relation": ["origin", "origin"], "tail": ["uk", "uk"]})
    ents = pd.DataFrame({"item": ["a", "b"], "entity": ["e_a", "e_b"]})
    return Dataset.from_frames(inter, items=items, kg=kg, item_entities=ents,
                               item_schema={"genres": "multi", "label": "categorical"})


def test_triples_from_dataset_maps_items_to_entities_and_gives_unmapped_items_a_node() -> None:
    data = kg_dataset()
    t = triples_from_dataset(data)
    assert t.item_entity is not None and len(t.item_entity) == 3
    names = t.entities[t.item_entity].tolist()
    assert names == ["e_a", "e_b", ITEM_PREFIX + "c"]
    assert sorted(t.labels(i) for i in range(len(t))) == [("e_a", "origin", "uk"), ("e_b", "origin", "uk")]


def test_attribute_triples_turn_categorical_and_multi_columns_into_triples() -> None:
    data = kg_dataset()
    t = attribute_triples(data)
    got = sorted(t.labels(i) for i in range(len(t)))
    assert got == [("e_a", "genres", "genres:pop"), ("e_a", "genres", "genres:rock"), ("e_a", "label", "label:x"),
                   ("e_b", "genres", "genres:rock"), ("e_b", "label", "label:y"), ("item:c", "label", "label:x")]
    merged = triples_from_dataset(data).merge(t)
    assert len(merged) == 8 and merged.n_relations == 3
    assert merged.entities[merged.item_entity].tolist() == ["e_a", "e_b", "item:c"]
    with pytest.raises(ConfigError, match="not categorical/multi"):
        attribute_triples(data, ["nope"])


def test_split_keeps_every_held_out_entity_in_train() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    t = Triples.from_labels([f"e{x}" for x in rng.integers(0, 400, n)], [f"r{x}" for x in rng.integers(0, 5, n)],
                            [f"e{x}" for x in rng.integers(0, 400, n)])
    train, valid, test = split_triples(t, 0.1, 0.1, seed=0)
    assert len(train) + len(valid) + len(test) == len(t)
    assert 0.05 * n < len(test) <= 0.1 * n + 50 and 0.05 * n < len(valid)
    seen = set(train.heads.tolist()) | set(train.tails.tolist())
    for part in (valid, test):
        assert set(part.heads.tolist()) <= seen and set(part.tails.tolist()) <= seen
        assert set(part.relations.tolist()) <= set(train.relations.tolist())
    rows = {tuple(r) for part in (train, valid, test) for r in part.array().tolist()}
    assert rows == {tuple(r) for r in t.array().tolist()}
    again = split_triples(t, 0.1, 0.1, seed=0)[2]
    np.testing.assert_array_equal(again.array(), test.array())
    with pytest.raises(ConfigError, match="valid_frac and test_frac"):
        split_triples(t, 0.6, 0.5)


def test_leaf_triples_stay_in_train() -> None:
    t = Triples.from_labels(["a", "b"], ["r", "r"], ["c", "d"])  # every entity occurs once
    train, valid, test = split_triples(t, 0.4, 0.4, seed=1)
    assert len(train) == 2 and len(valid) == len(test) == 0


def test_bad_indices_are_rejected() -> None:
    ent = np.array(["a", "b"], dtype=object)
    with pytest.raises(DataError, match="heads must index a vocabulary of 2"):
        Triples(np.array([5]), np.array([0]), np.array([1]), ent, np.array(["r"], dtype=object))
