"""The user tower: SASRec's causal Transformer over the user's item vectors, with user tokens in front.

The prefix holds one token per user source (profile, social, side events), so a new user with a
profile or friends but no history still gets a user vector. Each history token is its item's
vector (times ``sqrt(H)``, as SASRec's embeddings), plus its event-weight bucket where events carry
weights, plus a learned position. Score = user vector . item vector.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fusionrec.models.fusion.blocks import Block
from fusionrec.models.fusion.config import FusionConfig
from fusionrec.models.fusion.sources.base import UserSource
from fusionrec.models.fusion.sources.event_weights import EventWeights
from fusionrec.models.sasrec import SASRecNet


class UserTower(nn.Module):
    def __init__(self, prefix: list[UserSource], event_weights: EventWeights | None, cfg: FusionConfig) -> None:
        super().__init__()
        h, u = cfg.hidden, cfg.user
        self.prefix_sources = nn.ModuleList(prefix)
        self.prefix_names = [s.name for s in prefix]
        self.event_weights = event_weights
        self.prefix = len(prefix)
        self.pos = nn.Embedding(u.max_len + self.prefix, h)
        self.drop = nn.Dropout(u.dropout)
        self.blocks = nn.ModuleList(Block(h, u.heads, u.inner, u.dropout, u.attn_dropout) for _ in range(u.layers))
        self.norm = nn.LayerNorm(h)
        for m in (self.pos, *self.blocks):
            m.apply(SASRecNet._init)

    def source(self, name: str) -> UserSource | None:
        """The prefix source called ``name``, or None."""
        return next((s for s in self.prefix_sources if s.name == name), None)

    def encode(self, seq: torch.Tensor, vectors: torch.Tensor, users: np.ndarray, weights: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """seq (B, L) right-padded item indices + 1, vectors (n_items, H) -> states (B, prefix + L, H), and
        the attention weights of each layer when ``weights``."""
        b, _ = seq.shape
        h = vectors.shape[1]
        x = torch.cat([vectors.new_zeros(1, h), vectors])[seq] * h**0.5  # (B, L, H)
        if self.event_weights is not None:
            x = x + self.event_weights(users, seq)
        if self.prefix:
            tokens = torch.stack([s(users, vectors) for s in self.prefix_sources], 1)  # (B, prefix, H)
            x = torch.cat([tokens * h**0.5, x], 1)
        x = self.drop(x + self.pos.weight[: x.shape[1]])
        real = torch.cat([torch.ones(b, self.prefix, dtype=torch.bool, device=seq.device), seq > 0], 1)
        x = x * real[..., None]
        atts = []
        for block in self.blocks:
            x, a = block(x, causal=True, weights=weights)
            atts.append(a)
        return self.norm(x), atts
