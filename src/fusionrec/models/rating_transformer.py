"""RatingFormer: a Transformer over the user's rated items that predicts the rating of a target item.

The user is the set of their ratings: each becomes a token ``item embedding + rating embedding``
(no positions: under random cross-validation splits the order carries little signal), and a learned
[CLS] token joins them. A bidirectional Transformer encoder (pre-LayerNorm) contextualises the
tokens; the head reads them with the target item as the query (target-aware attention, as in DIN,
Zhou et al., KDD 2018, inside a Transformer as in BST, Chen et al., DLP-KDD 2019)::

    r_ui = mu + b_i + b_u                          baseline (Koren, TKDD 2010): shrunk mean deviations
         + c_i + w . h_cls                         learned item and context biases
         + v_ui . e_i,  v_ui = p_u + W (h_cls + attend(e_i, H))

``v_ui`` is the user vector for target ``i``: a learned per-user part ``p_u`` (zero for users unknown to
training) plus the Transformer's reading of the ratings, projected by ``W`` (started small). It is
SVD++'s shape (Koren, KDD 2008) with a Transformer in place of the sum of item vectors, and a strict
superset of biased MF. The objective is the squared error plus ``regularization`` times
``|e_i|^2 + c_i^2 + |v_ui|^2`` per rating, as biased MF penalises ``q_i``, ``b_i`` and ``p_u``.

The baseline is closed-form and covers all of the user's ratings (the context holds at most
``max_len``). Training deals each user's ratings into chunks of at most ``targets`` (at least two
chunks, so the context is at least half of them); each chunk is predicted from (up to ``max_len`` of)
the user's *other* ratings, and its baseline ``b_u`` from them too, so no rating sees itself and every
rating is a target once per epoch. A fraction ``mask_ratings`` of context ratings is hidden (rating
embedding "unknown"), which teaches the model events without a rating (history given at inference).

Without a ``rating`` column (implicit feedback) every event is a token of unknown rating, there is no
baseline, observed targets have value 1 and ``negatives`` sampled unobserved items per target value 0.

Validation (early stopping, best epoch) follows RMSE, lower is better, on explicit data; NDCG@10 on
implicit data. ml-100k, 5-fold CV: RMSE 0.906 against biased MF's 0.913 (bench-out/TRAINER.md).

Examples
--------
>>> import pandas as pd
>>> from fusionrec.data.schema import Dataset
>>> df = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": ["a", "b", "a", "b", "a"],
...                    "rating": [5, 3, 4, 2, 5]})
>>> m = RatingFormer(RatingFormerConfig(hidden=8, heads=1, epochs=2)).fit(Dataset.from_frames(df))
>>> m.predict([2], [1]).shape
(1,)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.models.torch_base import TorchRecommender, user_sequences
from fusionrec.training.trainer import TrainConfig

#: at most this many float32 attention weights (users x items x tokens) in one scoring block (64 MB)
_SCORE_BLOCK = 1 << 24
#: explicit ratings with more distinct values than this are binned into this many quantile levels
_MAX_LEVELS = 32
#: shrinkage (in ratings) of the baseline's item and user mean deviations
_SHRINK = 10.0


@dataclass(frozen=True)
class RatingFormerConfig(TrainConfig):
    hidden: int = 32
    layers: int = 1
    heads: int = 2
    max_len: int = 128  # context tokens (ratings) per user; the most recent ones at inference
    targets: int = 32  # at most this many ratings predicted per training example
    dropout: float = 0.1  # on the token embeddings
    regularization: float = 0.03  # per predicted rating, on |e_i|^2 + b_i^2 + |v_ui|^2 (as biased MF on q_i, b_i, p_u)
    mask_ratings: float = 0.1  # fraction of context ratings hidden while training
    drop_tokens: float = 0.0  # fraction of context ratings left out of each training example
    negatives: int = 4  # implicit data only: sampled unobserved items (value 0) per observed target
    epochs: int = 16  # ml-100k 5-fold CV: chosen on a validation split of fold 1's training part
    batch_size: int = 64  # examples per step, fewer on tiny data (see min_steps)
    min_steps: int = 8  # optimizer steps per epoch at least: tiny datasets get smaller batches
    lr: float = 3e-3
    weight_decay: float = 1.0
    warmup_steps: int = 50
    patience: int = 5
    threads: int = 1  # a small network: more intra-op threads cost more than they give on CPU

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden", "layers", "heads", "max_len", "targets", "min_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"RatingFormerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"RatingFormerConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.regularization < 0:
            raise ValueError(f"RatingFormerConfig.regularization must be >= 0, got {self.regularization}")
        for name in ("dropout", "mask_ratings", "drop_tokens"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"RatingFormerConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.negatives < 0:
            raise ValueError(f"RatingFormerConfig.negatives must be >= 0, got {self.negatives}")


class RatingFormerNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, n_levels: int, cfg: RatingFormerConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.user = nn.Embedding(n_users + 1, d, padding_idx=0)  # p_u of users + 1; 0 = unknown user
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)  # context items + 1; 0 = padding
        self.level = nn.Embedding(n_levels + 1, d)  # rating level; 0 = unknown
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, dim_feedforward=2 * d, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.target = nn.Embedding(n_items, d)  # target item vectors e_i
        self.target_bias = nn.Embedding(n_items, 1)  # item bias on top of the baseline
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.user_bias = nn.Linear(d, 1)
        self.out = nn.Linear(d, d, bias=False)  # the Transformer's part of the user vector, started small
        nn.init.normal_(self.out.weight, std=0.01)
        for emb in (self.user, self.item, self.level, self.target):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.zeros_(self.target_bias.weight)
        with torch.no_grad():
            self.item.weight[0].zero_()
            self.user.weight[0].zero_()

    def encode(self, items: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context items + 1 and rating levels (B, L) -> token states (B, L+1, H) ([CLS] first) and the
        padding mask (B, L+1)."""
        b = items.shape[0]
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=items.device), items == 0], 1)  # (B, L+1)
        x = torch.cat([self.cls.expand(b, 1, -1), self.item(items) + self.level(levels)], 1)  # (B, L+1, H)
        return self.norm(self.encoder(self.drop(x), src_key_padding_mask=pad)), pad

    def head(self, users: torch.Tensor, h: torch.Tensor, pad: torch.Tensor, e: torch.Tensor,
             bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residuals over the baseline for users + 1 (B,) and targets with vectors e (B, T, H) and biases
        (B, T) -> (B, T), and the squared norm of the parameters each rating touches (B, T), for L2."""
        u = h[:, 0]  # (B, H)
        p = self.user(users)  # (B, H)
        att = self.query(e) @ self.key(h).transpose(1, 2) / math.sqrt(h.shape[-1])  # (B, T, L+1)
        att = att.masked_fill(pad.unsqueeze(1), float("-inf")).softmax(-1)
        v = p.unsqueeze(1) + self.out(u.unsqueeze(1) + att @ h)  # (B, T, H): the user vector for each target
        norm = (e * e).sum(-1) + bias * bias + (v * v).sum(-1)
        return bias + self.user_bias(u) + (v * e).sum(-1), norm

    def forward(self, users: torch.Tensor, items: torch.Tensor, levels: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Users + 1 (B,), context (B, L), target item indices (B, T) -> residuals and L2 norms (B, T)."""
        h, pad = self.encode(items, levels)
        return self.head(users, h, pad, self.target(targets), self.target_bias(targets)[..., 0])

    def score_all(self, users: torch.Tensor, h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Residuals of every item (B, n_items) from an encoded context."""
        b, n = h.shape[0], self.target.num_embeddings
        e = self.target.weight.unsqueeze(0).expand(b, n, -1)  # (B, n_items, H)
        return self.head(users, h, pad, e, self.target_bias.weight[:, 0].unsqueeze(0).expand(b, n))[0]


def _trim(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop the columns that are padding in every row (contexts are left-padded; the first array is the
    items, 0 = padding); keep at least one."""
    width = max(1, int((arrays[0] > 0).sum(1).max(initial=0)))
    return tuple(np.ascontiguousarray(a[:, -width:]) for a in arrays)


class RatingFormer(TorchRecommender):
    """Transformer over the user's (item, rating) tokens with a target-aware rating head (module docstring)."""

    name = "ratingformer"
    Config = RatingFormerConfig
    valid_metric: ClassVar[str] = "RMSE"
    valid_higher_is_better: ClassVar[bool] = False

    def fit(self, train: Dataset, valid: Dataset | None = None) -> RatingFormer:  # type: ignore[override]
        self.explicit_ = "rating" in train.interactions.columns
        # early stopping follows RMSE when ratings are predicted, the ranking otherwise
        self.valid_metric = "RMSE" if self.explicit_ and (valid is None or "rating" in valid.interactions.columns) \
            else "NDCG@10"  # type: ignore[misc]
        self.valid_higher_is_better = self.valid_metric != "RMSE"  # type: ignore[misc]
        return super().fit(train, valid)

    # ------------------------------------------------------------------ data
    def prepare(self, train: Dataset) -> None:
        inter = train.interactions
        self.seq_indptr_, self.seq_items_ = user_sequences(train)
        order = np.lexsort((np.arange(len(inter)), inter["timestamp"].to_numpy(), inter["user"].to_numpy()))
        users = inter["user"].to_numpy()[order]
        if self.explicit_:
            r = inter["rating"].to_numpy(np.float64)[order]
            values = np.unique(r)
            self.levels_ = (values if len(values) <= _MAX_LEVELS else
                            np.unique(np.quantile(r, np.linspace(0, 1, _MAX_LEVELS)))).astype(np.float32)
            self.seq_levels_ = self._level_of(r)
            self.rating_range_ = np.array([r.min(), r.max()], dtype=np.float32)
            # baseline predictor (Koren, TKDD 2010, eq. 2-3): shrunk item, then user mean deviations
            mu = float(r.mean())
            n_i = np.bincount(self.seq_items_, minlength=self.n_items_)
            self.item_base_ = (np.bincount(self.seq_items_, r - mu, self.n_items_) / (n_i + _SHRINK)).astype(np.float32)
            self.seq_dev_ = (r - mu - self.item_base_[self.seq_items_]).astype(np.float32)
            self.mean_ = np.array([mu], dtype=np.float32)
        else:  # implicit: tokens of unknown rating; targets 1 (observed) and 0 (sampled), no baseline
            self.levels_ = np.empty(0, dtype=np.float32)
            self.seq_levels_ = np.zeros(len(inter), dtype=np.int64)
            self.rating_range_ = np.array([0.0, 1.0], dtype=np.float32)
            self.item_base_ = np.zeros(self.n_items_, dtype=np.float32)
            self.seq_dev_ = np.zeros(len(inter), dtype=np.float32)
            self.mean_ = np.zeros(1, dtype=np.float32)
        self.seq_target_ = (self.seq_dev_ + self.mean_[0] + self.item_base_[self.seq_items_]).astype(np.float32) \
            if self.explicit_ else np.ones(len(inter), dtype=np.float32)
        self.user_dev_sum_ = np.bincount(users, self.seq_dev_, self.n_users_).astype(np.float32)
        self.n_examples_ = int(self._chunks(np.diff(self.seq_indptr_)).sum())

    def _chunks(self, n: np.ndarray) -> np.ndarray:
        """Training examples per user with ``n`` ratings: chunks of at most ``targets``, at least two."""
        return np.where(n > 1, np.maximum(2, np.ceil(n / self.config.targets)), n).astype(np.int64)

    def _level_of(self, r: np.ndarray) -> np.ndarray:
        """Rating values -> level index 1..n_levels (nearest level at or below; 0 is 'unknown')."""
        idx = np.searchsorted(self.levels_, r, side="right") - 1
        return np.clip(idx, 0, len(self.levels_) - 1).astype(np.int64) + 1

    def _user_base(self, users: np.ndarray) -> np.ndarray:
        """Baseline user bias from all of each user's training ratings; 0 for users unknown to training."""
        known = users < len(self.seq_indptr_) - 1
        u = np.where(known, users, 0)
        n = (self.seq_indptr_[u + 1] - self.seq_indptr_[u]).astype(np.float32)
        return np.where(known, self.user_dev_sum_[u] / (n + _SHRINK), 0.0).astype(np.float32)

    def _user_index(self, users: np.ndarray) -> torch.Tensor:
        """Rows of the user table: user + 1, or 0 for users unknown to training."""
        return torch.from_numpy(np.where(users < self.n_users_, users + 1, 0).astype(np.int64))

    def build_network(self) -> nn.Module:
        return RatingFormerNet(self.n_users_, self.n_items_, len(self.levels_), self.config)

    def _batch_size(self) -> int:
        return max(1, min(self.config.batch_size, self.n_examples_ // self.config.min_steps))

    def steps_per_epoch(self, train: Dataset) -> int:
        return int(np.ceil(self.n_examples_ / self._batch_size()))

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        examples = []  # (user, positions of the targets in the user's sequence)
        lengths = np.diff(self.seq_indptr_)
        for u, (n, k) in enumerate(zip(lengths, self._chunks(lengths), strict=True)):
            if k:
                examples += [(u, part) for part in np.array_split(rng.permutation(int(n)), int(k))]
        order = rng.permutation(len(examples))
        bs = self._batch_size()
        for s in range(0, len(order), bs):
            yield self._batch([examples[i] for i in order[s:s + bs]], rng)

    def _batch(self, examples: list[tuple[int, np.ndarray]], rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """Context items + 1 and levels (B, L); targets, their residual over the baseline, weights (B, T).

        The baseline's user bias comes from the user's ratings outside the chunk (no target sees itself).
        """
        c = self.config
        neg = 0 if self.explicit_ else c.negatives
        t_len = c.targets * (1 + neg)
        b = len(examples)
        items = np.zeros((b, c.max_len), dtype=np.int64)
        levels = np.zeros((b, c.max_len), dtype=np.int64)
        targets = np.zeros((b, t_len), dtype=np.int64)
        residual = np.zeros((b, t_len), dtype=np.float32)
        weights = np.zeros((b, t_len), dtype=np.float32)
        for r, (u, pos) in enumerate(examples):
            lo, hi = self.seq_indptr_[u], self.seq_indptr_[u + 1]
            rest = np.delete(np.arange(hi - lo), pos)
            if c.drop_tokens and len(rest) > 1:
                rest = rest[rng.random(len(rest)) >= c.drop_tokens]
            if len(rest) > c.max_len:
                rest = np.sort(rng.choice(rest, c.max_len, replace=False))
            k = len(rest)
            if k:
                items[r, -k:] = self.seq_items_[lo + rest] + 1
                lv = self.seq_levels_[lo + rest]
                if c.mask_ratings:
                    lv = np.where(rng.random(k) < c.mask_ratings, 0, lv)
                levels[r, -k:] = lv
            m = len(pos)
            tgt = self.seq_items_[lo + pos]
            b_u = (self.user_dev_sum_[u] - self.seq_dev_[lo + pos].sum()) / (hi - lo - m + _SHRINK)
            targets[r, :m] = tgt
            residual[r, :m] = self.seq_target_[lo + pos] - self._baseline(tgt, b_u)
            weights[r, :m] = 1.0
            if neg:  # implicit: unobserved items with value 0
                cand = rng.integers(0, self.n_items_, size=m * neg)
                cand = cand[~np.isin(cand, self.seq_items_[lo:hi])]
                targets[r, m:m + len(cand)] = cand
                weights[r, m:m + len(cand)] = 1.0
        items, levels = _trim(items, levels)
        users = np.array([u + 1 for u, _ in examples], dtype=np.int64)
        return tuple(torch.from_numpy(a) for a in (users, items, levels, targets, residual, weights))

    def _baseline(self, items: np.ndarray, user_bias: np.ndarray | float) -> np.ndarray:
        """``mu + b_i + b_u`` (0 on implicit data)."""
        return self.mean_[0] + self.item_base_[items] + user_bias

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, items, levels, targets, residual, weights = batch
        pred, norm = self.network_(users, items, levels, targets)  # (B, T), (B, T)
        loss = (pred.float() - residual) ** 2 + self.config.regularization * norm.float()
        return (loss * weights).sum() / weights.sum().clamp_min(1.0)

    # ------------------------------------------------------------------ inference
    def _context(self, users: np.ndarray, history: sp.csr_matrix | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) item ids + 1 and rating levels: the user's rated items (most recent last), then history
        events without a rating, keeping the last ``max_len``; ``history`` (when given) decides which
        items are in."""
        L = self.config.max_len
        items = np.zeros((len(users), L), dtype=np.int64)
        levels = np.zeros((len(users), L), dtype=np.int64)
        n_train = len(self.seq_indptr_) - 1
        for r, u in enumerate(users):
            lo, hi = (self.seq_indptr_[u], self.seq_indptr_[u + 1]) if u < n_train else (0, 0)
            its, lvs = self.seq_items_[lo:hi], self.seq_levels_[lo:hi]
            if history is not None:
                h = history.indices[history.indptr[r]:history.indptr[r + 1]].astype(np.int64)
                keep = np.isin(its, h)
                new = np.setdiff1d(h, its)
                its = np.concatenate([its[keep], new])
                lvs = np.concatenate([lvs[keep], np.zeros(len(new), np.int64)])
            its, lvs = its[-L:], lvs[-L:]
            if len(its):
                items[r, -len(its):] = its + 1
                levels[r, -len(its):] = lvs
        return tuple(torch.from_numpy(a) for a in _trim(items, levels))  # type: ignore[return-value]

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        net = self.network_.eval()
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        step = max(1, _SCORE_BLOCK // (self.n_items_ * (self.config.max_len + 1)))
        for s in range(0, len(users), step):
            us = users[s:s + step]
            h, pad = net.encode(*self._context(us, history[s:s + step]))
            base = self._baseline(np.arange(self.n_items_)[None, :], self._user_base(us)[:, None])  # (b, n_items)
            out[s:s + step] = base + net.score_all(self._user_index(us), h, pad).numpy()
        return out

    @torch.no_grad()
    def predict(self, users: np.ndarray | list[int], items: np.ndarray | list[int]) -> np.ndarray:
        """Predicted ratings of (user, item) pairs from each user's training ratings, clipped to the
        training rating range. Shape (n,)."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if users.shape != items.shape:
            raise ValueError(f"predict needs as many users as items; got {users.shape} and {items.shape}")
        net = self.network_.eval()
        out = self._baseline(items, self._user_base(users)).astype(np.float32)
        order = np.argsort(users, kind="stable")
        uniq, starts = np.unique(users[order], return_index=True)
        bounds = np.append(starts, len(order))
        for s in range(0, len(uniq), 256):
            us = uniq[s:s + 256]
            counts = np.diff(bounds[s:s + len(us) + 1])
            targets = np.zeros((len(us), counts.max()), dtype=np.int64)
            rows = np.repeat(np.arange(len(us)), counts)
            cols = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            idx = order[bounds[s]:bounds[s + len(us)]]
            targets[rows, cols] = items[idx]
            res, _ = net(self._user_index(us), *self._context(us, None), torch.from_numpy(targets))  # (b, T)
            out[idx] += res[torch.from_numpy(rows), torch.from_numpy(cols)].numpy()
        return np.clip(out, self.rating_range_[0], self.rating_range_[1])

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "seq_indptr": self.seq_indptr_, "seq_items": self.seq_items_,
                "seq_levels": self.seq_levels_, "levels": self.levels_, "item_base": self.item_base_,
                "user_dev_sum": self.user_dev_sum_, "mean": self.mean_, "rating_range": self.rating_range_, "explicit": np.array([self.explicit_])}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.seq_indptr_, self.seq_items_ = state["seq_indptr"], state["seq_items"]
        self.seq_levels_, self.levels_ = state["seq_levels"], state["levels"]
        self.item_base_, self.user_dev_sum_ = state["item_base"], state["user_dev_sum"]
        self.mean_, self.rating_range_ = state["mean"], state["rating_range"]
        self.explicit_ = bool(state["explicit"][0])
        super()._load_state(state)
