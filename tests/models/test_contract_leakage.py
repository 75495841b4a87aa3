"""Two more contracts every registered model honours, on a small world with every kind of input.

* **No held-out signal reaches training.** Changing the test events (their items) and the side
  events on the test pairs, or deleting both, leaves the fitted model's scores bit-identical: nothing
  of a test event — not the event, not a side event (tag) on the same (user, item) pair, not the item
  text derived from those tags — reaches the training view of a split.
* **Scoring is re-entrant.** One fitted model scores different users, with different histories, from
  8 threads at once and gets exactly the single-thread results (nothing of a call is kept on the model).

Models run as ``fusionrec train`` builds them (``fusion`` inside its item-item prior), with the
contract suite's tiny settings.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.data.side_events import DerivedColumn
from fusionrec.data.splits import Split, leave_last_out
from fusionrec.data.views import training_view
from fusionrec.models import MODELS, Recommender
from fusionrec.models.prior import PriorConfig, WithItemPrior
from tests.models.test_contract import _param, make

N_USERS, N_ITEMS, PER_USER = 24, 30, 8
WRAPPED = {"fusion"}  # wrapped in the item-item prior by default (build_model); topk fixed to keep it quick


def world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Interactions (time order per user, ratings), items (genres), and tag side events with values and
    times: each user tags some items, among them (on purpose) the item of their last event."""
    rng = np.random.default_rng(7)
    rows, tags = [], []
    for u in range(N_USERS):
        block = (u % 3) * 10
        items = block + rng.choice(10, PER_USER, replace=False)
        for t, i in enumerate(items):
            rows.append((f"u{u}", f"i{i}", 1000 * u + t, float(1 + (u + i) % 5)))
        for t, i in enumerate([items[-1], items[0], items[2], rng.integers(0, N_ITEMS)]):
            tags.append((f"u{u}", f"i{i}", f"tag{(i + t) % 6}", 1000 * u + 3 + t))
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    items = pd.DataFrame({"item": [f"i{i}" for i in range(N_ITEMS)],
                          "genres": [f"g{i // 10}|g{i % 4}" for i in range(N_ITEMS)]})
    side = pd.DataFrame(tags, columns=["user", "item", "value", "timestamp"]).assign(kind="tag")
    return inter, items, side


def dataset(inter: pd.DataFrame, items: pd.DataFrame, side: pd.DataFrame) -> Dataset:
    return Dataset.from_frames(inter, items=items, side_events=side, item_schema={"genres": "multi", "tags": "multi"},
                               derived_items={"tags": DerivedColumn(kind="tag", top=5)}, name="leak-world")


def splits() -> dict[str, Split]:
    """The original split; the same with every test event moved to another item (and the tags on the
    test pairs moved with it, their values changed); the same with the test events and those tags deleted."""
    inter, items, side = world()
    base = leave_last_out(dataset(inter, items, side))
    last = inter.groupby("user").tail(1).index  # each user's last event: the test event
    test_pairs = set(zip(inter.loc[last, "user"], inter.loc[last, "item"], strict=True))
    on_test = np.array([(u, i) in test_pairs for u, i in zip(side["user"], side["item"], strict=True)])

    changed = inter.copy()
    moved = {}
    for r in last:
        u, i = changed.at[r, "user"], changed.at[r, "item"]
        had = set(inter.loc[inter["user"] == u, "item"]) | set(side.loc[side["user"] == u, "item"])
        moved[(u, i)] = next(f"i{j}" for j in range(N_ITEMS) if f"i{j}" not in had)
        changed.at[r, "item"] = moved[(u, i)]
    side_b = side.copy()
    side_b.loc[on_test, "item"] = [moved[(u, i)] for u, i in zip(side_b.loc[on_test, "user"],
                                                               side_b.loc[on_test, "item"], strict=True)]
    side_b.loc[on_test, "value"] = "changed"
    changed_split = leave_last_out(dataset(changed, items, side_b))

    deleted = dataset(inter.drop(index=last), items, side[~on_test])
    d = deleted.interactions
    valid_rows = d.groupby("user").tail(1).index  # the valid events, now each user's last
    view, _ = training_view(deleted, d.loc[valid_rows], cut="user")
    keep = ~d.index.isin(valid_rows)
    deleted_split = Split(view.with_interactions(d[keep]), view.with_interactions(d.iloc[:0]),
                          view.with_interactions(d.loc[valid_rows]), name="loo")
    return {"original": base, "test changed": changed_split, "test deleted": deleted_split}


@pytest.fixture(scope="module")
def leak_splits() -> dict[str, Split]:
    return splits()


def build(name: str) -> Recommender:
    model = make(name)
    return WithItemPrior(model, PriorConfig(topk=8)) if name in WRAPPED else model


@pytest.fixture(scope="module", params=[_param(n) for n in MODELS])
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_the_training_views_agree(leak_splits: dict[str, Split]) -> None:
    """The three splits give the same training part, valid part and side tables (else the test below
    would prove nothing)."""
    a = leak_splits["original"]
    for other in ("test changed", "test deleted"):
        b = leak_splits[other]
        pd.testing.assert_frame_equal(a.train.interactions, b.train.interactions)
        pd.testing.assert_frame_equal(a.valid.interactions, b.valid.interactions)
        pd.testing.assert_frame_equal(a.train.side_events.reset_index(drop=True),
                                      b.train.side_events.reset_index(drop=True))
        pd.testing.assert_frame_equal(a.train.items, b.train.items)
    assert a.test.n_interactions == N_USERS and leak_splits["test deleted"].test.n_interactions == 0
    dropped = a.side_events_dropped
    assert dropped is not None and dropped.heldout_pairs >= N_USERS  # the tags on the test items went


def test_changing_or_deleting_test_events_leaves_scores_bit_identical(name: str, leak_splits: dict[str, Split]) -> None:
    users = np.arange(N_USERS)
    scores = {}
    for key, split in leak_splits.items():
        model = build(name).fit(split.train, split.valid)
        scores[key] = model.score(users)
    for key in ("test changed", "test deleted"):
        assert np.array_equal(scores["original"], scores[key]), f"{name}: scores moved when the {key.split()[1]}"


def test_eight_threads_score_exactly_as_one(name: str, leak_splits: dict[str, Split]) -> None:
    split = leak_splits["original"]
    model = build(name).fit(split.train, split.valid)
    rng = np.random.default_rng(0)
    n_users = split.train.n_users
    calls = []
    for c in range(32):  # different users, each with its own extra events (some users new)
        users = rng.choice(n_users + 4, size=5, replace=False)
        rows = [u for u in range(len(users)) for _ in range(2)]
        cols = rng.integers(0, split.train.n_items, size=len(rows))
        extra = sp.csr_matrix((np.arange(1, len(rows) + 1, dtype=np.float64), (rows, cols)),
                              shape=(len(users), split.train.n_items))
        calls.append((users, extra, c))

    def run(call: tuple[np.ndarray, sp.csr_matrix, int]) -> tuple[np.ndarray, np.ndarray]:
        users, extra, _ = call
        local = sp.csr_matrix((extra.data, extra.indices, extra.indptr), shape=extra.shape)
        by_user = sp.csr_matrix((local.data, (users[np.repeat(np.arange(len(users)), np.diff(local.indptr))],
                                              local.indices)), shape=(int(users.max()) + 1, local.shape[1]))
        s = model.score(users, model.user_history(users, by_user))
        items, _ = model.recommend(users, k=5, extra_history=by_user)
        return s, items

    alone = [run(c) for c in calls]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(run, calls * 3))
    for i, (s, items) in enumerate(together):
        s0, items0 = alone[i % len(calls)]
        assert np.array_equal(s, s0), f"{name}: scores of call {i % len(calls)} differ under 8 threads"
        assert np.array_equal(items, items0)


def test_the_check_catches_a_leak() -> None:
    """With the side tables kept whole (the leak ``keep_heldout_side_events`` names), the tags on the test
    pairs reach fusion's side token and the item tags: the same check then sees the scores move."""
    inter, items, side = world()
    whole = leave_last_out(dataset(inter, items, side), keep_heldout_side_events=True)
    last = inter.groupby("user").tail(1).index
    test_pairs = set(zip(inter.loc[last, "user"], inter.loc[last, "item"], strict=True))
    on_test = np.array([(u, i) in test_pairs for u, i in zip(side["user"], side["item"], strict=True)])
    without = leave_last_out(dataset(inter, items, side[~on_test]), keep_heldout_side_events=True)
    users = np.arange(N_USERS)
    a = make("fusion").fit(whole.train, whole.valid).score(users)
    b = make("fusion").fit(without.train, without.valid).score(users)
    assert not np.array_equal(a, b)
