"""Self-supervised pretraining of the item tower: content aligned with behaviour (``fusionrec pretrain``).

Behaviour = the item factors of the normalised training matrix (:func:`behaviour_vectors`). The ID
embeddings of items with interactions start from them, and the content path of the item tower (every
item treated as unseen, so its vector is all content) is trained with a symmetric InfoNCE loss to
pick out each item's behaviour vector among a batch of 256 items. Next-item training then starts
from a content tower that already maps content to behaviour. It is a stage of ``fit``, trained by the
one trainer (checkpoints and resume in ``<checkpoint_dir>/pretrain``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.training.trainer import TrainConfig

#: items per InfoNCE batch
BATCH = 256


def behaviour_vectors(train: Dataset, dim: int = 32, seed: int = 0) -> np.ndarray:
    """(n_items, dim) item factors of the normalised training matrix (targets for aligning content —
    image/audio encoders, pretraining — to behaviour); rows of items without interactions are zero."""
    from scipy.sparse.linalg import svds

    x = train.csr("binary").astype(np.float64)
    deg_u = np.asarray(x.sum(1)).ravel()
    deg_i = np.asarray(x.sum(0)).ravel()
    x = sp.diags(1 / np.sqrt(np.maximum(deg_u, 1))) @ x @ sp.diags(1 / np.sqrt(np.maximum(deg_i, 1)))
    k = max(1, min(dim, min(x.shape) - 1))
    _, s, vt = svds(x, k=k, random_state=seed)
    v = (vt.T * np.sqrt(s)).astype(np.float32)
    v[deg_i == 0] = 0
    return v


class ContentPretraining:
    """The pretraining stage as a :class:`~fusionrec.training.task.TrainingTask` over the warm items."""

    name = "fusion-pretrain"

    def __init__(self, tower: nn.Module, targets: np.ndarray, cfg: Any) -> None:
        p = cfg.pretrain
        self.config = TrainConfig(seed=cfg.seed, epochs=max(1, p.epochs), batch_size=BATCH, lr=p.lr,
                                  weight_decay=cfg.weight_decay, warmup_steps=0, schedule="constant",
                                  grad_clip=cfg.grad_clip, patience=0, threads=cfg.threads, device="cpu")
        self.temperature = p.temperature
        self.target = F.normalize(torch.from_numpy(targets), dim=1)  # (n_items, H)
        self.warm = np.flatnonzero(np.abs(targets).sum(1) > 0)
        self.network_ = nn.ModuleDict({"tower": tower, "head": nn.Linear(tower.kind.shape[1], tower.kind.shape[1])})

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        """Everything but the ID embeddings (they keep their behaviour start)."""
        return [p for n, p in self.network_.named_parameters() if not n.startswith("tower.ids.")]

    def steps_per_epoch(self, data: Any) -> int:
        return max(1, len(self.warm) // BATCH)

    def training_batches(self, data: Any, rng: np.random.Generator) -> Iterator[torch.Tensor]:
        for chunk in np.array_split(rng.permutation(self.warm), self.steps_per_epoch(data)):
            yield torch.from_numpy(chunk)

    def training_step(self, idx: torch.Tensor) -> torch.Tensor:
        items = self.network_["tower"]
        _, content, _ = items.parts(idx, torch.ones(len(idx), dtype=torch.bool))
        z = F.normalize(self.network_["head"](content), dim=1)
        logits = z @ self.target[idx].T / self.temperature  # (b, b)
        labels = torch.arange(len(idx))
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def data_fingerprint(self, data: Any) -> str:
        return hashlib.sha1(self.target.numpy().tobytes()).hexdigest()[:16]
