"""``fusionrec explain`` on graph runs: KG paths and friends in raw ids, the command shape unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fusionrec.data.io import write_directory
from tests.cli.test_cli import cli
from tests.graph.test_explain import world

KEYS = {"item", "rank", "score", "gates", "attended"}  # what other tools script against


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explain-graph")
    write_directory(world(), root / "data")
    for name, model, sets in [("social", "social", ["l2=1.0"]),
                              ("kg", "kg", ["factors=4", "epochs=1", "threads=1"]),
                              ("kg-bare", "kg", ["factors=4", "epochs=1", "threads=1", "attributes=false"])]:
        r = cli("train", "--dataset", root / "data", "--model", model, "--out", root / name,
                *[x for s in sets for x in ("--set", s)])
        assert r.exit_code == 0, r.output
    return root


def explain(*args: Any) -> tuple[str, dict[str, Any]]:
    r = cli("explain", *args)
    assert r.exit_code == 0, r.output
    return r.output, json.loads(r.output[r.output.index('{"user"'):])


def test_kg_run_explains_an_item_by_a_path_in_raw_ids(runs: Path) -> None:
    text, res = explain("--run", runs / "kg", "--user", "u0", "--item", "b")
    (row,) = res["items"]
    assert KEYS <= set(row) and row["item"] == "b" and row["rank"] is None
    assert row["paths"][0]["history_item"] == "a"  # a raw id, not a dense index
    assert row["paths"][0]["path"] == "item:a -[tags]-> tags:rock <-[tags]- item:b"
    assert row["friends"] is None  # the kg model holds no social graph
    assert "why" in text and "-[tags]-> tags:rock" in text  # the table prints the path as is (not as markup)


def test_social_run_names_the_friends_by_raw_id(runs: Path) -> None:
    _, res = explain("--run", runs / "social", "--user", "u0", "--item", "b")
    (row,) = res["items"]
    assert row["paths"] == []
    assert row["friends"]["count"] == 2 and sorted(row["friends"]["top_friends"]) == ["u1", "u2"]
    assert row["friends"]["message"] == "2 of your friends listen to b"
    assert sorted(row["top_friends"]) == ["u1", "u2"] and row["message"] == row["friends"]["message"]
    _, res = explain("--run", runs / "social", "--user", "u0", "--k", "3")
    assert 0 < len(res["items"]) <= 3 and all(KEYS | {"paths", "friends"} <= set(r) for r in res["items"])
    assert [r["rank"] for r in res["items"]] == list(range(1, len(res["items"]) + 1))
    seen = set(pd.read_csv(runs / "data/interactions.tsv", sep="\t", dtype=str).query("user == 'u0'")["item"])
    assert not seen & {r["item"] for r in res["items"]}


def test_a_run_without_graph_data_gets_empty_paths(runs: Path) -> None:
    _, res = explain("--run", runs / "kg-bare", "--user", "u0", "--k", "4")
    assert res["items"] and all(r["paths"] == [] and r["friends"] is None for r in res["items"])
    assert all(KEYS <= set(r) for r in res["items"])


def test_the_why_column_names_a_side_event_boost() -> None:
    from fusionrec.cli.explain import _why

    assert _why({"paths": [], "friends": None}) == ""
    why = _why({"paths": [{"path": "a -[genre]-> rock <-[genre]- b"}], "side_event": {"boost": 1.234}})
    assert why == "a -[genre]-> rock <-[genre]- b; you have a side event (e.g. a tag) on it: score +1.23"


def test_the_why_column_names_the_history_items_behind_the_prior() -> None:
    from fusionrec.cli.explain import _why

    row = {"prior": {"gate": 2.0, "score": 0.5, "because": [{"item": "Heat", "weight": 0.2}, {"item": "Ronin", "weight": 0.1}]}}
    assert _why(row) == "often taken with Heat, Ronin: score +0.50"
    assert _why({"prior": {"gate": 2.0, "score": 0.0, "because": []}}) == ""
