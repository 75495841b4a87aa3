"""The training view: which side events a split may show a model, counted by the rule that removed them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import Dataset
from fusionrec.data.side_events import DerivedColumn
from fusionrec.data.views import SideEventsDropped, side_event_mask, training_view
from fusionrec.errors import ConfigError

INTER = pd.DataFrame({"user": ["a", "a", "a", "b", "b"], "item": ["x", "y", "z", "x", "y"],
                      "timestamp": [1, 5, 9, 2, 6]})
# a's held-out event: (a, z) at 9; b's: (b, y) at 6
SIDE = pd.DataFrame({
    "user": ["a", "a", "a", "a", "b", "b", "b", "c"],
    "item": ["z", "z", "x", "x", "y", "x", "x", "x"],
    "kind": "tag",
    "timestamp": [1, None, 8, 9, 3, 6, None, 100],
    "value": ["on-pair", "on-pair-untimed", "before", "at-cut", "on-pair", "at-cut", "untimed", "no-heldout"],
})


def _ds() -> tuple[Dataset, pd.DataFrame]:
    ds = Dataset.from_frames(INTER, items=pd.DataFrame({"item": ["x", "y", "z"]}), side_events=SIDE,
                             derived_items={"tags": DerivedColumn("tag")})
    return ds, ds.interactions.iloc[[2, 4]]


def _kept(ds: Dataset, keep: np.ndarray) -> list[str]:
    return ds.side_events["value"][keep].tolist()


def test_pair_rule_removes_every_event_on_a_heldout_pair_timed_or_not() -> None:
    ds, held = _ds()
    keep, d = side_event_mask(ds, held)
    assert _kept(ds, keep) == ["before", "at-cut", "at-cut", "untimed", "no-heldout"]
    assert d == SideEventsDropped(cold_items=0, heldout_pairs=3, after_cut=0, kept=5)


def test_user_cut_is_each_users_earliest_heldout_event_inclusive() -> None:
    ds, held = _ds()
    keep, d = side_event_mask(ds, held, cut="user")
    # a's cut 9 drops a's 'at-cut'; b's cut 6 drops b's; c has no held-out event and keeps its late one
    assert _kept(ds, keep) == ["before", "untimed", "no-heldout"]
    assert (d.heldout_pairs, d.after_cut, d.total) == (3, 2, 5)


def test_global_cut_is_the_earliest_heldout_event() -> None:
    ds, held = _ds()
    keep, d = side_event_mask(ds, held, cut="global")  # cut at 6
    assert _kept(ds, keep) == ["untimed"]
    assert (d.heldout_pairs, d.after_cut) == (3, 4)


def test_cold_items_lose_every_side_event_counted_first() -> None:
    ds, held = _ds()
    keep, d = side_event_mask(ds, held, cold_items=ds.item_ids.index(["z"]))
    assert _kept(ds, keep) == ["before", "at-cut", "at-cut", "untimed", "no-heldout"]
    assert (d.cold_items, d.heldout_pairs) == (2, 1)


def test_training_view_rebuilds_the_derived_columns_and_leaves_interactions() -> None:
    ds, held = _ds()
    view, d = training_view(ds, held, cut="user")
    assert view.interactions.equals(ds.interactions)
    assert view.items["tags"].tolist() == ["before|no-heldout|untimed", "", ""]  # ties by value
    assert ds.items["tags"].iloc[2] == "on-pair|on-pair-untimed"  # the input keeps all
    assert d.kept == 3


def test_no_side_events_and_a_bad_cut() -> None:
    ds = Dataset.from_frames(INTER)
    view, d = training_view(ds, ds.interactions.iloc[:1], cut="global")
    assert view is ds and d == SideEventsDropped()
    with pytest.raises(ConfigError, match="unknown time cut 'later'"):
        side_event_mask(ds, ds.interactions, cut="later")  # type: ignore[arg-type]
