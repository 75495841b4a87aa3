"""Base classes for torch models trained by the one :class:`~fusionrec.training.trainer.Trainer`.

A torch model builds its ``nn.Module`` in :meth:`TorchRecommender.build_network`, yields batches in
:meth:`training_batches` and returns a loss from :meth:`training_step`; fitting, early stopping,
checkpoints and persistence (safetensors) are shared.

Sequence models (:class:`SequenceRecommender`) read each user's items in time order. Events given at
inference time (``extra_history``, whose CSR values are the events' order keys) are appended to the
sequence, newest last, without retraining.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.models.base import Recommender, take_rows
from fusionrec.models.item_prior import ItemPrior
from fusionrec.training.task import Trainable
from fusionrec.training.trainer import TrainConfig, shard_rows

log = logging.getLogger(__name__)


class TorchRecommender(Recommender, Trainable):
    """A Recommender whose learned state is a torch network (``network_``); ``checkpoint_dir``,
    ``on_epoch`` and the early-stopping metric come from :class:`~fusionrec.training.task.Trainable`."""

    Config = TrainConfig
    #: weights to start from (``fusionrec train --init RUN``): a saved model directory of the same model
    init_from: Path | None = None

    # -- to implement ------------------------------------------------------------------------
    def build_network(self) -> torch.nn.Module:
        """The network for ``n_users_``/``n_items_`` (called by fit and by load)."""
        raise NotImplementedError

    def prepare(self, train: Dataset) -> None:
        """Derive training arrays from ``train`` (sequences, pairs) before training."""

    def steps_per_epoch(self, train: Dataset) -> int:
        raise NotImplementedError

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[Any]:
        raise NotImplementedError

    def training_step(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def shard_batch(self, batch: Any, rank: int, world: int) -> Any:
        """This rank's part of ``batch`` under data-parallel training (default: a slice of its rows)."""
        return shard_rows(batch, rank, world)

    def validation_metric(self, valid: Dataset) -> float:
        """:attr:`valid_metric` on ``valid`` (every rank takes part when torch.distributed is initialised)."""
        from fusionrec.evaluation.evaluate import evaluate, evaluate_ratings
        from fusionrec.evaluation.metrics import parse_metric

        if self.valid_metric in ("RMSE", "MAE"):
            return evaluate_ratings(self, valid, distributed=True)[self.valid_metric]
        _, k = parse_metric(self.valid_metric)
        return evaluate(self, valid, (k,), distributed=True).metrics[self.valid_metric]

    # -- shared ------------------------------------------------------------------------------
    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        torch.manual_seed(self.config.seed)
        self.prepare(train)
        self.network_ = self.build_network()
        if self.init_from is not None:
            self.init_log_ = load_matching(self.network_, Path(self.init_from))
        self.before_training(train)
        self.run_trainer(train, valid)

    def before_training(self, train: Dataset) -> None:
        """A stage between building the network and the trainer (e.g. self-supervised pretraining)."""

    def _state(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.network_.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.network_ = self.build_network()
        self.network_.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("net.")})
        self.network_.eval()


def load_matching(net: torch.nn.Module, model_dir: Path) -> dict[str, Any]:
    """Copy into ``net`` every tensor of a saved model (``model_dir``: a run's ``model/`` or the run
    itself) whose name and shape match; returns what was copied and what was left."""
    from safetensors.numpy import load_file

    from fusionrec.errors import ConfigError
    from fusionrec.models.base import WEIGHTS_FILE

    path = model_dir / WEIGHTS_FILE if (model_dir / WEIGHTS_FILE).exists() else model_dir / "model" / WEIGHTS_FILE
    if not path.exists():
        raise ConfigError(f"--init {model_dir}: no saved model there (expected a run from 'fusionrec pretrain' or 'train')")
    saved = {k[len("state.net."):]: v for k, v in load_file(str(path)).items() if k.startswith("state.net.")}
    state = net.state_dict()
    copied = [k for k, v in saved.items() if k in state and tuple(state[k].shape) == v.shape]
    if not copied:
        raise ConfigError(f"--init {model_dir}: none of its weights fit this model (another model or other data?)")
    net.load_state_dict({**state, **{k: torch.from_numpy(saved[k]) for k in copied}})
    return {"copied": len(copied), "left": sorted(set(state) - set(copied))}


def user_sequences(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items in time order (ties by file order) as CSR-like ``(indptr, items)``.

    Data without timestamps (lastfm-2k) gets a fixed random order per user instead of file order
    (often sorted by item id, a spurious "sequence"): next-item training then matches what the
    random leave-one-out split asks, a uniformly random held-out event.
    """
    inter = ds.interactions
    key = inter["timestamp"].to_numpy() if ds.has_timestamps else np.random.default_rng(0).random(len(inter))
    order = np.lexsort((np.arange(len(inter)), key, inter["user"].to_numpy()))
    users = inter["user"].to_numpy()[order]
    items = inter["item"].to_numpy()[order].astype(np.int64)
    indptr = np.zeros(ds.n_users + 1, dtype=np.int64)
    np.add.at(indptr, users + 1, 1)
    return np.cumsum(indptr), items


class SequenceRecommender(TorchRecommender):
    """A torch model that scores from the user's most recent items (``max_len`` of them)."""

    _extra: sp.csr_matrix | None = None
    #: the gated item-item prior (config ``prior``), fit after training; None when off
    prior_: ItemPrior | None = None

    def fit(self, train: Dataset, valid: Dataset | None = None):  # type: ignore[override]
        self.seq_indptr_, self.seq_items_ = user_sequences(train)
        self.prior_, self.prior_log_ = None, {}
        if getattr(self.config, "prior", False):  # a bad setting is said before training, not hours after
            log.info("item-item prior: %s", self._prior_source(train.n_items))
        super().fit(train, valid)
        if getattr(self.config, "prior", False):
            self._fit_prior(train, valid)
        return self

    def _fit_prior(self, train: Dataset, valid: Dataset | None) -> None:
        """Build EASE's weights on the training events and fit the prior's gate on the valid events."""
        if valid is None or valid.n_interactions == 0:
            self.prior_log_ = {"skipped": "no valid events to fit the prior's gate on (pass a valid part)"}
            return
        c = self.config
        source = self._prior_source(self.train_matrix_.shape[1])
        weighting = c.prior_weighting
        if weighting == "auto":  # counts as confidence where the events carry them (module item_prior)
            weighting = "log1p-idf" if "weight" in train.interactions.columns else "binary"
        counts = train.csr("weight") if weighting != "binary" else None
        prior = ItemPrior.build(self.train_matrix_, c.prior_l2, c.prior_topk, c.prior_max_items, counts, weighting,
                                source)
        inter = valid.interactions
        users, targets = inter["user"].to_numpy(), inter["item"].to_numpy()
        keep = users < self.n_users_
        users, targets = users[keep], targets[keep]
        uniq, where = np.unique(users, return_inverse=True)
        hist = self.history_for(uniq)
        scores = np.concatenate([self.score(uniq[i:i + 256], hist[i:i + 256]) for i in range(0, len(uniq), 256)])
        self.prior_log_ = {**prior.fit_gate(scores[where], hist[where], targets, users=uniq[where]),
                           "weighting": weighting, "source": source}
        self.prior_ = prior

    def _prior_source(self, n_items: int) -> str:
        """``ease`` or ``knn``: ``auto`` takes EASE up to ``prior_max_items`` items (its build is a dense
        n_items^2 matrix), the blockwise cosine beyond; ``ease`` past the limit is a clear error."""
        c = self.config
        source = c.prior_source
        if source == "auto":
            return "ease" if n_items <= c.prior_max_items else "knn"
        if source == "ease" and n_items > c.prior_max_items:
            raise ConfigError(f"prior_source=ease needs an n_items^2 matrix; {n_items} items exceed prior_max_items="
                              f"{c.prior_max_items} (~{n_items ** 2 * 24 / 2**30:.0f} GB to build). Use "
                              f"prior_source=knn or auto, raise prior_max_items, or set prior=false.")
        return source

    def score(self, users: np.ndarray, history: sp.csr_matrix | None = None, *,
              out: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`Recommender.score`, plus the gated item-item prior when the model has one."""
        if self.prior_ is None:
            return super().score(users, history, out=out)
        if history is None:  # built once, for the network and the prior
            history = self.history_for(np.asarray(users, np.int64))
        s = super().score(users, history, out=out)
        self.prior_.add_to(s, history, np.asarray(users, np.int64))
        return s

    def recommend(self, users: Any, k: int = 10, *, extra_history: sp.csr_matrix | None = None,
                  **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Recommender.recommend`; ``extra_history`` events are appended to the sequences."""
        self._extra = extra_history
        try:
            return super().recommend(users, k, extra_history=extra_history, **kwargs)
        finally:
            self._extra = None

    def sequences(self, users: np.ndarray, max_len: int) -> torch.Tensor:
        """(b, max_len) item indices + 1 (0 = padding), left-padded, newest item last."""
        users = np.asarray(users, dtype=np.int64)
        out = np.zeros((len(users), max_len), dtype=np.int64)
        extra = take_rows(self._extra, users) if self._extra is not None and self._extra.shape[0] else None
        n_train = len(self.seq_indptr_) - 1
        for r, u in enumerate(users):
            seq = self.seq_items_[self.seq_indptr_[u]:self.seq_indptr_[u + 1]] if u < n_train else np.empty(0, np.int64)
            if extra is not None:
                lo, hi = extra.indptr[r], extra.indptr[r + 1]
                if hi > lo:
                    add = extra.indices[lo:hi][np.argsort(extra.data[lo:hi], kind="stable")]
                    seq = np.concatenate([seq, add])
            seq = seq[-max_len:]
            if len(seq):
                out[r, -len(seq):] = seq + 1
        return torch.from_numpy(out)

    def _state(self) -> dict[str, np.ndarray]:
        prior = self.prior_.to_state("prior.") if self.prior_ is not None else {}
        return {**super()._state(), "seq_indptr": self.seq_indptr_, "seq_items": self.seq_items_, **prior}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.seq_indptr_, self.seq_items_ = state["seq_indptr"], state["seq_items"]
        self.prior_ = ItemPrior.from_state(state, "prior.")
        super()._load_state(state)
