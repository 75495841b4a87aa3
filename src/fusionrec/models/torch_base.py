"""Base classes for torch models trained by the one :class:`~fusionrec.training.trainer.Trainer`.

A torch model builds its ``nn.Module`` in :meth:`TorchRecommender.build_network`, yields batches in
:meth:`training_batches` and returns a loss from :meth:`training_step`; fitting, early stopping,
checkpoints and persistence (safetensors) are shared.

Sequence models (:class:`SequenceRecommender`) read each user's items in time order. Events given at
inference time (``extra_history``, whose CSR values are the events' order keys) are appended to the
sequence, newest last, without retraining; they reach ``_score`` in the call's
:class:`~fusionrec.models.history.History`, never through the model object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusionrec.data.schema import Dataset
from fusionrec.models.base import Recommender
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
    """A torch model that scores from the user's most recent items (``max_len`` of them).

    ``_score`` gets the ordered :class:`~fusionrec.models.history.History`: training events in time
    order, then the events given at inference (``extra_history``), newest last.
    """

    ordered_history = True

    def fit(self, train: Dataset, valid: Dataset | None = None):  # type: ignore[override]
        self.seq_indptr_, self.seq_items_ = user_sequences(train)
        return super().fit(train, valid)

    def train_sequences(self) -> tuple[np.ndarray, np.ndarray]:
        return self.seq_indptr_, self.seq_items_

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "seq_indptr": self.seq_indptr_, "seq_items": self.seq_items_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.seq_indptr_, self.seq_items_ = state["seq_indptr"], state["seq_items"]
        super()._load_state(state)
