"""One training step of the fusion model, at about the cost of a SASRec step.

The softmax of next-item training needs a vector for every item. Running the item tower over the
whole catalogue at every step made an epoch cost ``catalogue x steps`` (4-13x SASRec's on
ml-latest-small). Here a step runs the tower only on the items it needs — the batch's own items
(every input and target) plus ``item.sampled_items`` items drawn uniformly — and the softmax still
covers every item, exactly:

* every item's ID embedding is live (its gradient is SASRec's, for every item);
* the deep part of the tower (token projections, cross-modal attention, the modality gate) of an item
  outside the step is read from a :class:`ContentCache` of each item's fused content ``f``, refreshed
  for the whole catalogue at the start of every epoch and, for the items the tower ran on, at every
  step (their fresh values, detached); the cheap head on top of it (the content map ``W f`` and the
  weight ``alpha``) runs on every item at every step, so those parameters see every item's gradient.

The deep part's gradient is then an importance-sampled estimate of its full-softmax gradient: the
batch's items are always in the step (inclusion probability 1), every other item is drawn with
probability ``q = 1 - (1 - 1/n)^sampled``, and the gradient reaching a drawn item's fused content is
divided by its ``q`` (a log-Q style correction). Without it, the items of the batch — each position's
targets among them — would be the only ones whose content could move, and the tower would learn to
lift them above the stale rest (the loss first fell faster than the exact one, then diverged).

So the user side and every ID see the full-softmax gradient; the tower's parameters learn from the
items of the step. Catalogues up to ``2 x item.sampled_items`` items run whole at every step (no
cache). Frozen inputs (text, image, audio vectors and their LayerNorm statistics) are computed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from fusionrec.models.fusion.item_tower import ItemTower
from fusionrec.models.fusion.sources.base import pad_rows
from fusionrec.models.next_item import WindowBatches, bucketed, full_softmax_ce, gather_windows, window_ce

#: items the tower runs on at once while the cache is refreshed
REFRESH_CHUNK = 8192


class UserWindows(WindowBatches):
    """:class:`WindowBatches` that also yields each window's user and whether it starts the sequence."""

    def batches(self, batch_size: int, rng: np.random.Generator, align: str = "right") -> Iterator[Any]:  # type: ignore[override]
        self.reorder(rng)
        for rows in bucketed(self.sizes, batch_size, rng):
            users, ends, sizes = self.windows[rows, 0], self.windows[rows, 1], self.sizes[rows]
            seq = gather_windows(self.indptr, self.items, users, ends - sizes, sizes, int(sizes.max()), "right")
            yield torch.from_numpy(users), torch.from_numpy(ends - sizes == 0), torch.from_numpy(seq)


def runs_whole(n_items: int, sampled_items: int) -> bool:
    """Whether the tower runs on every item at every step (small catalogues)."""
    return n_items <= 2 * sampled_items


class ContentCache:
    """The fused content ``f`` (n, H) of every item and whether it has content (n,), as the deep part of
    the tower last computed them."""

    def __init__(self, tower: ItemTower) -> None:
        self.fused = torch.zeros(tower.n_items, tower.kind.shape[1])
        self.has = torch.zeros(tower.n_items, dtype=torch.bool)
        self.refresh(tower)

    @torch.no_grad()
    def refresh(self, tower: ItemTower) -> None:
        """Run the deep part (in eval mode) over every item, in chunks."""
        was = tower.training
        tower.eval()
        try:
            for lo in range(0, tower.n_items, REFRESH_CHUNK):
                items = torch.arange(lo, min(lo + REFRESH_CHUNK, tower.n_items))
                fused, has, _ = tower.fuse(items)
                self.fused[items], self.has[items] = fused, has
        finally:
            tower.train(was)


def step_vectors(tower: ItemTower, seq: torch.Tensor, cold: torch.Tensor | None, cache: ContentCache | None,
                 sampled: int) -> torch.Tensor:
    """(n_items, H) item vectors for one step: see the module docstring. ``seq`` (B, W) is the batch's item
    indices + 1; ``cold`` (n_items,) the ID-dropout mask."""
    if cache is None:
        v, _ = tower(None, cold)
        return v
    n = tower.n_items
    batch_items = seq[seq > 0] - 1
    cand = torch.unique(torch.cat([batch_items, torch.randint(0, n, (sampled,))]))  # (C,)
    fused_c, has_c, _ = tower.fuse(cand, cold[cand] if cold is not None else None)
    if fused_c.requires_grad:  # an unbiased estimate of the deep part's full-catalogue gradient (module docstring)
        in_batch = torch.zeros(n, dtype=torch.bool)
        in_batch[batch_items] = True
        q = torch.where(in_batch[cand], torch.ones(()), torch.tensor(1.0 - (1.0 - 1.0 / n) ** sampled))
        fused_c.register_hook(lambda g: g / q[:, None])
    with torch.no_grad():  # what the deep part just computed is the freshest content of these items
        cache.fused[cand] = fused_c.detach()
        cache.has[cand] = has_c
    fused = cache.fused.index_copy(0, cand, fused_c)  # (n, H), gradients flow to the fresh rows
    everything = torch.arange(n)
    alpha, content = tower.head(everything, fused, cache.has, cold)  # exact for every item given f
    e = tower.id_part(everything, cold)  # (n, H): every ID live
    v = alpha[:, None] * content
    return v if e is None else e + v


def training_step(model: Any, batch: Any) -> torch.Tensor:
    """SASRec's loss (next items from every position, full-softmax cross-entropy, seen items left out)
    over the fused vectors; the prefix tokens also predict a sequence's first items (new users)."""
    users_t, starts, seq = batch
    users = users_t.numpy()
    c, net = model.config, model.network_
    tower: ItemTower = net.items
    n = tower.n_items
    cold = None
    if tower.ids is not None and c.id.dropout and tower.content_names:  # ID dropout only where content stands in
        cold = torch.rand(n, device=seq.device) < c.id.dropout
    vectors = step_vectors(tower, seq, cold, getattr(model, "train_cache_", None), c.item.sampled_items)
    users_net = net.users
    h, _ = users_net.encode(seq[:, :-1], vectors, users)  # (B, prefix + W - 1, H)
    bias_idx = bias = None
    side = users_net.source("side")
    if side is not None:  # the side boost: w_u on each item of the user's side events
        rows = side.rows(users, n)
        bias_idx = torch.from_numpy(pad_rows(rows.indptr, rows.indices.astype(np.int64)))  # (B, J), -1 = none
        bias = side.boost_weight(users)[:, None].expand(bias_idx.shape)
    u = c.user
    loss = window_ce(h[:, users_net.prefix:], seq, vectors, targets=u.targets, exclude_seen=u.exclude_seen,
                     smoothing=u.label_smoothing, bias_idx=bias_idx, bias=bias)
    if users_net.prefix:  # the user tokens predict the first items of a sequence (a new user's first items)
        first = starts.nonzero().squeeze(1)
        if len(first):
            tgt = seq[first, : u.targets] - 1  # (F, T), -1 = none
            extra = (bias_idx[first], bias[first]) if bias is not None and bias_idx is not None else (None, None)
            loss = loss + full_softmax_ce(h[first, users_net.prefix - 1], vectors, tgt, 0.0, None, *extra) * \
                len(first) / max(1, int((seq[:, 1:] > 0).sum()))
    return loss
