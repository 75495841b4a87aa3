"""Social: friends' tastes diffused into a closed-form item-item model.

A linear, one-layer version of social diffusion (DiffNet: Wu et al., "A Neural Influence Diffusion
Model for Social Recommendation", SIGIR 2019) decoded by EASE (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019). A user's input row is their own (listening-count weighted)
history plus the mean of their friends' rows; the EASE item-item weights ``B`` turn it into scores,
and the friends' mean also scores an item directly ("your friends listen to it")::

    f_u   = sum_v a_uv x_v                      # friends' mean history, (n_items,)
    s_u   = (x_u + beta * f_u) B + gamma * f_u  # beta = social_weight, gamma = friend_item_weight

``a_uv`` is 1/|friends(u)|, or with ``friend_attention = tau > 0`` proportional to
``exp(tau * cos(x_u, x_v))`` (friends with tastes like the user's count more; GraphRec/DiffNet++-style
attention without learned parameters). ``B = I - P / diag(P)``, ``P = (X^T X + lambda I)^-1``, is never
formed when there are fewer users than items: by Woodbury ``P = (I - X^T K X) / lambda`` with
``K = (X X^T + lambda I)^-1`` (n_users^2), so ``x B = x - (x P) / diag(P)`` costs O(n_users^2) per user
and fitting lastfm-2k (1,892 users, 17,632 artists) takes about a second instead of inverting a
17,632^2 matrix. With ``social_weight = friend_item_weight = 0`` and binary weights it is EASE.

Listening counts are confidence weights: ``x_ui = log1p(count_ui) / mean_j log1p(count_uj)`` (1 on
average per user; events given at scoring time, whose count is unknown, weigh 1). With
``weighting = "log1p-idf"`` (the default) each item's weight is also scaled by its rarity,
``(1 + idf_i) / mean(1 + idf)`` with ``idf_i = log(n_users / (1 + users_i))`` from training, as BM25 does
for ALS; on lastfm-2k's valid part (NDCG@10, social terms off): binary 0.143 (lambda 50), log1p 0.151
(50), log1p-idf 0.158 (150).

History is an input of scoring and friends come from the social graph, not from training rows, so:
a user with history uses it (plus friends); a user with friends but no history is scored from the
friends alone (with both social weights 0, as tuning picks on lastfm-2k's warm users, as ``f_u B``);
a user with neither gets popularity. :meth:`SocialRecommender.set_friends` replaces
the graph after training (new users' friendships, no refit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.graph.social import (
    FriendEvidence,
    edges_to_matrix,
    friend_matrix,
    friends_evidence,
    normalize_rows,
)
from fusionrec.models.base import BaseConfig, Recommender, take_rows
from fusionrec.models.weighting import WEIGHTINGS, interaction_weights, item_factors, weighted_history

#: float64 entries of a (items, n_users) block held at once while fitting the dual form (128 MiB)
CHUNK_ELEMENTS = 2**24


@dataclass(frozen=True)
class SocialConfig(BaseConfig):
    l2: float = 200.0  # EASE lambda
    social_weight: float = 0.5  # beta: friends' mean history added to the user's own input row
    friend_item_weight: float = 0.5  # gamma: direct score of an item from the friends who have it
    friend_attention: float = 0.0  # tau: 0 = plain mean over friends; > 0 favours like-minded friends
    weighting: str = "log1p-idf"  # "binary", "log1p" (listening counts as confidence), "log1p-idf" (and rarity)
    max_dim: int = 40_000  # the solve is min(n_users, n_items)^2; beyond this it needs > 6 GB

    def __post_init__(self) -> None:
        if not self.l2 > 0:
            raise ValueError(f"SocialConfig.l2 must be > 0, got {self.l2}")
        for name in ("social_weight", "friend_item_weight", "friend_attention"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"SocialConfig.{name} must be a finite number >= 0, got {v}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"SocialConfig.weighting must be one of {list(WEIGHTINGS)}, got {self.weighting!r}")
        if self.max_dim < 1:
            raise ValueError(f"SocialConfig.max_dim must be >= 1, got {self.max_dim}")


class SocialRecommender(Recommender):
    """EASE over the user's history plus their friends' mean history (see the module docstring).

    Examples
    --------
    >>> import pandas as pd
    >>> from fusionrec.data.schema import Dataset
    >>> df = pd.DataFrame({"user": ["a", "a", "b", "c"], "item": ["x", "y", "x", "y"]})
    >>> social = pd.DataFrame({"user": ["d"], "friend": ["c"]})  # d has a friend but no history
    >>> m = SocialRecommender(SocialConfig(l2=1.0)).fit(Dataset.from_frames(df, social=social))
    >>> int(m.recommend([3], k=1)[0][0, 0])  # d is scored from c: item y
    1
    """

    name = "social"
    Config = SocialConfig
    popularity_fallback = False  # users without history but with friends are scored from the friends
    # weighting is not searched: log1p-idf beat log1p and binary on lastfm-2k's valid part (module docstring)
    search_space = {"l2": [75.0, 150.0, 300.0], "social_weight": [0.0, 0.05, 0.25],
                    "friend_item_weight": [0.0, 0.05, 0.5]}

    # ------------------------------------------------------------------ training
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        c = self.config
        n_users, n_items = self.train_matrix_.shape
        if min(n_users, n_items) > c.max_dim:
            raise ConfigError(f"social needs a min(n_users, n_items)^2 matrix; {min(n_users, n_items)} exceeds "
                              f"max_dim={c.max_dim}. Use 'als', or raise social.max_dim.")
        self.item_weight_ = self._item_weights()  # (n_items,) rarity factor (ones unless log1p-idf)
        self.weights_ = self._train_weights(train)  # (n_users, n_items), same pattern as train_matrix_
        x = self.weights_.astype(np.float64)
        if n_users <= n_items:  # dual: K = (X X^T + lambda I)^-1, (n_users, n_users)
            g = torch.from_numpy((x @ x.T).toarray())
            g.diagonal().add_(c.l2)
            k = torch.linalg.inv(g).numpy()
            xt = sp.csr_matrix(x.T)  # (n_items, n_users)
            quad = np.empty(n_items)  # x_i^T K x_i per item column, in chunks of (chunk, n_users)
            chunk = max(1, CHUNK_ELEMENTS // max(1, n_users))
            for start in range(0, n_items, chunk):
                rows = xt[start:start + chunk]
                quad[start:start + chunk] = np.asarray(rows.multiply(np.asarray(rows @ k)).sum(axis=1)).ravel()
            diag = (1.0 - quad) / c.l2  # diag(P) = (1 - diag(X^T K X)) / lambda
            self.kernel_, self.p_ = k, None
        else:  # primal: P itself, (n_items, n_items)
            g = torch.from_numpy((x.T @ x).toarray())
            g.diagonal().add_(c.l2)
            p = torch.linalg.inv(g).numpy()
            diag = np.diagonal(p).copy()
            self.kernel_, self.p_ = None, p
        self.p_diag_ = diag  # (n_items,) float64, > 0
        if train.social is not None and len(train.social):
            self.friends_ = friend_matrix(train, n_users=max(n_users, train.n_users))
        else:
            self.friends_ = sp.csr_matrix((n_users, n_users), dtype=np.float32)

    def _item_weights(self) -> np.ndarray:
        return item_factors(self.train_matrix_, self.config.weighting)

    def _train_weights(self, train: Dataset) -> sp.csr_matrix:
        counts = train.csr("weight") if "weight" in train.interactions.columns else None
        return interaction_weights(self.train_matrix_, counts, self.config.weighting, self.item_weight_)

    def set_friends(self, social: Any, n_users: int | None = None) -> None:
        """Replace the social graph: a Dataset (its ``social`` table), a (user, friend[, weight]) frame
        in dense indices, or a square sparse matrix. Users past the training range may appear (new
        users): they are scored from these friends at once."""
        self._check_fitted()
        n = max(self.friends_.shape[0], int(n_users or 0))
        if isinstance(social, Dataset):
            self.friends_ = friend_matrix(social, n_users=max(n, social.n_users))
        elif sp.issparse(social):
            m = sp.csr_matrix(social, dtype=np.float32)
            if m.shape[0] != m.shape[1]:
                raise ConfigError(f"a friend matrix must be square (n_users, n_users), got {m.shape}")
            self.friends_ = sp.csr_matrix(m.maximum(m.T))
            self.friends_.setdiag(0)
            self.friends_.eliminate_zeros()
        elif hasattr(social, "columns"):
            missing = [col for col in ("user", "friend") if col not in social.columns]
            if missing:
                raise ConfigError(f"social edges need column(s) {missing}; have {list(social.columns)}")
            u, f = social["user"].to_numpy(np.int64), social["friend"].to_numpy(np.int64)
            top = int(max(u.max(initial=-1), f.max(initial=-1))) + 1
            w = social["weight"].to_numpy() if "weight" in social.columns else None
            self.friends_ = edges_to_matrix(u, f, w, max(n, top))
        else:
            raise ConfigError(f"set_friends takes a Dataset, a (user, friend) frame or a sparse matrix, "
                              f"got {type(social).__name__}")

    # ------------------------------------------------------------------ scoring
    def _weighted(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix:
        """History rows with training weights where known; events added at scoring time (count
        unknown) weigh their item's rarity factor (1 unless ``log1p-idf``)."""
        return weighted_history(history, users, self.weights_, self.item_weight_)

    def _friend_rows(self, users: np.ndarray, hist: sp.csr_matrix) -> sp.csr_matrix:
        """(b, n_users) friend weights a_uv (rows sum to 1 where the user has friends in training)."""
        a = take_rows(self.friends_, users)
        a = sp.csr_matrix(a[:, : self.n_users_]) if a.shape[1] > self.n_users_ else sp.csr_matrix(a)
        tau = self.config.friend_attention
        if tau > 0 and a.nnz:
            a = a.tocoo()
            xf = self.weights_[a.col]  # (nnz, n_items) friends' rows
            xu = hist[a.row]  # (nnz, n_items) the users' rows
            dot = np.asarray(xf.multiply(xu).sum(axis=1)).ravel()
            nf = np.sqrt(np.asarray(xf.multiply(xf).sum(axis=1)).ravel())
            nu = np.sqrt(np.asarray(xu.multiply(xu).sum(axis=1)).ravel())
            cos = np.divide(dot, nf * nu, out=np.zeros_like(dot), where=(nf * nu) > 0)
            a = sp.csr_matrix((a.data * np.exp(tau * cos).astype(np.float32), (a.row, a.col)), shape=a.shape)
        return normalize_rows(a)

    def friend_signal(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> sp.csr_matrix:
        """(b, n_items) friends' (attention-weighted) mean history ``f_u``."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        hist = self._weighted(users, self.history_for(users) if history is None else history)
        return sp.csr_matrix(self._friend_rows(users, hist) @ self.weights_)

    def _decode(self, x: sp.csr_matrix) -> np.ndarray:
        """``x B`` for (b, n_items) rows: ``x - (x P) / diag(P)``, (b, n_items) float32."""
        c = self.config
        if self.kernel_ is not None:
            xt = np.asarray((x @ self.weights_.T).todense(), dtype=np.float64)  # (b, n_users)
            xp = np.asarray(x.todense(), dtype=np.float64) - np.asarray((self.weights_.T @ (xt @ self.kernel_).T).T)
            xp /= c.l2  # (b, n_items) = x P
        else:
            xp = np.asarray(x @ self.p_)
        return (np.asarray(x.todense(), dtype=np.float64) - xp / self.p_diag_).astype(np.float32)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        c = self.config
        h = self._weighted(users, history)  # (b, n_items)
        f = sp.csr_matrix(self._friend_rows(users, h) @ self.weights_)  # (b, n_items)
        no_history = np.diff(h.indptr) == 0
        if c.social_weight:
            x = sp.csr_matrix(h + c.social_weight * f)
        elif not c.friend_item_weight and no_history.any():
            # social terms tuned off for users with history (as on lastfm-2k): friends still speak for
            # users without any, through B (beta = 1 on those rows only)
            x = sp.csr_matrix(h + sp.diags(no_history.astype(np.float32)) @ f)
        else:
            x = h
        s = self._decode(x)
        if c.friend_item_weight:
            s += c.friend_item_weight * f.toarray()
        # no history and no friends with history: popularity
        cold = no_history & (np.diff(f.indptr) == 0)
        if cold.any():
            s[cold] = self.item_popularity_
        return s

    # ------------------------------------------------------------------ explanations
    def explain_friends(self, user: int, items: np.ndarray | list[int], top: int = 3) -> list[dict[str, Any]]:
        """Social evidence per item, strongest first: ``{"item", "friends" (count), "top_friends",
        "contribution", "message"}`` for every item of ``items`` that a friend has.

        ``top_friends`` are the (at most ``top``) dense indices of the friends contributing most
        (friend weight x their listening weight); ``contribution`` is ``gamma``'s share of the score
        before attention (the friends' mean weight on the item).
        """
        self._check_fitted()
        if top < 1:
            raise ConfigError(f"top must be a positive integer, got {top}")
        ev: list[FriendEvidence] = friends_evidence(self.friends_, self.weights_, int(user), items)
        n_friends = max(1, int(self.friends_.getrow(int(user)).nnz)) if int(user) < self.friends_.shape[0] else 1
        return [{"item": e.item, "friends": e.count, "top_friends": e.friends[:top].tolist(),
                 "contribution": e.contribution / n_friends, "message": e.message()} for e in ev]

    def explain(self, user: int, items: np.ndarray, history: sp.csr_matrix | None = None, top: int = 3
                ) -> list[dict[str, Any]]:
        """Per item (in the given order): its social evidence (``friends`` count, ``top_friends``,
        ``message``; 0 / empty without evidence). Same row shape as other models' ``explain``."""
        ev = {r["item"]: r for r in self.explain_friends(user, items, top)}
        return [{"item": int(i), "attended": [], **{k: v for k, v in ev.get(int(i), {
            "friends": 0, "top_friends": [], "contribution": 0.0, "message": ""}).items() if k != "item"}}
            for i in np.asarray(items, dtype=np.int64)]

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        st = {"weights": self.weights_.data.astype(np.float32), "p_diag": self.p_diag_, "item_weight": self.item_weight_,
              "friends.indptr": self.friends_.indptr.astype(np.int64),
              "friends.indices": self.friends_.indices.astype(np.int64),
              "friends.data": self.friends_.data.astype(np.float32),
              "friends.n": np.asarray([self.friends_.shape[0]], dtype=np.int64)}
        if self.kernel_ is not None:
            st["kernel"] = self.kernel_
        else:
            st["p"] = self.p_
        return st

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        m = self.train_matrix_
        self.weights_ = sp.csr_matrix((state["weights"], m.indices, m.indptr), shape=m.shape)
        self.p_diag_ = state["p_diag"]
        self.item_weight_ = state["item_weight"]
        self.kernel_ = state.get("kernel")
        self.p_ = state.get("p")
        n = int(state["friends.n"][0])
        self.friends_ = sp.csr_matrix((state["friends.data"], state["friends.indices"], state["friends.indptr"]),
                                      shape=(n, n))
