"""BiasedMF on a synthetic low-rank rating matrix."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.models.base import config_from_dict
from fusionrec.models.mf import BiasedMF, BiasedMFConfig
from tests.training.interrupt import Stop, stop_after

CONFIG = BiasedMFConfig(factors=4, epochs=40, lr=0.02, regularization=0.01, batch_size=64)


def low_rank(seed: int = 0) -> tuple[Dataset, Dataset]:
    """80 users x 50 items, rank-2 + biases, 60% observed, ratings in [1, 5]; 80/20 random split."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(80, 2)), rng.normal(size=(50, 2))
    r = 3.0 + 0.5 * rng.normal(size=(80, 1)) + 0.5 * rng.normal(size=(1, 50)) + 0.6 * p @ q.T
    r = np.clip(r + 0.1 * rng.normal(size=r.shape), 1.0, 5.0)
    u, i = np.nonzero(rng.random(r.shape) < 0.6)
    df = pd.DataFrame({"user": [f"u{x}" for x in u], "item": [f"i{x}" for x in i], "rating": r[u, i]})
    data = Dataset.from_frames(df)
    test = rng.random(len(df)) < 0.2
    inter = data.interactions
    return data.with_interactions(inter[~test]), data.with_interactions(inter[test])


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def test_beats_the_global_mean() -> None:
    train, test = low_rank()
    m = BiasedMF(CONFIG).fit(train)
    t = test.interactions
    true = t["rating"].to_numpy(np.float64)
    baseline = rmse(np.full(len(t), train.interactions["rating"].mean()), true)
    got = rmse(m.predict(t["user"].to_numpy(), t["item"].to_numpy()), true)
    # seeds 0-9 at 1 thread and 0-4 at 2 threads: RMSE 0.17-0.19 of the global mean's
    assert got < 0.7 * baseline, (got, baseline)


def test_early_stopping_keeps_the_best_valid_epoch() -> None:
    train, test = low_rank()
    m = BiasedMF(BiasedMFConfig(factors=4, epochs=200, lr=0.05, regularization=0.0,
                                batch_size=64, patience=2)).fit(train, test)
    assert m.epochs_trained_ < 200
    t = test.interactions
    got = rmse(m.predict(t["user"].to_numpy(), t["item"].to_numpy()), t["rating"].to_numpy(np.float64))
    assert got == pytest.approx(m.valid_rmse_, rel=1e-5)


def test_predictions_are_clipped_and_unknown_users_get_mean_plus_item_bias() -> None:
    train, _ = low_rank()
    m = BiasedMF(CONFIG).fit(train)
    lo, hi = train.interactions["rating"].min(), train.interactions["rating"].max()
    users = np.repeat(np.arange(train.n_users), train.n_items)
    items = np.tile(np.arange(train.n_items), train.n_users)
    pred = m.predict(users, items)
    assert pred.min() >= lo - 1e-6 and pred.max() <= hi + 1e-6
    new = np.full(train.n_items, train.n_users + 5)
    expected = np.clip(m.global_mean_[0] + m.item_bias_, lo, hi)
    np.testing.assert_allclose(m.predict(new, np.arange(train.n_items)), expected, rtol=1e-6)
    # the model's own cold-start scores (Recommender.score replaces empty histories by popularity)
    np.testing.assert_allclose(m._score(new[:1], m.history_for(new[:1]))[0], m.global_mean_[0] + m.item_bias_,
                               rtol=1e-6)


def test_needs_explicit_ratings() -> None:
    train, _ = low_rank()
    m = BiasedMF(CONFIG)
    with pytest.raises(ConfigError, match="needs explicit ratings"):
        m.fit(train.with_interactions(train.interactions.drop(columns=["rating"])))
    assert not hasattr(m, "train_matrix_")


def test_predict_needs_matching_pairs() -> None:
    train, _ = low_rank()
    m = BiasedMF(CONFIG).fit(train)
    with pytest.raises(ValueError, match="as many users as items"):
        m.predict([0, 1], [0])


# ---------------------------------------------------------------------------------------------- the one trainer
RESUMABLE = BiasedMFConfig(factors=4, epochs=8, lr=0.02, regularization=0.01, batch_size=64, patience=2)


def fitted(train: Dataset, valid: Dataset | None, ck: Path | None = None, on_epoch=None, **kw) -> BiasedMF:
    m = BiasedMF(replace(RESUMABLE, **kw))
    m.checkpoint_dir, m.on_epoch = ck, on_epoch
    return m.fit(train, valid)


def same_model(a: BiasedMF, b: BiasedMF) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k))
               for k in ("user_factors_", "item_factors_", "user_bias_", "item_bias_", "global_mean_"))


def test_resume_after_an_interruption_gives_the_uninterrupted_model(tmp_path: Path) -> None:
    train, test = low_rank()
    full = fitted(train, test)
    with pytest.raises(Stop):
        fitted(train, test, ck=tmp_path, on_epoch=stop_after(3))
    resumed = fitted(train, test, ck=tmp_path)
    assert [h.get("resumed_from") for h in resumed.training_log_][:4] == [None, None, None, 3]
    assert [h["loss"] for h in resumed.training_log_] == [h["loss"] for h in full.training_log_]
    assert resumed.epochs_trained_ == full.epochs_trained_ and resumed.valid_rmse_ == full.valid_rmse_
    assert same_model(resumed, full)


def test_same_seed_same_model_another_seed_another() -> None:
    train, _ = low_rank()
    a, b, c = fitted(train, None), fitted(train, None), fitted(train, None, seed=1)
    assert same_model(a, b) and not same_model(a, c)
    assert [h["epoch"] for h in a.training_log_] == list(range(1, 9)) and a.epochs_trained_ == 8


def test_old_setting_name_learning_rate_is_read_as_lr_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="'learning_rate' is now called 'lr'"):
        cfg = config_from_dict(BiasedMFConfig, {"learning_rate": 0.02, "factors": 4}, model="mf")
    assert cfg.lr == 0.02 and cfg.factors == 4
    with pytest.raises(ConfigError, match="both 'learning_rate' and 'lr'"):
        config_from_dict(BiasedMFConfig, {"learning_rate": 0.02, "lr": 0.01}, model="mf")
