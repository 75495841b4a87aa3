"""Biased matrix factorisation for explicit ratings (Koren, Bell & Volinsky, IEEE Computer 2009).

``r_ui ~ mu + b_u + b_i + p_u . q_i``, fitted to observed ratings by squared error with L2 on
the parameters each rating touches, trained in torch with mini-batch Adam (the one
:class:`~fusionrec.training.trainer.Trainer`: AdamW without weight decay, a constant learning rate,
no clipping) for a fixed number of epochs; when ``valid`` carries ratings, training stops once its
RMSE has not improved for ``patience`` epochs and the best epoch's parameters are kept. With a
``checkpoint_dir`` (``fusionrec train`` sets one) every epoch is checkpointed and a killed run resumes.

:meth:`BiasedMF.predict` gives ratings for (user, item) pairs, clipped to the training rating range
(for RMSE / MAE). ``score`` gives the unclipped predicted rating of every item, for top-K; it
ignores history given at inference time (folding a user in needs ratings, not events). Users
unknown to training get ``mu + b_i``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.models.base import Recommender
from fusionrec.training.task import Trainable, best_record
from fusionrec.training.trainer import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BiasedMFConfig(TrainConfig):
    """Settings of :class:`BiasedMF`; the optimiser's come from :class:`TrainConfig` (``lr`` was called
    ``learning_rate`` before: that name is still read from saved runs and ``--set``, with a warning)."""

    #: old setting names still accepted by config_from_dict (saved runs, --set), with a warning
    renamed_settings: ClassVar[dict[str, str]] = {"learning_rate": "lr"}

    factors: int = 32
    epochs: int = 20  # upper bound; early stopping on valid RMSE may end sooner
    lr: float = 0.005  # Adam step size
    regularization: float = 0.1  # L2 weight on p_u, q_i, b_u, b_i per rating (ml-100k: 0.91 RMSE)
    batch_size: int = 1024
    patience: int = 3  # epochs without a better valid RMSE before stopping
    init_std: float = 0.01  # normal init of p_u, q_i (biases start at 0)
    # the trainer's settings, chosen to be plain mini-batch Adam as mf always was
    warmup_steps: int = 0
    schedule: str = "constant"
    grad_clip: float = 0.0
    threads: int = 1  # small batches: more threads only add overhead (and contention)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("factors", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"BiasedMFConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.regularization < 0:
            raise ValueError(f"BiasedMFConfig.regularization must be >= 0, got {self.regularization}")
        if self.init_std < 0:
            raise ValueError(f"BiasedMFConfig.init_std must be >= 0, got {self.init_std}")


class _BiasedMFNet(nn.Module):
    """``mu + b_u + b_i + p_u . q_i`` for batches of (user, item) pairs."""

    def __init__(self, n_users: int, n_items: int, factors: int, mean: float, init_std: float,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.user_factors = nn.Parameter(torch.randn(n_users, factors, generator=generator) * init_std)
        self.item_factors = nn.Parameter(torch.randn(n_items, factors, generator=generator) * init_std)
        self.user_bias = nn.Parameter(torch.zeros(n_users))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.mean = mean

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions (B,) and the per-pair squared parameter norm (B,) for the L2 term."""
        p, q = self.user_factors[users], self.item_factors[items]  # (B, f)
        bu, bi = self.user_bias[users], self.item_bias[items]  # (B,)
        pred = self.mean + bu + bi + (p * q).sum(-1)
        norm = (p * p).sum(-1) + (q * q).sum(-1) + bu * bu + bi * bi
        return pred, norm


class BiasedMF(Recommender, Trainable):
    """Explicit-rating matrix factorisation with user and item biases.

    Examples
    --------
    >>> import pandas as pd
    >>> from fusionrec.data.schema import Dataset
    >>> df = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": ["a", "b", "a", "b", "a"],
    ...                    "rating": [5, 3, 4, 2, 5]})
    >>> m = BiasedMF(BiasedMFConfig(factors=2, epochs=5)).fit(Dataset.from_frames(df))
    >>> m.predict([2], [1]).shape
    (1,)
    """

    name = "mf"
    Config = BiasedMFConfig
    config: BiasedMFConfig
    popularity_fallback = False  # has its own (item-bias) fallback for users without history
    valid_metric = "RMSE"
    valid_higher_is_better = False

    def fit(self, train: Dataset, valid: Dataset | None = None) -> Self:
        if "rating" not in train.interactions.columns:
            raise ConfigError(f"mf (BiasedMF) needs explicit ratings: the training interactions have no 'rating' "
                              f"column (columns: {list(train.interactions.columns)}). Load a rated dataset, or use "
                              f"an implicit-feedback model such as 'als', 'bpr' or 'itemknn'.")
        return super().fit(train, valid)

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        c = self.config
        df = train.interactions
        self._pairs = (df["user"].to_numpy(np.int64), df["item"].to_numpy(np.int64),
                       df["rating"].to_numpy(np.float32))  # (n,) each
        ratings = self._pairs[2]
        mean = float(ratings.astype(np.float64).mean())
        self.rating_range_ = np.array([ratings.min(), ratings.max()], dtype=np.float32)
        gen = torch.Generator().manual_seed(c.seed)
        self.network_ = _BiasedMFNet(self.n_users_, self.n_items_, c.factors, mean, c.init_std, gen)
        use_valid = valid is not None and "rating" in valid.interactions.columns and valid.n_interactions > 0
        try:
            history = self.run_trainer(train, valid if use_valid else None)
            self._take(self.network_)
        finally:
            del self.network_, self._pairs
        self.epochs_trained_ = len(history)
        best = best_record(history, self.valid_metric, higher=False)
        if best is not None:
            self.valid_rmse_ = best["valid"][self.valid_metric]
        # users and items without training ratings keep only mu (+ b_i), not their random init
        self.user_factors_[np.bincount(df["user"], minlength=self.n_users_) == 0] = 0.0
        self.item_factors_[self.item_popularity_ == 0] = 0.0

    # -- the training task (fusionrec.training.task) ----------------------------------------------
    def steps_per_epoch(self, train: Dataset) -> int:
        return math.ceil(len(self._pairs[2]) / self.config.batch_size)

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        users, items, ratings = self._pairs
        perm = rng.permutation(len(ratings))
        for start in range(0, len(perm), self.config.batch_size):
            b = perm[start:start + self.config.batch_size]
            yield torch.from_numpy(users[b]), torch.from_numpy(items[b]), torch.from_numpy(ratings[b])  # (B,) each

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, items, ratings = batch
        pred, norm = self.network_(users, items)  # (B,), (B,)
        return ((pred - ratings).pow(2) + self.config.regularization * norm).mean()

    def validation_metric(self, valid: Dataset) -> float:
        """RMSE of the network's (clipped) predictions of the valid ratings."""
        self._take(self.network_)
        vdf = valid.interactions
        err = self.predict(vdf["user"].to_numpy(), vdf["item"].to_numpy()) - vdf["rating"].to_numpy(np.float64)
        return float(np.sqrt(np.mean(err**2)))

    def _take(self, net: _BiasedMFNet) -> None:
        """Copy the network's parameters into numpy attributes."""
        self.global_mean_ = np.array([net.mean], dtype=np.float32)
        self.user_factors_ = net.user_factors.detach().numpy().copy()  # (n_users, f)
        self.item_factors_ = net.item_factors.detach().numpy().copy()  # (n_items, f)
        self.user_bias_ = net.user_bias.detach().numpy().copy()  # (n_users,)
        self.item_bias_ = net.item_bias.detach().numpy().copy()  # (n_items,)

    def _user_params(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Factors (b, f) and biases (b,) of ``users``; zeros for users unknown to training."""
        known = users < self.n_users_
        idx = np.where(known, users, 0)
        p = self.user_factors_[idx] * known[:, None]
        bu = self.user_bias_[idx] * known
        return p, bu

    def predict(self, users: np.ndarray | list[int], items: np.ndarray | list[int]) -> np.ndarray:
        """Predicted ratings of (user, item) pairs, clipped to the training rating range. Shape (n,)."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if users.shape != items.shape:
            raise ValueError(f"predict needs as many users as items; got {users.shape} and {items.shape}")
        p, bu = self._user_params(users)
        pred = self.global_mean_[0] + bu + self.item_bias_[items] + (p * self.item_factors_[items]).sum(-1)
        return np.clip(pred, self.rating_range_[0], self.rating_range_[1])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        p, bu = self._user_params(users)
        return self.global_mean_[0] + bu[:, None] + self.item_bias_[None, :] + p @ self.item_factors_.T  # (b, n_items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_,
                "user_bias": self.user_bias_, "item_bias": self.item_bias_,
                "global_mean": self.global_mean_, "rating_range": self.rating_range_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]
        self.user_bias_ = state["user_bias"]
        self.item_bias_ = state["item_bias"]
        self.global_mean_ = state["global_mean"]
        self.rating_range_ = state["rating_range"]
