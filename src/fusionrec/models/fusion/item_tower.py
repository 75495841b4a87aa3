"""The item tower: an item's content tokens fused by attention, then mixed with its ID embedding.

For items ``i`` (any subset of the catalogue):

* each content source gives a token ``t_im`` (text, image, audio, attributes, KG) and whether the
  item has that input; a token-type embedding is added and ``item.layers`` Transformer blocks let
  the tokens attend to each other (cross-modal attention);
* a gate ``g_im = softmax_m(a . t_im + c_m(context_i))`` over the present tokens (context: the item's
  training count, whether it was seen, its recency) gives the fused content ``f_i = sum_m g_im t_im``,
  and an output map the content vector ``c_i = W f_i`` (W starts near 0: training starts as SASRec);
* a per-item weight ``alpha_i = sigmoid(w . context_i + u . f_i + b)`` adds it to the ID embedding:
  ``v_i = e_i + alpha_i c_i``. An item unseen in training has no trained ID: ``v_i = c_i``; an item
  without content has ``alpha = 0``. With ``c -> 0`` (or ``alpha -> 0``) the model is SASRec: the gate
  can always fall back to the ID model, and adds content where the ID knows little (rare items).

The gate weights reported per item (``explain``) are each source's share of the vector:
``w_id = |e_i| / (|e_i| + alpha_i |c_i|)`` (0 for an unseen item) and ``(1 - w_id) g_im`` for content.

Training cost: the tower runs on the items a step needs (:meth:`ItemTower.parts`), not the whole
catalogue; see :mod:`fusionrec.models.fusion.training`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fusionrec.errors import ConfigError
from fusionrec.models.fusion.blocks import Block
from fusionrec.models.fusion.config import FusionConfig
from fusionrec.models.fusion.sources.base import ItemSource
from fusionrec.models.fusion.sources.ids import IdSource

#: the context of an item treated as unseen: no count, not seen, oldest
COLD_CONTEXT = (0.0, 0.0, 1.0)


def item_context(counts: np.ndarray, recency: np.ndarray) -> np.ndarray:
    """(n_items, 3) float32: log1p(count) over its maximum, seen (0/1), recency (0 = newest, 1 = oldest/unseen)."""
    seen = counts > 0
    return np.stack([np.log1p(counts) / max(np.log1p(counts.max(initial=0)), 1e-6), seen,
                     np.where(seen, recency, 1.0)], 1).astype(np.float32)


class ItemTower(nn.Module):
    """Item vectors ``(n, H)`` and the gate weights ``(n, M)`` behind them, for any item indices."""

    def __init__(self, ids: IdSource | None, sources: list[ItemSource], counts: np.ndarray, recency: np.ndarray,
                 cfg: FusionConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.ids = ids
        self.sources = nn.ModuleList(sources)
        self.content_names = [n for s in sources for n in s.names]
        self.names = (["id"] if ids is not None else []) + self.content_names
        if not self.names:
            raise ConfigError("fusion has no item input left: switch on id or a content source")
        self.modality_dropout = cfg.item.modality_dropout
        m = len(self.content_names)
        if m:
            self.kind = nn.Parameter(torch.zeros(m, h))  # token type embedding
            self.blocks = nn.ModuleList(Block(h, cfg.user.heads, cfg.item.inner, cfg.user.dropout, 0.0)
                                        for _ in range(cfg.item.layers))
            self.gate_token = nn.Linear(h, 1)
            self.gate_context = nn.Linear(3, m)
            for lin in (self.gate_token, self.gate_context):
                nn.init.normal_(lin.weight, std=0.02)
                nn.init.zeros_(lin.bias)
            self.out = nn.Linear(h, h, bias=False)  # fused content -> the item space, near 0 at the start
            nn.init.normal_(self.out.weight, std=1e-3)
        if m and ids is not None:
            self.mix_context = nn.Linear(3, 1)
            self.mix_token = nn.Linear(h, 1)
            for lin in (self.mix_context, self.mix_token):
                nn.init.normal_(lin.weight, std=0.02)
                nn.init.zeros_(lin.bias)
        self.register_buffer("context", torch.from_numpy(item_context(counts, recency)), persistent=False)
        self.register_buffer("seen", torch.from_numpy(counts > 0), persistent=False)
        # 1: content is on; 0: the item vectors are the ID embeddings alone (a stacked fit's first stage, or
        # content that did not improve the valid metric); saved with the weights
        self.register_buffer("content_on", torch.ones(()))

    @property
    def n_items(self) -> int:
        return int(self.seen.shape[0])

    def fuse(self, items: torch.Tensor, cold: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The deep part, for ``items`` (n,) of a tower with content sources: the fused content ``f`` (n, H),
        whether each item has any content (n,), and the content gate (n, M)."""
        seen = self.seen[items] if cold is None else self.seen[items] & ~cold
        ctx = torch.where(seen[:, None], self.context[items], self.context.new_tensor(COLD_CONTEXT))
        toks, present = zip(*(s(items) for s in self.sources), strict=True)
        x, p = torch.cat(toks, 1), torch.cat(present, 1)  # (n, M, H), (n, M)
        if self.training and self.modality_dropout:  # hide content tokens so that no single one is relied on
            p = p & (torch.rand(p.shape, device=p.device) >= self.modality_dropout)
        x = x + self.kind
        for block in self.blocks:
            x, _ = block(x, causal=False)
        logits = self.gate_token(x).squeeze(-1) + self.gate_context(ctx)  # (n, M)
        gate = torch.nan_to_num(logits.masked_fill(~p, float("-inf")).softmax(-1))  # no content at all: 0
        return (gate[..., None] * x).sum(1), p.any(1), gate

    def head(self, items: torch.Tensor, fused: torch.Tensor, has: torch.Tensor, cold: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cheap part: the content's weight ``alpha`` (n,) and the content vector ``W f`` (n, H) of
        ``items`` from their fused content ``f`` and whether they have content ``has``."""
        if self.ids is None:
            return has.to(fused.dtype), self.out(fused)
        seen = self.seen[items] if cold is None else self.seen[items] & ~cold
        ctx = torch.where(seen[:, None], self.context[items], self.context.new_tensor(COLD_CONTEXT))
        alpha = torch.sigmoid(self.mix_context(ctx) + self.mix_token(fused)).squeeze(1)
        alpha = torch.where(seen, alpha, torch.ones_like(alpha))  # unseen: all content
        alpha = torch.where(has, alpha, torch.zeros_like(alpha))  # no content: all ID
        return alpha, self.out(fused)

    @property
    def uses_content(self) -> bool:
        return bool(self.content_names) and (self.ids is None or bool(self.content_on > 0))

    def parts(self, items: torch.Tensor, cold: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """For ``items`` (n,): the content's weight ``alpha`` (n,), the content vector (n, H) and the content
        gate (n, M); ``cold`` (n,) bool marks items to treat as unseen (ID dropout). Without content
        sources (or with content off): ``(zeros, None, None)``; for an unseen item (or without an ID) ``alpha`` is 1."""
        if not self.uses_content:
            return torch.zeros(len(items), device=items.device), None, None
        fused, has, gate = self.fuse(items, cold)
        alpha, content = self.head(items, fused, has, cold)
        return alpha, content, gate

    def id_part(self, items: torch.Tensor, cold: torch.Tensor | None = None) -> torch.Tensor | None:
        """(n, H) the ID embeddings of ``items``, zero where an item is unseen (or ``cold``); None without IDs."""
        if self.ids is None:
            return None
        seen = self.seen[items] if cold is None else self.seen[items] & ~cold
        return self.ids.emb(items) * seen[:, None]

    def forward(self, items: torch.Tensor | None = None, cold: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, H) vectors and (n, len(names)) gate weights of ``items`` (default: every item)."""
        if items is None:
            items = torch.arange(self.n_items, device=self.seen.device)
        alpha, content, gate = self.parts(items, cold)
        e = self.id_part(items, cold)
        if content is None:
            assert e is not None
            gates = torch.zeros(len(items), len(self.names))
            gates[:, 0] = 1.0
            return e, gates
        c = alpha[:, None] * content
        if e is None:
            return c, gate  # type: ignore[return-value]
        ne, nc = e.norm(dim=1), c.norm(dim=1)
        w_id = torch.where(ne > 0, ne / (ne + nc).clamp(min=1e-12), torch.zeros_like(ne))
        return e + c, torch.cat([w_id[:, None], (1 - w_id)[:, None] * gate], 1)  # type: ignore[index]
