"""The ``ranking`` suite: full-ranking evaluation at scale, against this machine's matmul peak.

Random ``dim``-dimensional user and item factors (seeded); every user has ``history`` seen items
(excluded) and one test item; the whole :func:`fusionrec.evaluation.evaluate` path runs (scoring,
exclusion, seeded tie-break, top-K, metrics) and is timed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GEMM throughput of this machine through torch (GFLOP/s)."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def generator_config(n_users: int, n_items: int, dim: int, history: int, seed: int) -> dict[str, Any]:
    """What the suite's data is made from (its row's ``dataset_sha256`` is this config's checksum)."""
    return {"kind": "random-factors", "users": n_users, "items": n_items, "dim": dim, "history": history,
            "seed": seed}


def ranking_scale(n_users: int, n_items: int, dim: int, k: int, history: int, seed: int = 0) -> dict[str, Any]:
    """Time a full-ranking evaluation of ``n_users x n_items`` with ``dim``-dim factors; the metrics of one row."""
    import pandas as pd
    import scipy.sparse as sp

    from fusionrec.data import Dataset, IdMap
    from fusionrec.evaluation import evaluate
    from fusionrec.models.factors import FactorModel
    from fusionrec.run import Stopwatch

    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users), history)
    i = rng.integers(0, n_items, size=n_users * history)
    train = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(n_users, n_items))
    train.sum_duplicates()
    train.data[:] = 1
    test_items = rng.integers(0, n_items, size=n_users)
    ids_u, ids_i = IdMap(np.arange(n_users)), IdMap(np.arange(n_items))
    test = Dataset(pd.DataFrame({"user": np.arange(n_users), "item": test_items, "timestamp": 0}), ids_u, ids_i)
    model = FactorModel.from_factors(rng.standard_normal((n_users, dim), dtype=np.float32),
                                     rng.standard_normal((n_items, dim), dtype=np.float32), train)
    with Stopwatch() as t:
        res = evaluate(model, test, (k,))
    flops = 2.0 * n_users * n_items * dim
    peak = matmul_peak_gflops()
    achieved = flops / t.seconds / 1e9
    return {"users": n_users, "items": n_items, "dim": dim, "k": k, "history_per_user": history,
            "seconds": round(t.seconds, 3), "scoring_gflop": round(flops / 1e9, 2),
            "achieved_gflops": round(achieved, 1), "machine_matmul_peak_gflops": round(peak, 1),
            "fraction_of_peak": round(achieved / peak, 3), f"NDCG@{k}": res.metrics[f"NDCG@{k}"]}
