"""The item-item prior as a wrapper: any model's score plus a gated, closed-form item-item score.

``WithItemPrior(model, PriorConfig())`` fits ``model``, then builds the item-item weights ``B`` of the
training events (EASE, or a shrunk cosine past ``max_items``; :mod:`fusionrec.models.item_prior`) and
fits the gate ``g(u, i)`` on the valid events, which neither ``B`` nor the model saw. The score is
``model.score(u) + g(u, i) * (h_u @ B)[i]``. A sequence model reads the order of a history; the prior
reads it as a set, where linear item-item models are hard to beat (Steck, WWW 2019).

How many weights ``B`` keeps per target item (``topk``) is chosen on the valid events when it is 0
(the default): each candidate of :data:`TOPK_GRID` gets its own gate fit, and the one with the lowest
fused valid cross-entropy (the gate's own objective) is kept. Without valid events the prior is
skipped and the reason is kept in ``prior_log_``. ``fusion`` is wrapped by default
(``--set fusion.prior=false`` drops it); any other model takes it with ``--set MODEL.prior=true``.

Examples
--------
>>> from fusionrec.jobs import build_model
>>> m = build_model("sasrec", {"prior": True, "prior.topk": 16})
>>> type(m).__name__, m.name, m.wrapper_config.topk
('WithItemPrior', 'sasrec', 16)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.models.history import History
from fusionrec.models.item_prior import ItemPrior, item_item_weights
from fusionrec.models.weighting import WEIGHTINGS
from fusionrec.models.wrapper import Wrapper

log = logging.getLogger(__name__)

#: kept weights per target item tried on the valid events when ``PriorConfig.topk`` is 0
TOPK_GRID = (8, 16, 32, 64, 128)
#: users scored at once while the gate's valid scores are collected
_BATCH = 256


@dataclass(frozen=True)
class PriorConfig:
    l2: float = 100.0  # EASE's ridge strength
    topk: int = 0  # kept weights per target item (the strongest); 0 = chosen on the valid events from TOPK_GRID
    max_items: int = 40_000  # EASE's build needs an n_items^2 matrix
    # events under B and in h_u: "binary", "log1p" (counts as confidence), "log1p-idf" (and rarity), or "auto":
    # log1p-idf where the events carry a weight column (listening counts), binary where not; chosen on lastfm-2k's
    # valid events (the gate's valid cross-entropy: binary 6.701, log1p 6.690, log1p-idf 6.669)
    weighting: str = "auto"
    # "ease", "knn" (shrunk cosine, built in blocks: any catalogue size) or "auto": EASE up to max_items items
    source: str = "auto"

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ValueError(f"PriorConfig.l2 must be > 0, got {self.l2}")
        if self.topk < 0:
            raise ValueError(f"PriorConfig.topk must be >= 0 (0 = choose it on valid), got {self.topk}")
        if self.max_items < 1:
            raise ValueError(f"PriorConfig.max_items must be >= 1, got {self.max_items}")
        if self.source not in ("auto", "ease", "knn"):
            raise ValueError(f"PriorConfig.source must be 'auto', 'ease' or 'knn', got {self.source!r}")
        if self.weighting not in ("auto", *WEIGHTINGS):
            raise ValueError(f"PriorConfig.weighting must be one of {['auto', *WEIGHTINGS]}, got {self.weighting!r}")


class WithItemPrior(Wrapper):
    """A model plus the gated item-item prior (see the module docstring)."""

    wrapper_name = "prior"
    WrapperConfig = PriorConfig

    prior_: ItemPrior | None = None

    def source_for(self, n_items: int) -> str:
        """``ease`` or ``knn``: ``auto`` takes EASE up to ``max_items`` items (its build is a dense
        n_items^2 matrix), the blockwise cosine beyond; ``ease`` past the limit is a clear error."""
        c = self.wrapper_config
        if c.source == "auto":
            return "ease" if n_items <= c.max_items else "knn"
        if c.source == "ease" and n_items > c.max_items:
            raise ConfigError(f"prior.source=ease needs an n_items^2 matrix; {n_items} items exceed prior.max_items="
                              f"{c.max_items} (~{n_items ** 2 * 24 / 2**30:.0f} GB to build). Use prior.source=knn "
                              f"or auto, raise prior.max_items, or set prior=false.")
        return c.source

    def _before_fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.prior_, self.prior_log_ = None, {}
        log.info("item-item prior: %s", self.source_for(train.n_items))  # a bad setting fails before training

    def _fit_wrapper(self, train: Dataset, valid: Dataset | None) -> None:
        if valid is None or valid.n_interactions == 0:
            self.prior_log_ = {"skipped": "no valid events to fit the prior's gate on (pass a valid part)"}
            return
        c = self.wrapper_config
        binary = self.inner.train_matrix_
        source = self.source_for(binary.shape[1])
        weighting = c.weighting
        if weighting == "auto":  # counts as confidence where the events carry them (module item_prior)
            weighting = "log1p-idf" if "weight" in train.interactions.columns else "binary"
        counts = train.csr("weight") if weighting != "binary" else None
        grid = [c.topk] if c.topk else list(TOPK_GRID)
        weights = item_item_weights(binary, c.l2, grid, counts, weighting, source)
        inter = valid.interactions
        users, targets = inter["user"].to_numpy(), inter["item"].to_numpy()
        keep = users < self.inner.n_users_
        users, targets = users[keep], targets[keep]
        uniq, where = np.unique(users, return_inverse=True)
        hist = self.inner.user_history(uniq)
        scores = np.concatenate([self.inner.score(uniq[i:i + _BATCH], hist.take(slice(i, i + _BATCH)))
                                 for i in range(0, len(uniq), _BATCH)]) if len(uniq) else \
            np.zeros((0, binary.shape[1]), np.float32)
        tried = {}
        best: tuple[float, int, ItemPrior, dict[str, Any]] | None = None
        for topk, b in weights.items():
            prior = ItemPrior.from_weights(b, binary, counts, weighting)
            fit = prior.fit_gate(scores[where], hist.binary[where], targets, users=uniq[where])
            tried[str(topk)] = round(fit["ce_fused"], 5)
            if best is None or fit["ce_fused"] < best[0]:
                best = (fit["ce_fused"], topk, prior, fit)
        assert best is not None
        _, topk, prior, fit = best
        self.prior_log_ = {**fit, "weighting": weighting, "source": source, "topk": topk,
                           **({"topk_valid_ce": tried} if len(tried) > 1 else {})}
        self.prior_ = prior

    def _adjust(self, scores: np.ndarray, users: np.ndarray, history: History) -> None:
        if self.prior_ is not None:
            self.prior_.add_to(scores, history.binary, users)

    def explain(self, user: int, items: np.ndarray, history: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """The inner model's explanation rows, each with ``prior``: the gate, the prior's share of the score
        and the history items behind it (``because``), where the prior adds to that item."""
        users = np.array([user], dtype=np.int64)
        hist = self.inner.as_history(users, history)
        explain = getattr(self.inner, "explain", None)
        rows = explain(user, items, history=hist, **kwargs) if explain is not None else \
            [{"item": int(i)} for i in np.asarray(items, dtype=np.int64)]
        prior = self.prior_
        if prior is None:
            return rows
        binary = hist.binary
        gate, raw = prior.gates(binary)[0], prior.raw(binary, users)[0]
        inputs = prior.inputs(binary, users)[0]  # the history items' weights in h_u
        for row in rows:
            i = int(row["item"])
            if i < len(raw) and raw[i] > 0:  # "because you have X": the item-item weights
                row["prior"] = {"gate": float(gate[i]), "score": float(gate[i] * raw[i]),
                                "because": prior.explain(inputs.indices, i, history_weights=inputs.data)}
        return rows

    def _wrapper_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.prior_ is None:
            return {}, {"log": self.prior_log_}
        return self.prior_.to_state(""), {"log": self.prior_log_}

    def _load_wrapper_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.prior_ = ItemPrior.from_state(arrays, "") if arrays else None
        self.prior_log_ = meta.get("log", {})
