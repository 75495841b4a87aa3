"""Evaluation protocols: deterministic splits of a Dataset's interactions.

Every split returns Datasets that share the id maps of the input, so a model trained on ``train``
scores items and users of ``test`` directly. Row order inside each part is the input's (file) order.

All parts of a split (train, valid, test) carry the same *training view* of the side tables
(:func:`fusionrec.data.views.training_view`): side events on held-out (user, item) pairs are removed,
and so are timed side events at or after the split time (per user for :func:`leave_last_out`,
global for :func:`temporal_split` and :func:`rolling_origin`) and every side event on a cold item;
derived item columns (e.g. tags) are rebuilt from what is kept. :attr:`Split.side_events_dropped`
counts what went. ``keep_heldout_side_events=True`` keeps the side tables whole; that leaks held-out
signal into training and exists only to measure the leak.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.schema import Dataset
from fusionrec.data.views import LEAK_WARNING, SideEventsDropped, TimeCut, training_view
from fusionrec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: the generator of validation cold items is seeded with ``(seed, VALID_ITEMS_STREAM)``, apart from the
#: test draw (which stays evalkit's ``default_rng(seed)``)
VALID_ITEMS_STREAM = 1


@dataclass
class Split:
    """train / valid / test parts of one dataset (valid may be None)."""

    train: Dataset
    test: Dataset
    valid: Dataset | None = None
    #: items held out of training for test (cold-item protocol), as dense indices
    cold_items: np.ndarray | None = None
    name: str = "split"
    #: items held out of training for validation (cold-item protocol, :func:`hold_out_items`)
    valid_cold_items: np.ndarray | None = None
    #: side events the training view removed; None when the side tables were kept whole
    side_events_dropped: SideEventsDropped | None = None


def _parts(data: Dataset, masks: dict[str, np.ndarray], name: str, *, keep: bool, cut: TimeCut = "none",
           cold_items: np.ndarray | None = None) -> tuple[dict[str, Dataset], SideEventsDropped | None]:
    """The parts under ``masks`` (one is ``train``; everything else is held out), on one training view."""
    inter = data.interactions
    if keep:
        if data.side_events is not None and len(data.side_events):
            log.warning("%s %s split: %s", data.name, name, LEAK_WARNING)
        view, dropped = data, None
    else:
        view, dropped = training_view(data, inter[~masks["train"]], cut=cut, cold_items=cold_items)
    return {k: view.with_interactions(inter[m], name=f"{data.name}:{name}:{k}") for k, m in masks.items()}, dropped


def _loo_masks(data: Dataset, order_rank: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of each eligible user's last (test) and second-to-last (valid) event under ``order_rank``."""
    inter = data.interactions
    df = pd.DataFrame({"user": inter["user"].to_numpy(), "r": order_rank, "row": np.arange(len(inter))})
    df = df.sort_values(["user", "r", "row"], kind="mergesort")
    g = df.groupby("user", sort=False)
    n = g["row"].transform("size").to_numpy()
    from_end = g.cumcount(ascending=False).to_numpy()
    eligible = n >= min_len
    test = np.zeros(len(inter), dtype=bool)
    valid = np.zeros(len(inter), dtype=bool)
    rows = df["row"].to_numpy()
    test[rows[eligible & (from_end == 0)]] = True
    valid[rows[eligible & (from_end == 1)]] = True
    return test, valid


def leave_last_out(data: Dataset, *, min_len: int = 3, keep_heldout_side_events: bool = False) -> Split:
    """Per user (with >= ``min_len`` events): last event -> test, second-to-last -> valid.

    Events are ordered by timestamp, ties broken by file order — the protocol of
    ``evalkit.py split --protocol loo``. Side tables: the training view drops side events on the
    held-out pairs and each user's timed side events at or after that user's earliest held-out
    event. ``keep_heldout_side_events=True`` keeps them all: that leaks held-out signal into training.
    """
    if not data.has_timestamps:
        raise DataError(f"{data.name} has no timestamps; use random_leave_one_out(data, seed=...)")
    test, valid = _loo_masks(data, data.interactions["timestamp"].to_numpy(), min_len)
    p, dropped = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "loo",
                        keep=keep_heldout_side_events, cut="user")
    return Split(p["train"], p["test"], p["valid"], name="loo", side_events_dropped=dropped)


def random_leave_one_out(data: Dataset, *, seed: int = 0, min_len: int = 3,
                         keep_heldout_side_events: bool = False) -> Split:
    """Per user (with >= ``min_len`` events): one random event -> test, another -> valid.

    For data without timestamps (e.g. lastfm-2k). Deterministic under ``seed``. Side tables: the
    training view drops side events on the held-out pairs (no time cut: the held-out events are
    random, not the latest). ``keep_heldout_side_events=True`` keeps them: that leaks held-out
    signal into training.
    """
    r = np.random.default_rng(seed).random(data.n_interactions)
    # rank 0 and 1 (the two smallest draws) become test and valid: reuse the 'last events' logic
    test, valid = _loo_masks(data, -r, min_len)
    p, dropped = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "random-loo",
                        keep=keep_heldout_side_events)
    return Split(p["train"], p["test"], p["valid"], name="random-loo", side_events_dropped=dropped)


def temporal_split(data: Dataset, *, test_frac: float = 0.1, valid_frac: float = 0.1,
                   keep_heldout_side_events: bool = False) -> Split:
    """Global time split: the latest ``test_frac`` of events -> test, the ``valid_frac`` before -> valid.

    Side tables: the training view drops side events on held-out pairs and every timed side event
    at or after the earliest held-out event. ``keep_heldout_side_events=True`` keeps them: that leaks
    held-out signal into training.
    """
    _check_frac(test_frac, valid_frac)
    if not data.has_timestamps:
        raise DataError(f"{data.name} has no timestamps; use random_split(data, seed=...)")
    inter = data.interactions
    order = np.lexsort((np.arange(len(inter)), inter["timestamp"].to_numpy()))
    pos = np.empty(len(inter), dtype=np.int64)
    pos[order] = np.arange(len(inter))
    n_test = int(round(test_frac * len(inter)))
    n_valid = int(round(valid_frac * len(inter)))
    test = pos >= len(inter) - n_test
    valid = (pos >= len(inter) - n_test - n_valid) & ~test
    p, dropped = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "temporal",
                        keep=keep_heldout_side_events, cut="global")
    return Split(p["train"], p["test"], p["valid"] if n_valid else None, name="temporal", side_events_dropped=dropped)


def random_split(data: Dataset, *, test_frac: float = 0.2, valid_frac: float = 0.0, seed: int = 0,
                 keep_heldout_side_events: bool = False) -> Split:
    """Interactions split uniformly at random (the classic setting for rating prediction).

    Side tables: the training view drops side events on held-out pairs (no time cut).
    ``keep_heldout_side_events=True`` keeps them: that leaks held-out signal into training.
    """
    _check_frac(test_frac, valid_frac)
    r = np.random.default_rng(seed).random(data.n_interactions)
    test = r < test_frac
    valid = (r >= test_frac) & (r < test_frac + valid_frac)
    p, dropped = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "random",
                        keep=keep_heldout_side_events)
    return Split(p["train"], p["test"], p["valid"] if valid_frac > 0 else None, name="random",
                 side_events_dropped=dropped)


def _sorted_raw(data: Dataset, items: np.ndarray) -> np.ndarray:
    """Raw ids of dense ``items`` sorted by (len, id): evalkit's item order."""
    raw = data.item_ids.raw(items)
    order = sorted(range(len(raw)), key=lambda i: (len(raw[i]), raw[i]))
    return np.asarray(raw[order], dtype=object)


def _draw_valid_items(data: Dataset, candidates: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of the dense ``candidates`` (sorted dense indices), drawn with the validation generator."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, VALID_ITEMS_STREAM])
    return np.sort(data.item_ids.index(rng.choice(_sorted_raw(data, candidates), size=n, replace=False)))


def cold_item_split(data: Dataset, *, frac: float = 0.2, seed: int = 0, valid_frac: float = 0.1,
                    keep_heldout_side_events: bool = False) -> Split:
    """Hold out ``frac`` of the items for test and ``valid_frac`` for validation: all their interactions,
    none in training.

    The test items are drawn exactly like ``evalkit.py split --protocol cold-item`` (active items
    sorted by (len, id), ``default_rng(seed)``): :attr:`Split.cold_items`. Then ``round(valid_frac *
    active items)`` validation items are drawn from the remaining items, in the same order, with a
    separate generator seeded ``(seed, 1)``: :attr:`Split.valid_cold_items` (``valid_frac=0``: no
    valid part). Rank test users among the cold items only (valid users among the valid ones).

    Side tables: the training view drops every side event on a test or valid cold item (a new item
    has no behaviour at all). ``keep_heldout_side_events=True`` keeps them: that leaks held-out signal
    into training.
    """
    if not 0 < frac < 1:
        raise ConfigError(f"cold-item frac must be in (0, 1), got {frac}")
    if not 0 <= valid_frac < 1 or frac + valid_frac >= 1:
        raise ConfigError(f"cold-item valid_frac must be in [0, 1) with frac + valid_frac < 1; got frac={frac}, "
                          f"valid_frac={valid_frac}")
    inter = data.interactions
    active = np.unique(inter["item"].to_numpy())
    items = _sorted_raw(data, active)
    rng = np.random.default_rng(seed)
    n_cold = int(round(frac * len(items)))
    cold_raw = rng.choice(items, size=n_cold, replace=False)
    cold = np.sort(data.item_ids.index(cold_raw))
    is_cold = np.isin(inter["item"].to_numpy(), cold)
    valid_cold = _draw_valid_items(data, np.setdiff1d(active, cold), int(round(valid_frac * len(items))), seed)
    is_valid = np.isin(inter["item"].to_numpy(), valid_cold)
    if not (~(is_cold | is_valid)).any():
        raise ConfigError(f"cold-item split of {data.name}: no training items left (frac={frac}, "
                          f"valid_frac={valid_frac}); lower the fractions.")
    masks = {"train": ~(is_cold | is_valid), "test": is_cold}
    if len(valid_cold):
        masks["valid"] = is_valid
    p, dropped = _parts(data, masks, "cold-item", keep=keep_heldout_side_events,
                        cold_items=np.concatenate([cold, valid_cold]))
    return Split(p["train"], p["test"], p.get("valid"), cold_items=cold, name="cold-item",
                 valid_cold_items=valid_cold if len(valid_cold) else None, side_events_dropped=dropped)


def hold_out_items(data: Dataset, *, frac: float = 0.1, seed: int = 0,
                   keep_heldout_side_events: bool = False) -> Split:
    """Carve validation cold items out of an (already split) training Dataset.

    ``round(frac * active items)`` items are drawn as in :func:`cold_item_split`'s validation draw
    (active items sorted by (len, id), generator seeded ``(seed, 1)``); all their interactions form
    ``valid`` and :attr:`Split.valid_cold_items`; ``test`` is empty. E.g. the cold benchmark reads
    evalkit's files with :func:`from_files`, then takes ``hold_out_items(files.train, ...)``. The
    training view drops every side event on the drawn items (``keep_heldout_side_events=True`` keeps
    them: that leaks validation signal into training).

    Examples
    --------
    >>> inner = hold_out_items(files.train, frac=0.1, seed=0)  # doctest: +SKIP
    >>> model.fit(inner.train, inner.valid)  # doctest: +SKIP
    """
    if not 0 < frac < 1:
        raise ConfigError(f"hold_out_items frac must be in (0, 1), got {frac}")
    inter = data.interactions
    active = np.unique(inter["item"].to_numpy())
    held = _draw_valid_items(data, active, int(round(frac * len(active))), seed)
    if not len(held) or len(held) == len(active):
        raise ConfigError(f"hold_out_items of {data.name}: frac={frac} of {len(active)} active items holds out "
                          f"{len(held)}; choose a frac that leaves both some held-out and some training items.")
    is_held = np.isin(inter["item"].to_numpy(), held)
    p, dropped = _parts(data, {"train": ~is_held, "valid": is_held, "test": np.zeros(len(inter), dtype=bool)},
                        "hold-out-items", keep=keep_heldout_side_events, cold_items=held)
    return Split(p["train"], p["test"], p["valid"], name="hold-out-items", valid_cold_items=held,
                 side_events_dropped=dropped)


def kfold(data: Dataset, *, folds: int = 5, seed: int = 0, keep_heldout_side_events: bool = False) -> Iterator[Split]:
    """k-fold cross-validation stratified by user: each user's events are dealt into ``folds`` folds.

    Fold f tests on every user's f-th share and trains on the rest, so every event is tested once
    and every user with >= ``folds`` events appears in every test fold. Side tables: each fold's
    training view drops side events on its test pairs. ``keep_heldout_side_events=True`` keeps them:
    that leaks held-out signal into training.
    """
    if folds < 2:
        raise ConfigError(f"folds must be >= 2, got {folds}")
    inter = data.interactions
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"user": inter["user"].to_numpy(), "r": rng.random(len(inter)), "row": np.arange(len(inter))})
    df = df.sort_values(["user", "r"], kind="mergesort")
    rank = df.groupby("user", sort=False).cumcount().to_numpy()
    offset = rng.integers(0, folds, size=data.n_users)[df["user"].to_numpy()]  # spread remainders
    fold_of = np.empty(len(inter), dtype=np.int64)
    fold_of[df["row"].to_numpy()] = (rank + offset) % folds
    for f in range(folds):
        test = fold_of == f
        p, dropped = _parts(data, {"train": ~test, "test": test}, f"fold{f}", keep=keep_heldout_side_events)
        yield Split(p["train"], p["test"], None, name=f"kfold-{f + 1}/{folds}", side_events_dropped=dropped)


def rolling_origin(data: Dataset, *, n_splits: int = 3, test_frac: float = 0.1,
                   keep_heldout_side_events: bool = False) -> Iterator[Split]:
    """Time-series cross-validation with a rolling origin.

    The last ``n_splits * test_frac`` of events (by time) is cut into ``n_splits`` consecutive
    windows; split s trains on everything before window s and tests on window s. Side tables: split
    s's training view treats everything from window s on as held out (its pairs' side events go) and
    drops every timed side event at or after window s's first event. ``keep_heldout_side_events=True``
    keeps them: that leaks held-out signal into training.
    """
    if n_splits < 1:
        raise ConfigError(f"rolling splits must be >= 1, got {n_splits}")
    if not 0 < test_frac * n_splits < 1:
        raise ConfigError(f"n_splits * test_frac must be in (0, 1), got {n_splits} * {test_frac}")
    if not data.has_timestamps:
        raise DataError(f"{data.name} has no timestamps; rolling-origin CV needs them (use kfold)")
    inter = data.interactions
    order = np.lexsort((np.arange(len(inter)), inter["timestamp"].to_numpy()))
    pos = np.empty(len(inter), dtype=np.int64)
    pos[order] = np.arange(len(inter))
    n = len(inter)
    size = int(round(test_frac * n))
    start0 = n - n_splits * size
    for s in range(n_splits):
        lo, hi = start0 + s * size, start0 + (s + 1) * size
        train, test = pos < lo, (pos >= lo) & (pos < hi)
        # held out: the test window and everything after it (the future of this origin)
        p, dropped = _parts(data, {"train": train, "test": test}, f"roll{s}", keep=keep_heldout_side_events,
                            cut="global")
        yield Split(p["train"], p["test"], None, name=f"rolling-{s + 1}/{n_splits}", side_events_dropped=dropped)


def from_files(data: Dataset, train: str | Path, test: str | Path | None = None,
               valid: str | Path | None = None, *, cold_items: str | Path | None = None,
               time_cut: TimeCut = "none", keep_heldout_side_events: bool = False) -> Split:
    """Pre-split input: the user's own train/valid/test files (header ``user,item,timestamp[,rating]``).

    Items must exist in ``data``; users unknown to ``data`` are added as new users.

    Side tables: the training view drops side events on the valid/test pairs; ``cold_items`` (a file
    of raw item ids, one a line, e.g. evalkit's ``cold_items.txt``) also drops every side event on
    those items and sets :attr:`Split.cold_items`; ``time_cut`` (``"user"`` for a leave-last-out file
    split, ``"global"`` for a temporal one) drops timed side events at or after the split time.
    ``keep_heldout_side_events=True`` keeps the side tables whole: that leaks held-out signal into
    training.
    """
    from fusionrec.data.io import read_interactions_file

    paths = {k: Path(v) for k, v in (("train", train), ("valid", valid), ("test", test)) if v is not None}
    frames = {k: read_interactions_file(p) for k, p in paths.items()}
    all_users = pd.concat([f["user"] for f in frames.values()], ignore_index=True)
    data = data.with_users(all_users)
    inter = {k: data.interactions_from_raw(f, source=str(paths[k])) for k, f in frames.items()}
    cold = None
    if cold_items is not None:
        ids = [x.strip() for x in Path(cold_items).read_text(encoding="utf-8").splitlines() if x.strip()]
        cold = np.sort(data.item_ids.index(ids, what="item", source=str(cold_items)))
    heldout = pd.concat([inter[k] for k in ("valid", "test") if k in inter] + [inter["train"].iloc[:0]],
                        ignore_index=True)
    if keep_heldout_side_events:
        if data.side_events is not None and len(data.side_events):
            log.warning("%s files split: %s", data.name, LEAK_WARNING)
        view, dropped = data, None
    else:
        view, dropped = training_view(data, heldout, cut=time_cut, cold_items=cold)
    parts = {k: view.with_interactions(df, name=f"{data.name}:{k}") for k, df in inter.items()}
    empty = view.with_interactions(data.interactions.iloc[:0])
    return Split(parts["train"], parts.get("test", empty), parts.get("valid"), cold_items=cold, name="files",
                 side_events_dropped=dropped)


def write_split(split: Split, out: str | Path) -> Path:
    """Write ``train.tsv``/``valid.tsv``/``test.tsv`` (raw ids, header ``user item timestamp [rating]``)
    and ``cold_items.txt`` / ``valid_cold_items.txt`` when there are some: the format ``evalkit.py`` and
    ``--train-file`` read."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for part, ds in (("train", split.train), ("valid", split.valid), ("test", split.test)):
        if ds is None:
            continue
        inter = ds.interactions
        df = pd.DataFrame({"user": ds.user_ids.raw(inter["user"].to_numpy()),
                           "item": ds.item_ids.raw(inter["item"].to_numpy()),
                           "timestamp": inter["timestamp"].to_numpy()})
        if "rating" in inter.columns:
            df["rating"] = inter["rating"].to_numpy()
        tmp = out / f".{part}.tsv.tmp"
        df.to_csv(tmp, sep="\t", index=False)
        tmp.replace(out / f"{part}.tsv")
    for fname, items in (("cold_items.txt", split.cold_items), ("valid_cold_items.txt", split.valid_cold_items)):
        if items is not None:
            (out / fname).write_text("".join(f"{i}\n" for i in split.train.item_ids.raw(items)))
    return out


def _check_frac(test_frac: float, valid_frac: float) -> None:
    if not 0 < test_frac < 1 or not 0 <= valid_frac < 1 or test_frac + valid_frac >= 1:
        raise ConfigError(f"need 0 < test_frac < 1, 0 <= valid_frac, and a sum < 1; got {test_frac}, {valid_frac}")
