"""What the one :class:`~fusionrec.training.trainer.Trainer` trains: any object with a network, a config
and a loss, whatever its data are (a :class:`~fusionrec.data.schema.Dataset`, KG triples, decoded media).

A task follows :class:`TrainingTask`. The trainer owns the loop (epochs, device, seeds, AdamW and its
schedule, clipping, early stopping, checkpoints, resume, progress); the task only says how to cut its
data into batches and what a batch's loss is. A new model is a new task, never a new trainer.

Optional members, looked up by the trainer when present (and what it does without them):

``validation_metric(valid) -> float``, ``valid_metric``, ``valid_higher_is_better``
    the early-stopping metric on ``valid`` (computed with ``network_`` in eval mode, on the CPU);
    without ``validation_metric``, ``Trainer.fit`` refuses a non-empty ``valid``.
``data_fingerprint(data) -> str``
    a short hash of the training data, stored in checkpoints so that a run resumes only on the same
    data; only asked for when a checkpoint directory is given. Default:
    :func:`fusionrec.training.trainer.data_fingerprint` of a ``Dataset``; other data need this hook.
``shard_batch(batch, rank, world) -> batch``
    this rank's part of a batch under ``torch.distributed`` (default: a slice of every array with the
    batch's row count, :func:`fusionrec.training.trainer.shard_rows`). Batches whose arrays are linked
    by offsets (a flat history per user) need their own.
``after_step()``
    called under ``torch.no_grad()`` after every optimizer step, e.g. a projection of parameters onto
    a constraint set (TransE's entities onto the unit ball). It must be deterministic: a resumed run
    replays only what the checkpoint holds.
``trainable_parameters() -> Iterable[nn.Parameter]``
    the parameters the optimizer updates and clipping sees (default: all of ``network_``'s); they
    must belong to ``network_``, which is what checkpoints hold. For a stage that trains part of a
    network (e.g. a content tower and a projection head before the whole model).

Several stages in one ``fit`` (pretraining, then training) are several tasks, each with its own
config and name; :meth:`Trainable.run_trainer` with ``stage=`` gives each its own checkpoint
sub-directory, so that after a kill a finished stage is not trained again and the others resume.

Work that changes from epoch to epoch (shuffling, resampled negatives) belongs in
``training_batches``, which the trainer calls once per epoch with its own seeded ``rng`` (saved in
every checkpoint, so a resumed run draws what an unbroken one would). Randomness from elsewhere (a
private ``torch.Generator``) would not be restored on resume.

Examples
--------
>>> import numpy as np, torch
>>> from fusionrec.training import TrainConfig, Trainer
>>> class Line:
...     name = "line"
...     def __init__(self):
...         self.config = TrainConfig(epochs=2, warmup_steps=0, device="cpu")
...         self.network_ = torch.nn.Linear(1, 1)
...     def steps_per_epoch(self, data): return 1
...     def training_batches(self, data, rng): yield torch.from_numpy(data)
...     def training_step(self, x): return ((self.network_(x) - 2 * x) ** 2).mean()
...     def data_fingerprint(self, data): return str(data.sum())
>>> history = Trainer().fit(Line(), np.ones((4, 1), np.float32))
>>> [h["epoch"] for h in history]
[1, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from fusionrec.training.trainer import TrainConfig, Trainer


class TrainingTask(Protocol):
    """The members the trainer needs (see the module docstring for the optional ones)."""

    network_: torch.nn.Module  # trained in place; the trainer leaves it on the CPU in eval mode

    @property
    def config(self) -> TrainConfig:
        """Optimisation settings (a :class:`TrainConfig` or a subclass; every field is fingerprinted)."""
        ...

    @property
    def name(self) -> str:
        """Names the task in logs and in the checkpoint fingerprint."""
        ...

    def steps_per_epoch(self, data: Any) -> int:
        """Batches per epoch (for the learning-rate schedule)."""
        ...

    def training_batches(self, data: Any, rng: np.random.Generator) -> Iterable[Any]:
        """One epoch's batches (tensors, arrays, or tuples / lists / dicts of them), drawn with ``rng``."""
        ...

    def training_step(self, batch: Any) -> torch.Tensor:
        """The scalar loss of one batch, computed with ``self.network_`` (the trainer backpropagates it)."""
        ...


class Trainable:
    """Mixin for objects trained by the :class:`Trainer`: where they checkpoint, who hears of each epoch,
    and their early-stopping metric. The caller sets ``checkpoint_dir`` and ``on_epoch`` before ``fit``
    (``fusionrec train`` sets ``<RUN>.partial``)."""

    #: checkpoints go here after every epoch, and training resumes from them (None: no checkpoints)
    checkpoint_dir: Path | None = None
    #: called after every epoch with the log record (progress bars)
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    #: the validation metric that early stopping and the best-epoch choice follow, and its direction
    valid_metric: ClassVar[str] = "NDCG@10"
    valid_higher_is_better: ClassVar[bool] = True

    def run_trainer(self, data: Any, valid: Any | None = None, *, task: Any | None = None,
                    stage: str | None = None) -> list[dict[str, Any]]:
        """Train ``self`` (a :class:`TrainingTask`) with the one trainer; sets and returns ``training_log_``.

        For a stage of a multi-stage fit, pass the stage's ``task`` (another TrainingTask, e.g. a
        pretraining objective on part of the network) and a ``stage`` name: its checkpoints go to
        ``checkpoint_dir / stage``, it does not report to ``on_epoch`` (that follows the main training),
        and its log is returned, not stored in ``training_log_``.
        """
        if (task is None) != (stage is None):
            raise ValueError("run_trainer: give both task= and stage= (a stage of the fit) or neither")
        if task is None:
            self.training_log_ = Trainer(self.checkpoint_dir, self.on_epoch).fit(self, data, valid)
            return self.training_log_
        if not stage or "/" in stage or stage.startswith("."):
            raise ValueError(f"run_trainer: stage must be a plain directory name, got {stage!r}")
        ck = Path(self.checkpoint_dir) / stage if self.checkpoint_dir is not None else None
        return Trainer(ck).fit(task, data, valid)


def best_record(history: list[dict[str, Any]], metric: str, higher: bool) -> dict[str, Any] | None:
    """The log record of the best validated epoch (the first of equals, as the trainer keeps it), or None."""
    best: dict[str, Any] | None = None
    for rec in history:
        v = rec.get("valid", {}).get(metric)
        if v is not None and (best is None or (v > best["valid"][metric] if higher else v < best["valid"][metric])):
            best = rec
    return best
