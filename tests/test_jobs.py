"""jobs: make_split hands every protocol the training view of the side tables, or, when told, the whole."""

from __future__ import annotations

import pandas as pd
import pytest

from fusionrec.data import Dataset
from fusionrec.errors import ConfigError
from fusionrec.jobs import SPLITS, make_split
from tests.conftest import tiny_interactions


@pytest.mark.parametrize("protocol", [p for p in SPLITS if p != "none"])
def test_make_split_cuts_side_events_unless_kept(protocol: str) -> None:
    raw = tiny_interactions(n_users=20, n_items=30, per_user=6)
    ds = Dataset.from_frames(raw, side_events=raw.assign(kind="tag")[["user", "item", "kind", "timestamp"]])
    cut = make_split(ds, protocol, seed=0)
    assert cut.side_events_dropped is not None and cut.side_events_dropped.total > 0
    assert len(cut.train.side_events) < len(ds.side_events)
    kept = make_split(ds, protocol, seed=0, keep_heldout_side_events=True)
    assert kept.side_events_dropped is None
    pd.testing.assert_frame_equal(kept.train.side_events, ds.side_events)
    if protocol == "cold-item":
        assert kept.valid_cold_items is not None and not set(kept.valid_cold_items) & set(kept.cold_items)


def test_make_split_unknown_protocol() -> None:
    with pytest.raises(ConfigError, match="known splits"):
        make_split(Dataset.from_frames(tiny_interactions()), "sideways")
