"""Splits: the evalkit protocols reproduced exactly, determinism, and CV coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import Dataset
from fusionrec.data import splits as S
from fusionrec.data.side_events import DerivedColumn
from fusionrec.errors import ConfigError, DataError
from tests.conftest import tiny_interactions


def _raw(ds: Dataset, part: Dataset) -> set[tuple[str, str]]:
    i = part.interactions
    return set(zip(ds.user_ids.raw(i.user), ds.item_ids.raw(i.item), strict=True))


def test_leave_last_out_matches_evalkit(evalkit) -> None:
    raw = tiny_interactions(seed=1)
    ds = Dataset.from_frames(raw)
    sp_ = S.leave_last_out(ds)
    ref = raw.assign(row=np.arange(len(raw)))
    tr, va, te = evalkit.split_loo(ref)
    assert _raw(ds, sp_.test) == set(zip(te.user, te.item, strict=False))
    assert _raw(ds, sp_.valid) == set(zip(va.user, va.item, strict=False))
    assert _raw(ds, sp_.train) == set(zip(tr.user, tr.item, strict=False))


def test_leave_last_out_ties_broken_by_file_order() -> None:
    raw = pd.DataFrame({"user": ["a"] * 4, "item": ["x", "y", "z", "w"], "timestamp": [1, 5, 5, 3]})
    sp_ = S.leave_last_out(Dataset.from_frames(raw))
    ds = sp_.train
    assert ds.item_ids.raw(sp_.test.interactions.item).tolist() == ["z"]
    assert ds.item_ids.raw(sp_.valid.interactions.item).tolist() == ["y"]


def test_users_with_few_events_stay_in_train() -> None:
    raw = pd.DataFrame({"user": ["a", "a", "b", "b", "b"], "item": list("xyxyz"), "timestamp": [1, 2, 1, 2, 3]})
    sp_ = S.leave_last_out(Dataset.from_frames(raw))
    assert sp_.train.n_interactions == 3 and sp_.test.n_interactions == 1


def test_cold_item_matches_evalkit(evalkit) -> None:
    raw = tiny_interactions(n_items=50, seed=2)
    ds = Dataset.from_frames(raw)
    sp_ = S.cold_item_split(ds, frac=0.2, seed=0)
    _, te, cold = evalkit.split_cold_item(raw.assign(row=np.arange(len(raw))), seed=0, frac=0.2)
    assert sorted(ds.item_ids.raw(sp_.cold_items)) == sorted(cold)
    assert _raw(ds, sp_.test) == set(zip(te.user, te.item, strict=False))
    assert not set(sp_.train.interactions.item) & set(sp_.cold_items)


def test_random_loo_is_deterministic_and_needs_no_timestamps() -> None:
    raw = tiny_interactions().drop(columns=["timestamp"])
    ds = Dataset.from_frames(raw)
    a, b = S.random_leave_one_out(ds, seed=0), S.random_leave_one_out(ds, seed=0)
    assert a.test.interactions.equals(b.test.interactions)
    assert not a.test.interactions.equals(S.random_leave_one_out(ds, seed=1).test.interactions)
    assert a.test.interactions.user.is_unique and a.test.n_interactions == ds.n_users
    with pytest.raises(DataError, match="no timestamps"):
        S.leave_last_out(ds)


def test_kfold_tests_every_event_once(tiny_dataset) -> None:
    seen = np.zeros(tiny_dataset.n_interactions, dtype=int)
    key = tiny_dataset.interactions.user * 1000 + tiny_dataset.interactions.item
    for part in S.kfold(tiny_dataset, folds=4, seed=0):
        k = part.test.interactions.user * 1000 + part.test.interactions.item
        seen += key.isin(k).to_numpy()
        assert part.train.n_interactions + part.test.n_interactions == tiny_dataset.n_interactions
        assert part.test.interactions.user.nunique() == tiny_dataset.n_users  # 8 events, 4 folds
    assert (seen == 1).all()
    with pytest.raises(ConfigError):
        next(S.kfold(tiny_dataset, folds=1))


def test_rolling_origin_trains_on_the_past(tiny_dataset) -> None:
    parts = list(S.rolling_origin(tiny_dataset, n_splits=3, test_frac=0.1))
    assert len(parts) == 3
    for p in parts:
        assert p.train.interactions.timestamp.max() <= p.test.interactions.timestamp.min()
    assert parts[0].train.n_interactions < parts[2].train.n_interactions


def test_temporal_and_random(tiny_dataset) -> None:
    t = S.temporal_split(tiny_dataset, test_frac=0.2, valid_frac=0.1)
    assert t.train.interactions.timestamp.max() <= t.test.interactions.timestamp.min()
    r = S.random_split(tiny_dataset, test_frac=0.25, seed=0)
    assert r.train.n_interactions + r.test.n_interactions == tiny_dataset.n_interactions
    with pytest.raises(ConfigError):
        S.random_split(tiny_dataset, test_frac=1.5)


def test_from_files_roundtrip(tmp_path, tiny_dataset) -> None:
    sp_ = S.leave_last_out(tiny_dataset)
    S.write_split(sp_, tmp_path)
    back = S.from_files(tiny_dataset, tmp_path / "train.tsv", tmp_path / "test.tsv", tmp_path / "valid.tsv")
    assert _raw(tiny_dataset, back.train) == _raw(tiny_dataset, sp_.train)
    assert _raw(tiny_dataset, back.test) == _raw(tiny_dataset, sp_.test)
    bad = tmp_path / "bad.tsv"
    bad.write_text("user\titem\ttimestamp\nu1\tnope\t3\n")
    with pytest.raises(DataError, match="nope"):
        S.from_files(tiny_dataset, bad)


# ---------------------------------------------------------------------------------------- side tables
# The split parts carry the training view of the side tables: nothing of a held-out event reaches
# training through a side event on its pair, a timed side event after the split time, a cold item's
# side events, or the tags derived from them.
TOP = 100  # keep every tag in the derived column, so a held-out row's tag would show


def _side_world(seed: int = 3, untimed_interactions: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Interactions, items, and side events: a timed tag on every interaction's pair (its value unique to
    the pair), an untimed tag on every third pair, and timed/untimed tags on random other pairs."""
    raw = tiny_interactions(n_users=12, n_items=30, per_user=8, seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for k, (u, i, t) in enumerate(zip(raw.user, raw.item, raw.timestamp, strict=True)):
        rows.append((u, i, "tag", int(t) + int(rng.integers(-3, 4)), f"p-{u}-{i}"))
        if k % 3 == 0:
            rows.append((u, i, "tag", None, f"q-{u}-{i}"))
    for _ in range(80):
        u, i = f"u{rng.integers(12)}", f"i{rng.integers(30)}"
        rows.append((u, i, "tag", None if rng.random() < 0.3 else int(rng.integers(995, 1025)), f"g{rng.integers(5)}"))
    side = pd.DataFrame(rows, columns=["user", "item", "kind", "timestamp", "value"])
    items = pd.DataFrame({"item": [f"i{i}" for i in range(30)], "title": [f"Item {i}" for i in range(30)]})
    if untimed_interactions:
        raw = raw.drop(columns=["timestamp"])
    return raw, items, side


def _ds(raw: pd.DataFrame, items: pd.DataFrame, side: pd.DataFrame) -> Dataset:
    return Dataset.from_frames(raw, items=items, side_events=side, name="side",
                               derived_items={"tags": DerivedColumn(kind="tag", top=TOP)})


def _pairs(ds: Dataset, df: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(ds.user_ids.raw(df["user"]), ds.item_ids.raw(df["item"]), strict=True))


def _heldout(split: S.Split) -> pd.DataFrame:
    return pd.concat([p.interactions for p in (split.valid, split.test) if p is not None], ignore_index=True)


def _expected_keep(ds: Dataset, heldout: pd.DataFrame, cut: str, cold: set[int] = frozenset()) -> list[bool]:
    """The training-view rule, written out row by row."""
    pairs = set(zip(heldout["user"], heldout["item"], strict=True))
    first: dict[int, int] = {}
    for u, t in zip(heldout["user"], heldout["timestamp"], strict=True):
        first[u] = min(first.get(u, t), t)
    glob = min(heldout["timestamp"]) if len(heldout) else None
    out = []
    for u, i, t in zip(ds.side_events["user"], ds.side_events["item"], ds.side_events["timestamp"], strict=True):
        late = not pd.isna(t) and ((cut == "user" and u in first and t >= first[u]) or
                                   (cut == "global" and glob is not None and t >= glob))
        out.append(not (i in cold or (u, i) in pairs or late))
    return out


def _check_view(ds: Dataset, split: S.Split, cut: str, cold: set[int] = frozenset()) -> None:
    parts = [p for p in (split.train, split.valid, split.test) if p is not None]
    heldout = _heldout(split)
    keep = _expected_keep(ds, heldout, cut, cold)
    want = ds.side_events[np.array(keep)].reset_index(drop=True)
    banned = {v for v, k in zip(ds.side_events["value"], keep, strict=True) if not k and v.startswith(("p-", "q-"))}
    for p in parts:  # every part carries the same training view
        pd.testing.assert_frame_equal(p.side_events, want)
        assert not _pairs(ds, p.side_events) & _pairs(ds, heldout)
        assert not set(p.side_events["item"]) & cold
        tags = {t for s in p.items["tags"] for t in s.split("|") if t}
        assert tags == {v for v in want["value"] if v}  # rebuilt from the kept events only
        assert not tags & banned
    assert split.side_events_dropped is not None
    assert split.side_events_dropped.kept == len(want) and split.side_events_dropped.total == len(ds.side_events) - len(want)


SPLITTERS = {
    "loo": (lambda d, **k: S.leave_last_out(d, **k), "user"),
    "random-loo": (lambda d, **k: S.random_leave_one_out(d, seed=1, **k), "none"),
    "temporal": (lambda d, **k: S.temporal_split(d, test_frac=0.2, valid_frac=0.1, **k), "global"),
    "random": (lambda d, **k: S.random_split(d, test_frac=0.2, valid_frac=0.1, seed=2, **k), "none"),
    "kfold": (lambda d, **k: next(S.kfold(d, folds=3, seed=0, **k)), "none"),
    "rolling": (lambda d, **k: list(S.rolling_origin(d, n_splits=2, test_frac=0.2, **k))[0], "global"),
}


@pytest.mark.parametrize("protocol", list(SPLITTERS))
def test_split_parts_carry_the_training_view_of_the_side_tables(protocol: str) -> None:
    ds = _ds(*_side_world())
    split_fn, cut = SPLITTERS[protocol]
    split = split_fn(ds)
    if protocol == "rolling":  # held out: the test window and everything after it
        train_pairs = set(zip(split.train.interactions.user, split.train.interactions.item, strict=True))
        inter = ds.interactions  # each (user, item) pair occurs once in this world
        rest = inter[[p not in train_pairs for p in zip(inter.user, inter.item, strict=True)]]
        split = S.Split(split.train, split.train.with_interactions(rest), None,
                        side_events_dropped=split.side_events_dropped)
    _check_view(ds, split, cut)
    d = split.side_events_dropped
    assert d.heldout_pairs > 0 and (d.after_cut > 0) == (cut != "none")
    assert "p-" in ds.items["tags"].iloc[0]  # the full dataset still has every tag


def test_leave_last_out_cuts_each_users_side_events_at_their_first_heldout_event() -> None:
    ds = _ds(*_side_world())
    split = S.leave_last_out(ds)
    first = _heldout(split).groupby("user")["timestamp"].min()
    tr = split.train.side_events
    ts = tr["timestamp"]
    timed = ts.notna().to_numpy()
    assert (ts[timed].to_numpy(np.int64) < first.reindex(tr["user"][timed]).to_numpy()).all()
    assert (~timed).any()  # untimed side events are not cut by time


@pytest.mark.parametrize("protocol", list(SPLITTERS))
def test_keep_heldout_side_events_keeps_the_side_tables_whole(protocol: str) -> None:
    ds = _ds(*_side_world())
    split = SPLITTERS[protocol][0](ds, keep_heldout_side_events=True)
    pd.testing.assert_frame_equal(split.train.side_events, ds.side_events)
    pd.testing.assert_frame_equal(split.train.items, ds.items)
    assert split.side_events_dropped is None


@pytest.mark.parametrize("protocol", list(SPLITTERS))
def test_heldout_side_rows_do_not_change_the_training_view(protocol: str) -> None:
    raw, items, side = _side_world()
    ds = _ds(raw, items, side)
    split_fn, _ = SPLITTERS[protocol]
    before = split_fn(ds)
    pairs = _pairs(before.train, before.test.interactions) | (
        _pairs(before.train, before.valid.interactions) if before.valid is not None else set())
    on_held = np.array([(u, i) in pairs for u, i in zip(side.user, side.item, strict=True)])
    late = np.zeros(len(side), dtype=bool)
    if SPLITTERS[protocol][1] == "global":
        cut = _heldout(before).timestamp.min() if protocol != "rolling" else before.test.interactions.timestamp.min()
        late = side.timestamp.notna().to_numpy() & (side.timestamp.fillna(0).to_numpy() >= cut)
    changed = side.copy()
    changed.loc[on_held | late, "value"] = "LEAK"
    extra = side[on_held].assign(value="MORE")
    after = split_fn(_ds(raw, items, pd.concat([changed, extra], ignore_index=True)))
    for a, b in ((before.train, after.train), (before.test, after.test)):
        pd.testing.assert_frame_equal(a.side_events, b.side_events)
        pd.testing.assert_frame_equal(a.items, b.items)


def test_random_loo_without_timestamps_uses_the_pair_rule_only() -> None:
    ds = _ds(*_side_world(untimed_interactions=True))
    split = S.random_leave_one_out(ds, seed=0)
    _check_view(ds, split, "none")
    assert split.side_events_dropped.after_cut == 0


def test_cold_items_have_no_side_events_and_no_derived_tags() -> None:
    ds = _ds(*_side_world())
    split = S.cold_item_split(ds, frac=0.2, seed=0, valid_frac=0.1)
    cold = set(split.cold_items) | set(split.valid_cold_items)
    _check_view(ds, split, "none", cold)
    for i in cold:
        assert split.train.items["tags"].iloc[i] == ""
    assert split.side_events_dropped.cold_items > 0
    keep = S.cold_item_split(ds, frac=0.2, seed=0, valid_frac=0.1, keep_heldout_side_events=True)
    pd.testing.assert_frame_equal(keep.train.side_events, ds.side_events)


def test_cold_item_split_with_valid_items() -> None:
    raw = tiny_interactions(n_items=50, seed=2)
    ds = Dataset.from_frames(raw)
    base = S.cold_item_split(ds, frac=0.2, seed=0, valid_frac=0.0)
    sp_ = S.cold_item_split(ds, frac=0.2, seed=0, valid_frac=0.1)
    assert base.valid is None and base.valid_cold_items is None
    np.testing.assert_array_equal(sp_.cold_items, base.cold_items)  # the test draw is unchanged
    assert sp_.test.interactions.equals(base.test.interactions)
    active = np.unique(ds.interactions.item)
    assert len(sp_.valid_cold_items) == round(0.1 * len(active))
    assert not set(sp_.valid_cold_items) & set(sp_.cold_items)
    assert set(sp_.valid.interactions.item) == set(sp_.valid_cold_items)
    train_items = set(sp_.train.interactions.item)
    assert not train_items & (set(sp_.valid_cold_items) | set(sp_.cold_items))
    assert sp_.train.n_interactions + sp_.valid.n_interactions + sp_.test.n_interactions == ds.n_interactions
    other = S.cold_item_split(ds, frac=0.2, seed=1, valid_frac=0.1)
    assert not np.array_equal(other.valid_cold_items, sp_.valid_cold_items)
    with pytest.raises(ConfigError, match="valid_frac"):
        S.cold_item_split(ds, frac=0.5, valid_frac=0.5)


def test_cold_item_split_with_valid_items_keeps_evalkits_test_draw(evalkit) -> None:
    raw = tiny_interactions(n_items=50, seed=2)
    ds = Dataset.from_frames(raw)
    sp_ = S.cold_item_split(ds, frac=0.2, seed=0, valid_frac=0.1)
    _, te, cold = evalkit.split_cold_item(raw.assign(row=np.arange(len(raw))), seed=0, frac=0.2)
    assert sorted(ds.item_ids.raw(sp_.cold_items)) == sorted(cold)
    assert _raw(ds, sp_.test) == set(zip(te.user, te.item, strict=False))


def test_hold_out_items_carves_the_same_valid_items_out_of_a_files_split(tmp_path) -> None:
    raw, items, side = _side_world()
    ds = _ds(raw, items, side)
    full = S.cold_item_split(ds, frac=0.2, seed=0, valid_frac=0.1)
    files = S.cold_item_split(ds, frac=0.2, seed=0, valid_frac=0.0)
    S.write_split(files, tmp_path)
    back = S.from_files(ds, tmp_path / "train.tsv", tmp_path / "test.tsv", cold_items=tmp_path / "cold_items.txt")
    np.testing.assert_array_equal(back.cold_items, files.cold_items)
    pd.testing.assert_frame_equal(back.train.side_events, files.train.side_events)
    n_rest = len(np.unique(back.train.interactions.item))
    inner = S.hold_out_items(back.train, frac=len(full.valid_cold_items) / n_rest, seed=0)
    np.testing.assert_array_equal(inner.valid_cold_items, full.valid_cold_items)
    assert set(inner.valid.interactions.item) == set(inner.valid_cold_items)
    assert not set(inner.train.interactions.item) & set(inner.valid_cold_items)
    assert inner.test.n_interactions == 0
    pd.testing.assert_frame_equal(inner.train.side_events, full.train.side_events)
    pd.testing.assert_frame_equal(inner.train.items, full.train.items)
    with pytest.raises(ConfigError, match="hold_out_items frac"):
        S.hold_out_items(back.train, frac=1.0)


def test_from_files_cuts_side_events_on_the_files_heldout_pairs(tmp_path) -> None:
    ds = _ds(*_side_world())
    loo = S.leave_last_out(ds)
    S.write_split(loo, tmp_path)
    back = S.from_files(ds, tmp_path / "train.tsv", tmp_path / "test.tsv", tmp_path / "valid.tsv", time_cut="user")
    pd.testing.assert_frame_equal(back.train.side_events, loo.train.side_events)
    pd.testing.assert_frame_equal(back.test.items, loo.train.items)
    pairs_only = S.from_files(ds, tmp_path / "train.tsv", tmp_path / "test.tsv", tmp_path / "valid.tsv")
    _check_view(ds, pairs_only, "none")
    whole = S.from_files(ds, tmp_path / "train.tsv", tmp_path / "test.tsv", keep_heldout_side_events=True)
    pd.testing.assert_frame_equal(whole.train.side_events, ds.side_events)


@pytest.mark.integration
def test_real_side_events_dropped_by_the_splits(real_data_dir) -> None:
    from fusionrec.data import catalog

    if catalog.CATALOG["lastfm-2k"].find(real_data_dir) is None:
        pytest.skip("lastfm-2k not found")
    lf = catalog.load("lastfm-2k", data_dir=real_data_dir)
    d = S.random_leave_one_out(lf, seed=0).side_events_dropped
    assert (d.heldout_pairs, d.after_cut, d.kept) == (2_926, 0, 182_015)  # tags on 825 of 3,766 held-out pairs
    if catalog.CATALOG["ml-latest-small"].find(real_data_dir) is None:
        pytest.skip("ml-latest-small not found")
    ml = catalog.load("ml-latest-small", data_dir=real_data_dir)
    d = S.leave_last_out(ml).side_events_dropped
    assert (d.heldout_pairs, d.after_cut, d.kept) == (31, 4, 3_648)
