"""Windows, batches and losses shared by the sequence models (fusionrec.models.next_item)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusionrec.models import next_item as NI


def test_windows_make_every_event_after_the_first_a_target_once() -> None:
    lengths = np.array([0, 1, 2, 5, 51, 120, 7])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    items = np.arange(indptr[-1])  # event e of the whole set is item e
    batches = NI.WindowBatches(indptr, items, length=50)
    seen = []
    for batch in batches.batches(3, np.random.default_rng(0)):
        assert batch.shape[1] <= 51
        inp, target = batch[:, :-1], batch[:, 1:]
        real = (target > 0) & (inp > 0)
        assert torch.all(target[real] == inp[real] + 1)  # a window is consecutive events
        seen += (target[real] - 1).tolist()
    firsts = set(indptr[:-1][lengths > 0].tolist())
    assert sorted(seen) == [e for e in range(indptr[-1]) if e not in firsts]


def test_batches_are_as_wide_as_their_longest_window_and_left_padded() -> None:
    indptr = np.array([0, 3, 10])
    batch = next(NI.WindowBatches(indptr, np.arange(10), length=20).batches(2, np.random.default_rng(0)))
    assert batch.shape == (2, 7)
    rows = sorted(batch.tolist())
    assert rows == [[0, 0, 0, 0, 1, 2, 3], [4, 5, 6, 7, 8, 9, 10]]


def test_right_align_moves_padding_to_the_end() -> None:
    seq, n = NI.right_align(torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0]]))
    assert seq.tolist() == [[3, 4, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0]] and n.tolist() == [2, 4, 0]


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("multi", [False, True])
def test_chunked_full_softmax_equals_torch_cross_entropy(smoothing: float, multi: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NI, "CE_CHUNK_ELEMENTS", 50)  # several chunks of 4 rows
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(37, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(11, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    if multi:  # (N, 3) targets, -1 = none
        target = torch.randint(0, 11, (37, 3), generator=gen)
        target[::4, 1:] = -1
        rows, cols = (target >= 0).nonzero(as_tuple=True)
        ref = F.cross_entropy(h[rows] @ w.T, target[rows, cols], label_smoothing=smoothing)
    else:
        target = torch.randint(0, 11, (37,), generator=gen)
        ref = F.cross_entropy(h @ w.T, target, label_smoothing=smoothing)
    got = NI.full_softmax_ce(h, w, target, smoothing)
    torch.testing.assert_close(got, ref)
    for a, b in zip(torch.autograd.grad(3 * got, (h, w)), torch.autograd.grad(3 * ref, (h, w)), strict=True):
        torch.testing.assert_close(a, b)


def test_full_softmax_without_targets_is_zero_and_differentiable() -> None:
    h, w = torch.randn(2, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    loss = NI.full_softmax_ce(h, w, torch.full((2, 3), -1))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(h.grad == 0)


def test_sampled_softmax_never_uses_the_target_as_its_own_negative() -> None:
    torch.manual_seed(0)
    h = torch.randn(4, 3, requires_grad=True)
    items = torch.randn(5, 3, requires_grad=True)
    target = torch.tensor([1, 1, 2, 3])  # a repeated target must not be a negative of its twin
    loss = NI.sampled_softmax_ce(h, items, target, negatives=50, n_items=5)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(h.grad).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_excluded_items_leave_the_softmax(smoothing: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NI, "CE_CHUNK_ELEMENTS", 50)
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(37, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(11, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randint(0, 11, (37,), generator=gen)
    exclude = torch.randint(-1, 11, (37, 4), generator=gen)
    exclude[exclude == target[:, None]] = -1  # a target is never excluded
    mask = torch.zeros(37, 11, dtype=torch.bool)
    rows, cols = (exclude >= 0).nonzero(as_tuple=True)
    mask[rows, exclude[rows, cols]] = True
    logp = torch.log_softmax((h @ w.T).masked_fill(mask, float("-inf")), dim=1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    spread = -logp.masked_fill(mask, 0.0).sum(1) / (~mask).sum(1)  # smoothing over the items left in
    ref = ((1 - smoothing) * nll + smoothing * spread).mean()
    got = NI.full_softmax_ce(h, w, target, smoothing, exclude)
    torch.testing.assert_close(got, ref)
    for a, b in zip(torch.autograd.grad(got, (h, w)), torch.autograd.grad(ref, (h, w)), strict=True):
        torch.testing.assert_close(a, b)


def test_next_targets_and_seen_items_per_position() -> None:
    batch = torch.tensor([[0, 3, 4, 5, 6]])  # items 2, 3, 4, 5 (+1), left-padded
    nxt = NI.next_targets(batch, 2)
    assert nxt.tolist() == [[[2, 3], [3, 4], [4, 5], [5, -1]]]
    seen = NI.seen_before(batch[:, :-1], nxt)
    assert seen.tolist() == [[[-1, -1, -1, -1], [-1, 2, -1, -1], [-1, 2, 3, -1], [-1, 2, 3, 4]]]
    repeat = NI.seen_before(torch.tensor([[3, 4]]), torch.tensor([[[3], [2]]]))  # item 2 comes again
    assert repeat.tolist() == [[[2, -1], [-1, 3]]]


@pytest.mark.parametrize("with_exclude", [False, True])
def test_a_sparse_logit_boost_equals_adding_it_to_dense_logits(with_exclude: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``bias_idx``/``bias`` (side events) add to the named items' logits; the gradient reaches the boost."""
    monkeypatch.setattr(NI, "CE_CHUNK_ELEMENTS", 50)
    gen = torch.Generator().manual_seed(1)
    n, n_items = 23, 11
    h = torch.randn(n, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(n_items, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randint(0, n_items, (n,), generator=gen)
    bias_idx = torch.randint(-1, n_items, (n, 4), generator=gen)
    bias = torch.rand(n, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    exclude = None
    dense = torch.zeros(n, n_items + 1, dtype=torch.float64).scatter_add(
        1, torch.where(bias_idx >= 0, bias_idx, n_items), bias)[:, :n_items]
    logits = h @ w.T + dense
    if with_exclude:  # leave one non-target item per row out of the softmax
        exclude = ((target + 1) % n_items)[:, None]
        logits = logits.scatter(1, exclude, float("-inf"))
    ref = F.cross_entropy(logits, target)
    got = NI.full_softmax_ce(h, w, target, 0.0, exclude, bias_idx, bias)
    torch.testing.assert_close(got, ref)
    for a, b in zip(torch.autograd.grad(got, (h, w, bias)), torch.autograd.grad(ref, (h, w, bias)), strict=True):
        torch.testing.assert_close(a, b)


def test_shuffled_windows_reorder_each_user_within_their_own_items() -> None:
    """Sets (no timestamps): every epoch a new order per user, the same items per user."""
    indptr = np.array([0, 30, 30, 70])
    items = np.arange(70)
    wb = NI.WindowBatches(indptr, items, length=50, shuffle=True)
    rng = np.random.default_rng(0)
    orders = []
    for _ in range(2):
        list(wb.batches(4, rng))
        orders.append(wb.items.copy())
        for u in range(3):
            assert sorted(wb.items[indptr[u]:indptr[u + 1]]) == list(range(indptr[u], indptr[u + 1]))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], items)
    fixed = NI.WindowBatches(indptr, items, length=50)
    list(fixed.batches(4, rng))
    assert np.array_equal(fixed.items, items)
