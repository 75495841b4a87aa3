"""Side events with times and values, and item columns derived from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import Dataset
from fusionrec.data.side_events import DerivedColumn, derive_column
from fusionrec.errors import DataError

INTER = pd.DataFrame({"user": ["a", "a", "b"], "item": ["x", "y", "x"], "timestamp": [1, 2, 3]})
ITEMS = pd.DataFrame({"item": ["x", "y", "z"], "title": ["X x", "Y y", "Z z"]})


def _side(**cols: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"user": ["a", "b", "c"], "item": ["x", "x", "y"], "kind": "tag", **cols})


def test_timestamps_and_values_are_typed_and_untimed_rows_stay_missing() -> None:
    ds = Dataset.from_frames(INTER, side_events=_side(timestamp=[5, None, "7"], value=["rock", "", None]))
    side = ds.side_events
    assert str(side["timestamp"].dtype) == "Int64"
    assert side["timestamp"].tolist()[0] == 5 and pd.isna(side["timestamp"].iloc[1]) and side["timestamp"].iloc[2] == 7
    assert side["value"].tolist() == ["rock", None, None]
    assert "c" in ds.user_ids  # a side-event user joins the users
    assert ds.side_matrix("tag").sum() == 3


def test_side_events_without_the_optional_columns_keep_working() -> None:
    ds = Dataset.from_frames(INTER, side_events=pd.DataFrame({"user": ["a", "a"], "item": ["y", "y"]}))
    assert list(ds.side_events.columns) == ["user", "item", "kind"]
    assert ds.side_events["kind"].tolist() == ["event", "event"]
    m = ds.side_matrix()
    assert m.nnz == 1 and m.sum() == 2  # counts per pair; callers binarise


@pytest.mark.parametrize("bad, row", [(["5", "soon", "7"], 2), ([5, 6.5, 7], 2)])
def test_a_timestamp_that_is_not_whole_seconds_names_the_row(bad: list[object], row: int) -> None:
    with pytest.raises(DataError, match=rf"side events table: timestamp .* at row {row} is not"):
        Dataset.from_frames(INTER, side_events=_side(timestamp=bad))


def test_derived_column_is_built_from_the_values_top_n_ties_by_value() -> None:
    side = _side(value=["rock", "pop", "jazz"])
    side = pd.concat([side, pd.DataFrame({"user": ["a"], "item": ["x"], "kind": "tag", "value": ["pop"]}),
                      pd.DataFrame({"user": ["a"], "item": ["x"], "kind": "other", "value": ["zzz"]})])
    items = ITEMS.assign(tags="stale")
    ds = Dataset.from_frames(INTER, items=items, side_events=side,
                             derived_items={"tags": DerivedColumn(kind="tag", top=2)})
    assert ds.items["tags"].tolist() == ["pop|rock", "jazz", ""]  # pop 2, rock 1; the other kind is ignored
    assert list(ds.items.columns) == ["title", "tags"] and ds.item_schema["tags"] == "multi"
    fewer = ds.with_side_events(ds.side_events.iloc[[0, 2]])
    assert fewer.items["tags"].tolist() == ["rock", "jazz", ""]
    assert ds.items["tags"].tolist() == ["pop|rock", "jazz", ""]  # the original is untouched
    again = fewer.with_side_events(ds.side_events).with_derived_items()
    pd.testing.assert_frame_equal(again.items, ds.items)


def test_derive_column_ties_are_broken_by_value() -> None:
    side = pd.DataFrame({"item": [1, 1, 1, 1], "kind": "t", "value": ["b", "c", "a", "c"]})
    assert derive_column(side, DerivedColumn("t", top=2), 2) == ["", "c|a"]
    assert derive_column(None, DerivedColumn("t"), 2) == ["", ""]


def test_derived_columns_need_items_and_values() -> None:
    with pytest.raises(DataError, match="need an items table and side events with a 'value' column"):
        Dataset.from_frames(INTER, items=ITEMS, side_events=_side(), derived_items={"tags": DerivedColumn("tag")})
    with pytest.raises(DataError, match="must be a DerivedColumn"):
        Dataset.from_frames(INTER, items=ITEMS, side_events=_side(value=["a", "b", "c"]),
                            derived_items={"tags": {"kind": "tag"}})  # type: ignore[dict-item]


@pytest.mark.parametrize("kw", [{"kind": ""}, {"kind": "tag", "top": 0}, {"kind": "tag", "top": 2.5}])
def test_derived_column_config_is_checked(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="DerivedColumn"):
        DerivedColumn(**kw)  # type: ignore[arg-type]


def test_side_matrix_of_an_empty_kind_is_zero() -> None:
    ds = Dataset.from_frames(INTER, side_events=_side(timestamp=[1, 2, 3]))
    assert ds.side_matrix("nope").nnz == 0 and ds.side_matrix().shape == (ds.n_users, ds.n_items)
    assert np.array_equal(ds.side_events["timestamp"].to_numpy(np.int64), [1, 2, 3])
