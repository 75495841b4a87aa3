"""Top-K selection: exclusion, candidates, padding and seeded (never id-ordered) tie-breaks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fusionrec.evaluation.ranking import batch_size_for, tie_noise, topk


def test_orders_by_score_and_excludes() -> None:
    s = np.array([[0.1, 0.9, 0.5, 0.7]], dtype=np.float32)
    ex = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=np.float32))
    items, vals = topk(s.copy(), 2, exclude=ex)
    assert items.tolist() == [[3, 2]]


def test_candidates_and_padding() -> None:
    s = np.array([[0.1, 0.9, 0.5, 0.7]], dtype=np.float32)
    items, vals = topk(s.copy(), 3, candidates=np.array([True, False, True, False]))
    assert items.tolist() == [[2, 0, -1]]
    assert np.isneginf(vals[0, 2])


def test_ties_follow_the_seeded_priority_not_the_id() -> None:
    n = 200
    s = np.zeros((1, n), dtype=np.float32)
    noise = tie_noise(n, seed=3)
    items, _ = topk(s.copy(), 10, noise=noise)
    assert items[0].tolist() == np.argsort(-noise)[:10].tolist()
    assert items[0].tolist() != list(range(10))
    other, _ = topk(s.copy(), 10, noise=tie_noise(n, seed=4))
    assert other[0].tolist() != items[0].tolist()


def test_ties_across_the_cut_and_inside_the_list() -> None:
    # scores: one clear winner, then a run of 50 equal scores crossing the cut
    s = np.full((2, 60), 0.5, dtype=np.float32)
    s[:, 7] = 2.0
    s[:, 50:] = 0.1
    noise = tie_noise(60, seed=0)
    items, _ = topk(s.copy(), 5, noise=noise)
    tied = np.arange(50)[np.arange(50) != 7]
    expect = [7] + tied[np.argsort(-noise[tied])][:4].tolist()
    assert items[0].tolist() == expect and items[1].tolist() == expect


def test_batch_size_bounded() -> None:
    assert batch_size_for(100_000) * 100_000 * 4 <= 96 * 2**20
    assert batch_size_for(10) == 2048
