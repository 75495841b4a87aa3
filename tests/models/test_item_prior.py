"""The gated item-item prior: EASE weights, a gate fit on held-out events, and its place in the score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.data.splits import random_leave_one_out
from fusionrec.jobs import build_model
from fusionrec.models.base import Recommender
from fusionrec.models.ease import EASE, EASEConfig
from fusionrec.models.item_prior import ItemPrior, ease_weights
from fusionrec.models.prior import TOPK_GRID, PriorConfig, WithItemPrior
from fusionrec.models.sasrec import SASRec, SASRecConfig

TINY = {"hidden": 16, "inner": 32, "layers": 1, "heads": 2, "max_len": 8, "dropout": 0.1, "attn_dropout": 0.0,
        "targets": 1, "epochs": 3, "batch_size": 16, "lr": 0.01, "warmup_steps": 0, "threads": 1}


def blocks(n_users: int = 200, n_groups: int = 4, per_group: int = 10, picks: int = 6, seed: int = 0) -> sp.csr_matrix:
    """Each user takes ``picks`` random items of one group: co-occurrence is all there is to learn."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(n_users):
        g = u % n_groups
        items = g * per_group + rng.choice(per_group, picks, replace=False)
        rows += [u] * picks
        cols += items.tolist()
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_groups * per_group))


def test_uncut_weights_are_ease_without_its_negative_part() -> None:
    x = blocks()
    dense = ease_weights(x, 50.0, topk=0).toarray()
    data = Dataset.from_frames(pd.DataFrame({"user": x.nonzero()[0].astype(str), "item": x.nonzero()[1].astype(str)}))
    ease = EASE(EASEConfig(l2=50.0)).fit(data)
    order = data.item_ids.index(np.arange(x.shape[1]).astype(str))  # raw "k" -> dense index
    ref = ease.weights_[np.ix_(order, order)]
    np.testing.assert_allclose(dense, np.clip(ref, 0, None), atol=1e-5)
    cut = ease_weights(x, 50.0, topk=3).toarray()
    assert ((cut > 0).sum(0) <= 3).all()
    np.testing.assert_allclose(np.sort(cut, 0)[-3:], np.sort(dense, 0)[-3:], atol=1e-6)  # the 3 largest kept


def test_the_gate_opens_where_the_prior_predicts_and_stays_shut_where_it_does_not() -> None:
    x = blocks()
    held = blocks(seed=1)  # the same groups, other picks: events the prior never saw
    users = np.arange(x.shape[0])
    targets = np.array([np.setdiff1d(held[u].indices, x[u].indices)[0] if len(np.setdiff1d(held[u].indices, x[u].indices))
                        else -1 for u in users])
    ok = targets >= 0
    hist, targets = x[users[ok]], targets[ok]
    prior = ItemPrior.build(x, 10.0, 0, 10**6)
    guess = np.random.default_rng(0).normal(size=hist.shape).astype(np.float32)  # a network that knows nothing
    log = prior.fit_gate(guess, hist, targets)
    # with the blocks, held-out picks, guesses and noise world drawn from seeds 0-9 (L-BFGS, no sampling):
    # the CE falls by 1.97-2.37, the mean gate is 19.8-24.4, the noise prior's 0.028-0.035 of it
    assert log["ce_fused"] < log["ce_network"] - 0.5
    assert prior.gates(hist).mean() > 0.5

    noise = ItemPrior.build(blocks(seed=7, n_groups=1, per_group=40, picks=6), 10.0, 0, 10**6)  # unrelated structure
    strong = np.zeros(hist.shape, np.float32)
    strong[np.arange(len(targets)), targets] = 8.0  # a network that already knows every answer
    noise.fit_gate(strong, hist, targets)
    assert noise.gates(hist).mean() < prior.gates(hist).mean() / 4


@pytest.fixture(scope="module")
def split():
    x = blocks(n_users=240, picks=8)
    u, i = x.nonzero()
    df = pd.DataFrame({"user": [f"u{a}" for a in u], "item": [f"i{b}" for b in i]})
    return random_leave_one_out(Dataset.from_frames(df, name="blocks"), seed=0)


def with_prior(inner: dict | None = None, **prior: object) -> WithItemPrior:
    """SASRec (TINY, or ``inner`` settings) inside the prior wrapper with ``prior`` settings."""
    return WithItemPrior(SASRec(SASRecConfig(**(inner or TINY))), PriorConfig(**prior))


def check_score_is_network_plus_gated_prior_through_save(model: WithItemPrior, tmp_path) -> WithItemPrior:  # type: ignore[no-untyped-def]
    """score = network + g * p for 20 users, and the same scores after save/load; returns the loaded model."""
    users = np.arange(20)
    with_prior = model.score(users)
    plain = model.inner.score(users)
    prior = model.prior_
    hist = model.history_for(users)
    np.testing.assert_allclose(with_prior - plain, prior.gates(hist) * prior.raw(hist, users), rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    assert isinstance(again, WithItemPrior) and again.name == "sasrec" and again.wrapper_config == model.wrapper_config
    np.testing.assert_allclose(again.score(users), with_prior, rtol=1e-5, atol=1e-5)
    return again


def test_a_sequence_model_with_the_prior_fits_its_gate_on_valid_and_keeps_it_through_save(split, tmp_path) -> None:
    model = with_prior(l2=10.0, topk=32).fit(split.train, split.valid)
    assert model.prior_ is not None and model.prior_log_["events"] == split.valid.n_interactions
    check_score_is_network_plus_gated_prior_through_save(model, tmp_path)


def test_topk_is_chosen_on_the_valid_events_by_the_fused_cross_entropy(split) -> None:
    model = with_prior({**TINY, "epochs": 1}, l2=10.0).fit(split.train, split.valid)
    tried = model.prior_log_["topk_valid_ce"]
    assert sorted(int(k) for k in tried) == sorted(TOPK_GRID)
    best = min(tried, key=tried.get)
    assert model.prior_log_["topk"] == int(best)
    assert model.prior_log_["ce_fused"] == pytest.approx(tried[best], abs=1e-4)
    assert ((model.prior_.weights.toarray() > 0).sum(0) <= int(best)).all()


def test_settings_switch_and_set_the_wrapper(tmp_path) -> None:
    from fusionrec.errors import ConfigError

    assert isinstance(build_model("fusion"), WithItemPrior)  # fusion: on by default
    assert not isinstance(build_model("fusion", {"prior": False}), WithItemPrior)
    assert not isinstance(build_model("sasrec"), WithItemPrior)
    m = build_model("gru4rec", {"prior": True, "prior.topk": 16, "prior_l2": 50.0})  # dotted and older flat keys
    assert isinstance(m, WithItemPrior) and m.wrapper_config == PriorConfig(l2=50.0, topk=16)
    assert build_model("caser", {"prior": {"topk": 8}}).wrapper_config.topk == 8  # a [prior] table
    with pytest.raises(ConfigError, match="unknown setting"):
        build_model("sasrec", {"prior": True, "prior.tokp": 8})
    with pytest.raises(ConfigError, match="prior=false"):
        build_model("fusion", {"prior": False, "prior.topk": 8})


def test_without_valid_events_the_prior_is_skipped_and_says_why(split) -> None:
    model = with_prior({**TINY, "epochs": 1}).fit(split.train)
    assert model.prior_ is None and "valid" in model.prior_log_["skipped"]


def test_past_prior_max_items_auto_takes_the_cosine_prior_and_explicit_ease_fails_before_training(split) -> None:
    from fusionrec.errors import ConfigError

    model = with_prior({**TINY, "epochs": 1}, max_items=5, topk=32).fit(split.train, split.valid)
    assert model.prior_ is not None and model.prior_log_["source"] == "knn"
    assert model.score(np.arange(3)).shape == (3, split.train.n_items)
    ease = with_prior({**TINY, "epochs": 1}, max_items=5, source="ease")
    with pytest.raises(ConfigError, match="prior.source=knn"):
        ease.fit(split.train, split.valid)
    assert not hasattr(ease.inner, "network_")  # nothing was trained


def test_the_cosine_prior_holds_each_items_most_similar_items_in_its_column() -> None:
    from fusionrec.models.itemknn import cosine_topk

    x = blocks()
    prior = ItemPrior.build(x, 10.0, 5, max_items=5, source="knn")  # no n^2 build: any size
    np.testing.assert_allclose(prior.weights.toarray(), cosine_topk(x, 5, 10.0).toarray().T, rtol=1e-6)
    assert ((prior.weights.toarray() > 0).sum(0) <= 5).all()
    same_block = prior.weights.toarray()[:10, :10]  # group 0's items: only each other as neighbours
    assert same_block.sum() == pytest.approx(prior.weights.toarray()[:, :10].sum())


def test_too_many_items_for_the_prior_is_a_clear_error() -> None:
    from fusionrec.errors import ConfigError

    with pytest.raises(ConfigError, match="prior.max_items"):
        ItemPrior.build(blocks(), 10.0, 0, max_items=5)


def test_fusion_explains_the_prior_by_the_history_items_behind_it(split, tmp_path) -> None:
    from fusionrec.models.base import config_from_dict
    from fusionrec.models.fusion import Fusion, FusionConfig

    settings = {("user." + k if k not in ("hidden", "epochs", "batch_size", "lr", "warmup_steps", "threads") else k): v
                for k, v in TINY.items()}
    cfg = config_from_dict(FusionConfig, {**settings, "hidden": 16, "text.encoder": "hashed",
                                          "cache_dir": str(tmp_path)}, model="fusion")
    model = WithItemPrior(Fusion(cfg),
                          PriorConfig(topk=32)).fit(split.train, split.valid)
    assert model.prior_ is not None
    user = 0
    items, _ = model.recommend(np.array([user]), k=5)
    rows = model.explain(user, items[0])
    with_prior = [r for r in rows if "prior" in r]
    assert with_prior  # the top items of a block world are the user's block-mates (4 of 5, seeds 0-4)
    history = set(model.train_matrix_[user].indices.tolist())
    for r in with_prior:
        assert r["prior"]["gate"] > 0 and r["prior"]["because"]
        assert {b["item"] for b in r["prior"]["because"]} <= history


def counted(x: sp.csr_matrix, seed: int = 0) -> sp.csr_matrix:
    """``x`` with listening counts (1..50) in place of its ones."""
    c = sp.csr_matrix(x, dtype=np.float32, copy=True)
    c.data = np.random.default_rng(seed).integers(1, 50, size=c.nnz).astype(np.float32)
    return c


def test_a_weighted_prior_is_ease_of_the_log1p_weighted_events() -> None:
    x = blocks()
    counts = counted(x)
    prior = ItemPrior.build(x, 50.0, 0, 10**6, counts, "log1p")
    w = counts.toarray()
    w[w > 0] = np.log1p(w[w > 0])
    w /= np.array([row[row > 0].mean() for row in w])[:, None]  # mean 1 per user
    p = np.linalg.inv(w.T @ w + 50.0 * np.eye(w.shape[1]))
    ref = -p / np.diag(p)
    np.fill_diagonal(ref, 0.0)
    np.testing.assert_allclose(prior.weights.toarray(), np.clip(ref, 0, None), atol=1e-5)
    assert not np.allclose(prior.weights.toarray(), ItemPrior.build(x, 50.0, 0, 10**6).weights.toarray(), atol=1e-3)


def test_weighted_inputs_keep_training_weights_and_weigh_new_events_by_rarity() -> None:
    x = blocks()
    rare = sp.csr_matrix(([1.0], ([0], [0])), shape=(x.shape[0], 1))
    x = sp.csr_matrix(sp.hstack([x, rare]))  # item 40: one user, the rarest
    counts = counted(x)
    prior = ItemPrior.build(x, 50.0, 0, 10**6, counts, "log1p-idf")
    f = prior.item_factor
    assert f[40] == f.max() and np.isclose(f[x.indices].mean(), 1.0, rtol=1e-5)
    hist = sp.lil_matrix(x[[1, 0]], dtype=np.float32)
    hist[0, 40] = 1.0  # an event of user 1 added at scoring time: count unknown
    hist = sp.csr_matrix(hist)
    h = prior.inputs(hist, np.array([1, 0]))
    np.testing.assert_allclose(h[1].toarray(), prior.user_weights[0].toarray(), rtol=1e-6)
    assert h[0, 40] == pytest.approx(f[40])
    new_user = prior.inputs(sp.csr_matrix(x[[0]]), np.array([10_000]))  # past the training range
    np.testing.assert_allclose(new_user.data, f[new_user.indices], rtol=1e-6)


def test_auto_weighting_reads_counts_where_the_events_carry_them(tmp_path) -> None:
    x = blocks(n_users=240, picks=8)
    u, i = x.nonzero()
    df = pd.DataFrame({"user": [f"u{a}" for a in u], "item": [f"i{b}" for b in i],
                       "weight": counted(x).data.astype(np.float32)})
    split = random_leave_one_out(Dataset.from_frames(df, name="counted"), seed=0)
    model = with_prior({**TINY, "epochs": 1}, l2=10.0, topk=32).fit(split.train, split.valid)
    assert model.prior_log_["weighting"] == "log1p-idf" and model.prior_.user_weights is not None
    again = check_score_is_network_plus_gated_prior_through_save(model, tmp_path)
    np.testing.assert_allclose(again.prior_.user_weights.toarray(), model.prior_.user_weights.toarray())
    binary = with_prior({**TINY, "epochs": 1}, weighting="binary", topk=32).fit(split.train, split.valid)
    assert binary.prior_log_["weighting"] == "binary" and binary.prior_.user_weights is None


def test_an_unknown_prior_weighting_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="weighting"):
        PriorConfig(weighting="tfidf")


def test_explain_ranks_history_items_by_what_they_add_with_their_input_weights() -> None:
    b = sp.csr_matrix(np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.4], [0.0, 0.0, 0.0]]))
    prior = ItemPrior(b, np.zeros(4), np.ones(3, np.float32))
    assert [r["item"] for r in prior.explain(np.array([0, 1]), 2)] == [0, 1]
    got = prior.explain(np.array([0, 1]), 2, history_weights=np.array([1.0, 2.0]))  # 0.5 vs 0.8
    assert [r["item"] for r in got] == [1, 0] and got[0]["weight"] == pytest.approx(0.8)
