"""Side events (behaviours other than the interactions) and the item columns derived from them.

A side event is one row ``user, item, kind, [timestamp], [value]``: lastfm-2k's and
ml-latest-small's tag assignments are side events of kind ``"tag"`` whose value is the tag text.
They are model inputs, never evaluation targets, and a split cuts them to its training view
(:mod:`fusionrec.data.views`).

An item column may be *derived* from side-event values (a :class:`DerivedColumn`), e.g. an
artist's ``tags``: the most frequent tags users gave it. Deriving it from the dataset's own side
events means a split that drops held-out tag assignments also drops them from the item text.

Examples
--------
>>> import pandas as pd
>>> side = pd.DataFrame({"item": [0, 0, 0, 1], "kind": "tag", "value": ["rock", "pop", "rock", "jazz"]})
>>> derive_column(side, DerivedColumn(kind="tag", top=1), n_items=3)
['rock', 'jazz', '']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusionrec.data.idmap import IdMap
from fusionrec.errors import DataError

MULTI_SEP = "|"

#: columns of ``Dataset.side_events``: required ones, then the optional ones
SIDE_COLUMNS: tuple[str, ...] = ("user", "item", "kind")
SIDE_OPTIONAL: tuple[str, ...] = ("timestamp", "value")


@dataclass(frozen=True)
class DerivedColumn:
    """An item column built from the values of one kind of side event (a ``multi`` column).

    Parameters
    ----------
    kind
        The side-event kind whose ``value`` forms the column, e.g. ``"tag"``.
    top
        Keep each item's ``top`` most frequent values (ties broken by value), most frequent first,
        joined with ``|``. Items without such events get ``""``.
    """

    kind: str
    top: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"DerivedColumn.kind must be a non-empty side-event kind, got {self.kind!r}")
        if isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1:
            raise ValueError(f"DerivedColumn.top must be an int >= 1, got {self.top!r}")


def index_side_events(raw: pd.DataFrame, user_ids: IdMap, item_ids: IdMap,
                      source: str = "side events table") -> pd.DataFrame:
    """Validate raw-id side events and index them with the dataset's maps.

    Parameters
    ----------
    raw
        ``user, item`` (raw ids, never empty), optional ``kind`` (default ``"event"``),
        ``timestamp`` (unix seconds; empty/NaN = untimed) and ``value`` (text; empty = none).
    user_ids, item_ids
        The dataset's maps; every item must be known.

    Returns
    -------
    pd.DataFrame
        ``user, item`` (int64), ``kind`` (str), then ``timestamp`` (nullable ``Int64``) and
        ``value`` (str or None) when ``raw`` has them, in ``raw``'s row order.

    Raises
    ------
    DataError
        An unknown item, or a timestamp that is not a whole number (the row is named).
    """
    n = len(raw)
    kind = raw["kind"].astype(str).to_numpy(object) if "kind" in raw.columns else np.full(n, "event", dtype=object)
    out = pd.DataFrame({
        "user": user_ids.lookup(raw["user"]),
        "item": item_ids.index(raw["item"], what="item", source=source),
        "kind": kind,
    })
    if "timestamp" in raw.columns:
        out["timestamp"] = _timestamps(raw["timestamp"], source)
    if "value" in raw.columns:
        v = raw["value"]
        empty = v.isna().to_numpy() | (v.astype(str).str.strip() == "").to_numpy()
        out["value"] = pd.Series(np.where(empty, None, v.astype(str).to_numpy(object)), dtype=object)
    return out


def _timestamps(col: pd.Series, source: str) -> pd.Series:
    """Nullable Int64 unix seconds; empty/NaN stays missing (untimed), anything else must be a whole number."""
    v = pd.to_numeric(col, errors="coerce")
    missing = col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()
    bad = np.flatnonzero(v.isna().to_numpy() & ~missing)
    if len(bad):
        r = int(bad[0])
        raise DataError(f"{source}: timestamp {col.iloc[r]!r} at row {r + 1} is not a number; use unix seconds "
                        f"(integers), or leave it empty for an untimed event.")
    f = v.to_numpy(np.float64)
    frac = np.flatnonzero(~np.isnan(f) & (f != np.floor(f)))
    if len(frac):
        r = int(frac[0])
        raise DataError(f"{source}: timestamp {col.iloc[r]!r} at row {r + 1} is not whole seconds; use unix "
                        f"seconds (integers).")
    missing_ts = np.isnan(f)
    return pd.Series(pd.arrays.IntegerArray(np.where(missing_ts, 0, f).astype(np.int64), missing_ts))


def timed(side: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(timestamps int64, is_timed bool)`` of side events; all untimed without a timestamp column."""
    if "timestamp" not in side.columns:
        return np.zeros(len(side), dtype=np.int64), np.zeros(len(side), dtype=bool)
    ts = side["timestamp"]
    return ts.to_numpy(dtype=np.int64, na_value=0), ts.notna().to_numpy()


def derive_column(side: pd.DataFrame | None, spec: DerivedColumn, n_items: int) -> list[str]:
    """One derived item column: per item, its ``spec.top`` most frequent ``spec.kind`` values.

    Parameters
    ----------
    side
        Side events with ``item, kind`` and ``value`` (dense item indices); None = no events.
    spec
        Which kind, how many values.
    n_items
        The number of items (the column's length).

    Returns
    -------
    list[str]
        ``n_items`` strings: values by count (descending), then by value, joined with ``|``;
        ``""`` for an item without such events. Values that are missing or empty are skipped.
    """
    out = [""] * n_items
    if side is None or "value" not in side.columns or not len(side):
        return out
    df = side.loc[(side["kind"] == spec.kind).to_numpy(), ["item", "value"]]
    df = df[df["value"].notna().to_numpy()]
    df = df[(df["value"].astype(str) != "").to_numpy()]
    if not len(df):
        return out
    counts = df.groupby(["item", "value"]).size().rename("n").reset_index()
    counts = counts.sort_values(["item", "n", "value"], ascending=[True, False, True], kind="stable")
    counts = counts.groupby("item", sort=False).head(spec.top)
    groups: dict[int, list[str]] = {}
    for i, v in zip(counts["item"].to_numpy(np.int64), counts["value"].to_numpy(object), strict=True):
        groups.setdefault(int(i), []).append(str(v))
    for i, vals in groups.items():
        out[i] = MULTI_SEP.join(vals)
    return out


def derive_items(items: pd.DataFrame, side: pd.DataFrame | None,
                 derived: dict[str, DerivedColumn]) -> pd.DataFrame:
    """A copy of ``items`` whose derived columns are rebuilt from ``side`` (in place, else appended)."""
    out = items.copy()
    for col, spec in derived.items():
        out[col] = derive_column(side, spec, len(out))
    return out


__all__ = ["SIDE_COLUMNS", "SIDE_OPTIONAL", "DerivedColumn", "derive_column", "derive_items",
           "index_side_events", "timed"]
