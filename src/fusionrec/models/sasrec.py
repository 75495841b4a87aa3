"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

A causal Transformer encoder over the user's item sequence: item embeddings (shared between input
and output, scaled by sqrt(hidden)) plus learned positions, pre-LayerNorm blocks of multi-head
self-attention and a GELU feed-forward layer, dropout. The score of item ``i`` after a sequence is
the final hidden state at its newest position dotted with ``i``'s embedding.

Training (:mod:`fusionrec.models.next_item`) cuts each user's training sequence from its end into
windows of ``max_len + 1`` events and reads every window once with a causal mask, predicting from
every position: the same targets as training on every prefix (as RecBole does, about 4.9M padded
positions per ml-100k epoch) from one pass per window (about 0.1M). Windows are right-padded and
positions count from the window's first item (``positions="start"``, RecBole's choice; ``"end"``
counts back from the newest item, the paper's), so a causal mask alone keeps items from attending
to padding. The loss is a full-softmax cross-entropy over all items (``loss="ce"``, as Petrov &
Macdonald, RecSys 2023, recommend over the paper's one sampled negative) in which

* each position is trained to predict each of the next ``targets`` items (one term each), and
* the items already seen in the window are left out of a position's softmax (``exclude_seen``):
  ``recommend`` never returns a seen item, so the loss ranks only what can be recommended;

or a sampled softmax (``loss="sampled"``) for large catalogues.

Defaults, chosen on the ml-100k and ml-latest-small leave-one-out valid sets (one seed each):
``max_len=50`` with ``batch_size=32`` windows (more, more varied steps than whole 200-event
histories), ``targets=3`` and ``dropout=attn_dropout=0.2`` (0.5 was worse on both datasets);
ml-100k valid NDCG@10 0.107 for the first version (len 200, one target, dropout 0.5) against 0.122
for these. Events given at inference (``extra_history``) are appended to the sequence, newest last.

Examples
--------
>>> import pandas as pd
>>> from fusionrec.data.schema import Dataset
>>> df = pd.DataFrame({"user": [0, 0, 0, 1, 1, 1], "item": ["a", "b", "c", "a", "b", "c"],
...                    "timestamp": [1, 2, 3, 1, 2, 3]})
>>> m = SASRec(SASRecConfig(hidden=8, heads=1, max_len=4, epochs=2)).fit(Dataset.from_frames(df))
>>> m.score([0]).shape
(1, 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.models.history import History
from fusionrec.models.next_item import (
    WindowBatches,
    right_align,
    sampled_softmax_ce,
    window_ce,
)
from fusionrec.models.torch_base import SequenceRecommender
from fusionrec.training.trainer import TrainConfig


@dataclass(frozen=True)
class SASRecConfig(TrainConfig):
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    inner: int = 256  # feed-forward width
    max_len: int = 50  # newest events read per user; also the training window
    dropout: float = 0.2  # on embeddings and on each block's outputs
    attn_dropout: float = 0.2  # on attention weights
    loss: str = "ce"  # "ce" (full softmax) or "sampled" (in-batch + uniform negatives)
    negatives: int = 256  # uniform negatives per batch for loss="sampled"
    label_smoothing: float = 0.0  # loss="ce" only
    targets: int = 3  # loss="ce": each position is trained to predict each of the next `targets` items
    positions: str = "start"  # "start": counted from the window's first item; "end": from the newest
    exclude_seen: bool = True  # loss="ce": leave the items seen earlier in the window out of the softmax
    # data without timestamps (a set per user): reshuffle each user's items at every epoch, so the
    # network learns from many orders instead of memorising one arbitrary order's prefixes
    shuffle_unordered: bool = True
    epochs: int = 40
    batch_size: int = 32  # windows per step
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    patience: int = 0  # never stop early: the cosine schedule over `epochs` ends training; the best valid epoch is kept

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden", "layers", "heads", "inner", "max_len", "negatives", "targets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"{type(self).__name__}.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        for name in ("dropout", "attn_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"{type(self).__name__}.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.positions not in ("start", "end"):
            raise ValueError(f"{type(self).__name__}.positions must be 'start' or 'end', got {self.positions!r}")
        if self.loss not in ("ce", "sampled"):
            raise ValueError(f"{type(self).__name__}.loss must be 'ce' or 'sampled', got {self.loss!r}")


class Block(nn.Module):
    """Pre-LN Transformer block: ``x + attn(ln(x))``, then ``x + ffn(ln(x))``."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.heads, self.p = heads, attn_dropout
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ff1, self.ff2 = nn.Linear(hidden, inner), nn.Linear(inner, hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, L, H); mask (B, 1, L, L) bool, True where a query may attend to a key; None = causal."""
        b, length, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,  # (B, heads, L, H / heads)
                                           dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, h)))
        return x + self.drop(self.ff2(F.gelu(self.ff1(self.ln2(x)))))


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # 0 = padding
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        self.from_start = cfg.positions == "start"
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.inner, cfg.dropout, cfg.attn_dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, L) item indices + 1, L <= max_len -> hidden states (B, L, H).

        positions="start": right-padded rows, position p = the p-th item of the window; a causal
        mask alone keeps real items from seeing padding. positions="end": left-padded rows, the
        newest item at position max_len - 1; padding is masked out of attention.
        """
        length = seq.shape[1]
        pad = seq == 0  # (B, L)
        pos = self.pos.weight[:length] if self.from_start else self.pos.weight[-length:]  # (L, H)
        x = self.item(seq) * self.item.embedding_dim**0.5 + pos  # (B, L, H)
        x = self.drop(x) * ~pad.unsqueeze(-1)
        mask = None  # causal
        if not self.from_start:  # causal, never to padding (a padded query sees itself: no empty row)
            causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()  # (L, L)
            eye = torch.eye(length, dtype=torch.bool, device=seq.device)
            mask = (causal & ~pad[:, None, :] | eye).unsqueeze(1)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def item_matrix(self) -> torch.Tensor:
        return self.item.weight[1:]  # (n_items, H)


class SASRec(SequenceRecommender):
    """Causal self-attention over the user's item sequence; score = last hidden state . item embedding."""

    name = "sasrec"
    Config = SASRecConfig

    def build_network(self) -> nn.Module:
        return SASRecNet(self.n_items_, self.config)

    def prepare(self, train: Dataset) -> None:
        self.windows_ = WindowBatches(self.seq_indptr_, self.seq_items_, self.config.max_len,
                                      shuffle=self.config.shuffle_unordered and not train.has_timestamps)

    def steps_per_epoch(self, train: Dataset) -> int:
        return self.windows_.steps(self.config.batch_size)

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[torch.Tensor]:
        align = "right" if self.config.positions == "start" else "left"
        return self.windows_.batches(self.config.batch_size, rng, align)  # (B, W <= max_len + 1)

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        c = self.config
        h = self.network_(batch[:, :-1])  # (B, W - 1, H): predict what follows every position
        items = self.network_.item_matrix()  # (n_items, H)
        if c.loss == "ce":
            return window_ce(h, batch, items, targets=c.targets, exclude_seen=c.exclude_seen,
                             smoothing=c.label_smoothing)
        target = batch[:, 1:]
        keep = (target > 0) & (batch[:, :-1] > 0)
        return sampled_softmax_ce(h[keep], items, target[keep] - 1, c.negatives, self.n_items_)

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        self.network_.eval()
        seq = history.last(self.config.max_len)  # (b, L), left-padded
        if self.config.positions == "start":
            seq, n = right_align(seq)  # (b, L), (b,)
            h = self.network_(seq)[torch.arange(len(n)), (n - 1).clamp(min=0)]  # (b, H): after the newest item
        else:
            h = self.network_(seq)[:, -1]  # (b, H): the state after the newest item
        return (h @ self.network_.item_matrix().T).numpy()  # (b, n_items)
