"""The Dataset: behaviour plus every side source, in one typed, validated schema.

Tables (see docs/architecture.md):

=============  ==========================================================
interactions   user, item, timestamp, [rating], [weight]   (required)
items          item, then text / categorical / multi / numeric / image / audio columns
users          user, then categorical / numeric columns
social         user, friend, [weight]
kg             head, relation, tail  (+ ``item_entities``: item -> entity)
side_events    user, item, kind, [timestamp], [value]  (other behaviours, e.g. tagging: inputs, never targets)
=============  ==========================================================

Raw ids are strings at the edges; inside, ``interactions.user`` / ``.item`` are dense
indices into :attr:`Dataset.user_ids` / :attr:`Dataset.item_ids`. Side tables are indexed by
the same dense indices. Item columns may be derived from side events (:attr:`Dataset.derived_items`,
e.g. lastfm-2k's artist ``tags`` from its tag assignments). The parts of a split share the id maps
and carry the split's *training view* of the side tables (:mod:`fusionrec.data.views`): nothing of a
held-out event reaches training through them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.data.idmap import IdMap
from fusionrec.data.side_events import MULTI_SEP, DerivedColumn, derive_items, index_side_events
from fusionrec.errors import DataError

log = logging.getLogger(__name__)

ColumnKind = Literal["text", "categorical", "multi", "numeric", "image", "audio"]
COLUMN_KINDS: tuple[str, ...] = ("text", "categorical", "multi", "numeric", "image", "audio")


def _require(df: pd.DataFrame, cols: list[str], source: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{source} needs column(s) {missing}; has {list(df.columns)}. "
                        f"Rename the columns (header row) or pass the right file.")


def _require_ids(df: pd.DataFrame, cols: list[str], source: str) -> None:
    """``cols`` present and never empty (a missing id would become a spurious user or item)."""
    _require(df, cols, source)
    for c in cols:
        if df[c].isna().any():
            row = int(np.flatnonzero(df[c].isna().to_numpy())[0])
            raise DataError(f"{source}: empty {c} id at row {row + 1}; fill or drop the row.")


def _numeric(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce")
    if v.isna().any():
        row = int(np.flatnonzero(v.isna().to_numpy())[0])
        raise DataError(f"{source}: {col} {df[col].iloc[row]!r} at row {row + 1} is not a number.")
    return v.to_numpy()


def infer_kind(name: str, col: pd.Series) -> ColumnKind:
    """Guess a side column's kind from its name and values (override with an explicit schema)."""
    lname = name.lower()
    if any(h in lname for h in ("image", "poster", "picture", "img")):
        return "image"
    if any(h in lname for h in ("audio", "sound", "wav", "clip")):
        return "audio"
    if pd.api.types.is_bool_dtype(col):
        return "categorical"
    if pd.api.types.is_numeric_dtype(col):
        return "numeric"
    vals = col.dropna().astype(str)
    if len(vals) == 0:
        return "categorical"
    sample = vals.iloc[: min(len(vals), 2000)]
    if sample.str.contains(MULTI_SEP, regex=False).mean() > 0.05 and sample.str.count(" ").mean() < 2:
        return "multi"
    if sample.str.split().str.len().mean() >= 2.0 or lname in ("title", "name", "text", "description"):
        return "text"
    return "categorical"


@dataclass
class Dataset:
    """Interactions plus side tables, with shared raw-id maps.

    Use :meth:`from_frames` to build one from raw-id tables (it validates them); use
    :meth:`with_interactions` to derive splits.
    """

    interactions: pd.DataFrame  # user:int64, item:int64, timestamp:int64, [rating], [weight]
    user_ids: IdMap
    item_ids: IdMap
    items: pd.DataFrame | None = None  # index = item idx (all items), raw side columns
    users: pd.DataFrame | None = None  # index = user idx (all users)
    social: pd.DataFrame | None = None  # user:int64, friend:int64, weight:float32
    kg: pd.DataFrame | None = None  # head, relation, tail: str
    item_entities: pd.DataFrame | None = None  # item:int64, entity:str
    item_schema: dict[str, str] = field(default_factory=dict)
    user_schema: dict[str, str] = field(default_factory=dict)
    name: str = "dataset"
    has_timestamps: bool = True
    meta: dict[str, object] = field(default_factory=dict)
    # other behaviours than the interactions (lastfm-2k: every tag assignment). Inputs a model may read,
    # never evaluation targets; a split keeps only its training view of them (fusionrec.data.views).
    side_events: pd.DataFrame | None = None  # user:int64, item:int64, kind:str, [timestamp:Int64], [value:str]
    # item columns built from side-event values (lastfm-2k: "tags" = each artist's 20 most used tags)
    derived_items: dict[str, DerivedColumn] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        interactions: pd.DataFrame,
        *,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        social: pd.DataFrame | None = None,
        kg: pd.DataFrame | None = None,
        item_entities: pd.DataFrame | None = None,
        item_schema: dict[str, str] | None = None,
        user_schema: dict[str, str] | None = None,
        name: str = "dataset",
        source: str = "interactions",
        meta: dict[str, object] | None = None,
        side_events: pd.DataFrame | None = None,
        derived_items: dict[str, DerivedColumn] | None = None,
    ) -> Dataset:
        """Validate raw-id tables and index them.

        The item universe is the items table plus any item in the interactions when there is no
        items table; with an items table, an interaction's item must be in it. Users are the union
        of interaction users, the users table, the social graph and the side events.

        ``side_events`` holds ``user, item`` and optionally ``kind`` (default ``"event"``),
        ``timestamp`` (unix seconds; empty = untimed) and ``value`` (e.g. a tag). Each column of
        ``derived_items`` is built here from the side events' values (replacing an items-table
        column of that name in place, else appended) and declared ``multi``; it needs an items
        table and side events with a ``value`` column.
        """
        inter = interactions.copy()
        _require(inter, ["user", "item"], source)
        if len(inter) == 0:
            raise DataError(f"{source} is empty: a dataset needs at least one interaction.")
        _require_ids(inter, ["user", "item"], source)
        has_ts = "timestamp" in inter.columns
        if has_ts:
            ts = pd.to_numeric(inter["timestamp"], errors="coerce")
            if ts.isna().any():
                row = int(np.flatnonzero(ts.isna().to_numpy())[0])
                raise DataError(f"{source}: timestamp {inter['timestamp'].iloc[row]!r} at row {row + 1} is "
                                f"not a number; use unix seconds (integers).")
            inter["timestamp"] = ts.astype(np.int64)
        else:
            inter["timestamp"] = np.zeros(len(inter), dtype=np.int64)
        for c in ("rating", "weight"):
            if c in inter.columns:
                v = pd.to_numeric(inter[c], errors="coerce")
                if v.isna().any():
                    row = int(np.flatnonzero(v.isna().to_numpy())[0])
                    raise DataError(f"{source}: {c} {inter[c].iloc[row]!r} at row {row + 1} is not a number.")
                inter[c] = v.astype(np.float32)

        # ---- item universe
        if items is not None:
            items = items.copy()
            _require(items, ["item"], "items table")
            items["item"] = items["item"].astype(str)
            if items["item"].duplicated().any():
                dup = items.loc[items["item"].duplicated(), "item"].iloc[0]
                raise DataError(f"items table: item {dup!r} appears twice; keep one row per item.")
            item_ids = IdMap(items["item"])
            # side ids must resolve; a missing item in the items table is an error naming the row
            item_idx = item_ids.index(inter["item"], what="item", source=f"{source} (not in the items table)")
        else:
            item_ids = IdMap.from_values(inter["item"])
            item_idx = item_ids.lookup(inter["item"])

        user_cols: list[object] = [inter["user"]]
        if users is not None:
            users = users.copy()
            _require(users, ["user"], "users table")
            users["user"] = users["user"].astype(str)
            if users["user"].duplicated().any():
                dup = users.loc[users["user"].duplicated(), "user"].iloc[0]
                raise DataError(f"users table: user {dup!r} appears twice; keep one row per user.")
            user_cols.append(users["user"])
        if social is not None:
            social = social.copy()
            _require_ids(social, ["user", "friend"], "social table")
            user_cols += [social["user"], social["friend"]]
        if side_events is not None:
            side_events = side_events.reset_index(drop=True)
            _require_ids(side_events, ["user", "item"], "side events table")
            user_cols.append(side_events["user"])
        user_ids = IdMap.from_values(*user_cols)

        out = pd.DataFrame({
            "user": user_ids.lookup(inter["user"]),
            "item": item_idx,
            "timestamp": inter["timestamp"].to_numpy(np.int64),
        })
        for c in ("rating", "weight"):
            if c in inter.columns:
                out[c] = inter[c].to_numpy(np.float32)

        items_df = None
        if items is not None:
            items_df = items.drop(columns=["item"]).reset_index(drop=True)
            items_df.index.name = "item"
        users_df = None
        if users is not None:
            users_df = pd.DataFrame(index=pd.RangeIndex(len(user_ids), name="user"))
            side = users.set_index(user_ids.lookup(users["user"])).drop(columns=["user"])
            users_df = users_df.join(side)
        social_df = None
        if social is not None:
            w = (pd.to_numeric(social["weight"], errors="coerce").fillna(1.0) if "weight" in social.columns
                 else pd.Series(np.ones(len(social))))
            social_df = pd.DataFrame({
                "user": user_ids.lookup(social["user"]),
                "friend": user_ids.lookup(social["friend"]),
                "weight": w.to_numpy(np.float32),
            })
        side_df = None if side_events is None else index_side_events(side_events, user_ids, item_ids)
        derived = dict(derived_items or {})
        if derived:
            if items_df is None or side_df is None or "value" not in side_df.columns:
                raise DataError(f"derived item columns {sorted(derived)} need an items table and side events "
                                f"with a 'value' column; pass items=... and side_events=... with values, or "
                                f"drop derived_items.")
            for col, spec in derived.items():
                if not isinstance(spec, DerivedColumn):
                    raise DataError(f"derived_items[{col!r}] must be a DerivedColumn(kind=..., top=...), got "
                                    f"{type(spec).__name__}")
            items_df = derive_items(items_df, side_df, derived)
        ent_df = None
        if item_entities is not None:
            _require(item_entities, ["item", "entity"], "item-entity map")
            idx = item_ids.index(item_entities["item"], what="item", source="item-entity map")
            ent_df = pd.DataFrame({"item": idx, "entity": item_entities["entity"].astype(str).to_numpy()})
        kg_df = None
        if kg is not None:
            _require(kg, ["head", "relation", "tail"], "kg table")
            kg_df = kg[["head", "relation", "tail"]].astype(str).reset_index(drop=True)

        ischema = dict(item_schema or {})
        for col in derived:
            ischema[col] = "multi"
        if items_df is not None:
            for c in items_df.columns:
                ischema.setdefault(c, infer_kind(c, items_df[c]))
        uschema = dict(user_schema or {})
        if users_df is not None:
            for c in users_df.columns:
                uschema.setdefault(c, infer_kind(c, users_df[c]))
        for s_name, sch in (("item", ischema), ("user", uschema)):
            bad = {k: v for k, v in sch.items() if v not in COLUMN_KINDS}
            if bad:
                raise DataError(f"{s_name} schema: unknown column kind(s) {bad}; use one of {list(COLUMN_KINDS)}")
        return cls(out, user_ids, item_ids, items_df, users_df, social_df, kg_df, ent_df,
                   ischema, uschema, name, has_ts, dict(meta or {}), side_df, derived)

    def with_interactions(self, interactions: pd.DataFrame, *, name: str | None = None) -> Dataset:
        """The same dataset (id maps, side tables) with other interactions (dense indices)."""
        return dataclasses.replace(self, interactions=interactions.reset_index(drop=True),
                                   name=name or self.name)

    def with_side_events(self, side_events: pd.DataFrame | None) -> Dataset:
        """The same dataset with other side events (dense indices) and its derived item columns rebuilt
        from them (:attr:`derived_items`); a split's training view is made this way."""
        side = None if side_events is None else side_events.reset_index(drop=True)
        items = self.items
        if self.derived_items and items is not None:
            items = derive_items(items, side, self.derived_items)
        return dataclasses.replace(self, side_events=side, items=items)

    def with_derived_items(self) -> Dataset:
        """The same dataset with its derived item columns rebuilt from its own side events.

        Examples
        --------
        >>> ds = ds.with_side_events(ds.side_events.iloc[:10]).with_derived_items()  # doctest: +SKIP
        """
        return self.with_side_events(self.side_events)

    def interactions_from_raw(self, df: pd.DataFrame, source: str) -> pd.DataFrame:
        """Index a raw-id interactions frame (user, item, [timestamp], [rating]) with this dataset's maps.

        Unknown items raise :class:`DataError`; unknown users too (extend the dataset first).
        """
        _require(df, ["user", "item"], source)
        out = pd.DataFrame({
            "user": self.user_ids.index(df["user"], what="user", source=source),
            "item": self.item_ids.index(df["item"], what="item", source=source),
            "timestamp": (_numeric(df, "timestamp", source).astype(np.int64) if "timestamp" in df.columns
                          else np.zeros(len(df), dtype=np.int64)),
        })
        for c in ("rating", "weight"):
            if c in df.columns:
                out[c] = _numeric(df, c, source).astype(np.float32)
        return out

    def with_users(self, raw_users: list[str] | np.ndarray | pd.Series) -> Dataset:
        """The same dataset with unseen raw user ids appended to the user map (new users)."""
        ids = self.user_ids.extend(raw_users)
        if ids is self.user_ids:
            return self
        users = self.users.reindex(pd.RangeIndex(len(ids), name="user")) if self.users is not None else None
        return dataclasses.replace(self, user_ids=ids, users=users)

    # ------------------------------------------------------------------ views
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    @property
    def density(self) -> float:
        return self.n_interactions / max(1, self.n_users * self.n_items)

    def csr(self, values: Literal["binary", "weight", "rating", "count", "order"] = "binary") -> sp.csr_matrix:
        """User x item matrix of the interactions, shape (n_users, n_items), float32.

        ``binary`` marks any interaction 1; ``count`` sums repeats; ``weight``/``rating`` sum
        that column (binary where it is absent); ``order`` holds each event's rank by (timestamp,
        file order), 1 = oldest, the latest for a repeated pair (float64) — sequence models read it.
        """
        df = self.interactions
        if values == "order":
            order = np.lexsort((np.arange(len(df)), df["timestamp"].to_numpy()))
            rank = np.empty(len(df), dtype=np.float64)
            rank[order] = np.arange(1, len(df) + 1)
            g = pd.DataFrame({"u": df["user"].to_numpy(), "i": df["item"].to_numpy(), "r": rank})
            g = g.groupby(["u", "i"], sort=False)["r"].max().reset_index()
            return sp.csr_matrix((g["r"].to_numpy(), (g["u"].to_numpy(), g["i"].to_numpy())),
                                 shape=(self.n_users, self.n_items))
        if values in ("weight", "rating") and values in df.columns:
            data = df[values].to_numpy(np.float32)
        else:
            data = np.ones(len(df), dtype=np.float32)
        m = sp.csr_matrix((data, (df["user"].to_numpy(), df["item"].to_numpy())),
                          shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        if values == "binary":
            m.data[:] = 1.0
        return m

    def side_matrix(self, kind: str | None = None) -> sp.csr_matrix:
        """(n_users, n_items) count of side events (of one ``kind``, or all), zero without any.

        A pair with several events (e.g. several tags) counts each; binarise with ``m.data[:] = 1``.
        """
        df = self.side_events
        if df is not None and kind is not None:
            df = df[df["kind"] == kind]
        if df is None or not len(df):
            return sp.csr_matrix((self.n_users, self.n_items), dtype=np.float32)
        m = sp.csr_matrix((np.ones(len(df), np.float32), (df["user"].to_numpy(), df["item"].to_numpy())),
                          shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        return m

    def sources(self) -> dict[str, bool]:
        """Which heterogeneous sources are present."""
        return {
            "behaviour": True,
            "ratings": "rating" in self.interactions.columns,
            "timestamps": self.has_timestamps,
            "content": self.items is not None and len(self.item_schema) > 0,
            "user_profile": self.users is not None and len(self.user_schema) > 0,
            "social": self.social is not None and len(self.social) > 0,
            "knowledge_graph": self.kg is not None and len(self.kg) > 0,
            "side_events": self.side_events is not None and len(self.side_events) > 0,
        }

    def modalities(self) -> dict[str, list[str]]:
        """Item columns grouped by modality kind, e.g. ``{"text": ["title"], "image": ["poster"]}``."""
        out: dict[str, list[str]] = {}
        for col, kind in self.item_schema.items():
            out.setdefault(kind, []).append(col)
        return out

    def describe(self) -> dict[str, object]:
        """Counts, density, sources and modalities, as plain JSON-able values."""
        inter = self.interactions
        d: dict[str, object] = {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "active_users": int(inter["user"].nunique()),
            "active_items": int(inter["item"].nunique()),
            "density": round(self.density, 6),
            "sources": self.sources(),
            "modalities": self.modalities(),
            "user_fields": dict(self.user_schema),
        }
        if self.has_timestamps and len(inter):
            d["time_range"] = [int(inter["timestamp"].min()), int(inter["timestamp"].max())]
        if "rating" in inter.columns:
            d["rating_range"] = [float(inter["rating"].min()), float(inter["rating"].max())]
        if self.social is not None:
            d["social_edges"] = len(self.social)
        if self.side_events is not None:
            d["side_events"] = {str(k): int(n) for k, n in self.side_events["kind"].value_counts().sort_index().items()}
        if self.kg is not None:
            d["kg_triples"] = len(self.kg)
            d["kg_relations"] = int(self.kg["relation"].nunique())
            d["items_with_entity"] = 0 if self.item_entities is None else int(self.item_entities["item"].nunique())
        return d

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
                f"interactions={self.n_interactions})")
