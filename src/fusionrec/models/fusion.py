"""The fusion Transformer: every item signal fused per item, a causal Transformer per user.

Item tower (per item, all items at once)
    Tokens: the item's ID embedding, one projected vector per content modality (text, image, audio,
    knowledge-graph entity, from :mod:`fusionrec.encoders`, frozen and cached) and one attribute
    token (categorical + multi-valued + numeric columns). A token type embedding is added, then
    ``fusion_layers`` pre-LN Transformer blocks let the tokens attend to each other (multimodal
    fusion). An **adaptive gate** weighs the fused tokens: ``softmax_m(a_m(token_m) + c_m(context))``
    where the context is the item's training-interaction count and recency, so cold items can lean
    on content and warm ones on behaviour; the item vector is the gated sum. A missing modality
    (no image file, empty text) gets weight 0; an item never seen in training has no trained ID
    embedding: its ID token is a shared learned "no ID" vector that the content tokens attend to but
    the gate never weighs (its gate is 0). During training a random share
    ``id_dropout`` of the items is treated as cold at each step (ID token -> "no ID", context ->
    unseen), so the gate and the content tokens learn to carry cold items (as DropoutNet does), and
    each content token is hidden with chance ``modality_dropout``, so that no single modality (a
    title unique to its item acts like an ID) carries everything.

User tower
    The SASRec network (:mod:`fusionrec.models.sasrec`) over the fused vectors of the user's
    items, with a profile token (user categorical / numeric fields) in front, so a new user with
    a profile but no history still gets a user vector. Score = user vector . item vector: top-K is
    a maximum inner product search, and new items (rows of an items table) are scored from content
    without retraining. With friends, a social token (the friends' items) joins the profile token.

Side events (other behaviours, e.g. the artists a lastfm-2k user tagged)
    A side token (the mean fused vector of those items) joins the prefix, and each item the user has
    a side event on gets ``w_u`` added to its score, ``w_u = softplus(a . log1p([side events,
    history]) / 5 + b)`` learned with the rest: a sparse, per-user weighted source next to the dot
    product (retrieval: the inner-product top-K plus the user's own side items, re-scored).

Training is SASRec's (next items from every position, full-softmax cross-entropy, seen items left
out of the softmax); every step recomputes the item tower for all items (the softmax needs them),
which is cheap next to the loss at these sizes (``tokens x n_items``).

Switches (``--set fusion.text=false`` ...): ``id``, ``text``, ``image``, ``audio``, ``attributes``,
``kg``, ``profile``; ``fusionrec bench ablation`` trains one variant per switch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.graph.explain import GraphExplainer
from fusionrec.graph.social import normalize_rows
from fusionrec.models.base import UNKNOWN_ITEM_SCORE, take_rows
from fusionrec.models.history import History
from fusionrec.models.next_item import (
    WindowBatches,
    bucketed,
    full_softmax_ce,
    gather_windows,
    right_align,
    window_ce,
)
from fusionrec.models.sasrec import Block as SASRecBlock
from fusionrec.models.sasrec import SASRecConfig, SASRecNet
from fusionrec.models.torch_base import SequenceRecommender

#: content modalities that arrive as frozen vectors (ContentFeatures.vectors)
VECTOR_MODALITIES = ("text", "image", "audio", "kg")


@dataclass(frozen=True)
class FusionConfig(SASRecConfig):
    # sources and modalities (switch any off for an ablation)
    id: bool = True
    text: bool = True
    image: bool = True
    audio: bool = True
    attributes: bool = True
    kg: bool = True  # KG entity token (TransE over the dataset's KG + item attribute triples)
    profile: bool = True
    social: bool = True  # social token: the mean of the friends' training items (datasets with friends)
    # side events (datasets with them, e.g. the artists a lastfm-2k user tagged): a side token (their
    # mean fused vector) in the user tower, and a direct boost w_u * [u has a side event on i] of the
    # score, w_u >= 0 from the user's activity (an adaptive, per-user weight of this source)
    side: bool = True
    # data without timestamps: a user vector is the mean over this many random orders of the history
    # (the network was trained on reshuffled sets, see shuffle_unordered; 1 = the stored order only)
    score_orders: int = 4
    # interactions with a weight column (lastfm-2k's listening counts): each history token also gets an
    # embedding of its weight's bucket (log1p(weight) over the user's mean, in weight_buckets quantiles)
    event_weights: bool = True
    weight_buckets: int = 8
    kg_dim: int = 64
    kg_epochs: int = 50
    # content encoding (fusionrec.encoders)
    text_encoder: str = "auto"  # "auto" (MiniLM when installed, else hashed n-grams), "minilm", "hashed" or a model folder
    image_size: int = 32
    cache_dir: str = ""  # embedding store (default $FUSIONREC_CACHE or ~/.cache/fusionrec)
    # fusion
    fusion_layers: int = 1
    fusion_inner: int = 128
    id_dropout: float = 0.1  # share of items treated as cold at each training step
    modality_dropout: float = 0.1  # chance that a content token of an item is hidden at a training step
    # self-supervised pretraining (fusionrec pretrain; see Fusion.pretrain)
    pretrain_epochs: int = 0  # > 0: align content with behaviour before next-item training
    pretrain_temperature: float = 0.1
    # items unseen in training: vector = ridge map from content to the warm items' vectors (content_map.py)
    content_map: bool = True
    content_map_l2: float = 0.0  # 0: chosen on held-out warm items
    # also regress on the item tower's content-only output: off, since on ml-100k cold items it cost
    # Recall@20 0.287 -> 0.235 (the tower output of warm items is fitted to them; see BENCHMARKS.md)
    content_map_tower: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("id_dropout", "modality_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"FusionConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.fusion_layers < 0 or self.fusion_inner < 1:
            raise ValueError("FusionConfig.fusion_layers must be >= 0 and fusion_inner >= 1")
        if self.pretrain_epochs < 0 or self.pretrain_temperature <= 0:
            raise ValueError("FusionConfig.pretrain_epochs must be >= 0 and pretrain_temperature > 0")
        if self.weight_buckets < 1:
            raise ValueError(f"FusionConfig.weight_buckets must be >= 1, got {self.weight_buckets}")
        if self.score_orders < 1:
            raise ValueError(f"FusionConfig.score_orders must be >= 1, got {self.score_orders}")
        if self.kg_dim < 1 or self.kg_epochs < 1:
            raise ValueError("FusionConfig.kg_dim and kg_epochs must be >= 1")
        if self.content_map_l2 < 0:
            raise ValueError(f"FusionConfig.content_map_l2 must be >= 0 (0 = choose it), got {self.content_map_l2}")
        if self.positions != "start":
            raise ValueError("FusionConfig.positions must be 'start' (the profile token comes first)")


class Block(SASRecBlock):
    """SASRec's pre-LN block (same parameters) that can also return its attention weights (for explanations)."""

    def forward(self, x: torch.Tensor, causal: bool, weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, L, H) -> (B, L, H), and (B, heads, L, L) attention weights when ``weights``."""
        b, length, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        att = None
        if weights:
            logits = q @ k.transpose(-1, -2) / (h // self.heads) ** 0.5  # (B, heads, L, L)
            if causal:
                logits = logits.masked_fill(~torch.ones(length, length, dtype=torch.bool).tril(), float("-inf"))
            att = logits.softmax(-1)
            a = att @ v
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, h)))
        return x + self.drop(self.ff2(F.gelu(self.ff1(self.ln2(x))))), att


def _multi_matrix(indptr: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """CSR codes -> (n, width) int64, right-padded with 0."""
    counts = np.diff(indptr)
    width = max(1, int(counts.max(initial=0)))
    out = np.zeros((len(counts), width), dtype=np.int64)
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(len(codes)) - np.repeat(indptr[:-1], counts)
    out[rows, cols] = codes
    return out


class Tokens(nn.Module):
    """Attribute and modality inputs of one side (items or users) as (n, T, H) tokens, names in ``names``."""

    def __init__(self, content: Any, hidden: int, vectors: tuple[str, ...], attributes: bool) -> None:
        super().__init__()
        # buffers and modules are named by position: column names may hold any character
        self.vector_names = [m for m in content.vectors if m.split(":")[0] in vectors]
        self.proj = nn.ModuleList()
        self.missing = nn.ParameterList()
        for j, m in enumerate(self.vector_names):
            x = np.asarray(content.vectors[m], dtype=np.float32)
            self.register_buffer(f"x{j}", torch.from_numpy(x))
            self.register_buffer(f"p{j}", torch.from_numpy(np.asarray(content.present[m], dtype=bool)))
            self.proj.append(nn.Sequential(nn.LayerNorm(x.shape[1]), nn.Linear(x.shape[1], hidden)))
            self.missing.append(nn.Parameter(torch.zeros(hidden)))
        self.cat_names = list(content.categorical) if attributes else []
        self.multi_names = list(content.multi) if attributes else []
        self.n_numeric = int(content.numeric.shape[1]) if attributes else 0
        self.cat = nn.ModuleList()
        for j, c in enumerate(self.cat_names):
            self.register_buffer(f"c{j}", torch.from_numpy(np.asarray(content.categorical[c], dtype=np.int64)))
            self.cat.append(nn.Embedding(content.cardinality(c), hidden, padding_idx=0))
        self.multi = nn.ModuleList()
        for j, c in enumerate(self.multi_names):
            indptr, codes = content.multi[c]
            self.register_buffer(f"m{j}", torch.from_numpy(_multi_matrix(np.asarray(indptr), np.asarray(codes))))
            self.multi.append(nn.Embedding(content.cardinality(c), hidden, padding_idx=0))
        if self.n_numeric:
            num = np.concatenate([content.numeric, content.numeric_missing], axis=1).astype(np.float32)
            self.register_buffer("num", torch.from_numpy(num))
            self.numeric = nn.Linear(num.shape[1], hidden)
        self.has_attributes = bool(self.cat_names or self.multi_names or self.n_numeric)
        self.names = self.vector_names + (["attributes"] if self.has_attributes else [])

    def forward(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(n, T, H) tokens and (n, T) bool presence, or (None, None) without inputs."""
        toks, present = [], []
        for j in range(len(self.vector_names)):
            x, p = getattr(self, f"x{j}"), getattr(self, f"p{j}")
            toks.append(torch.where(p[:, None], self.proj[j](x), self.missing[j]))
            present.append(p)
        if self.has_attributes:
            parts, known = [], []
            for j in range(len(self.cat_names)):
                codes = getattr(self, f"c{j}")
                parts.append(self.cat[j](codes))
                known.append(codes > 0)
            for j in range(len(self.multi_names)):
                codes = getattr(self, f"m{j}")  # (n, width)
                n = (codes > 0).sum(1, keepdim=True)
                parts.append(self.multi[j](codes).sum(1) / n.clamp(min=1))
                known.append(n.squeeze(1) > 0)
            if self.n_numeric:
                parts.append(self.numeric(self.num))
                known.append(torch.ones(self.num.shape[0], dtype=torch.bool, device=self.num.device))
            toks.append(torch.stack(parts).sum(0))
            present.append(torch.stack(known).any(0))
        if not toks:
            return None, None
        return torch.stack(toks, 1), torch.stack(present, 1)


class ItemTower(nn.Module):
    """Fused item vectors ``(n_items, H)`` and the gate weights ``(n_items, M)`` behind them."""

    def __init__(self, n_items: int, content: Any, counts: np.ndarray, recency: np.ndarray, cfg: FusionConfig) -> None:
        super().__init__()
        h = cfg.hidden
        vectors = tuple(m for m in VECTOR_MODALITIES if getattr(cfg, m))
        self.content = Tokens(content, h, vectors, cfg.attributes)
        self.use_id = cfg.id
        self.modality_dropout = cfg.modality_dropout
        self.names = (["id"] if cfg.id else []) + self.content.names
        if not self.names:
            raise ConfigError("fusion has no item input left: switch on id or a content modality")
        if cfg.id:
            self.id = nn.Embedding(n_items, h)
            self.no_id = nn.Parameter(torch.zeros(h))
        self.kind = nn.Parameter(torch.zeros(len(self.names), h))  # token type embedding
        self.blocks = nn.ModuleList(Block(h, cfg.heads, cfg.fusion_inner, cfg.dropout, 0.0) for _ in range(cfg.fusion_layers))
        self.gate_token = nn.Linear(h, 1)
        self.gate_context = nn.Linear(3, len(self.names))
        seen = counts > 0
        ctx = np.stack([np.log1p(counts) / max(np.log1p(counts.max(initial=0)), 1e-6), seen, np.where(seen, recency, 1.0)], 1)
        self.register_buffer("context", torch.from_numpy(ctx.astype(np.float32)))  # (n_items, 3)
        self.register_buffer("seen", torch.from_numpy(seen))

    def forward(self, cold: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``cold`` (n_items,) bool: items to treat as unseen (id dropout); unseen items always are.

        The ID token takes part in the attention (content tokens read it as context) but enters the
        gated sum as the raw embedding: with no content, the item vector is exactly SASRec's.
        """
        cold = ~self.seen if cold is None else cold | ~self.seen
        toks, present = [], []
        if self.use_id:
            ident = torch.where(cold[:, None], self.no_id, self.id.weight)  # (n, H)
            toks.append(ident[:, None])
            present.append(~cold[:, None])  # a cold item's "no ID" token is context for attention, never weighed
        t, p = self.content()
        if t is not None:
            if self.training and self.modality_dropout:  # hide content tokens so no single one is relied on
                p = p & (torch.rand(p.shape, device=p.device) >= self.modality_dropout)
            toks.append(t)
            present.append(p)
        x, present = torch.cat(toks, 1), torch.cat(present, 1)  # (n, M, H), (n, M)
        if x.shape[1] == 1:  # one source: nothing to fuse or weigh
            return x[:, 0], present.float()
        x = x + self.kind
        for block in self.blocks:
            x, _ = block(x, causal=False)
        ctx = torch.where(cold[:, None], self.context.new_tensor([0.0, 0.0, 1.0]), self.context)
        logits = self.gate_token(x).squeeze(-1) + self.gate_context(ctx)  # (n, M)
        gates = logits.masked_fill(~present, float("-inf")).softmax(-1)
        gates = torch.nan_to_num(gates)  # an item with no input at all: zero vector
        if self.use_id:
            x = torch.cat([ident[:, None], x[:, 1:]], 1)
        return (gates[..., None] * x).sum(1), gates  # (n, H): no normalisation, the norm carries popularity


class FusionNet(nn.Module):
    def __init__(self, n_items: int, item_content: Any, user_content: Any | None, counts: np.ndarray,
                 recency: np.ndarray, cfg: FusionConfig, social: bool = False, side: bool = False,
                 weight_buckets: int = 0) -> None:
        super().__init__()
        h = cfg.hidden
        self.items = ItemTower(n_items, item_content, counts, recency, cfg)
        self.users = Tokens(user_content, h, (), True) if user_content is not None and cfg.profile else None
        if self.users is not None and not self.users.names:
            self.users = None
        # social token: projection of the mean fused vector of the friends' items (no friends: a learned vector)
        self.social = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, h)) if social else None
        self.no_friends = nn.Parameter(torch.zeros(h)) if social else None
        # side token and side boost: w_u = softplus(a . [log1p(side events), log1p(history)] / 5 + b)
        self.side = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, h)) if side else None
        self.no_side = nn.Parameter(torch.zeros(h)) if side else None
        self.side_weight = nn.Linear(2, 1) if side else None
        self.prefix = int(self.users is not None) + int(social) + int(side)
        # history tokens' weight buckets (0 = unknown, e.g. an event given at scoring time)
        self.weight_emb = nn.Embedding(weight_buckets + 1, h, padding_idx=0) if weight_buckets else None
        self.pos = nn.Embedding(cfg.max_len + self.prefix, h)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(h, cfg.heads, cfg.inner, cfg.dropout, cfg.attn_dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(h)
        self.apply(self._init)
        if self.side_weight is not None:
            with torch.no_grad():  # start at w_u = 1 for every user
                self.side_weight.weight.zero_()
                self.side_weight.bias.fill_(float(np.log(np.expm1(1.0))))
        with torch.no_grad():  # content tokens start at the ID embeddings' scale (std 0.02), not 0.02 x sqrt(width)
            for tokens in (self.items.content, self.users):
                for proj in getattr(tokens, "proj", []):
                    proj[1].weight.mul_(proj[1].in_features ** -0.5)
                if getattr(tokens, "n_numeric", 0):
                    tokens.numeric.weight.mul_(tokens.numeric.in_features ** -0.5)

    _init = staticmethod(SASRecNet._init)  # the same initialisation as SASRec

    def profile(self, users: torch.Tensor) -> torch.Tensor | None:
        """(B, H) profile tokens (users beyond the table get the mean token), or None."""
        if self.users is None:
            return None
        t, _ = self.users()  # (n_users, 1, H)
        t = t[:, 0]
        known = users < t.shape[0]
        return torch.where(known[:, None], t[users.clamp(max=t.shape[0] - 1)], t.mean(0))

    def side_boost(self, context: torch.Tensor) -> torch.Tensor:
        """(B,) per-user weight of the side-event boost from (B, 2) context [side events, history]."""
        assert self.side_weight is not None
        return F.softplus(self.side_weight(torch.log1p(context) / 5.0)).squeeze(1)

    def encode(self, seq: torch.Tensor, vectors: torch.Tensor, users: torch.Tensor,
               weights: bool = False, friends: torch.Tensor | None = None,
               side: torch.Tensor | None = None, buckets: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """seq (B, L) right-padded item indices + 1 -> states (B, prefix + L, H) (+ attention per layer).

        ``friends`` (B, n_items): each user's friends' item distribution (rows summing to 1, or 0 without
        friends); needed when the network has a social token. ``side`` (B, n_items): the user's side
        events as a distribution (rows summing to 1, or 0); needed when it has a side token. ``buckets``
        (B, L): each history event's weight bucket (0 = unknown), read when the network has them.
        """
        b, length = seq.shape
        h = vectors.shape[1]
        x = torch.cat([vectors.new_zeros(1, h), vectors])[seq] * h**0.5  # (B, L, H)
        if self.weight_emb is not None and buckets is not None:
            x = x + self.weight_emb(buckets)
        prefix = []
        p = self.profile(users)
        if p is not None:
            prefix.append(p)
        if self.social is not None:
            if friends is None:
                raise ValueError("this network has a social token: pass friends=(B, n_items)")
            has = friends.sum(1, keepdim=True) > 0
            prefix.append(torch.where(has, self.social(friends @ vectors), self.no_friends))
        if self.side is not None:
            if side is None:
                raise ValueError("this network has a side token: pass side=(B, n_items)")
            has = side.sum(1, keepdim=True) > 0
            prefix.append(torch.where(has, self.side(side @ vectors), self.no_side))
        if prefix:
            x = torch.cat([torch.stack(prefix, 1) * h**0.5, x], 1)
        x = self.drop(x + self.pos.weight[: x.shape[1]])
        x = x * torch.cat([torch.ones(b, self.prefix, dtype=torch.bool, device=seq.device), seq > 0], 1)[..., None]
        atts = []
        for block in self.blocks:
            x, a = block(x, causal=True, weights=weights)
            atts.append(a)
        return self.norm(x), atts


class UserWindows(WindowBatches):
    """:class:`WindowBatches` that also yields each window's user and whether it starts the sequence."""

    def batches(self, batch_size: int, rng: np.random.Generator, align: str = "right") -> Iterator[Any]:  # type: ignore[override]
        self.reorder(rng)
        for rows in bucketed(self.sizes, batch_size, rng):
            users, ends, sizes = self.windows[rows, 0], self.windows[rows, 1], self.sizes[rows]
            seq = gather_windows(self.indptr, self.items, users, ends - sizes, sizes, int(sizes.max()), "right")
            yield torch.from_numpy(users), torch.from_numpy(ends - sizes == 0), torch.from_numpy(seq)


def behaviour_vectors(train: Dataset, dim: int = 32, seed: int = 0) -> np.ndarray:
    """(n_items, dim) item factors of the normalised training matrix (targets for aligning image/audio
    encoders to behaviour); rows of items without interactions are zero."""
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


class Fusion(GraphExplainer, SequenceRecommender):
    """Fused multimodal item vectors + profile token + causal Transformer; score = user . item."""

    name = "fusion"
    Config = FusionConfig
    uses_content = True
    default_wrappers = ("prior",)

    # -- content -----------------------------------------------------------------------------
    def _content(self, train: Dataset) -> None:
        from fusionrec.encoders import item_content, user_content

        c = self.config
        kinds = set(train.item_schema.values()) if train.items is not None else set()
        wanted = [m for m in ("text", "image", "audio") if getattr(c, m) and m in kinds]
        if c.attributes and kinds & {"categorical", "multi", "numeric"}:
            wanted.append("attributes")
        self.item_content_ = item_content(train, modalities=wanted,
                                          text_encoder=c.text_encoder, image_size=c.image_size,
                                          cache_dir=c.cache_dir or None, behaviour=behaviour_vectors(train, seed=c.seed),
                                          seed=c.seed, progress=True)
        self.user_content_ = user_content(train) if c.profile and train.users is not None else None
        self._graph_content(train)
        x = train.csr("count")
        self.item_counts_ = np.asarray(x.sum(0)).ravel().astype(np.float64)
        ts = train.interactions["timestamp"].to_numpy().astype(np.float64)
        last = np.full(train.n_items, -np.inf)
        np.maximum.at(last, train.interactions["item"].to_numpy(), ts)
        span = max(ts.max() - ts.min(), 1.0) if len(ts) else 1.0
        self.item_recency_ = np.where(np.isfinite(last), (ts.max() - last) / span, 1.0) if len(ts) else np.ones(train.n_items)

    def _graph_content(self, train: Dataset) -> None:
        """The heterogeneous sources: the KG token's entity vectors and the social token's friend matrix.

        ``triples_`` (the dataset's KG plus item attribute triples) and ``friends_`` are kept for
        explanations even when the corresponding token is switched off.
        """
        from fusionrec.graph.social import friend_matrix
        from fusionrec.graph.triples import attribute_triples, triples_from_dataset

        c = self.config
        self.triples_ = None
        has_kg = train.kg is not None and len(train.kg) > 0
        has_attrs = train.items is not None and any(k in ("categorical", "multi") for k in train.item_schema.values())
        if has_kg or has_attrs:
            triples = triples_from_dataset(train)
            self.triples_ = triples.merge(attribute_triples(train)) if has_attrs else triples
        if c.kg and has_kg and self.triples_ is not None:
            self.item_content_.vectors["kg"], self.item_content_.present["kg"] = self._kg_vectors(self.triples_)
        self.friends_ = friend_matrix(train) if train.social is not None and len(train.social) else None
        self.social_items_ = None
        if c.social and self.friends_ is not None:
            # row u: the mean over u's friends of each friend's item distribution (training events only)
            self.social_items_ = (normalize_rows(self.friends_) @ normalize_rows(train.csr("binary"))).tocsr()
            self.social_items_.data = self.social_items_.data.astype(np.float32)
        self.side_items_ = None
        if c.side and train.side_events is not None and len(train.side_events):
            m = train.side_matrix()
            m.data[:] = 1.0
            self.side_items_ = sp.csr_matrix(m, dtype=np.float32)

    def _kg_vectors(self, triples: Any) -> tuple[np.ndarray, np.ndarray]:
        """(n_items, kg_dim) TransE entity vectors of the items' nodes, and (n_items,) whether a node has triples."""
        from fusionrec.graph.kge import KGEConfig, KGEmbedding

        c = self.config
        emb = KGEmbedding(KGEConfig(model="transe", dim=c.kg_dim, epochs=c.kg_epochs, seed=c.seed,
                                    threads=c.threads)).fit(triples)
        nodes = triples.item_entity
        present = triples.degree[nodes] > 0
        vectors = emb.entity_vectors()[nodes].astype(np.float32)
        vectors[~present] = 0
        return vectors, present

    def _friend_rows(self, users: np.ndarray | torch.Tensor) -> torch.Tensor | None:
        """(B, n_items) dense friends' item distribution of ``users`` (0 rows for users without friends)."""
        if self.social_items_ is None:
            return None
        u = np.asarray(users, dtype=np.int64)
        m = self.social_items_
        out = np.zeros((len(u), self.n_items_), dtype=np.float32)
        known = np.flatnonzero(u < m.shape[0])  # users added after training have no friends here
        if len(known):
            sub = m[u[known]].toarray()
            out[known, : sub.shape[1]] = sub  # items added after training: no friend has them
        return torch.from_numpy(out)

    def _side_rows(self, users: np.ndarray | torch.Tensor) -> tuple[sp.csr_matrix, torch.Tensor] | None:
        """The users' side events (b, n_items) binary CSR (users added after training: none) and the (b, 2)
        context of the boost weight [side events, training events]; None without side events."""
        m = getattr(self, "side_items_", None)
        if m is None:
            return None
        u = np.asarray(users, dtype=np.int64)
        rows = take_rows(m, u)
        if rows.shape[1] < self.n_items_:  # items added after training: nobody has side events on them
            rows = sp.hstack([rows, sp.csr_matrix((rows.shape[0], self.n_items_ - rows.shape[1]))]).tocsr()
        known = u < self.train_matrix_.shape[0]
        hist = np.zeros(len(u))
        hist[known] = np.diff(self.train_matrix_.indptr)[u[known]]
        ctx = np.stack([np.diff(rows.indptr), hist], 1).astype(np.float32)
        return sp.csr_matrix(rows, dtype=np.float32), torch.from_numpy(ctx)

    def _side_inputs(self, users: np.ndarray | torch.Tensor) -> tuple[torch.Tensor | None, Any]:
        """(b, n_items) dense side distribution for the side token, and the rows/context (or None)."""
        got = self._side_rows(users)
        if got is None:
            return None, None
        rows, _ = got
        dist = torch.from_numpy(normalize_rows(rows).toarray().astype(np.float32))
        return dist, got

    def build_network(self) -> nn.Module:
        return FusionNet(self.n_items_, self.item_content_, self.user_content_, self.item_counts_,
                         self.item_recency_, self.config, social=getattr(self, "social_items_", None) is not None,
                         side=getattr(self, "side_items_", None) is not None,
                         weight_buckets=self.config.weight_buckets if getattr(self, "weight_buckets_", None) is not None else 0)

    def _weight_buckets(self, train: Dataset) -> None:
        """``weight_buckets_`` (n_users, n_items): each training event's weight bucket 1..weight_buckets, from
        ``log1p(weight)`` over the user's mean (a user's favourites get the high buckets). Explicit ratings
        are not read here: as buckets on ml-100k they lowered valid NDCG@10 (0.1171 vs 0.1223, one seed)."""
        from fusionrec.models.weighting import log1p_weights

        self.weight_buckets_ = None
        c = self.config
        if not c.event_weights or "weight" not in train.interactions.columns or not len(train.interactions):
            return
        rel = log1p_weights(train.csr("weight"))  # mean 1 per user
        edges = np.quantile(rel.data, np.linspace(0, 1, c.weight_buckets + 1)[1:-1])
        self.weight_buckets_ = sp.csr_matrix((np.searchsorted(edges, rel.data, side="right").astype(np.float32) + 1,
                                              rel.indices, rel.indptr), shape=rel.shape)

    def _buckets(self, users: np.ndarray | torch.Tensor, seq: torch.Tensor) -> torch.Tensor | None:
        """(B, L) weight buckets of ``seq``'s items (item indices + 1, 0 = padding) for ``users``; None
        without them. Events not in training (given at scoring time) are bucket 0."""
        m = getattr(self, "weight_buckets_", None)
        if m is None:
            return None
        u = np.asarray(users, dtype=np.int64)
        items = seq.numpy().astype(np.int64) - 1
        rows = np.broadcast_to(u[:, None], items.shape)
        inside = (items >= 0) & (items < m.shape[1]) & (rows < m.shape[0])
        out = np.zeros(items.shape, dtype=np.int64)
        if inside.any():
            out[inside] = np.asarray(m[rows[inside], items[inside]]).ravel().astype(np.int64)
        return torch.from_numpy(out)

    def prepare(self, train: Dataset) -> None:
        self.unordered_ = not train.has_timestamps
        self._content(train)
        self._weight_buckets(train)
        self.windows_ = UserWindows(self.seq_indptr_, self.seq_items_, self.config.max_len,
                                    shuffle=self.config.shuffle_unordered and self.unordered_)

    def steps_per_epoch(self, train: Dataset) -> int:
        return self.windows_.steps(self.config.batch_size)

    def training_batches(self, train: Dataset, rng: np.random.Generator) -> Iterator[Any]:
        return self.windows_.batches(self.config.batch_size, rng)

    def training_step(self, batch: Any) -> torch.Tensor:
        users, starts, seq = batch
        c, net = self.config, self.network_
        fallback = len(net.items.names) > 1  # id dropout only where content can stand in
        cold = torch.rand(self.n_items_, device=seq.device) < c.id_dropout if c.id and c.id_dropout and fallback else None
        vectors, _ = net.items(cold)  # (n_items, H)
        side, got = self._side_inputs(users.numpy())
        h, _ = net.encode(seq[:, :-1], vectors, users, friends=self._friend_rows(users.numpy()), side=side,
                          buckets=self._buckets(users.numpy(), seq[:, :-1]))  # (B, prefix + W - 1, H)
        bias_idx = bias = None
        if got is not None:  # the side boost: w_u on each item of the user's side events
            rows, ctx = got
            bias_idx = torch.from_numpy(_multi_matrix(rows.indptr, rows.indices.astype(np.int64) + 1)) - 1  # (B, J), -1 = none
            bias = net.side_boost(ctx)[:, None].expand(bias_idx.shape)
        loss = window_ce(h[:, net.prefix:], seq, vectors, targets=c.targets, exclude_seen=c.exclude_seen,
                         smoothing=c.label_smoothing, bias_idx=bias_idx, bias=bias)
        if net.prefix:  # the profile / social / side tokens predict the first items of a sequence (new users)
            first = starts.nonzero().squeeze(1)
            if len(first):
                tgt = seq[first, : c.targets] - 1  # (F, T), -1 = none
                extra = (bias_idx[first], bias[first]) if bias is not None else (None, None)
                loss = loss + full_softmax_ce(h[first, net.prefix - 1], vectors, tgt, 0.0, None, *extra) * \
                    len(first) / max(1, int((seq[:, 1:] > 0).sum()))
        return loss

    # -- self-supervised pretraining ---------------------------------------------------------
    #: ``fusionrec pretrain``: fit runs the pretraining stage only (no next-item training)
    pretrain_only: bool = False

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.content_map_ = None
        if not self.pretrain_only:
            super()._fit(train, valid)
            self._fit_content_map()
            return None
        torch.manual_seed(self.config.seed)
        self.prepare(train)
        self.network_ = self.build_network()
        self.pretrain_log_ = self.pretrain(train, self.config.pretrain_epochs or 20)
        self.training_log_ = []
        return None

    def before_training(self, train: Dataset) -> None:
        if self.config.pretrain_epochs and self.init_from is None:
            self.pretrain_log_ = self.pretrain(train, self.config.pretrain_epochs)

    def pretrain(self, train: Dataset, epochs: int) -> list[dict[str, float]]:
        """Contrastive alignment of content with behaviour, on the built network.

        Behaviour = the item factors of the normalised training matrix (:func:`behaviour_vectors`,
        ``hidden`` dims). The ID embeddings of items with interactions start from them, and the item
        tower run on content alone (every item treated as cold) is trained with a symmetric InfoNCE
        loss to pick out each item's behaviour vector among a batch of 256 items. Next-item training
        then starts from a content tower that already maps content to behaviour.
        """
        c, net = self.config, self.network_
        b = torch.from_numpy(behaviour_vectors(train, dim=c.hidden, seed=c.seed))
        seen = b.abs().sum(1) > 0
        target = F.normalize(b, dim=1)
        if c.id:
            with torch.no_grad():
                net.items.id.weight[seen] = target[seen] * 0.02 * c.hidden**0.5  # the scale of a N(0, 0.02) row
        head = nn.Linear(c.hidden, c.hidden)
        params = [p for n, p in net.items.named_parameters() if not n.startswith("id.")] + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=c.lr * 3, weight_decay=c.weight_decay)
        rng = np.random.default_rng(c.seed)
        warm = np.flatnonzero(seen.numpy())
        everything_cold = torch.ones(self.n_items_, dtype=torch.bool)
        log = []
        net.train()
        for epoch in range(1, epochs + 1):
            total, steps = 0.0, 0
            for chunk in np.array_split(rng.permutation(warm), max(1, len(warm) // 256)):
                idx = torch.from_numpy(chunk)
                v, _ = net.items(everything_cold)
                z = F.normalize(head(v[idx]), dim=1)
                logits = z @ target[idx].T / c.pretrain_temperature  # (b, b)
                labels = torch.arange(len(idx))
                loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, steps = total + loss.item(), steps + 1
            log.append({"epoch": epoch, "loss": total / max(steps, 1)})
        net.eval()
        return log

    # -- cold items: content map -------------------------------------------------------------
    content_map_: Any = None

    def _mapped_items(self) -> np.ndarray:
        """(n_items,) bool: unseen items with some content, whose vector comes from the content map."""
        return (self.item_counts_ == 0) & ~self._blank_items() if self.content_map_ is not None else \
            np.zeros(self.n_items_, bool)

    @torch.no_grad()
    def _fit_content_map(self) -> None:
        """Ridge from content to the trained warm vectors (see :mod:`fusionrec.models.content_map`)."""
        from fusionrec.models.content_map import ContentMap

        self.content_map_ = None
        c = self.config
        warm = np.flatnonzero(self.item_counts_ > 0)
        if not c.content_map or not self.network_.items.content.names or len(warm) < 10:
            return
        self.network_.eval()
        vectors, _ = self.network_.items()
        users = np.flatnonzero(np.diff(self.train_matrix_.indptr) > 0)
        moment = np.zeros((vectors.shape[1],) * 2)
        for start in range(0, len(users), 512):
            batch = users[start: start + 512]
            u = self.user_states(batch, self.user_history(batch))[0].double().numpy()
            moment += u.T @ u
        self.content_map_ = ContentMap.fit(self.item_content_, vectors.numpy(), warm, moment / max(len(users), 1),
                                           l2=c.content_map_l2, seed=c.seed, extra=self._tower_features())

    @torch.no_grad()
    def _tower_features(self) -> dict[str, np.ndarray]:
        """The item tower's content-only output for every item: a learned, nonlinear content feature
        for the map, next to the raw content (it carries what the tower learned, e.g. from hashed text)."""
        if not self.config.content_map_tower:
            return {}
        self.network_.eval()
        return {"tower": self.network_.items(torch.ones(self.n_items_, dtype=torch.bool))[0].numpy()}

    @torch.no_grad()
    def _vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_items, H) item vectors (mapped from content for unseen items) and (n_items, M) gates."""
        self.network_.eval()
        v, g = self.network_.items()
        mapped = np.flatnonzero(self._mapped_items())
        if len(mapped):
            v = v.clone()
            v[torch.from_numpy(mapped)] = torch.from_numpy(
                self.content_map_.predict(self.item_content_, mapped, extra=self._tower_features()))
        return v, g

    # -- scoring -----------------------------------------------------------------------------
    def item_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_items, H) item vectors and (n_items, M) gate weights (names: ``gate_names``).

        Items unseen in training take their vector from the content map when the run has one; their
        gates are the item tower's content-only weights.
        """
        v, g = self._vectors()
        return v.numpy(), g.numpy()

    def _blank_items(self) -> np.ndarray:
        """(n_items,) bool: items unseen in training and without any content input."""
        _, present = self.network_.items.content()
        blank = ~self.network_.items.seen
        if present is not None:
            blank &= ~present.any(1)
        return blank.numpy()

    @property
    def gate_names(self) -> list[str]:
        return list(self.network_.items.names)

    @torch.no_grad()
    def user_states(self, users: np.ndarray, history: History, weights: bool = False,
                    vectors: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(b, H) user vectors, the (b, L) right-padded sequences, attention per layer, lengths (b,).

        ``vectors``: the item vectors when the caller already has them (else computed here).
        """
        net = self.network_
        net.eval()
        seq = history.last(self.config.max_len)  # (b, L) left-padded
        seq, n = right_align(seq)
        if vectors is None:
            vectors, _ = self._vectors()
        side, _ = self._side_inputs(users)
        user_t, friends = torch.from_numpy(np.asarray(users, np.int64)), self._friend_rows(users)
        h, atts = net.encode(seq, vectors, user_t, weights=weights, friends=friends, side=side,
                             buckets=self._buckets(users, seq))
        last = (n - 1 + net.prefix).clamp(min=0)
        rows = torch.arange(len(n))
        u = h[rows, last]
        orders = self.config.score_orders if getattr(self, "unordered_", False) and not weights else 1
        if orders > 1:  # a set, not a sequence: average over random orders (seeded, so scores repeat)
            gen = torch.Generator().manual_seed(self.config.seed)
            for _ in range(orders - 1):
                key = torch.rand(seq.shape, generator=gen).masked_fill(seq == 0, 2.0)  # padding stays last
                perm = seq.gather(1, key.argsort(1))
                u = u + net.encode(perm, vectors, user_t, friends=friends, side=side,
                                   buckets=self._buckets(users, perm))[0][rows, last]
            u = u / orders
        return u, seq, atts, n

    @torch.no_grad()
    def _score(self, users: np.ndarray, history: History) -> np.ndarray:
        vectors, _ = self._vectors()
        u, _, _, n = self.user_states(users, history, vectors=vectors)
        s = (u @ vectors.T).numpy()
        boost = self.side_boost(users)
        if boost is not None:
            s += boost.toarray()
        if not self.network_.prefix:  # no profile token: users without history get popularity
            empty = (n == 0).numpy()
            s[empty] = self.item_popularity_
        s[:, self._blank_items()] = UNKNOWN_ITEM_SCORE  # nothing known about them: last, ties broken at random
        return s

    @torch.no_grad()
    def side_boost(self, users: np.ndarray) -> sp.csr_matrix | None:
        """(b, n_items) what the side events add to the users' scores (``w_u`` on each item), or None."""
        got = self._side_rows(users)
        if got is None:
            return None
        rows, ctx = got
        w = self.network_.side_boost(ctx).numpy()
        return sp.csr_matrix(sp.diags(w.astype(np.float32)) @ rows)

    def explain(self, user: int, items: np.ndarray, history: History | sp.csr_matrix | None = None, top: int = 3
                ) -> list[dict[str, Any]]:
        """Per item: its gate weight per source, and the history items the user vector attended to most;
        with the item-item prior, its share of the score and the history items behind it.

        Attention is the last layer's, averaged over heads, from the user's newest position.
        """
        users = np.array([user], dtype=np.int64)
        hist = self.as_history(users, history)
        _, seq, atts, n = self.user_states(users, hist, weights=True)
        _, gates = self.item_vectors()
        mapped = self._mapped_items()
        names = self.gate_names
        prefix = self.network_.prefix
        att = atts[-1][0].mean(0)[int(n[0]) - 1 + prefix] if int(n[0]) + prefix else None  # (prefix + L,)
        attended: list[dict[str, Any]] = []
        if att is not None:
            net = self.network_
            tokens = (["profile"] if net.users is not None else []) + (["social"] if net.social is not None else []) \
                + (["side"] if net.side is not None else [])
            for j, source in enumerate(tokens):
                attended.append({"item": None, "source": source, "attention": float(att[j])})
            w = att[prefix: prefix + int(n[0])]
            for j in torch.argsort(w, descending=True)[:top].tolist():
                attended.append({"item": int(seq[0, j]) - 1, "source": "history", "attention": float(w[j])})
        boost = self.side_boost(users)
        out = []
        for i in np.asarray(items, dtype=np.int64):
            row = {"item": int(i), "gates": {m: float(gates[i, k]) for k, m in enumerate(names)},
                   "attended": attended, "seen_in_training": bool(self.item_counts_[i] > 0),
                   "vector": "content map" if mapped[i] else "item tower"}
            if boost is not None and boost[0, i] > 0:  # e.g. "you tagged this artist": the score's side boost
                row["side_event"] = {"boost": float(boost[0, i])}
            out.append(row)
        return out

    # -- cold start: rows added after training ---------------------------------------------------
    def add_items(self, items: Any) -> int:
        """Append new items described by rows of an items table (the training items' columns); returns
        how many. They are scored from their content at once, without retraining. They have no node in
        the trained KG, so their KG token is missing (gate 0)."""
        from fusionrec.encoders import extend_items

        self._check_fitted()
        new = extend_items(self.item_content_, items, cache_dir=self.config.cache_dir or None)
        k = new.n
        if "kg" in self.item_content_.vectors:  # new rows have no node in the trained KG
            new.vectors["kg"] = np.zeros((k, self.item_content_.vectors["kg"].shape[1]), np.float32)
            new.present["kg"] = np.zeros(k, bool)
        self.item_content_ = self.item_content_.append(new)
        self.item_counts_ = np.concatenate([self.item_counts_, np.zeros(k)])
        self.item_recency_ = np.concatenate([self.item_recency_, np.ones(k)])
        self.train_matrix_ = sp.hstack([self.train_matrix_, sp.csr_matrix((self.train_matrix_.shape[0], k))]).tocsr()
        self.item_popularity_ = np.concatenate([self.item_popularity_, np.zeros(k, np.float32)])
        self.n_items_ += k
        self._rebuild()
        return k

    def add_users(self, users: Any) -> int:
        """Append new users' profiles (rows of a users table with the training users' columns); returns
        how many. Their dense indices follow the training users in the given order."""
        from fusionrec.encoders import user_content
        from fusionrec.encoders.content import ContentFeatures

        self._check_fitted()
        if self.user_content_ is None:
            raise ConfigError("this run was trained without user profiles; new users need only events (--history)")
        frame = users.reset_index(drop=True)
        schema = {c: k for c, k in self.user_content_.schema.items() if c in frame.columns} or dict(self.user_content_.schema)
        view = type("Profiles", (), {"n_users": len(frame), "users": frame, "user_schema": schema})()
        new: ContentFeatures = user_content(view, vocab=self.user_content_.vocab,  # type: ignore[arg-type]
                                            numeric_stats=self.user_content_.numeric_stats)
        self.user_content_ = self.user_content_.append(new)
        self._rebuild()
        return new.n

    def _rebuild(self) -> None:
        """A network for the current rows with every learned weight kept (new ID rows stay untrained)."""
        old = self.network_.state_dict()
        net = self.build_network()
        state = net.state_dict()
        for key, v in old.items():
            if key not in state:
                continue
            if state[key].shape == v.shape:
                state[key] = v
            elif key == "items.id.weight":  # new items: untrained IDs (they are cold, so never read)
                state[key][: v.shape[0]] = v
        net.load_state_dict(state)
        net.eval()
        self.network_ = net

    # -- persistence -------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        state = super()._state()
        state["item_counts"], state["item_recency"] = self.item_counts_, self.item_recency_
        state["unordered"] = np.asarray([getattr(self, "unordered_", False)])
        for side, content in (("items", self.item_content_), ("users", self.user_content_)):
            if content is None:
                continue
            arrays, meta = content.to_state()
            state.update({f"content.{side}.{k}": v for k, v in arrays.items()})
            state[f"content.{side}.meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        if getattr(self, "triples_", None) is not None:
            state.update(self.triples_.to_state("graph.kg."))
        for name in ("friends_", "social_items_", "side_items_", "weight_buckets_"):
            m = getattr(self, name, None)
            if m is not None:
                key = f"graph.{name.rstrip('_')}."
                state.update({key + "indptr": m.indptr.astype(np.int64), key + "indices": m.indices.astype(np.int64),
                              key + "data": m.data.astype(np.float32), key + "shape": np.asarray(m.shape, np.int64)})
        if self.content_map_ is not None:
            arrays, meta = self.content_map_.to_state()
            state.update({f"content_map.{k}": v for k, v in arrays.items()})
            state["content_map.meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return state

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        from fusionrec.encoders import ContentFeatures

        self.item_counts_, self.item_recency_ = state["item_counts"], state["item_recency"]
        self.unordered_ = bool(state["unordered"][0]) if "unordered" in state else False
        contents: dict[str, Any] = {"items": None, "users": None}
        for side in contents:
            key = f"content.{side}.meta"
            if key in state:
                meta = json.loads(bytes(state[key]).decode())
                pre = f"content.{side}."
                arrays = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre) and k != key}
                contents[side] = ContentFeatures.from_state(arrays, meta)
        self.item_content_, self.user_content_ = contents["items"], contents["users"]
        from fusionrec.graph.triples import Triples

        self.triples_ = Triples.from_state(state, "graph.kg.") if "graph.kg.sizes" in state else None
        for name in ("friends_", "social_items_", "side_items_", "weight_buckets_"):
            key = f"graph.{name.rstrip('_')}."
            setattr(self, name, sp.csr_matrix((state[key + "data"], state[key + "indices"], state[key + "indptr"]),
                                              shape=tuple(int(x) for x in state[key + "shape"]))
                    if key + "shape" in state else None)
        self.content_map_ = None
        if "content_map.meta" in state:
            from fusionrec.models.content_map import ContentMap

            self.content_map_ = ContentMap.from_state(
                {k[len("content_map."):]: v for k, v in state.items() if k.startswith("content_map.") and k != "content_map.meta"},
                json.loads(bytes(state["content_map.meta"]).decode()))
        super()._load_state(state)
