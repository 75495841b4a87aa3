"""Generic dataset directories: reading tables, loading, writing, pre-split files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import io
from fusionrec.data.io import load_directory, read_interactions_file, read_table, write_directory
from fusionrec.data.schema import Dataset
from fusionrec.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _full_dir(root: Path) -> Path:
    """A directory with every table, a schema and one image."""
    _write(root / "interactions.tsv",
           "user\titem\ttimestamp\trating\n"
           "007\ti1\t100\t4\n"
           "u2\ti2\t50\t3.5\n"
           "007\ti3\t200\t5\n"
           "NA\ti1\t10\t1\n")
    _write(root / "items.csv",
           "item,title,genres,year,poster\n"
           'i1,"Heat, the movie",Action|Crime,1995,img/i1.jpg\n'
           "i2,Up,,2009,\n"
           "i3,Alien,Horror|Sci-Fi,,img/i3.jpg\n")
    _write(root / "users.tsv", "user\tage\tzip\n007\t30\t01002\nu2\t\t90210\nu9\t41\t00000\n")
    _write(root / "social.tsv", "user\tfriend\n007\tu2\nu2\t007\nu2\tu10\n")
    _write(root / "kg.tsv", "head\trelation\ttail\ne1\tdirected_by\te9\ne2\tgenre\te8\n")
    _write(root / "item_entities.tsv", "item\tentity\ni1\te1\ni2\te2\n")
    _write(root / "side_events.tsv", "user\titem\tkind\n007\ti2\ttagged\nu2\ti3\ttagged\nu2\ti1\tclicked\n")
    (root / "img").mkdir()
    (root / "img" / "i1.jpg").write_bytes(b"\xff\xd8")
    (root / "img" / "i3.jpg").write_bytes(b"\xff\xd8")
    _write(root / "schema.json", json.dumps({
        "items": {"title": "text", "genres": "multi", "year": "numeric", "poster": "image"},
        "users": {"age": "numeric", "zip": "categorical"},
    }))
    return root


# ---------------------------------------------------------------------------------------- read_table
@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".tsv", "\t")])
def test_read_table_keeps_ids_as_strings(tmp_path: Path, suffix: str, sep: str) -> None:
    p = _write(tmp_path / f"t{suffix}", sep.join(["user", "item", "score"]) + "\n"
               + sep.join(["007", "NA", "1.5"]) + "\n" + sep.join(["7", "null", "NA"]) + "\n")
    df = read_table(p)
    assert df["user"].tolist() == ["007", "7"]
    assert df["item"].tolist() == ["NA", "null"]  # ids are never NA markers
    assert pd.api.types.is_float_dtype(df["score"]) and np.isnan(df["score"].iloc[1])


def test_read_table_parquet(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pd.DataFrame({"user": [1, 2], "item": ["a", "b"], "x": [0.5, 1.0]}).to_parquet(p)
    df = read_table(p)
    assert df["user"].tolist() == ["1", "2"]
    assert df["x"].tolist() == [0.5, 1.0]


def test_read_table_extra_string_columns(tmp_path: Path) -> None:
    p = _write(tmp_path / "users.tsv", "user\tzip\nu1\t01002\n")
    assert read_table(p)["zip"].tolist() == [1002]
    assert read_table(p, str_columns=["zip"])["zip"].tolist() == ["01002"]


def test_read_table_empty_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "interactions.csv", "")
    with pytest.raises(DataError, match=r"interactions\.csv is empty.*header row"):
        read_table(p)


def test_read_table_header_only(tmp_path: Path) -> None:
    p = _write(tmp_path / "interactions.tsv", "user\titem\n")
    with pytest.raises(DataError, match=r"interactions\.tsv has a header but no rows"):
        read_table(p)


def test_read_table_unknown_suffix_and_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown table type '\.xlsx'"):
        read_table(_write(tmp_path / "t.xlsx", "x"))
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "nope.csv")


# ---------------------------------------------------------------------------------------- load_directory
def test_load_directory_full(tmp_path: Path) -> None:
    root = _full_dir(tmp_path / "mydata")
    ds = load_directory(root)
    assert ds.name == "mydata"
    assert ds.n_interactions == 4 and ds.n_items == 3
    assert ds.user_ids.ids.tolist() == ["007", "u2", "NA", "u9", "u10"]
    assert ds.user_ids.raw(ds.interactions["user"]).tolist() == ["007", "u2", "007", "NA"]  # file order
    assert ds.interactions["rating"].tolist() == [4.0, 3.5, 5.0, 1.0]
    assert ds.item_schema == {"title": "text", "genres": "multi", "year": "numeric", "poster": "image"}
    assert ds.items["title"].iloc[0] == "Heat, the movie"
    assert ds.items["genres"].tolist() == ["Action|Crime", "", "Horror|Sci-Fi"]
    assert np.isnan(ds.items["year"].iloc[2])
    poster = ds.items["poster"].tolist()
    assert poster[0] == str((root / "img" / "i1.jpg").resolve()) and Path(poster[0]).is_absolute()
    assert poster[1] is None
    assert ds.users.loc[ds.user_ids.index(["007"])[0], "zip"] == "01002"  # categorical keeps leading zeros
    assert ds.user_schema == {"age": "numeric", "zip": "categorical"}
    assert len(ds.social) == 3 and ds.social["weight"].tolist() == [1.0, 1.0, 1.0]
    assert len(ds.kg) == 2 and ds.item_entities["entity"].tolist() == ["e1", "e2"]
    assert ds.side_events["kind"].tolist() == ["tagged", "tagged", "clicked"]
    assert ds.side_matrix("tagged").nnz == 2 and ds.side_matrix().nnz == 3
    assert ds.has_timestamps


def test_side_events_with_an_unknown_item_say_which(tmp_path: Path) -> None:
    root = _full_dir(tmp_path / "d")
    _write(root / "side_events.tsv", "user\titem\n007\tnope\n")
    with pytest.raises(DataError, match="side events table: unknown item 'nope'"):
        load_directory(root)


def test_load_directory_without_schema_infers_kinds(tmp_path: Path) -> None:
    _write(tmp_path / "interactions.csv", "user,item\nu1,i1\nu2,i2\n")
    _write(tmp_path / "items.csv", "item,title,price\ni1,The Big One,3.5\ni2,Small Thing,2\n")
    ds = load_directory(tmp_path, name="x")
    assert ds.name == "x"
    assert ds.item_schema == {"title": "text", "price": "numeric"}
    assert not ds.has_timestamps


def test_load_directory_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not found; expected a directory with interactions\."):
        load_directory(tmp_path / "nope")


def test_load_directory_without_interactions_lists_expected(tmp_path: Path) -> None:
    _write(tmp_path / "items.csv", "item\ni1\n")
    with pytest.raises(DataError, match=r"no interactions file; expected interactions\.\{tsv,csv,parquet\}.*items\.csv"):
        load_directory(tmp_path)


def test_load_directory_two_interaction_files(tmp_path: Path) -> None:
    _write(tmp_path / "interactions.csv", "user,item\nu1,i1\n")
    _write(tmp_path / "interactions.tsv", "user\titem\nu1\ti1\n")
    with pytest.raises(DataError, match="several files for table 'interactions'"):
        load_directory(tmp_path)


def test_load_directory_bad_schema(tmp_path: Path) -> None:
    _write(tmp_path / "interactions.csv", "user,item\nu1,i1\n")
    _write(tmp_path / "items.csv", "item,title\ni1,x\n")
    _write(tmp_path / "schema.json", '{"items": {"title": "words"}}')
    with pytest.raises(DataError, match=r"unknown column kind.*'words'.*use one of"):
        load_directory(tmp_path)
    _write(tmp_path / "schema.json", '{"item": {"title": "text"}}')
    with pytest.raises(DataError, match=r"keys 'items', 'users' and/or 'derived_items'; got \['item'\]"):
        load_directory(tmp_path)
    _write(tmp_path / "schema.json", '{"items": {"genre": "multi"}}')
    with pytest.raises(DataError, match=r"names column\(s\) \['genre'\] that items\.csv lacks"):
        load_directory(tmp_path)
    _write(tmp_path / "schema.json", "{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_directory(tmp_path)


def test_load_directory_numeric_column_with_text(tmp_path: Path) -> None:
    _write(tmp_path / "interactions.csv", "user,item\nu1,i1\nu1,i2\n")
    _write(tmp_path / "items.csv", "item,year\ni1,1999\ni2,soon\n")
    _write(tmp_path / "schema.json", '{"items": {"year": "numeric"}}')
    with pytest.raises(DataError, match=r"'year' is declared numeric but row 2 holds 'soon'"):
        load_directory(tmp_path)


def test_load_directory_unknown_item_in_interactions(tmp_path: Path) -> None:
    _write(tmp_path / "interactions.csv", "user,item\nu1,i1\nu1,zz\n")
    _write(tmp_path / "items.csv", "item,title\ni1,x\n")
    with pytest.raises(DataError, match=r"unknown item 'zz' \(row 2"):
        load_directory(tmp_path)


# ---------------------------------------------------------------------------------------- write_directory
def _assert_same(a: Dataset, b: Dataset) -> None:
    assert a.user_ids == b.user_ids and a.item_ids == b.item_ids
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    for table in ("items", "users"):
        x, y = getattr(a, table), getattr(b, table)
        assert (x is None) == (y is None)
        if x is not None:
            pd.testing.assert_frame_equal(x, y, check_dtype=False)
    for table in ("social", "kg", "item_entities", "side_events"):
        x, y = getattr(a, table), getattr(b, table)
        assert (x is None) == (y is None)
        if x is not None:
            pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True), check_dtype=False)
    assert a.item_schema == b.item_schema and a.user_schema == b.user_schema
    assert a.has_timestamps == b.has_timestamps


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    ds = load_directory(_full_dir(tmp_path / "src"))
    out = write_directory(ds, tmp_path / "out")
    assert out == tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "interactions.tsv", "item_entities.tsv", "items.tsv", "kg.tsv", "schema.json", "side_events.tsv", "social.tsv",
        "users.tsv"]
    back = load_directory(out)
    _assert_same(ds, back)
    assert back.name == "out"


def test_round_trip_without_timestamps_or_side_tables(tmp_path: Path) -> None:
    inter = pd.DataFrame({"user": ["b", "a", "b"], "item": ["x", "y", "y"], "weight": [3, 1, 2]})
    ds = Dataset.from_frames(inter, name="plain")
    back = load_directory(write_directory(ds, tmp_path / "plain"))
    assert not back.has_timestamps and back.items is None and back.users is None
    _assert_same(ds, back)


def test_round_trip_text_with_tabs_quotes_and_newlines(tmp_path: Path) -> None:
    inter = pd.DataFrame({"user": ["u"], "item": ["i"], "timestamp": [1]})
    items = pd.DataFrame({"item": ["i"], "title": ['He said "hi"\tthen\nleft']})
    ds = Dataset.from_frames(inter, items=items, item_schema={"title": "text"})
    back = load_directory(write_directory(ds, tmp_path / "q"))
    assert back.items["title"].iloc[0] == 'He said "hi"\tthen\nleft'


def test_write_refuses_existing_dir_unless_overwrite(tmp_path: Path) -> None:
    ds = load_directory(_full_dir(tmp_path / "src"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(DataError, match="already exists; pass overwrite=True"):
        write_directory(ds, out)
    write_directory(ds, out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "interactions.tsv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temp or backup dirs left


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_directory(_full_dir(tmp_path / "src"))
    real = io._write_tsv

    def flaky(df: pd.DataFrame, path: Path) -> None:
        if path.name == "kg.tsv":
            raise OSError("disk full")
        real(df, path)

    monkeypatch.setattr(io, "_write_tsv", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_directory(ds, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# ---------------------------------------------------------------------------------------- read_interactions_file
def test_read_interactions_file_tsv(tmp_path: Path) -> None:
    p = _write(tmp_path / "test.tsv", "user\titem\ttimestamp\trating\n007\t9\t30\t4.5\nu1\t1\t10\t2\n")
    df = read_interactions_file(p)
    assert df.columns.tolist() == ["user", "item", "timestamp", "rating"]
    assert df["user"].tolist() == ["007", "u1"] and df["item"].tolist() == ["9", "1"]  # file order, strings
    assert df["timestamp"].dtype == np.int64 and df["timestamp"].tolist() == [30, 10]
    assert df["rating"].tolist() == [4.5, 2.0]


def test_read_interactions_file_csv_without_timestamp(tmp_path: Path) -> None:
    p = _write(tmp_path / "test.txt", "item,user,extra\na,u1,z\nb,u2,z\n")
    df = read_interactions_file(p)
    assert df.columns.tolist() == ["user", "item", "timestamp"]
    assert df["user"].tolist() == ["u1", "u2"] and df["timestamp"].tolist() == [0, 0]


def test_read_interactions_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_interactions_file(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="is empty"):
        read_interactions_file(_write(tmp_path / "empty.tsv", ""))
    with pytest.raises(DataError, match="has a header but no rows"):
        read_interactions_file(_write(tmp_path / "header.tsv", "user\titem\n"))
    with pytest.raises(DataError, match=r"needs column\(s\) \['item'\].*it has \['user', 'movie'\]"):
        read_interactions_file(_write(tmp_path / "cols.tsv", "user\tmovie\nu\tm\n"))
    with pytest.raises(DataError, match=r"timestamp 'yesterday' at row 2 \(line 3\) is not a number"):
        read_interactions_file(_write(tmp_path / "ts.tsv", "user\titem\ttimestamp\nu\ti\t5\nu\tj\tyesterday\n"))
    with pytest.raises(DataError, match=r"rating '' at row 1"):
        read_interactions_file(_write(tmp_path / "r.csv", "user,item,rating\nu,i,\n"))
    with pytest.raises(DataError, match=r"empty item id at row 1"):
        read_interactions_file(_write(tmp_path / "id.csv", "user,item\nu,\n"))


def test_side_events_with_times_values_and_a_derived_column_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write(root / "interactions.tsv", "user\titem\ttimestamp\nu1\ti1\t5\nu2\ti2\t6\n")
    _write(root / "items.tsv", "item\ttitle\ni1\tOne thing\ni2\tTwo things\n")  # no tags column: it is derived
    _write(root / "side_events.tsv", "user\titem\tkind\ttimestamp\tvalue\nu1\ti2\ttag\t3\tNA\nu2\ti2\ttag\t\tnull\n"
                                     "u1\ti1\ttag\t4\t1984\n")
    _write(root / "schema.json", json.dumps({"items": {"title": "text"},
                                             "derived_items": {"tags": {"kind": "tag", "top": 5}}}))
    ds = load_directory(root)
    assert ds.side_events["value"].tolist() == ["NA", "null", "1984"]  # values are text, never NA markers
    assert ds.side_events["timestamp"].isna().tolist() == [False, True, False]
    assert ds.items["tags"].tolist() == ["1984", "NA|null"] and ds.item_schema["tags"] == "multi"
    back = load_directory(write_directory(ds, tmp_path / "out"))
    _assert_same(ds, back)
    assert back.derived_items == ds.derived_items
    assert json.loads((tmp_path / "out" / "schema.json").read_text())["derived_items"] == {
        "tags": {"kind": "tag", "top": 5}}
    _write(root / "schema.json", json.dumps({"derived_items": {"tags": {"kind": "tag", "top": 0}}}))
    with pytest.raises(DataError, match=r"derived_items\['tags'\]: DerivedColumn.top must be"):
        load_directory(root)
    _write(root / "schema.json", json.dumps({"derived_items": {"tags": "tag"}}))
    with pytest.raises(DataError, match=r"derived_items\['tags'\] must be"):
        load_directory(root)
