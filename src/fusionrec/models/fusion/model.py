"""The fusion recommender: sources composed into an item tower and a user tower; score = user . item.

What is built at fit time (from the training part only) and kept with the model:

* the item content store (:class:`~fusionrec.encoders.ContentFeatures`: frozen text / image / audio
  vectors, attribute codes, and the TransE vectors of the item nodes), the users' profiles;
* the behaviour sources' matrices: the friends' items, the side events, the event-weight buckets;
* the network (:class:`FusionNet`): :class:`~.item_tower.ItemTower` and :class:`~.user_tower.UserTower`;
* the content map for items unseen in training (:mod:`fusionrec.models.content_map`).

Scoring is a pure function of the learned state and the call's :class:`~fusionrec.models.history.History`:
the item vectors (and the content map's vectors for unseen items) are computed once per model
version and cached next to it, so a scoring call costs one user-tower pass and a matrix product.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.graph.explain import GraphExplainer
from fusionrec.models.base import UNKNOWN_ITEM_SCORE
from fusionrec.models.fusion import persistence
from fusionrec.models.fusion.config import FusionConfig
from fusionrec.models.fusion.explain import explain_rows
from fusionrec.models.fusion.item_tower import ItemTower
from fusionrec.models.fusion.pretrain import ContentPretraining, behaviour_vectors
from fusionrec.models.fusion.sources.attributes import AttributeSource
from fusionrec.models.fusion.sources.event_weights import EventWeights, weight_buckets
from fusionrec.models.fusion.sources.ids import IdSource
from fusionrec.models.fusion.sources.kg import kg_vectors, model_triples
from fusionrec.models.fusion.sources.profile import ProfileSource
from fusionrec.models.fusion.sources.side import SideSource, side_items
from fusionrec.models.fusion.sources.social import SocialSource, friend_items
from fusionrec.models.fusion.sources.vectors import VectorSource, vector_sources
from fusionrec.models.fusion.stages import stacked_fit
from fusionrec.models.fusion.training import ContentCache, UserWindows, runs_whole, training_step
from fusionrec.models.fusion.user_tower import UserTower
from fusionrec.models.history import History
from fusionrec.models.next_item import right_align
from fusionrec.models.torch_base import SequenceRecommender


class FusionNet(nn.Module):
    def __init__(self, items: ItemTower, users: UserTower) -> None:
        super().__init__()
        self.items, self.users = items, users


class Fusion(GraphExplainer, SequenceRecommender):
    """Fused multimodal item vectors + user tokens + causal Transformer; score = user . item."""

    name = "fusion"
    Config = FusionConfig
    uses_content = True
    default_wrappers = ("prior",)
    #: ``fusionrec pretrain``: fit runs the pretraining stage only (no next-item training)
    pretrain_only: bool = False
    content_map_: Any = None

    def __init__(self, config: FusionConfig | None = None) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._items_cache: tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- what the sources read, built from the training part ---------------------------------------
    def prepare(self, train: Dataset) -> None:
        c = self.config
        self.unordered_ = not train.has_timestamps
        self._encode_content(train)
        got = friend_items(train)
        self.friends_ = got[0] if got is not None else None  # kept for explanations, token or not
        self.social_rows_ = got[1] if got is not None and c.social.enabled else None
        self.side_items_ = side_items(train) if c.side.enabled else None
        self.weight_buckets_ = weight_buckets(train, c.event_weights.buckets) if c.event_weights.enabled else None
        self.windows_ = UserWindows(self.seq_indptr_, self.seq_items_, c.user.max_len,
                                    shuffle=c.user.shuffle_unordered and self.unordered_)

    def _encode_content(self, train: Dataset) -> None:
        from fusionrec.encoders import item_content, user_content

        c = self.config
        kinds = set(train.item_schema.values()) if train.items is not None else set()
        wanted = [m for m in c.ITEM_VECTORS if getattr(c, m).enabled and m in kinds]
        if c.attributes.enabled and kinds & {"categorical", "multi", "numeric"}:
            wanted.append("attributes")
        media = any(m in wanted for m in ("image", "audio"))  # their CNNs are aligned to behaviour
        self.item_content_ = item_content(train, modalities=wanted, text_encoder=c.text.encoder,
                                          image_size=c.image.size, cache_dir=c.cache_dir or None,
                                          behaviour=behaviour_vectors(train, seed=c.seed) if media else None,
                                          seed=c.seed, progress=True)
        self.user_content_ = user_content(train) if c.profile.enabled and train.users is not None else None
        self.triples_ = model_triples(train)
        if c.kg.enabled and train.kg is not None and len(train.kg) and self.triples_ is not None:
            v, present = kg_vectors(self.triples_, c.kg.dim, c.kg.epochs, c.seed, c.threads)
            self.item_content_.vectors["kg"], self.item_content_.present["kg"] = v, present
        self.item_counts_ = np.asarray(train.csr("count").sum(0)).ravel().astype(np.float64)
        ts = train.interactions["timestamp"].to_numpy().astype(np.float64)
        last = np.full(train.n_items, -np.inf)
        np.maximum.at(last, train.interactions["item"].to_numpy(), ts)
        span = max(ts.max() - ts.min(), 1.0) if len(ts) else 1.0
        self.item_recency_ = np.where(np.isfinite(last), (ts.max() - last) / span, 1.0) if len(ts) \
            else np.ones(train.n_items)

    def build_network(self) -> nn.Module:
        c, h = self.config, self.config.hidden
        content = self.item_content_
        sources: list[Any] = vector_sources(content, tuple(m for m in c.ITEM_VECTORS if getattr(c, m).enabled), h)
        if c.attributes.enabled:
            attrs = AttributeSource(content, h)
            if not attrs.tokens.empty:
                sources.append(attrs)
        if c.kg.enabled and "kg" in content.vectors:
            sources.append(VectorSource("kg", content.vectors["kg"], content.present["kg"], h))
        ids = IdSource(self.item_counts_ > 0, h) if c.id.enabled else None
        items = ItemTower(ids, sources, self.item_counts_, self.item_recency_, c)
        prefix: list[Any] = []
        if self.user_content_ is not None:
            profile = ProfileSource(self.user_content_, h)
            if not profile.empty:
                prefix.append(profile)
        if getattr(self, "social_rows_", None) is not None:
            prefix.append(SocialSource(self.social_rows_, h))
        if getattr(self, "side_items_", None) is not None:
            prefix.append(SideSource(self.side_items_, np.diff(self.train_matrix_.indptr), h))
        buckets = getattr(self, "weight_buckets_", None)
        weights = EventWeights(buckets, c.event_weights.buckets, h) if buckets is not None else None
        return FusionNet(items, UserTower(prefix, weights, c))

    # -- training ----------------------------------------------------------------------------------
    def steps_per_epoch(self, train: Dataset) -> int:
        return self.windows_.steps(self.config.batch_size)

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[Any]:
        tower = self.network_.items
        if tower.uses_content and not runs_whole(tower.n_items, self.config.item.sampled_items):
            cache = getattr(self, "train_cache_", None)  # the content part of every item, refreshed each epoch
            if cache is None:
                self.train_cache_ = ContentCache(tower)
            else:
                cache.refresh(tower)
        return self.windows_.batches(self.config.batch_size, rng)

    def training_step(self, batch: Any) -> torch.Tensor:
        return training_step(self, batch)

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.content_map_ = None
        self.weights_changed()
        if self.pretrain_only:
            torch.manual_seed(self.config.seed)
            self.prepare(train)
            self.network_ = self.build_network()
            self.pretrain_log_ = self.pretrain(train)
            self.training_log_ = []
            return
        try:
            stacked = self.config.item.schedule == "stacked" and self.config.id.enabled
            self.stages_ = stacked_fit(self, train, valid) if stacked else super()._fit(train, valid)
        finally:
            self.train_cache_ = None
        self.weights_changed()
        self._fit_content_map()

    def _fit_network(self, train: Dataset, valid: Dataset | None) -> None:
        """The plain fit of the network (TorchRecommender's): build, then train (the first stage of a stacked fit)."""
        super()._fit(train, valid)

    #: set while the first (behaviour) stage of a stacked fit trains: content is off
    behaviour_first_: bool = False

    def before_training(self, train: Dataset) -> None:
        if self.config.pretrain.epochs and self.init_from is None:
            self.pretrain_log_ = self.pretrain(train)
        if self.behaviour_first_:
            self.network_.items.content_on.fill_(0.0)

    def pretrain(self, train: Dataset) -> list[dict[str, Any]]:
        """Align the content path with behaviour (see :mod:`.pretrain`); the warm IDs start from behaviour."""
        c, tower = self.config, self.network_.items
        target = behaviour_vectors(train, dim=c.hidden, seed=c.seed)
        seen = torch.from_numpy(np.abs(target).sum(1) > 0)
        if tower.ids is not None:
            with torch.no_grad():
                t = torch.nn.functional.normalize(torch.from_numpy(target), dim=1)
                tower.ids.emb.weight[seen] = t[seen] * 0.02 * c.hidden**0.5  # the scale of a N(0, 0.02) row
        if not tower.content_names:
            return []
        log = self.run_trainer(train, task=ContentPretraining(tower, target, c), stage="pretrain")
        self.network_.eval()
        return log

    # -- item vectors, once per model version -------------------------------------------------------
    def weights_changed(self) -> None:
        """Forget the cached item vectors (called when the weights or the catalogue change)."""
        with self._lock:
            self._items_cache = None

    def _items(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """(n_items, H) item vectors (the content map's for unseen items), (n_items, M) gates, and the
        (n_items,) masks of blank items (unseen, no content) and of items whose vector is mapped."""
        with self._lock:
            if self._items_cache is None:
                self._items_cache = self._compute_items()
            return self._items_cache

    @torch.no_grad()
    def _compute_items(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
        net = self.network_
        net.eval()
        v, g = net.items()
        tower: ItemTower = net.items
        items = torch.arange(tower.n_items)
        has = torch.zeros(tower.n_items, dtype=torch.bool)
        for s in tower.sources:
            has |= s(items)[1].any(1)
        blank = (~tower.seen & ~has).numpy()
        mapped = (self.item_counts_ == 0) & ~blank if self.content_map_ is not None else np.zeros(len(blank), bool)
        if mapped.any():
            v = v.clone()
            rows = np.flatnonzero(mapped)
            v[torch.from_numpy(rows)] = torch.from_numpy(
                self.content_map_.predict(self.item_content_, rows, extra=self._tower_features()))
        return v, g.numpy(), blank, mapped

    def item_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_items, H) item vectors and (n_items, M) gate weights (names: ``gate_names``)."""
        v, g, _, _ = self._items()
        return v.numpy(), g

    @property
    def gate_names(self) -> list[str]:
        return list(self.network_.items.names)

    # -- scoring -----------------------------------------------------------------------------------
    @torch.no_grad()
    def user_states(self, users: np.ndarray, history: History, weights: bool = False,
                    vectors: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, list[Any], torch.Tensor]:
        """(b, H) user vectors, the (b, L) right-padded sequences, attention per layer, lengths (b,)."""
        net = self.network_
        net.eval()
        users = np.asarray(users, dtype=np.int64)
        if vectors is None:
            vectors = self._items()[0]
        seq, n = right_align(history.last(self.config.user.max_len))  # (b, L), (b,)
        h, atts = net.users.encode(seq, vectors, users, weights=weights)
        prefix = net.users.prefix
        rows, last = torch.arange(len(n)), (n - 1 + prefix).clamp(min=0)
        u = h[rows, last]
        orders = self.config.user.score_orders if getattr(self, "unordered_", False) and not weights else 1
        if orders > 1:  # a set, not a sequence: the mean over random orders (seeded, so scores repeat)
            gen = torch.Generator().manual_seed(self.config.seed)
            for _ in range(orders - 1):
                key = torch.rand(seq.shape, generator=gen).masked_fill(seq == 0, 2.0)  # padding stays last
                perm = seq.gather(1, key.argsort(1))
                u = u + net.users.encode(perm, vectors, users)[0][rows, last]
            u = u / orders
        return u, seq, atts, n

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        vectors, _, blank, _ = self._items()
        u, _, _, n = self.user_states(users, history, vectors=vectors)
        s = (u @ vectors.T).numpy()
        boost = self.side_boost(users)
        if boost is not None:
            s += boost.toarray()
        if not self.network_.users.prefix:  # no user tokens: users without history get popularity
            s[(n == 0).numpy()] = self.item_popularity_
        s[:, blank] = UNKNOWN_ITEM_SCORE  # nothing known about them: last, ties broken at random
        return s

    @torch.no_grad()
    def side_boost(self, users: np.ndarray) -> Any:
        """(b, n_items) CSR of what the side events add to the users' scores (``w_u`` on each item), or None."""
        import scipy.sparse as sp

        side = self.network_.users.source("side")
        if side is None:
            return None
        w = side.boost_weight(np.asarray(users, np.int64)).numpy().astype(np.float32)
        return sp.csr_matrix(sp.diags(w) @ side.rows(users, self.n_items_))

    def explain(self, user: int, items: np.ndarray, history: Any = None, top: int = 3) -> list[dict[str, Any]]:
        """Per item: its gate weight per source, the history items (and user tokens) the user vector attended
        to most, whether its vector is the content map's, and the side-event boost (see :mod:`.explain`)."""
        return explain_rows(self, user, items, self.as_history(np.array([user]), history), top)

    # -- cold start: rows added after training ----------------------------------------------------
    def add_items(self, items: Any) -> int:
        return persistence.add_items(self, items)

    def add_users(self, users: Any) -> int:
        return persistence.add_users(self, users)

    @torch.no_grad()
    def _fit_content_map(self) -> None:
        persistence.fit_content_map(self)

    def _tower_features(self) -> dict[str, np.ndarray]:
        return persistence.tower_features(self)

    def _rebuild(self) -> None:
        persistence.rebuild(self)

    # -- persistence -------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), **persistence.state(self)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        persistence.load_state(self, state)
        super()._load_state(state)
        self.weights_changed()
