"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

A causal Transformer encoder over the user's item sequence (learned positions, pre-LayerNorm,
dropout). Training runs each whole sequence once with a causal mask and predicts the next item at
every position (the same loss as training on every prefix, at a fraction of the work), with a
full-softmax cross-entropy over all items by default, or sampled softmax (in-batch + uniform
negatives) for large catalogues. Item embeddings are shared between input and output.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.models.torch_base import SequenceRecommender
from fusionrec.training.trainer import TrainConfig


@dataclass(frozen=True)
class SASRecConfig(TrainConfig):
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.2
    loss: str = "ce"  # "ce" (full softmax) or "sampled" (in-batch + uniform negatives)
    negatives: int = 256  # uniform negatives per batch for loss="sampled"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden", "layers", "heads", "max_len", "negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"SASRecConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"SASRecConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"SASRecConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.loss not in ("ce", "sampled"):
            raise ValueError(f"SASRecConfig.loss must be 'ce' or 'sampled', got {self.loss!r}")


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # 0 = padding
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, dim_feedforward=cfg.hidden, dropout=cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden)
        nn.init.normal_(self.item.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        with torch.no_grad():
            self.item.weight[0].zero_()
        mask = torch.triu(torch.full((cfg.max_len, cfg.max_len), float("-inf")), diagonal=1)
        self.register_buffer("causal", mask, persistent=False)
        self.heads = cfg.heads

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, L) item ids + 1, left-padded -> hidden states (B, L, H)."""
        b, length = seq.shape
        pad = seq == 0  # (B, L)
        x = self.item(seq) * (self.item.embedding_dim**0.5) + self.pos.weight[-length:]  # (B, L, H)
        x = self.drop(x) * ~pad.unsqueeze(-1)
        # causal, and never attend to padding (except a padded query to itself, so no row is empty)
        eye = torch.eye(length, dtype=torch.bool)
        mask = self.causal[-length:, -length:].expand(b, length, length)
        mask = mask.masked_fill(pad.unsqueeze(1) & ~eye, float("-inf"))  # (B, L, L)
        mask = mask.repeat_interleave(self.heads, dim=0)  # (B * heads, L, L)
        h = self.encoder(x, mask=mask)
        return self.norm(h)

    def item_matrix(self) -> torch.Tensor:
        return self.item.weight[1:]  # (n_items, H)


class SASRec(SequenceRecommender):
    """Causal self-attention over the user's item sequence; score = last hidden state · item embedding."""

    name = "sasrec"
    Config = SASRecConfig

    def build_network(self) -> nn.Module:
        return SASRecNet(self.n_items_, self.config)

    def prepare(self, train: Dataset) -> None:
        # every training sequence is cut, from its end, into windows of max_len + 1 items that
        # overlap by one, so each event is a target exactly once per epoch
        length = self.config.max_len
        ends = []
        for u, n in enumerate(np.diff(self.seq_indptr_)):
            ends += [(u, e) for e in range(int(n), 1, -length)]
        self.windows_ = np.asarray(ends, dtype=np.int64).reshape(-1, 2)  # (n_windows, 2): user, end

    def steps_per_epoch(self, train: Dataset) -> int:
        return int(np.ceil(len(self.windows_) / self.config.batch_size))

    def _batch(self, windows: np.ndarray) -> torch.Tensor:
        """(B, L+1) item ids + 1, left-padded: each window's items."""
        length = self.config.max_len + 1
        out = np.zeros((len(windows), length), dtype=np.int64)
        for r, (u, end) in enumerate(windows):
            start = self.seq_indptr_[u]
            seq = self.seq_items_[start + max(0, end - length):start + end]
            out[r, -len(seq):] = seq + 1
        return torch.from_numpy(out)

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[torch.Tensor]:
        order = rng.permutation(len(self.windows_))
        for s in range(0, len(order), self.config.batch_size):
            yield self._batch(self.windows_[order[s:s + self.config.batch_size]])

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        inp, target = batch[:, :-1], batch[:, 1:]  # predict the next item at every position
        h = self.network_(inp)  # (B, L, H)
        valid = (target > 0) & (inp > 0)
        h, target = h[valid], target[valid] - 1  # (N, H), (N,)
        items = self.network_.item_matrix()  # (n_items, H)
        if self.config.loss == "ce":
            return F.cross_entropy(h @ items.T, target)  # full softmax over all items
        # sampled softmax: the batch's targets + uniform negatives, logQ-free (uniform sampling)
        neg = torch.randint(0, self.n_items_, (self.config.negatives,))
        cand = torch.cat([target, neg])
        logits = h @ items[cand].T  # (N, N + negatives)
        same = target.unsqueeze(1) == cand.unsqueeze(0)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))  # an item is never its own negative
        return F.cross_entropy(logits, torch.arange(len(target)))

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        self.network_.eval()
        seq = self.sequences(users, self.config.max_len)  # (b, L)
        h = self.network_(seq)[:, -1]  # (b, H): the state after the newest item
        return (h @ self.network_.item_matrix().T).numpy()  # (b, n_items)
