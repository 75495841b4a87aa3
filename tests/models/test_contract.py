"""One contract every model in ``fusionrec.models.MODELS`` honours, on a checkerboard with a known answer.

The checkerboard: users and items fall into blocks; user ``u`` has every item of its block except
item ``u`` (the diagonal is held out), so a model that learns the block structure must rank item
``u`` in user ``u``'s top 3. One extra item ("ghost") has no interactions at all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError, NotFittedError
from fusionrec.models import MODELS, Recommender, get_model_class
from fusionrec.models.base import UNKNOWN_ITEM_SCORE, config_from_dict

BLOCKS = (6, 8, 10)  # users (= items) per block; unequal sizes keep the singular values distinct
N = sum(BLOCKS)
GHOST = N  # index of the item nobody interacted with
#: Models exempt from the held-out-item assertion: they ignore co-occurrence structure.
NO_BLOCK_STRUCTURE = {"pop", "mf"}
#: Models whose scores do not depend on the history given at scoring time.
HISTORY_BLIND = {"pop", "mf"}
NEEDS_RATINGS = {"mf"}
#: Sequence models, exempt from the held-out-item assertion on the checkerboard as built: its events
#: are in item order, so every user's sequence ends at the block's last item, which nothing ever
#: follows in training; what comes next is not learnable from the order, and the held-out item sits
#: in the middle. They must instead pass the same check with each user's events in a random order
#: (``test_sequence_model_finds_held_out_item_in_shuffled_order``), where "next" means "another item of
#: my block". For the same reason a new user who has seen items 0, 1 must get block-0 items in the top
#: 2, not 3: after 0, 1 every ordered training sequence goes on with 2 or 3, never 4 or 5.
SEQUENTIAL = {"sasrec", "gru4rec", "caser", "fusion"}
#: Small, fast settings for the tiny data (applied where the config has the field). Measured for every
#: model at seeds 0-9 with 1 thread (kg, gru4rec, caser also 0-9 with 2 threads): the held-out item ranked
#: first among each user's unseen items (ALS: at worst 2nd), and the first other-block item in the new
#: user's list came 4th or 5th (the checks need it after the 3rd; sequence models after the 2nd). Three
#: entries were sized from that spread. kg: at its defaults (one step per epoch) a held-out item ranked
#: as low as 17th and the new user's top 3 held another block's item at seeds 1-6, 8 and 9. gru4rec: at
#: 40 epochs it overfits the shuffled orders, and held-out items ranked 5th-6th at seeds 1, 3 and 4.
#: caser: a new user has a zero user vector; at user_dropout 0.2 its list led with another block's item
#: at seeds 5 and 7. Seed 0 passed with all three.
TINY: dict[str, dict[str, object]] = {
    "*": {"factors": 4},
    "puresvd": {"factors": 3},
    "bpr": {"factors": 8, "iterations": 200, "learning_rate": 0.05},
    "mf": {"factors": 4, "epochs": 30, "batch_size": 32, "lr": 0.02},
    # torch models: tiny networks, one thread, a fixed number of epochs (no valid set here), no warm-up
    "ncf": {"factors": 8, "mlp_layers": 2, "epochs": 20, "batch_size": 128, "lr": 0.02, "warmup_steps": 0,
            "threads": 1},
    "sasrec": {"hidden": 16, "inner": 32, "layers": 1, "heads": 1, "max_len": 8, "dropout": 0.1, "attn_dropout": 0.0,
               "targets": 1, "epochs": 40, "batch_size": 8, "lr": 0.01, "warmup_steps": 0, "threads": 1},
    "gru4rec": {"hidden": 32, "max_len": 8, "dropout": 0.0, "targets": 1, "epochs": 20, "batch_size": 8, "lr": 0.02,
                "warmup_steps": 0, "threads": 1},
    "kg": {"factors": 8, "epochs": 40, "batch_size": 32, "lr": 0.02, "threads": 1},
    "fusion": {"hidden": 16, "user.inner": 32, "user.layers": 1, "user.heads": 1, "user.max_len": 8,
               "user.dropout": 0.1, "user.attn_dropout": 0.0, "user.targets": 1, "epochs": 40, "batch_size": 8,
               "lr": 0.01, "warmup_steps": 0, "threads": 1, "item.inner": 32, "text.encoder": "hashed"},
    "caser": {"hidden": 16, "window": 3, "targets": 2, "horizontal": 4, "vertical": 2, "dropout": 0.0,
              "user_dropout": 0.5, "epochs": 40, "batch_size": 32, "lr": 0.01, "warmup_steps": 0, "threads": 1},
}
#: An invalid value per common setting; a model's config must reject the first one it has.
BAD_VALUES: list[tuple[str, object]] = [("factors", 0), ("neighbors", 0), ("l2", 0.0), ("iterations", 0),
                                        ("epochs", 0), ("shrink", -1.0)]


def _param(name: str) -> object:
    """A pytest param for a registered model; skipped while its module does not import yet."""
    try:
        get_model_class(name)
    except ImportError as e:
        return pytest.param(name, marks=pytest.mark.skip(reason=f"model {name!r} is not importable yet: {e}"))
    return pytest.param(name)


def block_of(idx: int) -> int:
    return int(np.searchsorted(np.cumsum(BLOCKS), idx, side="right"))


def checkerboard(ratings: bool, shuffled_order: bool = False) -> Dataset:
    rows = []
    start = 0
    for size in BLOCKS:
        for u in range(start, start + size):
            for i in range(start, start + size):
                if i != u:
                    rows.append({"user": f"u{u}", "item": f"i{i}", "rating": 3.0 + (u + i) % 3})
        start += size
    df = pd.DataFrame(rows)
    if shuffled_order:  # each user's events in a random (seeded) time order; rows and ids unchanged
        df["timestamp"] = np.random.default_rng(0).permutation(len(df))
    if not ratings:
        df = df.drop(columns=["rating"])
    items = pd.DataFrame({"item": [f"i{i}" for i in range(N)] + ["ghost"]})
    return Dataset.from_frames(df, items=items, name="checkerboard")


def make(name: str, **overrides: object) -> Recommender:
    """The registered model ``name`` itself (no wrappers) with the TINY settings its config has."""
    klass = get_model_class(name)
    fields = {f.name for f in dataclasses.fields(klass.Config)}
    settings = {**TINY["*"], **TINY.get(name, {}), **overrides}
    return klass(config_from_dict(klass.Config, {k: v for k, v in settings.items() if k.split(".")[0] in fields},
                                  model=name))


def extra(rows: dict[int, list[int]], n_rows: int) -> sp.csr_matrix:
    """A (n_rows, n_items) binary CSR with ``rows[user]`` items set."""
    r = [u for u, its in rows.items() for _ in its]
    c = [i for its in rows.values() for i in its]
    return sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n_rows, N + 1))


@pytest.fixture(scope="module", params=[_param(n) for n in MODELS])
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def data(name: str) -> Dataset:
    return checkerboard(ratings=name in NEEDS_RATINGS)


@pytest.fixture(scope="module")
def model(name: str, data: Dataset) -> Recommender:
    return make(name).fit(data)


def test_dataset_is_the_checkerboard(data: Dataset) -> None:
    assert data.n_users == N and data.n_items == N + 1
    x = data.csr().toarray()
    assert x.diagonal().sum() == 0 and x[:, GHOST].sum() == 0


def test_fit_returns_self(name: str, data: Dataset) -> None:
    m = make(name)
    assert m.fit(data) is m


def test_held_out_item_in_top3(name: str, model: Recommender) -> None:
    if name in NO_BLOCK_STRUCTURE:
        pytest.skip(f"{name} does not model item co-occurrence")
    if name in SEQUENTIAL:
        pytest.skip(f"{name} predicts the next event; see SEQUENTIAL (checked on a shuffled order instead)")
    items, _ = model.recommend(np.arange(N), k=3)
    missed = [u for u in range(N) if u not in items[u]]
    assert not missed, f"{name}: held-out item not in the top 3 of users {missed}"


def test_sequence_model_finds_held_out_item_in_shuffled_order(name: str) -> None:
    if name not in SEQUENTIAL:
        pytest.skip(f"{name} is checked on the checkerboard as built")
    data = checkerboard(ratings=False, shuffled_order=True)
    assert data.user_ids.raw(np.arange(N)).tolist() == [f"u{u}" for u in range(N)]
    assert data.item_ids.raw(np.arange(N)).tolist() == [f"i{i}" for i in range(N)]
    model = make(name).fit(data)
    items, _ = model.recommend(np.arange(N), k=3)
    missed = [u for u in range(N) if u not in items[u]]
    assert not missed, f"{name}: held-out item not in the top 3 of users {missed}"
    new, seen = N, [0, 1]  # a new user with two block-0 items: the rest of block 0 comes first
    items, _ = model.recommend([new], k=3, extra_history=extra({new: seen}, new + 1))
    assert all(block_of(i) == 0 for i in items[0]), f"{name}: new user's history did not fold in"


def test_recommend_never_returns_training_items(model: Recommender, data: Dataset) -> None:
    items, scores = model.recommend(np.arange(N), k=N + 1)
    x = data.csr().toarray()
    for u in range(N):
        got = items[u][items[u] >= 0]
        assert x[u, got].sum() == 0
        assert len(got) == len(set(got.tolist())) == N + 1 - x[u].sum()  # every other item, once
        assert np.all(np.diff(scores[u][items[u] >= 0]) <= 0)  # best first


def test_extra_history_is_excluded_and_changes_results(name: str, model: Recommender) -> None:
    before, _ = model.recommend([0], k=5)
    top = int(before[0, 0])
    hist = extra({0: [top]}, 1)
    after, _ = model.recommend([0], k=5, extra_history=hist)
    assert top not in after[0]
    assert not np.array_equal(before, after)
    if name not in HISTORY_BLIND:
        s0 = model.score(np.array([0]))
        s1 = model.score(np.array([0]), model.history_for(np.array([0]), hist))
        assert not np.allclose(s0, s1), f"{name}: history given at scoring time changed no score"


def test_save_load_gives_identical_scores(name: str, model: Recommender, tmp_path: Path) -> None:
    model.save(tmp_path)
    loaded = Recommender.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    users = np.arange(N + 1)  # every training user and one new user
    hist = extra({1: [0], N: [0, 2]}, N + 1)
    np.testing.assert_allclose(loaded.score(users, loaded.history_for(users, hist)),
                               model.score(users, model.history_for(users, hist)))
    a, _ = loaded.recommend(users, k=5, extra_history=hist)
    b, _ = model.recommend(users, k=5, extra_history=hist)
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_scores(name: str, model: Recommender, data: Dataset) -> None:
    again = make(name).fit(data)
    users = np.arange(N)
    np.testing.assert_allclose(again.score(users), model.score(users))


def test_unknown_item_gets_the_lowest_score(model: Recommender) -> None:
    s = model.score(np.arange(N))
    assert np.all(s[:, GHOST] == np.float32(UNKNOWN_ITEM_SCORE))
    assert np.all(s[:, GHOST][:, None] < np.delete(s, GHOST, axis=1))


@pytest.mark.parametrize("k", [0, -3])
def test_nonpositive_k_raises(model: Recommender, k: int) -> None:
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        model.recommend([0], k=k)


def test_score_before_fit_raises(name: str) -> None:
    m = make(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        m.score(np.array([0]))
    with pytest.raises(NotFittedError):
        m.recommend([0], k=3)


def test_bad_config_raises_with_a_clear_message(name: str) -> None:
    klass = get_model_class(name)
    fields = {f.name for f in dataclasses.fields(klass.Config)}
    for field, value in BAD_VALUES:
        if field in fields:
            with pytest.raises(ValueError, match=field):  # ConfigError is a ValueError
                klass.Config(**{field: value})
            with pytest.raises(ConfigError, match=field):
                config_from_dict(klass.Config, {field: value}, model=name)
            break
    with pytest.raises(ConfigError, match="unknown setting"):
        config_from_dict(klass.Config, {"no_such_setting": 1}, model=name)
    with pytest.raises(ConfigError, match=klass.Config.__name__):
        klass(object())


def test_new_user_gets_a_full_list(name: str, model: Recommender) -> None:
    new = N  # one past the training users
    seen = [0, 1]  # block 0
    k = N + 1 - len(seen)  # every item the new user has not seen
    items, scores = model.recommend([new], k=k, extra_history=extra({new: seen}, new + 1))
    assert np.all(items >= 0) and np.all(np.isfinite(scores))
    assert not set(seen) & set(items[0].tolist())
    assert len(set(items[0].tolist())) == k
    if name not in NO_BLOCK_STRUCTURE:
        top = 2 if name in SEQUENTIAL else 3  # see SEQUENTIAL
        assert all(block_of(i) == 0 for i in items[0, :top]), f"{name}: new user's history did not fold in"
