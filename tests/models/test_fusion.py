"""The fusion Transformer on the synthetic world, whose ground truth says which modality matters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from fusionrec.data.splits import cold_item_split
from fusionrec.data.synthetic import SyntheticConfig, generate
from fusionrec.evaluation.evaluate import evaluate
from fusionrec.models.base import Recommender, config_from_dict
from fusionrec.models.fusion import Fusion, FusionConfig

TINY = {"hidden": 32, "user.inner": 64, "user.layers": 1, "user.heads": 2, "user.max_len": 20, "user.dropout": 0.1,
        "user.attn_dropout": 0.0, "user.targets": 1, "epochs": 15, "batch_size": 32, "lr": 0.005, "warmup_steps": 0,
        "threads": 1, "text.encoder": "hashed", "image.size": 16, "item.inner": 64, "id.dropout": 0.3,
        "pretrain.epochs": 20}


def config(settings: dict, **more: object) -> FusionConfig:
    """A FusionConfig from flat / dotted settings, as ``--set`` gives them."""
    return config_from_dict(FusionConfig, {**settings, **more}, model="fusion")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A world whose utility depends on the images only (colours and shapes encode the factors)."""
    cfg = SyntheticConfig(n_users=300, n_items=120, seed=3, signal=("image",), mean_events=25, noise=0.3,
                          media=True, image_size=16)
    return generate(cfg, media_dir=tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def cold(world):
    return cold_item_split(world, frac=0.25, seed=0, valid_frac=0.0)


@pytest.fixture(scope="module")
def fitted(cold, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return Fusion(config(TINY, cache_dir=cache)).fit(cold.train)


def _cold_recall(model: Recommender, split, k: int = 10) -> float:
    mask = np.zeros(split.train.n_items, dtype=bool)
    mask[np.unique(split.test.interactions["item"].to_numpy())] = True
    return evaluate(model, split.test, (k,), candidates=mask).metrics[f"Recall@{k}"]


def _mean_cold_recall(settings: dict, split, cache_dir: str, seeds: tuple[int, ...] = (0, 1, 2)) -> float:
    """Cold recall averaged over models trained with ``seeds``: for effects too close to one run's spread
    (another CPU's floating-point path moves a result as another seed does)."""
    return float(np.mean([_cold_recall(Fusion(config(settings, seed=s, cache_dir=cache_dir)).fit(split.train), split)
                          for s in seeds]))


def test_cold_items_are_ranked_from_their_images(fitted, cold, tmp_path) -> None:
    """Items never seen in training are ranked from content: with images, well above chance (10 of
    30 cold items: 0.33); without the image modality (text, genres and price carry no signal in
    this world) near chance.

    One run each: over seeds 0-9 at 1 thread and 0-4 at 2 threads, with images 0.61-0.69, without
    0.37-0.42, the gap 0.21-0.32; bars: a gap of 0.1 and 0.5 with images."""
    blind = Fusion(config({**TINY, "image": False}, cache_dir=str(tmp_path))).fit(cold.train)
    with_image, without = _cold_recall(fitted, cold), _cold_recall(blind, cold)
    assert with_image > without + 0.1 and with_image > 0.5, (with_image, without)


def test_the_gate_leans_on_content_for_cold_items(fitted) -> None:
    """A cold item has no behaviour: its ID weight is 0 and its vector is all content; warm items
    give their learned ID a real share (on average 0.36-0.41 over seeds 0-9 at 1 thread and 0-4 at 2;
    bar 0.05), and every item's weights sum to 1."""
    _, gates = fitted.item_vectors()
    id_gate = gates[:, fitted.gate_names.index("id")]
    seen = fitted.item_counts_ > 0
    assert (id_gate[~seen] == 0).all()
    assert id_gate[seen].mean() > 0.05
    np.testing.assert_allclose(gates.sum(1), 1.0, rtol=1e-5)


def test_save_load_gives_identical_scores(fitted, tmp_path) -> None:
    fitted.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    users = np.arange(20)
    np.testing.assert_allclose(again.score(users), fitted.score(users), rtol=1e-5, atol=1e-5)


def test_a_new_user_with_a_profile_and_no_history_gets_a_full_list(fitted) -> None:
    items, _ = fitted.recommend(np.array([fitted.n_users_ + 5]), k=10)
    assert (items >= 0).all() and len(set(items[0])) == 10


def test_explain_reports_gates_and_attended_history(fitted) -> None:
    user = int(np.argmax(np.diff(fitted.train_matrix_.indptr)))
    items, _ = fitted.recommend(np.array([user]), k=3)
    rows = fitted.explain(user, items[0])
    assert len(rows) == 3
    for r in rows:
        assert set(r["gates"]) == set(fitted.gate_names)
        assert abs(sum(r["gates"].values()) - 1) < 1e-5
        history = [a for a in r["attended"] if a["source"] == "history"]
        assert history and all(fitted.train_matrix_[user, a["item"]] for a in history)


def test_switches_remove_tokens(cold, tmp_path) -> None:
    model = Fusion(config({**TINY, "epochs": 1, "text": False, "attributes": False}, cache_dir=str(tmp_path))).fit(cold.train)
    assert "text" not in model.gate_names and "attributes" not in model.gate_names and "image" in model.gate_names


def test_nothing_left_is_a_clear_error(cold, tmp_path) -> None:
    off = {m: False for m in ("id", "text", "image", "audio", "attributes", "kg")}
    with pytest.raises(Exception, match="no item input"):
        Fusion(config({**TINY, **off, "epochs": 1}, cache_dir=str(tmp_path))).fit(cold.train)


def test_same_seed_same_scores(cold, tmp_path) -> None:
    cfg = config({**TINY, "epochs": 2}, cache_dir=str(tmp_path))
    a, b = Fusion(cfg).fit(cold.train), Fusion(cfg).fit(cold.train)
    torch.testing.assert_close(torch.from_numpy(a.score(np.arange(10))), torch.from_numpy(b.score(np.arange(10))))


def test_new_items_from_a_table_are_scored_like_the_same_cold_items(cold, tmp_path) -> None:
    """Rows added after training (``recommend --new-items``) are encoded as at training time: a copy
    of a cold item's row scores exactly like that cold item, and nothing else changes. (Without the KG
    token: an items table carries no KG node, so a new row has less to go on than a KG-linked item.)"""
    fitted = Fusion(config({**TINY, "kg": False, "epochs": 3, "pretrain.epochs": 0},
                           cache_dir=str(tmp_path))).fit(cold.train)
    fitted.save(tmp_path / "m")
    model = Recommender.load(tmp_path / "m")
    users = np.arange(30)
    before = model.score(users)
    rows = cold.train.items.iloc[cold.cold_items[:4]]
    assert model.add_items(rows) == 4
    after = model.score(users)
    assert after.shape == (30, before.shape[1] + 4)
    np.testing.assert_allclose(after[:, : before.shape[1]], before, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(after[:, before.shape[1]:], before[:, cold.cold_items[:4]], rtol=1e-5, atol=1e-5)


def test_new_users_with_a_profile_get_it_read(fitted, tmp_path) -> None:
    """Profiles added after training (``recommend --new-users``) drive a history-less user's list."""
    fitted.save(tmp_path / "m")
    model = Recommender.load(tmp_path / "m")
    n0 = model.user_content_.n
    assert model.add_users(pd.DataFrame({"age": [20, 70], "region": ["coast", "north"]})) == 2
    s = model.score(np.array([n0, n0 + 1]), sp.csr_matrix((2, model.n_items_), dtype=np.float32))
    assert np.isfinite(s).all() and not np.allclose(s[0], s[1])


@pytest.mark.parametrize("modality", [
    pytest.param("audio", marks=pytest.mark.xfail(
        reason="known gap: cold recall with audio stays at the no-audio level (seeds 0-4: 0.32-0.36 with, "
               "0.33-0.37 without; seeds 0-2 averaged 0.34 vs 0.35), though the behaviour-aligned log-mel "
               "vectors carry the tone properties (ridge R^2 on the 30 cold items 0.33-0.62 over seeds 0-4, "
               "untrained features 0.39)", strict=False)),
    "text",
])
def test_cold_items_are_ranked_from_the_modality_that_carries_the_signal(modality: str, tmp_path) -> None:
    """As for images: a world whose utility depends on ``modality`` only; with it vs without it,
    each averaged over seeds 0-2.

    The item tower's own cold vectors: ``content_map`` off (with the ridge map from the hashed text the
    gap was 0.07-0.14 over seeds 0-2; the map's own checks are in test_content_map.py), and no
    contrastive pre-training (it changes little here and costs a third of the time).

    One run is too noisy for a bar: without text the cold items get an arbitrary fixed order, whose
    recall over seeds 0-9 at 1 thread (0-2 at 2 threads: the same) was 0.21-0.39, with text 0.49-0.63,
    the gap 0.14-0.30 (mean 0.23, sd 0.045); on one Xeon an earlier model gave 0.43 vs 0.37. Means of
    3 of those 10 seeds: with text 0.51-0.61, without 0.27-0.38, the gap 0.18-0.28 (this test's seeds:
    0.57 vs 0.37); bars: a gap of 0.1 and 0.45 with text."""
    cfg = SyntheticConfig(n_users=300, n_items=120, seed=3, signal=(modality,), mean_events=25, noise=0.3,
                          media=True, image_size=16)
    split = cold_item_split(generate(cfg, media_dir=tmp_path / "media"), frac=0.25, seed=0, valid_frac=0.0)
    tower = {**TINY, "content_map": False, "pretrain.epochs": 0}
    a = _mean_cold_recall(tower, split, str(tmp_path))
    b = _mean_cold_recall({**tower, modality: False}, split, str(tmp_path))
    assert a > b + 0.1 and a > 0.45, (a, b)


# -- heterogeneous sources: knowledge graph and social graph (P4) ------------------------------------
def test_the_kg_and_social_tokens_are_built_from_the_dataset(fitted) -> None:
    """The synthetic world has a KG and friends: the item tower weighs a KG token, the user tower
    reads a social token, and explanations show how much the user vector attended to it."""
    assert "kg" in fitted.gate_names
    assert fitted.network_.users.prefix_names == ["profile", "social"]
    user = int(np.argmax(np.diff(fitted.train_matrix_.indptr)))
    sources = [a["source"] for a in fitted.explain(user, np.array([0]))[0]["attended"]]
    assert sources[:2] == ["profile", "social"]


def test_the_social_token_ranks_new_users_from_their_friends(tmp_path) -> None:
    """Users whose whole history is hidden, known only by their friends (homophily: friends share
    tastes): with the social token their hidden items rank far better than without it (no profile
    either way, so without friends they get popularity).

    Popularity is flattened (0.3, default 1.0) so that tastes, which friends share, weigh more. Seeds
    0-9 at 1 thread and 0-2 at 2 threads: Recall@10 0.25-0.27 with friends, 0.157 without (the same
    popularity list for every seed), a ratio of 1.62-1.73; bar 1.4. (At popularity 1.0: 0.267-0.279 vs
    0.216, a ratio of 1.24-1.30 against a bar of 1.2.)"""
    world = generate(SyntheticConfig(n_users=300, n_items=100, seed=5, mean_events=25, noise=0.3, media=False,
                                     n_friends=8, homophily=8.0, popularity=0.3))
    users = np.random.default_rng(0).choice(world.n_users, 40, replace=False)
    inter = world.interactions
    hidden = np.isin(inter["user"].to_numpy(), users)
    train, test = world.with_interactions(inter[~hidden]), world.with_interactions(inter[hidden])
    cfg = {**TINY, "profile": False, "pretrain.epochs": 0, "id.dropout": 0.0, "epochs": 20}
    with_friends = Fusion(config(cfg, cache_dir=str(tmp_path))).fit(train)
    alone = Fusion(config({**cfg, "social": False}, cache_dir=str(tmp_path))).fit(train)
    a = evaluate(with_friends, test, (10,)).metrics["Recall@10"]
    b = evaluate(alone, test, (10,)).metrics["Recall@10"]
    assert a > b * 1.4, (a, b)


def test_kg_and_social_state_survives_save_and_load(fitted, tmp_path) -> None:
    fitted.save(tmp_path / "g")
    again = Recommender.load(tmp_path / "g")
    assert again.triples_.array().tolist() == fitted.triples_.array().tolist()
    assert (again.friends_ != fitted.friends_).nnz == 0 and (again.social_rows_ != fitted.social_rows_).nnz == 0


# -- side events (e.g. lastfm-2k's tagging) ----------------------------------------------------------
def _tagging_world() -> tuple:
    """Users listen to 6 random items of 60, and have 'tagged' 4 other items; the held-out item
    is always one of the tagged ones (a strong signal only the side events carry)."""
    rng = np.random.default_rng(0)
    rows, side, held = [], [], []
    for u in range(150):
        picks = rng.choice(60, 10, replace=False)
        rows += [(f"u{u}", f"i{i}") for i in picks[:6]]
        side += [(f"u{u}", f"i{i}", "tagged") for i in picks[6:]]
        held.append((f"u{u}", f"i{picks[6]}"))
    from fusionrec.data.schema import Dataset

    data = Dataset.from_frames(pd.DataFrame(rows + held, columns=["user", "item"]),
                               side_events=pd.DataFrame(side, columns=["user", "item", "kind"]))
    inter = data.interactions
    is_held = np.zeros(len(inter), bool)
    is_held[len(rows):] = True
    return data.with_interactions(inter[~is_held]), data.with_interactions(inter[is_held])


def test_side_events_boost_the_items_they_name_and_explain_it(tmp_path) -> None:
    train, test = _tagging_world()
    cfg = {**TINY, "profile": False, "pretrain.epochs": 0, "id.dropout": 0.0, "epochs": 10, "user.max_len": 10}
    with_side = Fusion(config(cfg, cache_dir=str(tmp_path))).fit(train)
    without = Fusion(config({**cfg, "side": False}, cache_dir=str(tmp_path))).fit(train)
    a = evaluate(with_side, test, (10,)).metrics["Recall@10"]
    b = evaluate(without, test, (10,)).metrics["Recall@10"]
    # 4 tagged items, one of them held out. Seeds 0-4 at 1 and 2 threads: 0.78-0.85 with, 0.16-0.19 without
    assert a > max(0.6, 2 * b), (a, b)
    boost = with_side.side_boost(np.arange(3))
    assert boost.shape == (3, train.n_items) and np.all(np.diff(boost.indptr) == 4) and boost.data.min() > 0
    user, item = 0, int(test.interactions["item"].iloc[0])
    row = with_side.explain(user, np.array([item]))[0]
    assert row["side_event"]["boost"] > 0 and "side" in [x["source"] for x in row["attended"]]
    with_side.save(tmp_path / "side")
    again = Recommender.load(tmp_path / "side")
    np.testing.assert_allclose(again.score(np.arange(5)), with_side.score(np.arange(5)), rtol=1e-5, atol=1e-5)
    # no timestamps: a set per user, so the user vector averages score_orders random orders (seeded)
    assert again.unordered_ and with_side.config.user.score_orders == 4
    import dataclasses

    one = with_side.score(np.arange(5))
    with_side.config = dataclasses.replace(with_side.config, user=dataclasses.replace(with_side.config.user,
                                                                                        score_orders=1))
    assert not np.allclose(with_side.score(np.arange(5)), one)


def test_event_weights_become_per_user_buckets_read_by_the_user_tower(tmp_path) -> None:
    """Listening counts: a user's heavier events get higher buckets (log1p(count) over the user's
    mean); events given at scoring time get bucket 0 (unknown)."""
    from fusionrec.data.schema import Dataset

    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{i}", (10 ** (u % 3)) * (j + 1)) for u in range(40)
            for j, i in enumerate(rng.choice(30, 8, replace=False))]
    data = Dataset.from_frames(pd.DataFrame(rows, columns=["user", "item", "weight"]))
    m = Fusion(config({**TINY, "epochs": 2, "pretrain.epochs": 0, "user.max_len": 8},
                      cache_dir=str(tmp_path))).fit(data)
    b = m.weight_buckets_
    assert b.nnz == len(rows) and b.data.min() >= 1 and b.data.max() <= 8
    w = data.csr("weight")
    for u in (0, 1, 2):  # at 1x, 10x and 100x the volume: heavier events, higher (or equal) buckets
        order = np.argsort(w[u].data)
        assert np.all(np.diff(b[u].toarray().ravel()[w[u].indices[order]]) >= 0)
    assert len(set(b.data)) == 8  # quantile buckets: all of them used
    seq = torch.tensor([[w[0].indices[0] + 1, 0], [w[1].indices[0] + 1, 29 + 1]])
    weights = m.network_.users.event_weights
    assert weights is not None
    with torch.no_grad():
        emb = weights(np.array([0, 1]), seq)  # (2, 2, H): bucket embeddings, bucket 0 (unknown) = a zero vector
    assert float(emb[0, 1].abs().sum()) == 0 and float(emb[0, 0].abs().sum()) > 0
    assert (float(emb[1, 1].abs().sum()) == 0) == (w[1, 29] == 0)
    m.save(tmp_path / "w")
    again = Recommender.load(tmp_path / "w")
    np.testing.assert_allclose(again.score(np.arange(4)), m.score(np.arange(4)), rtol=1e-5, atol=1e-5)


def test_validation_reads_the_weights_of_its_epoch_not_a_cached_copy(tmp_path) -> None:
    """The item vectors are cached per model version; the trainer must drop the cache before each
    validation (a stale cache once froze every epoch's valid NDCG@10 at the first epoch's value). The best
    epoch's logged metric is then what the final model scores on the same valid events."""
    from fusionrec.data.splits import leave_last_out

    world = generate(SyntheticConfig(n_users=120, n_items=60, seed=4, mean_events=15, media=False))
    split = leave_last_out(world)
    model = Fusion(config({**TINY, "epochs": 4, "pretrain.epochs": 0, "id.dropout": 0.0},
                          cache_dir=str(tmp_path))).fit(split.train, split.valid)
    logged = [r["valid"]["NDCG@10"] for r in model.training_log_]
    assert len(set(logged)) > 1, logged
    assert evaluate(model, split.valid, (10,)).metrics["NDCG@10"] == pytest.approx(max(logged), abs=1e-9)
