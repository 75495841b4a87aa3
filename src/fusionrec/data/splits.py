"""Evaluation protocols: deterministic splits of a Dataset's interactions.

Every split returns Datasets that share the id maps and side tables of the input and differ only
in their interactions, so a model trained on ``train`` scores items and users of ``test`` directly.
Row order inside each part is the input's (file) order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError, DataError


@dataclass
class Split:
    """train / valid / test parts of one dataset (valid may be None)."""

    train: Dataset
    test: Dataset
    valid: Dataset | None = None
    #: items held out of training (cold-item protocol), as dense indices
    cold_items: np.ndarray | None = None
    name: str = "split"


def _parts(data: Dataset, masks: dict[str, np.ndarray], name: str) -> dict[str, Dataset]:
    inter = data.interactions
    return {k: data.with_interactions(inter[m], name=f"{data.name}:{name}:{k}") for k, m in masks.items()}


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


def leave_last_out(data: Dataset, *, min_len: int = 3) -> Split:
    """Per user (with >= ``min_len`` events): last event -> test, second-to-last -> valid.

    Events are ordered by timestamp, ties broken by file order — the protocol of
    ``evalkit.py split --protocol loo``.
    """
    if not data.has_timestamps:
        raise DataError(f"{data.name} has no timestamps; use random_leave_one_out(data, seed=...)")
    test, valid = _loo_masks(data, data.interactions["timestamp"].to_numpy(), min_len)
    p = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "loo")
    return Split(p["train"], p["test"], p["valid"], name="loo")


def random_leave_one_out(data: Dataset, *, seed: int = 0, min_len: int = 3) -> Split:
    """Per user (with >= ``min_len`` events): one random event -> test, another -> valid.

    For data without timestamps (e.g. lastfm-2k). Deterministic under ``seed``.
    """
    r = np.random.default_rng(seed).random(data.n_interactions)
    # rank 0 and 1 (the two smallest draws) become test and valid: reuse the 'last events' logic
    test, valid = _loo_masks(data, -r, min_len)
    p = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "random-loo")
    return Split(p["train"], p["test"], p["valid"], name="random-loo")


def temporal_split(data: Dataset, *, test_frac: float = 0.1, valid_frac: float = 0.1) -> Split:
    """Global time split: the latest ``test_frac`` of events -> test, the ``valid_frac`` before -> valid."""
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
    p = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "temporal")
    return Split(p["train"], p["test"], p["valid"] if n_valid else None, name="temporal")


def random_split(data: Dataset, *, test_frac: float = 0.2, valid_frac: float = 0.0, seed: int = 0) -> Split:
    """Interactions split uniformly at random (the classic setting for rating prediction)."""
    _check_frac(test_frac, valid_frac)
    r = np.random.default_rng(seed).random(data.n_interactions)
    test = r < test_frac
    valid = (r >= test_frac) & (r < test_frac + valid_frac)
    p = _parts(data, {"train": ~(test | valid), "valid": valid, "test": test}, "random")
    return Split(p["train"], p["test"], p["valid"] if valid_frac > 0 else None, name="random")


def cold_item_split(data: Dataset, *, frac: float = 0.2, seed: int = 0) -> Split:
    """Hold out ``frac`` of the items: all their interactions -> test, none in training.

    Items are drawn like ``evalkit.py split --protocol cold-item`` (items sorted by (len, id)).
    Rank test users among :attr:`Split.cold_items` only.
    """
    if not 0 < frac < 1:
        raise ConfigError(f"cold-item frac must be in (0, 1), got {frac}")
    inter = data.interactions
    active = np.unique(inter["item"].to_numpy())
    raw = data.item_ids.raw(active)
    order = sorted(range(len(raw)), key=lambda i: (len(raw[i]), raw[i]))
    items = np.asarray(raw[order], dtype=object)
    rng = np.random.default_rng(seed)
    n_cold = int(round(frac * len(items)))
    cold_raw = rng.choice(items, size=n_cold, replace=False)
    cold = np.sort(data.item_ids.index(cold_raw))
    is_cold = np.isin(inter["item"].to_numpy(), cold)
    p = _parts(data, {"train": ~is_cold, "test": is_cold}, "cold-item")
    return Split(p["train"], p["test"], None, cold_items=cold, name="cold-item")


def kfold(data: Dataset, *, folds: int = 5, seed: int = 0) -> Iterator[Split]:
    """k-fold cross-validation stratified by user: each user's events are dealt into ``folds`` folds.

    Fold f tests on every user's f-th share and trains on the rest, so every event is tested once
    and every user with >= ``folds`` events appears in every test fold.
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
        p = _parts(data, {"train": ~test, "test": test}, f"fold{f}")
        yield Split(p["train"], p["test"], None, name=f"kfold-{f + 1}/{folds}")


def rolling_origin(data: Dataset, *, n_splits: int = 3, test_frac: float = 0.1) -> Iterator[Split]:
    """Time-series cross-validation with a rolling origin.

    The last ``n_splits * test_frac`` of events (by time) is cut into ``n_splits`` consecutive
    windows; split s trains on everything before window s and tests on window s.
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
        p = _parts(data, {"train": train, "test": test}, f"roll{s}")
        yield Split(p["train"], p["test"], None, name=f"rolling-{s + 1}/{n_splits}")


def from_files(data: Dataset, train: str | Path, test: str | Path | None = None,
               valid: str | Path | None = None) -> Split:
    """Pre-split input: the user's own train/valid/test files (header ``user,item,timestamp[,rating]``).

    Items must exist in ``data``; users unknown to ``data`` are added as new users.
    """
    from fusionrec.data.io import read_interactions_file

    frames = {k: read_interactions_file(Path(v)) for k, v in (("train", train), ("valid", valid), ("test", test))
              if v is not None}
    all_users = pd.concat([f["user"] for f in frames.values()], ignore_index=True)
    data = data.with_users(all_users)
    parts = {k: data.with_interactions(data.interactions_from_raw(f, source=str(Path(p))), name=f"{data.name}:{k}")
             for (k, f), p in zip(frames.items(), [v for v in (train, valid, test) if v is not None], strict=True)}
    empty = data.with_interactions(data.interactions.iloc[:0])
    return Split(parts["train"], parts.get("test", empty), parts.get("valid"), name="files")


def write_split(split: Split, out: str | Path) -> Path:
    """Write ``train.tsv``/``valid.tsv``/``test.tsv`` (raw ids, header ``user item timestamp [rating]``)
    and ``cold_items.txt`` when there is one: the format ``evalkit.py`` and ``--train-file`` read."""
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
    if split.cold_items is not None:
        (out / "cold_items.txt").write_text("".join(f"{i}\n" for i in split.train.item_ids.raw(split.cold_items)))
    return out


def _check_frac(test_frac: float, valid_frac: float) -> None:
    if not 0 < test_frac < 1 or not 0 <= valid_frac < 1 or test_frac + valid_frac >= 1:
        raise ConfigError(f"need 0 < test_frac < 1, 0 <= valid_frac, and a sum < 1; got {test_frac}, {valid_frac}")
