"""The item-item prior: a closed-form collaborative source added to a model's score.

A next-item Transformer reads the order of a history; a linear item-item model (EASE, Steck WWW
2019) reads the history as a set and is hard to beat where the data is one (lastfm-2k's listening
counts have no order). The prior adds ``g(u, i) * p(u, i)`` to the model's score, with
``p = h_u @ B`` (``B``: EASE's item-item weights of the training events, the largest ``topk`` per
item kept) and the gate ``g = softplus(w . [1, log1p(n_u), log1p(n_i)])`` growing or shrinking with
the user's history length ``n_u`` and the item's training count ``n_i``.

``h_u`` and the events under ``B`` are weighted as ``weighting`` says (models/weighting.py): binary,
listening counts as confidence (``log1p``), and item rarity too (``log1p-idf``). EASE's build is a
dense n_items^2 inverse; past ``max_items`` the ``knn`` source (ItemKNN's blockwise shrunk cosine)
takes its place.

``w`` (and a temperature that scales the whole fused score, so it leaves the ranking alone) is fit
after training on the valid events, which neither ``B`` nor the model saw, by the softmax
cross-entropy of the fused score (stacking): the gate learns how much the prior adds to what the
model already knows, instead of trusting ``B``'s in-sample fit. The wrapper that fits all of this
around any model is :mod:`fusionrec.models.prior`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from fusionrec.errors import ConfigError
from fusionrec.models.base import UNKNOWN_ITEM_SCORE
from fusionrec.models.ease import closed_form
from fusionrec.models.itemknn import cosine_topk
from fusionrec.models.weighting import (
    WEIGHTINGS,
    interaction_weights,
    item_factors,
    padded_factors,
    weighted_history,
)

#: the cosine prior's support shrinkage (ItemKNN's default)
KNN_SHRINK = 10.0


def _topk_columns(b: torch.Tensor, topk: int) -> sp.csr_matrix:
    """A dense (n, n) ``B`` with, per column (target item), only its ``topk`` largest positive weights
    (all positive ones when ``topk`` <= 0 or >= n), as a CSR."""
    n = b.shape[0]
    if 0 < topk < n:
        vals, rows = b.topk(topk, dim=0)  # (topk, n): the strongest sources of each target item
        cols = torch.arange(n).expand(topk, n)
        keep = vals > 0
        return sp.csr_matrix((vals[keep].numpy(), (rows[keep].numpy(), cols[keep].numpy())), shape=(n, n))
    return sp.csr_matrix(b.clamp(min=0).numpy())


def _topk_rows(m: sp.csr_matrix, topk: int) -> sp.csr_matrix:
    """``m`` with only the ``topk`` largest entries of each row."""
    m = sp.csr_matrix(m)
    if topk <= 0:
        return m
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        if hi - lo > topk:
            keep = lo + np.argpartition(-m.data[lo:hi], topk - 1)[:topk]
        else:
            keep = np.arange(lo, hi)
        rows.append(np.full(len(keep), r))
        cols.append(m.indices[keep])
        vals.append(m.data[keep])
    if not rows:
        return m
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape)


def ease_weights(x: sp.csr_matrix, l2: float, topk: int) -> sp.csr_matrix:
    """EASE's ``B`` (zero diagonal) for the (binary or weighted) matrix ``x``; per column (target item) only the
    ``topk`` largest weights are kept (all when ``topk`` <= 0), as a (n_items, n_items) CSR."""
    return _topk_columns(closed_form(x, l2), topk)


def prior_inputs(binary: sp.csr_matrix, counts: sp.csr_matrix | None, weighting: str
                 ) -> tuple[sp.csr_matrix, np.ndarray]:
    """The training events as the prior reads them (binary, or weighted as ``weighting`` says) and each
    item's rarity factor."""
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"prior weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    x = sp.csr_matrix(binary, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    factor = item_factors(x, weighting)
    w = x if weighting == "binary" else interaction_weights(x, counts, weighting, factor)
    return w, factor


def item_item_weights(binary: sp.csr_matrix, l2: float, topks: list[int], counts: sp.csr_matrix | None = None,
                      weighting: str = "binary", source: str = "ease") -> dict[int, sp.csr_matrix]:
    """``B`` for each of ``topks`` (kept weights per target item; <= 0 = all), built once.

    ``source``: ``ease`` (EASE's closed form of the weighted events: one dense n_items^2 solve) or
    ``knn`` (shrunk cosine of the weighted events, built in blocks: any catalogue size)."""
    if source not in ("ease", "knn"):
        raise ConfigError(f"the prior's source must be 'ease' or 'knn', got {source!r}")
    w, _ = prior_inputs(binary, counts, weighting)
    n = w.shape[1]
    if source == "knn":  # row i of the similarity = item i's neighbours; B's column i must hold them
        widest = n if any(k <= 0 for k in topks) else max(topks)
        sim = cosine_topk(w, widest, KNN_SHRINK)
        return {k: sp.csr_matrix(_topk_rows(sim, k).T) for k in topks}
    b = closed_form(w.astype(np.float64), l2)
    return {k: _topk_columns(b, k) for k in topks}


@dataclass
class ItemPrior:
    """Item-item weights ``B`` (sparse), the gate parameters and the training count of each item; with a
    weighting, also each training event's weight (rows by user) and each item's rarity factor."""

    weights: sp.csr_matrix
    gate: np.ndarray  # (4,): w0, w_user, w_item, log temperature
    item_counts: np.ndarray  # (n_items,) training events per item
    user_weights: sp.csr_matrix | None = None  # (n_users, n_items) training event weights; None = binary
    item_factor: np.ndarray | None = None  # (n_items,) weight of an event added at scoring time

    @classmethod
    def from_weights(cls, weights: sp.csr_matrix, train_matrix: sp.csr_matrix, counts: sp.csr_matrix | None = None,
                     weighting: str = "binary") -> ItemPrior:
        """A prior (gate not fitted yet) of item-item ``weights`` built from ``train_matrix`` under ``weighting``."""
        w, factor = prior_inputs(train_matrix, counts, weighting)
        x = sp.csr_matrix(train_matrix, dtype=np.float32, copy=True)
        x.data[:] = 1.0
        item_counts = np.asarray(x.sum(0)).ravel().astype(np.float32)
        if weighting == "binary":
            return cls(sp.csr_matrix(weights), np.zeros(4), item_counts)
        return cls(sp.csr_matrix(weights), np.zeros(4), item_counts, w, factor)

    @classmethod
    def build(cls, train_matrix: sp.csr_matrix, l2: float, topk: int, max_items: int,
              counts: sp.csr_matrix | None = None, weighting: str = "binary", source: str = "ease") -> ItemPrior:
        """``counts``: the training events' counts (``Dataset.csr("weight")``), read unless ``binary``.
        ``source``: ``ease`` (a dense n_items^2 build, up to ``max_items``) or ``knn`` (shrunk cosine of the
        weighted events, built in blocks, the ``topk`` most similar kept per item: for any catalogue size)."""
        n = train_matrix.shape[1]
        if source == "ease" and n > max_items:
            raise ConfigError(f"the item-item prior needs an n_items^2 matrix while it is built; {n} items exceed "
                              f"prior.max_items={max_items}. Use prior.source=knn (or auto), set prior=false, "
                              f"or raise prior.max_items.")
        b = item_item_weights(train_matrix, l2, [topk], counts, weighting, source)[topk]
        return cls.from_weights(b, train_matrix, counts, weighting)

    def inputs(self, history: sp.csr_matrix, users: np.ndarray | None = None) -> sp.csr_matrix:
        """``h_u``: history rows, binary or (with a weighting and ``users``) weighted like the training
        events; without ``users`` every event weighs its item's factor."""
        if self.user_weights is not None and users is not None:
            return weighted_history(history, users, self.user_weights, self.item_factor)
        h = sp.csr_matrix(history, dtype=np.float32, copy=True)
        h.data[:] = 1.0
        if self.item_factor is not None:
            h.data *= padded_factors(self.item_factor, h.shape[1])[h.indices]
        return h

    def raw(self, history: sp.csr_matrix, users: np.ndarray | None = None) -> np.ndarray:
        """(b, n_items) ``h_u @ B`` (``h_u``: :meth:`inputs`)."""
        n = self.weights.shape[0]
        h = self.inputs(history, users)[:, :n]
        return np.asarray((h @ self.weights).toarray(), dtype=np.float32)

    def _gates(self, w: torch.Tensor, n_user: torch.Tensor, n_items: int) -> torch.Tensor:
        counts = torch.from_numpy(np.log1p(self._counts(n_items)))
        return F.softplus(w[0] + w[1] * torch.log1p(n_user)[:, None] + w[2] * counts[None, :])  # (b, n)

    def _counts(self, n_items: int) -> np.ndarray:
        """Training counts for ``n_items`` items (items added after training count 0)."""
        c = self.item_counts
        return c if len(c) == n_items else np.concatenate([c, np.zeros(n_items - len(c), np.float32)])

    def gates(self, history: sp.csr_matrix) -> np.ndarray:
        """(b, n_items) the weight the prior gets for each user and item, in the network's score units
        (the temperature scales both alike, so it does not enter the ranking)."""
        w = torch.from_numpy(self.gate)
        n_user = torch.from_numpy(np.diff(history.indptr).astype(np.float64))
        return self._gates(w, n_user, history.shape[1]).numpy().astype(np.float32)

    def add_to(self, scores: np.ndarray, history: sp.csr_matrix, users: np.ndarray | None = None) -> None:
        """``scores += g * p`` in place (the columns beyond B's are items added after training)."""
        n = self.weights.shape[0]
        p = self.raw(history, users)
        scores[:, :n] += self.gates(history)[:, :n] * p

    def explain(self, history_items: np.ndarray, item: int, top: int = 3,
                history_weights: np.ndarray | None = None) -> list[dict[str, Any]]:
        """The history items that add most to ``item``'s prior score: ``weight`` is ``B[j, item]`` times the
        item's input weight ``history_weights`` (the matching :meth:`inputs` values; 1 when not given)."""
        if item >= self.weights.shape[0] or not len(history_items):
            return []
        col = np.asarray(self.weights[:, [item]].toarray()).ravel()
        hist = np.asarray(history_items, dtype=np.int64)
        h = np.ones(len(hist)) if history_weights is None else np.asarray(history_weights, dtype=np.float64)
        inside = hist < len(col)
        hist, h = hist[inside], h[inside]
        w = col[hist] * h
        order = np.argsort(-w, kind="stable")[:top]
        return [{"item": int(hist[j]), "weight": float(w[j])} for j in order if w[j] > 0]

    def fit_gate(self, scores: np.ndarray, history: sp.csr_matrix, targets: np.ndarray, steps: int = 100,
                 users: np.ndarray | None = None) -> dict[str, float]:
        """Fit ``w`` and ``t`` on held-out events: ``scores`` (b, n) the network's scores for ``users``
        with ``history`` (b, n) and their held-out item ``targets`` (b,). Returns the CE before and after."""
        s = torch.from_numpy(np.asarray(scores, dtype=np.float32))
        hist = sp.csr_matrix(history)
        rows = np.repeat(np.arange(hist.shape[0]), np.diff(hist.indptr))
        seen = torch.zeros(s.shape, dtype=torch.bool)
        seen[torch.from_numpy(rows), torch.from_numpy(hist.indices.astype(np.int64))] = True  # not ranked
        seen |= s <= UNKNOWN_ITEM_SCORE / 2  # items the network cannot score rank last either way
        s = s.masked_fill(seen, 0.0)  # finite everywhere, so gradients stay finite
        p = torch.from_numpy(self.raw(hist, users))
        t = torch.from_numpy(np.asarray(targets, dtype=np.int64))
        n_user = torch.from_numpy(np.diff(hist.indptr).astype(np.float32))
        ok = ~seen[torch.arange(len(t)), t]
        s, p, t, n_user, seen = s[ok], p[ok], t[ok], n_user[ok], seen[ok]
        w = torch.zeros(4, dtype=torch.float32, requires_grad=True)

        def loss_of(w: torch.Tensor, penalty: float = 1e-3) -> torch.Tensor:
            logits = (s + self._gates(w, n_user, s.shape[1]).float() * p) * torch.exp(w[3])
            return F.cross_entropy(logits.masked_fill(seen, float("-inf")), t) + penalty * (w ** 2).sum()

        with torch.no_grad():
            before = float(F.cross_entropy(s.masked_fill(seen, float("-inf")), t)) if len(t) else float("nan")
        if not len(t):
            return {"events": 0, "ce_network": before, "ce_fused": before}
        opt = torch.optim.LBFGS([w], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_of(w)
            loss.backward()
            return loss

        opt.step(closure)
        self.gate = w.detach().double().numpy()
        with torch.no_grad():
            after = float(loss_of(w, 0.0))
        return {"events": int(len(t)), "ce_network": before, "ce_fused": after}

    # -- persistence -------------------------------------------------------------------------
    def to_state(self, prefix: str) -> dict[str, np.ndarray]:
        b = self.weights
        out = {prefix + "indptr": b.indptr.astype(np.int64), prefix + "indices": b.indices.astype(np.int64),
               prefix + "data": b.data.astype(np.float32), prefix + "shape": np.asarray(b.shape, np.int64),
               prefix + "gate": self.gate.astype(np.float64), prefix + "item_counts": self.item_counts}
        if self.user_weights is not None and self.item_factor is not None:
            w = self.user_weights
            out.update({prefix + "uw_indptr": w.indptr.astype(np.int64), prefix + "uw_indices": w.indices.astype(np.int64),
                        prefix + "uw_data": w.data.astype(np.float32), prefix + "uw_shape": np.asarray(w.shape, np.int64),
                        prefix + "item_factor": self.item_factor.astype(np.float32)})
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str) -> ItemPrior | None:
        if prefix + "shape" not in state:
            return None
        shape = tuple(int(x) for x in state[prefix + "shape"])
        b = sp.csr_matrix((state[prefix + "data"], state[prefix + "indices"], state[prefix + "indptr"]), shape=shape)
        prior = cls(b, np.asarray(state[prefix + "gate"], np.float64), np.asarray(state[prefix + "item_counts"]))
        if prefix + "uw_shape" in state:  # a weighted prior (saves before weighting existed are binary)
            ws = tuple(int(x) for x in state[prefix + "uw_shape"])
            prior.user_weights = sp.csr_matrix(
                (state[prefix + "uw_data"], state[prefix + "uw_indices"], state[prefix + "uw_indptr"]), shape=ws)
            prior.item_factor = np.asarray(state[prefix + "item_factor"], np.float32)
        return prior
