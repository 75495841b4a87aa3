"""Next-item training shared by the sequence models (SASRec, GRU4Rec, Caser).

Windows
    Each user's time-ordered training sequence is cut, from its end, into windows of up to
    ``length + 1`` items that overlap by one item, so every event after a user's first is a target
    exactly once per epoch (:class:`WindowBatches`). Batches group windows of similar size
    (bucketing) and are only as wide as their longest window, so little work goes into padding.
    Batches are built with array indexing, not a Python loop per window.

Losses
    :func:`full_softmax_ce` is the cross-entropy over the whole catalogue, computed in chunks of
    positions with its gradient formed in the forward pass: memory is O(chunk x n_items) instead of
    O(positions x n_items), and the work is the same three matrix products as autograd's.
    :func:`sampled_softmax_ce` scores the batch's targets plus uniform negatives (large catalogues).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: logits held at once by :func:`full_softmax_ce` (float32 elements: 64 MiB)
CE_CHUNK_ELEMENTS = 2**24
#: batches sorted by size together before their order is shuffled (see :meth:`WindowBatches.batches`)
BUCKET_BATCHES = 16


def window_ends(indptr: np.ndarray, length: int) -> np.ndarray:
    """``(n_windows, 2)`` rows ``(user, end)``: window = sequence items ``[max(0, end - length - 1), end)``.

    Ends are ``n, n - length, n - 2 length, ...`` (above 1) for a user with ``n`` events, so the
    windows' targets (every item but a window's first) cover events ``1 .. n - 1`` exactly once.
    """
    n = np.diff(np.asarray(indptr, dtype=np.int64))
    count = np.where(n >= 2, (n - 2) // length + 1, 0)  # ceil((n - 1) / length)
    users = np.repeat(np.arange(len(n), dtype=np.int64), count)
    k = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    return np.stack([users, n[users] - k * length], axis=1)


def gather_windows(indptr: np.ndarray, items: np.ndarray, users: np.ndarray, starts: np.ndarray,
                   sizes: np.ndarray, width: int, align: str = "left") -> np.ndarray:
    """``(B, width)`` item indices + 1 (0 = padding) of each row's ``sizes[r]`` items from ``starts[r]``.

    ``align="left"`` pads on the left (newest item in the last column), ``"right"`` on the right.
    """
    col = np.arange(width, dtype=np.int64)[None, :]  # (1, W)
    offset = col - (width - sizes)[:, None] if align == "left" else np.broadcast_to(col, (len(sizes), width))
    real = (offset >= 0) & (offset < sizes[:, None])  # (B, W)
    idx = np.asarray(indptr, dtype=np.int64)[users][:, None] + starts[:, None] + np.where(real, offset, 0)
    return np.where(real, items[np.where(real, idx, 0)] + 1, 0)


def bucketed(sizes: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices per batch: a random order, sorted by size within buckets of batches, batches shuffled."""
    order = rng.permutation(len(sizes))
    span = batch_size * BUCKET_BATCHES
    out: list[np.ndarray] = []
    for s in range(0, len(order), span):
        chunk = order[s:s + span]
        chunk = chunk[np.argsort(sizes[chunk], kind="stable")]
        out += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


class WindowBatches:
    """Training windows of ``length + 1`` items over CSR-like sequences ``(indptr, items)``."""

    def __init__(self, indptr: np.ndarray, items: np.ndarray, length: int, shuffle: bool = False) -> None:
        self.indptr, self.items, self.length = np.asarray(indptr, np.int64), np.asarray(items, np.int64), length
        self.shuffle = shuffle  # sets, not sequences: a new random order per user at every epoch
        self.windows = window_ends(self.indptr, length)  # (n_windows, 2): user, end
        self.sizes = np.minimum(self.windows[:, 1], length + 1)  # items per window

    def __len__(self) -> int:
        return len(self.windows)

    def steps(self, batch_size: int) -> int:
        return -(-len(self.windows) // batch_size)

    def batches(self, batch_size: int, rng: np.random.Generator, align: str = "left") -> Iterator[torch.Tensor]:
        """Yield ``(B, W)`` item indices + 1, W = the batch's largest window (at most ``length + 1``)."""
        self.reorder(rng)
        for rows in bucketed(self.sizes, batch_size, rng):
            users, ends, sizes = self.windows[rows, 0], self.windows[rows, 1], self.sizes[rows]
            width = int(sizes.max())
            yield torch.from_numpy(gather_windows(self.indptr, self.items, users, ends - sizes, sizes, width, align))


    def reorder(self, rng: np.random.Generator) -> None:
        """With ``shuffle``: put each user's items in a new random order (an epoch's augmentation for
        data without timestamps, where any order is as true as another)."""
        if self.shuffle and len(self.items):
            owner = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
            self.items = self.items[np.lexsort((rng.random(len(self.items)), owner))]


def right_align(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(B, L)`` -> the same rows right-padded, and each row's length ``(B,)``."""
    length = seq.shape[1]
    n = (seq > 0).sum(1)  # (B,)
    idx = (torch.arange(length)[None, :] + (length - n)[:, None]) % length  # (B, L)
    return seq.gather(1, idx), n


# ---------------------------------------------------------------------------------------------- losses
class _ChunkedCE(torch.autograd.Function):
    """Mean softmax cross-entropy of ``h @ w.T`` (+ label smoothing), gradients formed chunk by chunk.

    ``target`` is (N, T) with -1 where a row has fewer targets; the mean is over real targets.
    ``exclude`` (N, K), -1 = none, lists items left out of a row's softmax (never a row's target).
    ``bias_idx`` / ``bias`` (N, J), -1 = none: ``bias[r, j]`` is added to the logit of item
    ``bias_idx[r, j]`` of row r (a sparse per-row boost; its gradient flows to ``bias``).
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, w: torch.Tensor, target: torch.Tensor, exclude: torch.Tensor | None,
                smoothing: float, chunk: int, bias_idx: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        n_items = w.shape[0]
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        need_bias = bias is not None and ctx.needs_input_grad[7]
        hf, wf = (h, w) if h.dtype == torch.float64 else (h.float(), w.float())
        grad_h = torch.empty_like(hf) if need else None
        grad_w = torch.zeros_like(wf) if need else None
        grad_b = torch.zeros_like(bias, dtype=hf.dtype) if need_bias else None
        dummy = exclude is not None or bias is not None
        if dummy:  # a dummy last column (always excluded) takes the -1 padding of `exclude` / `bias_idx`
            wf = torch.cat([wf, wf.new_zeros(1, wf.shape[1])])
        if exclude is not None:
            exclude = torch.where(exclude >= 0, exclude, n_items)
        if bias is not None:
            assert bias_idx is not None
            bias_idx = torch.where(bias_idx >= 0, bias_idx, n_items)
            bias_f = bias.to(hf.dtype)
        real = target >= 0  # (N, T)
        count = real.sum(1).to(hf.dtype)  # (N,) targets per row
        n_targets = max(1, int(count.sum()))
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        for s in range(0, h.shape[0], chunk):
            hc, tc, rc, cc = hf[s:s + chunk], target[s:s + chunk].clamp(min=0), real[s:s + chunk], count[s:s + chunk]
            logits = hc @ wf.T  # (c, n_items [+ 1])
            if bias is not None:
                logits.scatter_add_(1, bias_idx[s:s + chunk], bias_f[s:s + chunk])
            if dummy:
                logits[:, n_items] = float("-inf")
            if exclude is not None:
                logits.scatter_(1, exclude[s:s + chunk], float("-inf"))
            picked = logits.gather(1, tc).where(rc, 0.0).sum(1)  # (c,) sum of the targets' logits
            loss = -(1 - smoothing) * picked
            if smoothing:  # the smoothing mass goes evenly to the items in the softmax
                allowed = logits.isfinite()  # (c, n_items [+ 1])
                n_in = allowed.sum(1, keepdim=True).to(hf.dtype)  # (c, 1)
                loss -= smoothing * cc * logits.where(allowed, 0.0).sum(1) / n_in.squeeze(1)
            top = logits.amax(1, keepdim=True)  # (c, 1)
            g = logits.sub_(top).exp_()  # in place: exp(logits - max); excluded items: 0
            norm = g.sum(1, keepdim=True)  # (c, 1)
            loss += cc * (top + norm.log()).squeeze(1)  # + count x log-sum-exp
            total += loss.sum(dtype=torch.float64)
            if need or need_bias:
                g.mul_(cc[:, None] / norm)  # count x softmax
                g.scatter_add_(1, tc, -(1 - smoothing) * rc.to(g.dtype))
                if smoothing:
                    g.sub_(allowed * (smoothing * cc[:, None] / n_in))
                if need_bias:  # d loss / d logit at each boosted item (0 at the dummy column)
                    grad_b[s:s + chunk] = g.gather(1, bias_idx[s:s + chunk])
                if need:
                    grad_h[s:s + chunk] = g @ wf  # (c, H)
                    grad_w += g[:, :n_items].T @ hc  # (n_items, H)
        zero = torch.zeros(())
        ctx.save_for_backward(grad_h.to(h.dtype) / n_targets if need else zero,
                              grad_w.to(w.dtype) / n_targets if need else zero,
                              grad_b.to(bias.dtype) / n_targets if need_bias else zero)
        ctx.need, ctx.need_bias = need, need_bias
        return (total / n_targets).to(h.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_h, grad_w, grad_b = ctx.saved_tensors
        gh, gw = (grad_h * grad, grad_w * grad) if ctx.need else (None, None)
        return gh, gw, None, None, None, None, None, grad_b * grad if ctx.need_bias else None


def full_softmax_ce(h: torch.Tensor, items: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0,
                    exclude: torch.Tensor | None = None, bias_idx: torch.Tensor | None = None,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of the softmax over every item.

    Parameters
    ----------
    h : (N, H) hidden states; items : (n_items, H) output item vectors.
    target : (N,) item indices, or (N, T) with -1 where a row has fewer than T targets (each real
        target is one term of the mean).
    smoothing : label smoothing, the share of each target's mass spread evenly over the softmax's items.
    exclude : (N, K) items to leave out of each row's softmax, -1 = none; must not hold the row's
        targets. Leaving out the items a user has already seen trains the ranking that
        ``recommend`` (which never re-recommends them) is judged on.
    bias_idx, bias : (N, J) items (-1 = none) whose logit gets ``bias`` added in that row (sparse
        evidence outside the dot product, e.g. "the user tagged this artist"); ``bias`` may need grad.
    """
    if target.ndim == 1:
        target = target[:, None]
    if not bool((target >= 0).any()):
        zero = (h.sum() + items.sum()) * 0.0
        return zero + bias.sum() * 0.0 if bias is not None else zero
    chunk = max(1, CE_CHUNK_ELEMENTS // max(1, items.shape[0]))
    with torch.autocast(h.device.type, enabled=False):
        return _ChunkedCE.apply(h, items, target, exclude, float(smoothing), chunk, bias_idx, bias)


def next_targets(batch: torch.Tensor, count: int) -> torch.Tensor:
    """(B, W - 1, count) item indices (-1 = none) of the ``count`` items after each input position.

    ``batch`` (B, W) is item indices + 1, 0 = padding; input position t is followed by
    ``batch[:, t + 1 : t + 1 + count]`` (cut at the window's end).
    """
    padded = F.pad(batch[:, 1:], (0, count - 1))  # (B, W - 1 + count - 1)
    return padded.unfold(1, count, 1) - 1  # (B, W - 1, count)


def seen_before(inp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, W, W) items seen up to each position, -1 = none: row ``[r, t]`` holds ``inp[r, :t + 1] - 1``.

    ``inp`` (B, W) is item indices + 1 (0 = padding); ``target`` (B, W, T) the positions' targets as
    item indices (-1 = none). An earlier item equal to one of the position's targets (a repeat) is
    not listed, so a target is never excluded.
    """
    w = inp.shape[1]
    upto = torch.ones(w, w, dtype=torch.bool, device=inp.device).tril()  # (W, W): j <= t
    seen = inp[:, None, :].expand(-1, w, -1) - 1  # (B, W, W)
    repeat = (seen[..., None] == target[:, :, None, :]).any(-1)  # (B, W, W)
    return torch.where(upto & (seen >= 0) & ~repeat, seen, -1)


def window_ce(h: torch.Tensor, batch: torch.Tensor, items: torch.Tensor, *, targets: int = 1,
              exclude_seen: bool = True, smoothing: float = 0.0, bias_idx: torch.Tensor | None = None,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """Full-softmax cross-entropy of a batch of windows read by a causal sequence network.

    h : (B, W - 1, H) states after each input item ``batch[:, :-1]``; batch : (B, W) item indices + 1
    (0 = padding, left or right); items : (n_items, H). Each position with a next item is trained
    to predict the ``targets`` items after it; ``exclude_seen`` leaves the items seen up to it (in
    the window) out of its softmax. ``bias_idx`` / ``bias`` (B, J): per-window sparse logit boosts
    (see :func:`full_softmax_ce`), the same at every position of a window.
    """
    inp = batch[:, :-1]  # (B, W - 1)
    keep = (inp > 0) & (batch[:, 1:] > 0)  # positions with a next item
    nxt = next_targets(batch, targets)  # (B, W - 1, T)
    exclude = seen_before(inp, nxt)[keep] if exclude_seen else None  # (N, W - 1)
    if bias is not None:
        assert bias_idx is not None
        rows = keep.nonzero()[:, 0]  # each kept position's window
        return full_softmax_ce(h[keep], items, nxt[keep], smoothing, exclude, bias_idx[rows], bias[rows])
    return full_softmax_ce(h[keep], items, nxt[keep], smoothing, exclude)


def sampled_softmax_ce(h: torch.Tensor, items: torch.Tensor, target: torch.Tensor, negatives: int,
                       n_items: int) -> torch.Tensor:
    """Softmax over the batch's targets plus ``negatives`` uniform items (an item is never its own negative).

    h : (N, H); items : (n_items, H); target : (N,).
    """
    neg = torch.randint(0, n_items, (negatives,), device=h.device)
    cand = torch.cat([target, neg])  # (N + negatives,)
    logits = h @ items[cand].T  # (N, N + negatives)
    same = target[:, None] == cand[None, :]
    same[:, : len(target)].fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(target), device=h.device))
