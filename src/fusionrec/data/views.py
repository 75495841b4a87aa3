"""The training view of a dataset's side tables: what a split may show a model.

Rule: nothing of a held-out event reaches training, not the event, not a side-table row on the
same (user, item) pair, not a count or a text derived from it. :func:`training_view` applies it
once, for every protocol in :mod:`fusionrec.data.splits`:

* side events on a held-out (user, item) pair (a valid or test event's pair) are removed;
* timed side events at or after the split time are removed: per user (``cut="user"``: the time of
  that user's earliest held-out event; users without held-out events keep theirs) or globally
  (``cut="global"``: the earliest held-out event's time); untimed side events are not cut by time;
* every side event on a cold (held-out) item is removed: a new item has no behaviour at all;
* derived item columns (``Dataset.derived_items``, e.g. tags) are rebuilt from the kept events.

Examples
--------
>>> view, dropped = training_view(data, data.interactions.iloc[-5:], cut="global")  # doctest: +SKIP
>>> dropped.heldout_pairs, dropped.after_cut  # doctest: +SKIP
(3, 12)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from fusionrec.data.schema import Dataset
from fusionrec.data.side_events import timed
from fusionrec.errors import ConfigError

log = logging.getLogger(__name__)

TimeCut = Literal["none", "user", "global"]
TIME_CUTS: tuple[str, ...] = ("none", "user", "global")

LEAK_WARNING = ("keep_heldout_side_events=True: the side tables stay whole, so side events on held-out "
                "(user, item) pairs, after the split time and on cold items (and the item columns derived "
                "from them) leak held-out signal into training; use it only to measure that leak.")


@dataclass(frozen=True)
class SideEventsDropped:
    """How many side events a split's training view removed, each counted under the first rule that hit it.

    Attributes
    ----------
    cold_items
        Events on a cold (held-out) item.
    heldout_pairs
        Events on a held-out (user, item) pair.
    after_cut
        Timed events at or after the split time (not counted above).
    kept
        Events left in the training view.
    """

    cold_items: int = 0
    heldout_pairs: int = 0
    after_cut: int = 0
    kept: int = 0

    @property
    def total(self) -> int:
        """All removed events."""
        return self.cold_items + self.heldout_pairs + self.after_cut


def _pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return users.astype(np.int64) * np.int64(max(1, n_items)) + items.astype(np.int64)


def side_event_mask(data: Dataset, heldout: pd.DataFrame, *, cut: TimeCut = "none",
                    cold_items: np.ndarray | None = None) -> tuple[np.ndarray, SideEventsDropped]:
    """Which of ``data.side_events`` the training view keeps, and what it dropped.

    Parameters
    ----------
    data
        The dataset; its ``side_events`` (if any) are tested.
    heldout
        The held-out events (dense ``user, item``, and ``timestamp`` for a time cut).
    cut
        ``"none"``: no time cut; ``"user"``: per-user cut at that user's earliest held-out event;
        ``"global"``: one cut at the earliest held-out event.
    cold_items
        Dense indices of held-out items; all side events on them are dropped.

    Returns
    -------
    tuple[np.ndarray, SideEventsDropped]
        ``(n_side_events,)`` bool keep-mask and the counts.
    """
    if cut not in TIME_CUTS:
        raise ConfigError(f"unknown time cut {cut!r}; use one of {list(TIME_CUTS)}")
    side = data.side_events
    if side is None or not len(side):
        return np.ones(0 if side is None else len(side), dtype=bool), SideEventsDropped()
    su, si = side["user"].to_numpy(np.int64), side["item"].to_numpy(np.int64)
    hu, hi = heldout["user"].to_numpy(np.int64), heldout["item"].to_numpy(np.int64)
    on_cold = np.isin(si, cold_items) if cold_items is not None and len(cold_items) else np.zeros(len(side), bool)
    on_pair = np.isin(_pair_keys(su, si, data.n_items), _pair_keys(hu, hi, data.n_items)) & ~on_cold
    late = np.zeros(len(side), dtype=bool)
    if cut != "none" and len(heldout):
        ts, is_timed = timed(side)
        hts = heldout["timestamp"].to_numpy(np.int64)
        if cut == "global":
            late = is_timed & (ts >= hts.min())
        else:
            first = pd.Series(hts).groupby(hu).min()  # user -> time of the earliest held-out event
            user_cut = first.reindex(su).to_numpy(np.float64)  # NaN: the user has no held-out event
            with np.errstate(invalid="ignore"):
                late = is_timed & ~np.isnan(user_cut) & (ts >= user_cut)
        late &= ~(on_cold | on_pair)
    keep = ~(on_cold | on_pair | late)
    return keep, SideEventsDropped(int(on_cold.sum()), int(on_pair.sum()), int(late.sum()), int(keep.sum()))


def training_view(data: Dataset, heldout: pd.DataFrame, *, cut: TimeCut = "none",
                  cold_items: np.ndarray | None = None) -> tuple[Dataset, SideEventsDropped]:
    """``data`` with its side events cut to the training view and its derived item columns rebuilt.

    The interactions are left as they are; a split gives every part (train, valid, test) this view
    via ``view.with_interactions(...)``. See :func:`side_event_mask` for the parameters.

    Returns
    -------
    tuple[Dataset, SideEventsDropped]
        The view (``data`` itself when there are no side events) and the counts.
    """
    keep, dropped = side_event_mask(data, heldout, cut=cut, cold_items=cold_items)
    if data.side_events is None:
        return data, dropped
    view = data.with_side_events(data.side_events[keep])
    if dropped.total:
        log.info("%s: the training view drops %d side events (%d on cold items, %d on held-out pairs, %d at or "
                 "after the split time); %d kept", data.name, dropped.total, dropped.cold_items,
                 dropped.heldout_pairs, dropped.after_cut, dropped.kept)
    return view, dropped


__all__ = ["LEAK_WARNING", "TIME_CUTS", "SideEventsDropped", "TimeCut", "side_event_mask", "training_view"]
